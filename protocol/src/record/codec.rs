//! The binary form of a record: a tag byte, fixed little-endian fields, a CRC-32.

use super::{BUILD_ID_BYTES, CRC_BYTES, DecodeError, MAX_LEN, NAME_BYTES, Name, Record};
use crate::crc32::crc32;
use crate::live::{FrameError, Refusal};

/// Tags, in one place: the byte each record starts with.
mod tag {
    pub const TEST_VERDICT: u8 = 1;
    pub const EXPECT_FAULT: u8 = 2;
    pub const EXCEPTION: u8 = 3;
    pub const RUN_ENDED: u8 = 4;
    pub const STRATEGY: u8 = 5;
    pub const IMAGE: u8 = 6;
    pub const BENCH_DIRECT: u8 = 10;
    pub const BENCH_ENTRY: u8 = 11;
    pub const BENCH_RESULT: u8 = 12;
    pub const BENCH_PUBLISH: u8 = 13;
    pub const BENCH_COST: u8 = 14;
    pub const DEMO_RESULT: u8 = 20;
    pub const LIVE_READY: u8 = 30;
    pub const LIVE_APPLIED: u8 = 31;
    pub const LIVE_REFUSED: u8 = 32;
    pub const LIVE_BAD_FRAME: u8 = 33;
    pub const LIVE_RUNS: u8 = 34;
    pub const LIVE_ENDED: u8 = 35;
    pub const LIVE_STAGED: u8 = 36;
    pub const LIVE_RECEIVED: u8 = 37;
    pub const LIVE_CANCELLED: u8 = 38;
    pub const LIVE_LAW_RUNS: u8 = 39;
    pub const LIVE_SEALED: u8 = 41;
    pub const PATCH_KEY: u8 = 42;
    pub const SITE_STATE: u8 = 43;
    pub const LIST_END: u8 = 44;
    pub const LIVE_ROLLED_BACK: u8 = 45;
    pub const LOOP_STATS: u8 = 46;
    pub const LIVE_EXPIRED: u8 = 47;
    pub const LITMUS_WATCH: u8 = 40;
    pub const PATCH_FAULT: u8 = 50;
    pub const STACK_OVERFLOW: u8 = 51;
}

/// Field bytes of a record with `tag`, None for an unknown tag.
pub(super) const fn body_len(t: u8) -> Option<usize> {
    Some(match t {
        tag::TEST_VERDICT => NAME_BYTES + 1,
        tag::EXPECT_FAULT => 1 + 8,
        tag::EXCEPTION => 1 + 1 + 8 * 3,
        tag::RUN_ENDED => 4,
        tag::STRATEGY => 1 + 1 + NAME_BYTES,
        tag::IMAGE => BUILD_ID_BYTES,
        tag::BENCH_DIRECT => 8,
        tag::BENCH_ENTRY => NAME_BYTES + 8,
        tag::BENCH_RESULT => NAME_BYTES + 4 + 8 * 2,
        tag::BENCH_COST => NAME_BYTES + 4 + 4 + 8 * 5,
        tag::BENCH_PUBLISH => NAME_BYTES + 4 + 8,
        tag::DEMO_RESULT => NAME_BYTES + 8 * 5 + 4 * 2,
        tag::LIVE_READY => NAME_BYTES,
        tag::LIVE_APPLIED => NAME_BYTES + 4 + 8,
        tag::LIVE_REFUSED => NAME_BYTES + 1 + 8 + 8,
        tag::LIVE_BAD_FRAME => 1 + 4 + 4,
        tag::LIVE_RUNS => 1 + 8 + 1,
        tag::LIVE_ENDED => 4 + 4,
        tag::LIVE_STAGED => NAME_BYTES + 8 + 8 + 4,
        tag::LIVE_RECEIVED => 8 + 4,
        tag::LIVE_CANCELLED => NAME_BYTES + 8,
        tag::LIVE_LAW_RUNS => 1 + 8,
        tag::LIVE_SEALED => NAME_BYTES + 8,
        tag::PATCH_KEY => 32 + 1 + 1,
        tag::SITE_STATE => NAME_BYTES * 2 + 8 + 4 + 8 + 4 + 1 + 4,
        tag::LIST_END => 1 + 1 + 4,
        tag::LIVE_ROLLED_BACK => NAME_BYTES + 8 + 8,
        tag::LOOP_STATS => 1 + 8 + 8 + 4,
        tag::LIVE_EXPIRED => NAME_BYTES + 8,
        tag::LITMUS_WATCH => 8 + 1,
        tag::PATCH_FAULT => NAME_BYTES + 1 + 1 + 8 * 5,
        tag::STACK_OVERFLOW => 1 + 1 + 1 + 8 * 2,
        _ => return None,
    })
}

/// Every tag's body fits [`MAX_LEN`].
const _: () = {
    let mut t = 0u8;
    loop {
        if let Some(n) = body_len(t) {
            assert!(1 + n + CRC_BYTES <= MAX_LEN);
        }
        if t == u8::MAX {
            break;
        }
        t += 1;
    }
};

/// Writes fields in order.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }
    fn name(&mut self, n: &Name) {
        self.bytes(&n.bytes);
    }
}

/// Reads fields in order from a body whose length was checked.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.body[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8() {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadFlag(v)),
        }
    }
    fn name(&mut self) -> Result<Name, DecodeError> {
        Name::decode(&self.take::<NAME_BYTES>())
    }
}

impl FrameError {
    fn to_parts(self) -> (u8, u32, u32) {
        let wide = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match self {
            Self::NameTooLong(n) => (0, wide(n), 0),
            Self::BlockTooLong(n) => (1, wide(n), 0),
            Self::NameNotUtf8 => (2, 0, 0),
            Self::Checksum { sent, computed } => (3, sent, computed),
            Self::Payload(n) => (4, wide(n), 0),
        }
    }

    fn from_parts(kind: u8, a: u32, b: u32) -> Option<Self> {
        Some(match kind {
            0 => Self::NameTooLong(a as usize),
            1 => Self::BlockTooLong(a as usize),
            2 => Self::NameNotUtf8,
            3 => Self::Checksum {
                sent: a,
                computed: b,
            },
            4 => Self::Payload(a as usize),
            _ => return None,
        })
    }
}

/// The tag `record` is encoded with (for the tests: every tag has a record).
#[cfg(test)]
pub(super) fn tag_of(record: &Record) -> u8 {
    record.tag()
}

impl Record {
    fn tag(&self) -> u8 {
        match self {
            Self::TestVerdict { .. } => tag::TEST_VERDICT,
            Self::ExpectFault { .. } => tag::EXPECT_FAULT,
            Self::Exception { .. } => tag::EXCEPTION,
            Self::RunEnded { .. } => tag::RUN_ENDED,
            Self::Strategy { .. } => tag::STRATEGY,
            Self::Image { .. } => tag::IMAGE,
            Self::BenchDirect { .. } => tag::BENCH_DIRECT,
            Self::BenchEntry { .. } => tag::BENCH_ENTRY,
            Self::BenchResult { .. } => tag::BENCH_RESULT,
            Self::BenchCost { .. } => tag::BENCH_COST,
            Self::BenchPublish { .. } => tag::BENCH_PUBLISH,
            Self::DemoResult { .. } => tag::DEMO_RESULT,
            Self::LiveReady { .. } => tag::LIVE_READY,
            Self::LiveApplied { .. } => tag::LIVE_APPLIED,
            Self::LiveRefused { .. } => tag::LIVE_REFUSED,
            Self::LiveBadFrame { .. } => tag::LIVE_BAD_FRAME,
            Self::LiveRuns { .. } => tag::LIVE_RUNS,
            Self::LiveEnded { .. } => tag::LIVE_ENDED,
            Self::LiveStaged { .. } => tag::LIVE_STAGED,
            Self::LiveReceived { .. } => tag::LIVE_RECEIVED,
            Self::LiveCancelled { .. } => tag::LIVE_CANCELLED,
            Self::LiveLawRuns { .. } => tag::LIVE_LAW_RUNS,
            Self::LiveSealed { .. } => tag::LIVE_SEALED,
            Self::PatchKey { .. } => tag::PATCH_KEY,
            Self::SiteState { .. } => tag::SITE_STATE,
            Self::ListEnd { .. } => tag::LIST_END,
            Self::LiveRolledBack { .. } => tag::LIVE_ROLLED_BACK,
            Self::LoopStats { .. } => tag::LOOP_STATS,
            Self::LiveExpired { .. } => tag::LIVE_EXPIRED,
            Self::LitmusWatch { .. } => tag::LITMUS_WATCH,
            Self::PatchFault { .. } => tag::PATCH_FAULT,
            Self::StackOverflow { .. } => tag::STACK_OVERFLOW,
        }
    }

    /// Bytes this record encodes to.
    pub fn len(&self) -> usize {
        // Every tag `tag()` returns has a body length.
        1 + body_len(self.tag()).unwrap_or(0) + CRC_BYTES
    }

    /// Always false: a record has at least its tag and checksum (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the record into `out` and returns its length.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than [`Record::len`] (a buffer of [`MAX_LEN`] bytes always fits).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let n = self.len();
        assert!(out.len() >= n, "record buffer of {} bytes", out.len());
        let mut w = Writer { out, at: 0 };
        w.u8(self.tag());
        match *self {
            Self::TestVerdict { test, passed } => {
                w.name(&test);
                w.u8(passed.into());
            }
            Self::ExpectFault { ec, elr } => {
                w.u8(ec);
                w.u64(elr);
            }
            Self::Exception {
                core,
                ec,
                esr,
                elr,
                far,
            } => {
                w.u8(core);
                w.u8(ec);
                w.u64(esr);
                w.u64(elr);
                w.u64(far);
            }
            Self::RunEnded { status } => w.u32(status),
            Self::Image { build_id } => w.bytes(&build_id),
            Self::Strategy { index, count, name } => {
                w.u8(index);
                w.u8(count);
                w.name(&name);
            }
            Self::BenchDirect { insns } => w.u64(insns),
            Self::BenchEntry { strategy, insns } => {
                w.name(&strategy);
                w.u64(insns);
            }
            Self::BenchResult {
                strategy,
                cores,
                latency_ns,
                throughput_per_s,
            } => {
                w.name(&strategy);
                w.u32(cores);
                w.u64(latency_ns);
                w.u64(throughput_per_s);
            }
            Self::BenchCost {
                strategy,
                cores,
                publications,
                disturb_insns,
                disturb_max_insns,
                exception_entries,
                producer_insns,
                latency_iterations,
            } => {
                w.name(&strategy);
                w.u32(cores);
                w.u32(publications);
                w.u64(disturb_insns);
                w.u64(disturb_max_insns);
                w.u64(exception_entries);
                w.u64(producer_insns);
                w.u64(latency_iterations);
            }
            Self::BenchPublish {
                strategy,
                consumers,
                insns,
            } => {
                w.name(&strategy);
                w.u32(consumers);
                w.u64(insns);
            }
            Self::DemoResult {
                strategy,
                patches,
                iterations,
                misses,
                extra_max_ns,
                extra_mean_ns,
                mean_abs_error_c,
                max_abs_error_c,
            } => {
                w.name(&strategy);
                for v in [patches, iterations, misses, extra_max_ns, extra_mean_ns] {
                    w.u64(v);
                }
                w.f32(mean_abs_error_c);
                w.f32(max_abs_error_c);
            }
            Self::LiveReady { site } => w.name(&site),
            Self::LiveApplied { site, bytes, slot } => {
                w.name(&site);
                w.u32(bytes);
                w.u64(slot);
            }
            Self::LiveRefused { site, reason } => {
                let (kind, a, b) = reason.to_parts();
                w.name(&site);
                w.u8(kind);
                w.u64(a);
                w.u64(b);
            }
            Self::LiveBadFrame { error } => {
                let (kind, a, b) = error.to_parts();
                w.u8(kind);
                w.u32(a);
                w.u32(b);
            }
            Self::LiveRuns {
                core,
                version,
                checksum_ok,
            } => {
                w.u8(core);
                w.u64(version);
                w.u8(checksum_ok.into());
            }
            Self::LiveEnded { applied, refused } => {
                w.u32(applied);
                w.u32(refused);
            }
            Self::LiveStaged {
                site,
                nonce,
                addr,
                len,
            } => {
                w.name(&site);
                w.u64(nonce);
                w.u64(addr);
                w.u32(len);
            }
            Self::LiveReceived { nonce, received } => {
                w.u64(nonce);
                w.u32(received);
            }
            Self::LiveCancelled { site, nonce }
            | Self::LiveSealed { site, nonce }
            | Self::LiveExpired { site, nonce } => {
                w.name(&site);
                w.u64(nonce);
            }
            Self::SiteState {
                site,
                strategy,
                version,
                hash,
                previous_version,
                previous_hash,
                rollback,
                staged,
            } => {
                w.name(&site);
                w.name(&strategy);
                w.u64(version);
                w.u32(hash);
                w.u64(previous_version);
                w.u32(previous_hash);
                w.u8(rollback.into());
                w.u32(staged);
            }
            Self::LoopStats {
                core,
                iterations,
                misses,
                error_c,
            } => {
                w.u8(core);
                w.u64(iterations);
                w.u64(misses);
                w.f32(error_c);
            }
            Self::ListEnd {
                sites,
                free_slots,
                free_bytes,
            } => {
                w.u8(sites);
                w.u8(free_slots);
                w.u32(free_bytes);
            }
            Self::LiveRolledBack {
                site,
                version,
                restored,
            } => {
                w.name(&site);
                w.u64(version);
                w.u64(restored);
            }
            Self::PatchKey {
                key,
                signed,
                development,
            } => {
                w.bytes(&key);
                w.u8(signed.into());
                w.u8(development.into());
            }
            Self::LiveLawRuns { core, version } => {
                w.u8(core);
                w.u64(version);
            }
            Self::LitmusWatch { va, core } => {
                w.u64(va);
                w.u8(core);
            }
            Self::PatchFault {
                site,
                core,
                cause,
                version,
                restored,
                esr,
                elr,
                far,
            } => {
                w.name(&site);
                w.u8(core);
                w.u8(cause as u8);
                for v in [version, restored, esr, elr, far] {
                    w.u64(v);
                }
            }
            Self::StackOverflow {
                core,
                owner,
                exception_stack,
                elr,
                far,
            } => {
                w.u8(core);
                w.u8(owner);
                w.u8(exception_stack as u8);
                w.u64(elr);
                w.u64(far);
            }
        }
        let body = w.at;
        debug_assert_eq!(body + CRC_BYTES, n);
        let crc = crc32(&w.out[..body]);
        w.u32(crc);
        n
    }

    /// Reads one whole record: exactly the bytes [`Record::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let &t = bytes.first().ok_or(DecodeError::Empty)?;
        let expected = 1 + body_len(t).ok_or(DecodeError::BadTag(t))? + CRC_BYTES;
        let got = bytes.len();
        if got < expected {
            return Err(DecodeError::Short {
                tag: t,
                expected,
                got,
            });
        }
        if got > expected {
            return Err(DecodeError::Long {
                tag: t,
                expected,
                got,
            });
        }
        let (data, tail) = bytes.split_at(expected - CRC_BYTES);
        let sent = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let computed = crc32(data);
        if sent != computed {
            return Err(DecodeError::Crc { sent, computed });
        }
        let mut r = Reader {
            body: &data[1..],
            at: 0,
        };
        Ok(match t {
            tag::TEST_VERDICT => Self::TestVerdict {
                test: r.name()?,
                passed: r.flag()?,
            },
            tag::EXPECT_FAULT => Self::ExpectFault {
                ec: r.u8(),
                elr: r.u64(),
            },
            tag::EXCEPTION => Self::Exception {
                core: r.u8(),
                ec: r.u8(),
                esr: r.u64(),
                elr: r.u64(),
                far: r.u64(),
            },
            tag::RUN_ENDED => Self::RunEnded { status: r.u32() },
            tag::IMAGE => Self::Image { build_id: r.take() },
            tag::STRATEGY => Self::Strategy {
                index: r.u8(),
                count: r.u8(),
                name: r.name()?,
            },
            tag::BENCH_DIRECT => Self::BenchDirect { insns: r.u64() },
            tag::BENCH_ENTRY => Self::BenchEntry {
                strategy: r.name()?,
                insns: r.u64(),
            },
            tag::BENCH_RESULT => Self::BenchResult {
                strategy: r.name()?,
                cores: r.u32(),
                latency_ns: r.u64(),
                throughput_per_s: r.u64(),
            },
            tag::BENCH_COST => Self::BenchCost {
                strategy: r.name()?,
                cores: r.u32(),
                publications: r.u32(),
                disturb_insns: r.u64(),
                disturb_max_insns: r.u64(),
                exception_entries: r.u64(),
                producer_insns: r.u64(),
                latency_iterations: r.u64(),
            },
            tag::BENCH_PUBLISH => Self::BenchPublish {
                strategy: r.name()?,
                consumers: r.u32(),
                insns: r.u64(),
            },
            tag::DEMO_RESULT => Self::DemoResult {
                strategy: r.name()?,
                patches: r.u64(),
                iterations: r.u64(),
                misses: r.u64(),
                extra_max_ns: r.u64(),
                extra_mean_ns: r.u64(),
                mean_abs_error_c: r.f32(),
                max_abs_error_c: r.f32(),
            },
            tag::LIVE_READY => Self::LiveReady { site: r.name()? },
            tag::LIVE_APPLIED => Self::LiveApplied {
                site: r.name()?,
                bytes: r.u32(),
                slot: r.u64(),
            },
            tag::LIVE_REFUSED => {
                let site = r.name()?;
                let (kind, a, b) = (r.u8(), r.u64(), r.u64());
                Self::LiveRefused {
                    site,
                    reason: Refusal::from_parts(kind, a, b)
                        .ok_or(DecodeError::UnknownRefusal(kind))?,
                }
            }
            tag::LIVE_BAD_FRAME => {
                let (kind, a, b) = (r.u8(), r.u32(), r.u32());
                Self::LiveBadFrame {
                    error: FrameError::from_parts(kind, a, b)
                        .ok_or(DecodeError::UnknownFrameError(kind))?,
                }
            }
            tag::LIVE_RUNS => Self::LiveRuns {
                core: r.u8(),
                version: r.u64(),
                checksum_ok: r.flag()?,
            },
            tag::LIVE_ENDED => Self::LiveEnded {
                applied: r.u32(),
                refused: r.u32(),
            },
            tag::LIVE_STAGED => Self::LiveStaged {
                site: r.name()?,
                nonce: r.u64(),
                addr: r.u64(),
                len: r.u32(),
            },
            tag::LIVE_RECEIVED => Self::LiveReceived {
                nonce: r.u64(),
                received: r.u32(),
            },
            tag::LIVE_CANCELLED => Self::LiveCancelled {
                site: r.name()?,
                nonce: r.u64(),
            },
            tag::LIVE_EXPIRED => Self::LiveExpired {
                site: r.name()?,
                nonce: r.u64(),
            },
            tag::LIVE_SEALED => Self::LiveSealed {
                site: r.name()?,
                nonce: r.u64(),
            },
            tag::SITE_STATE => Self::SiteState {
                site: r.name()?,
                strategy: r.name()?,
                version: r.u64(),
                hash: r.u32(),
                previous_version: r.u64(),
                previous_hash: r.u32(),
                rollback: r.flag()?,
                staged: r.u32(),
            },
            tag::LOOP_STATS => Self::LoopStats {
                core: r.u8(),
                iterations: r.u64(),
                misses: r.u64(),
                error_c: r.f32(),
            },
            tag::LIST_END => Self::ListEnd {
                sites: r.u8(),
                free_slots: r.u8(),
                free_bytes: r.u32(),
            },
            tag::LIVE_ROLLED_BACK => Self::LiveRolledBack {
                site: r.name()?,
                version: r.u64(),
                restored: r.u64(),
            },
            tag::PATCH_KEY => Self::PatchKey {
                key: r.take(),
                signed: r.flag()?,
                development: r.flag()?,
            },
            tag::LIVE_LAW_RUNS => Self::LiveLawRuns {
                core: r.u8(),
                version: r.u64(),
            },
            tag::LITMUS_WATCH => Self::LitmusWatch {
                va: r.u64(),
                core: r.u8(),
            },
            tag::PATCH_FAULT => Self::PatchFault {
                site: r.name()?,
                core: r.u8(),
                cause: {
                    let c = r.u8();
                    super::FaultCause::from_u8(c).ok_or(DecodeError::UnknownFaultCause(c))?
                },
                version: r.u64(),
                restored: r.u64(),
                esr: r.u64(),
                elr: r.u64(),
                far: r.u64(),
            },
            tag::STACK_OVERFLOW => Self::StackOverflow {
                core: r.u8(),
                owner: r.u8(),
                exception_stack: r.flag()?,
                elr: r.u64(),
                far: r.u64(),
            },
            _ => return Err(DecodeError::BadTag(t)),
        })
    }
}
