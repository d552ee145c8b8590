//! Host tests of every record: encode, decode, and rejection of damage.

use super::codec::{body_len, tag_of};
use super::*;
use crate::crc32::crc32;

/// One of every record, with fields that differ from each other.
fn every() -> Vec<Record> {
    let site = Name::new("indirect");
    vec![
        Record::TestVerdict {
            test: Name::new("patch-ipi"),
            passed: true,
        },
        Record::TestVerdict {
            test: Name::new("x"),
            passed: false,
        },
        Record::ExpectFault {
            ec: 0,
            elr: 0x4020_1040,
        },
        Record::Exception {
            core: 2,
            ec: 0x25,
            esr: 0x9600_004f,
            elr: 0x4020_1044,
            far: 0x4060_0000,
        },
        Record::RunEnded { status: 3 },
        Record::PatchFault {
            site: Name::new("ipi-sync"),
            core: 3,
            cause: FaultCause::Exception,
            version: 4,
            restored: 3,
            esr: 0x9600_0005,
            elr: 0x4060_1084,
            far: 0x8,
        },
        Record::PatchFault {
            site: Name::new("ipi-sync"),
            core: 1,
            cause: FaultCause::Hang,
            version: 7,
            restored: 6,
            esr: 0,
            elr: 0x4060_1100,
            far: 0,
        },
        Record::StackOverflow {
            core: 2,
            owner: 2,
            exception_stack: false,
            elr: 0x4008_1234,
            far: 0x4012_3ff0,
        },
        Record::Image {
            build_id: core::array::from_fn(|i| i as u8 * 7),
        },
        Record::Strategy {
            index: 3,
            count: 7,
            name: Name::new("flush-then-redirect"),
        },
        Record::BenchDirect { insns: 1 },
        Record::BenchEntry {
            strategy: Name::new("seq-check"),
            insns: 18,
        },
        Record::BenchResult {
            strategy: Name::new("stop-the-world"),
            cores: 32,
            latency_ns: 7520,
            throughput_per_s: 133_818,
        },
        Record::BenchCost {
            strategy: Name::new("ipi-sync"),
            cores: 4,
            publications: 200,
            disturb_insns: 61_800,
            disturb_max_insns: 140,
            exception_entries: 600,
            producer_insns: 187,
            latency_iterations: 0,
        },
        Record::BenchPublish {
            strategy: Name::new("ftr-multi"),
            consumers: 3,
            insns: 412,
        },
        Record::DemoResult {
            strategy: Name::new("branch-flip"),
            patches: 1000,
            iterations: 30_000,
            misses: 0,
            extra_max_ns: 4464,
            extra_mean_ns: 4080,
            mean_abs_error_c: 3.04,
            max_abs_error_c: 40.0,
        },
        Record::LiveReady { site },
        Record::LiveApplied {
            site,
            bytes: 64,
            slot: 0x4060_1080,
        },
        Record::LiveRefused {
            site: Name::new("no-such-site"),
            reason: Refusal::UnknownSite,
        },
        Record::LiveRefused {
            site,
            reason: Refusal::Escapes {
                offset: 0,
                target: 0x4070_1080,
            },
        },
        Record::LiveRefused {
            site,
            reason: Refusal::Timeout { missing: 0b100 },
        },
        Record::LiveBadFrame {
            error: FrameError::Checksum {
                sent: 1,
                computed: 2,
            },
        },
        Record::LiveBadFrame {
            error: FrameError::NameTooLong(200),
        },
        Record::LiveRuns {
            core: 3,
            version: 7,
            checksum_ok: true,
        },
        Record::LiveEnded {
            applied: 2,
            refused: 5,
        },
        Record::LiveStaged {
            site,
            nonce: 0x1234_5678_9abc_def0,
            addr: 0x4060_3000,
            len: 164,
        },
        Record::LiveReceived {
            nonce: 3,
            received: 1008,
        },
        Record::LiveCancelled { site, nonce: 3 },
        Record::LiveSealed { site, nonce: 4 },
        Record::LiveExpired { site, nonce: 5 },
        Record::SiteState {
            site,
            strategy: site,
            version: 7,
            hash: 0xdead_beef,
            previous_version: 6,
            previous_hash: 0x1234_5678,
            rollback: true,
            staged: 96,
        },
        Record::LoopStats {
            core: 2,
            iterations: 123_456,
            misses: 1,
            error_c: 0.25,
        },
        Record::ListEnd {
            sites: 10,
            free_slots: 3,
            free_bytes: 12288,
        },
        Record::LiveRolledBack {
            site,
            version: 8,
            restored: 6,
        },
        Record::PatchKey {
            key: [0xa5; 32],
            signed: true,
            development: false,
        },
        Record::PatchKey {
            key: [0; 32],
            signed: false,
            development: true,
        },
        Record::LiveLawRuns {
            core: 2,
            version: 9,
        },
        Record::LitmusWatch {
            va: 0x4060_1040,
            core: 1,
        },
    ]
}

fn bytes(r: &Record) -> Vec<u8> {
    let mut buf = [0u8; MAX_LEN];
    let n = r.encode(&mut buf);
    assert_eq!(n, r.len());
    buf[..n].to_vec()
}

#[test]
fn every_record_round_trips() {
    for r in every() {
        assert_eq!(Record::decode(&bytes(&r)), Ok(r), "{r}");
    }
}

#[test]
fn every_tag_is_tested() {
    let tags: std::collections::BTreeSet<u8> = every().iter().map(tag_of).collect();
    let known = (0..=u8::MAX).filter(|&t| body_len(t).is_some()).count();
    assert_eq!(tags.len(), known);
}

#[test]
fn every_flipped_bit_is_caught() {
    for r in every() {
        let good = bytes(&r);
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                Record::decode(&bad).is_err(),
                "{r}: bit {bit} went unnoticed"
            );
        }
    }
}

#[test]
fn a_flipped_field_bit_is_a_crc_mismatch() {
    let r = Record::BenchDirect { insns: 1 };
    let mut b = bytes(&r);
    b[1] ^= 0x10;
    assert!(matches!(Record::decode(&b), Err(DecodeError::Crc { .. })));
}

#[test]
fn truncated_and_padded_records_say_how_long_they_should_be() {
    for r in every() {
        let good = bytes(&r);
        for cut in 1..good.len() {
            assert_eq!(
                Record::decode(&good[..cut]),
                Err(DecodeError::Short {
                    tag: good[0],
                    expected: good.len(),
                    got: cut
                })
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            Record::decode(&long),
            Err(DecodeError::Long { .. })
        ));
    }
    assert_eq!(Record::decode(&[]), Err(DecodeError::Empty));
    let e = Record::decode(&bytes(&every()[0])[..5]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "short record (tag 1): expected 38 bytes, got 5"
    );
}

#[test]
fn a_bad_tag_is_named() {
    let mut b = bytes(&Record::RunEnded { status: 0 });
    b[0] = 0xee;
    assert_eq!(Record::decode(&b), Err(DecodeError::BadTag(0xee)));
    assert_eq!(DecodeError::BadTag(0xee).to_string(), "bad record tag 238");
}

/// Recomputes the checksum after an edit, so that the field checks behind it are reached.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() - CRC_BYTES;
    let crc = crc32(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn bad_fields_behind_a_good_checksum_are_named() {
    let entry = bytes(&Record::BenchEntry {
        strategy: Name::new("ipi-sync"),
        insns: 4,
    });
    // A strategy name is a name field: bytes after its NUL must be NUL.
    let mut b = entry.clone();
    b[1 + 10] = b'x';
    assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadName));
    let runs = bytes(&Record::LiveRuns {
        core: 1,
        version: 1,
        checksum_ok: false,
    });
    let mut b = runs.clone();
    b[10] = 2;
    assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadFlag(2)));
    let ready = bytes(&Record::LiveReady {
        site: Name::new("ab"),
    });
    let mut b = ready.clone();
    b[5] = b'x'; // a byte after the NUL padding began
    assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadName));
    let mut b = ready;
    b[1] = 0xff;
    assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadName));
    let refused = bytes(&Record::LiveRefused {
        site: Name::new("s"),
        reason: Refusal::Busy,
    });
    let mut b = refused;
    b[1 + NAME_BYTES] = 99;
    assert_eq!(
        Record::decode(&reseal(b)),
        Err(DecodeError::UnknownRefusal(99))
    );
    let bad = bytes(&Record::LiveBadFrame {
        error: FrameError::NameNotUtf8,
    });
    let mut b = bad;
    b[1] = 9;
    assert_eq!(
        Record::decode(&reseal(b)),
        Err(DecodeError::UnknownFrameError(9))
    );
}

#[test]
fn every_refusal_round_trips() {
    let all = [
        Refusal::UnknownSite,
        Refusal::Busy,
        Refusal::Empty,
        Refusal::TooLarge { len: 512, max: 128 },
        Refusal::MisalignedAddress { addr: 0x4060_1082 },
        Refusal::MisalignedLength { len: 6 },
        Refusal::AddressOverflow,
        Refusal::Escapes {
            offset: 4,
            target: 0x1_0000,
        },
        Refusal::BranchIntoData { offset: 8 },
        Refusal::FallsIntoData { offset: 12 },
        Refusal::FallsThrough { word: 0xd503_201f },
        Refusal::Unsafe {
            offset: 4,
            word: 0xd503_43df,
        },
        Refusal::ArenaFull { lagging: 0b1110 },
        Refusal::Vetoed,
        Refusal::Timeout { missing: 0b10 },
        Refusal::Offline { cores: 0b1000 },
        Refusal::PublishFailed,
        Refusal::WrongImage,
        Refusal::Arena,
        Refusal::Unsynchronized { missing: 0b110 },
        Refusal::InsideSite { core: 2 },
        Refusal::PositionUnknown { core: 3 },
        Refusal::NotStaged,
        Refusal::OutOfOrder {
            offset: 8,
            expected: 4,
        },
        Refusal::Incomplete {
            received: 4,
            len: 164,
        },
        Refusal::StageOpen,
    ];
    for reason in all {
        let r = Record::LiveRefused {
            site: Name::new("indirect"),
            reason,
        };
        assert_eq!(Record::decode(&bytes(&r)), Ok(r));
    }
}

#[test]
fn names_are_cut_at_a_character_boundary() {
    assert_eq!(Name::new("indirect").as_str(), "indirect");
    let long = "é".repeat(20); // 40 bytes
    let n = Name::new(&long);
    assert_eq!(n.as_str(), "é".repeat(16));
    assert_eq!(Name::new("").as_str(), "");
}

#[test]
fn text_forms_read_as_the_log_lines_did() {
    assert_eq!(
        Record::LiveRefused {
            site: Name::new("nope"),
            reason: Refusal::UnknownSite
        }
        .to_string(),
        "live-patch refused site=nope: unknown site"
    );
    assert_eq!(
        Record::TestVerdict {
            test: Name::new("demo"),
            passed: true
        }
        .to_string(),
        "test demo: PASS"
    );
}

#[test]
fn the_build_id_is_read_from_its_note_and_nothing_else() {
    let id: [u8; BUILD_ID_BYTES] = core::array::from_fn(|i| 0xa0 + i as u8);
    let mut note = Vec::new();
    for w in [4u32, 20, 3] {
        note.extend_from_slice(&w.to_le_bytes());
    }
    note.extend_from_slice(b"GNU\0");
    note.extend_from_slice(&id);
    assert_eq!(build_id_from_note(&note), Some(id));
    let mut other_type = note.clone();
    other_type[8] = 1;
    assert_eq!(build_id_from_note(&other_type), None);
    let mut other_name = note.clone();
    other_name[12] = b'X';
    assert_eq!(build_id_from_note(&other_name), None);
    assert_eq!(build_id_from_note(&note[..note.len() - 1]), None);
    assert_eq!(build_id_from_note(&[]), None);
}
