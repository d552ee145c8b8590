//! Host tests of geometry decoding, errata and the exact maintenance sequence.

use super::fake::FakeCache;
use super::{CacheGeometry, CodeSync, Errata, Midr, Op, SyncPolicy};
use crate::record::Recorder;

use Op::*;

/// Cortex-A72: 64-byte lines, CWG 64 bytes, no IDC, no DIC.
const CTR_A72: u64 = 0x8444_c004;
/// Cortex-A53: as the A72 with a VIPT instruction cache.
const CTR_A53: u64 = 0x8444_8004;
/// Neoverse-N1: IDC and DIC set.
const CTR_N1: u64 = 0xb444_c004;
const MIDR_A72_R0P3: u64 = 0x410f_d083;
const MIDR_A53_R0P0: u64 = 0x410f_d030;
const MIDR_A53_R0P2: u64 = 0x410f_d032;
const MIDR_A53_R0P3: u64 = 0x410f_d033;
const MIDR_A53_R0P4: u64 = 0x410f_d034;
const MIDR_N1_R0P0: u64 = 0x410f_d0c0;
const MIDR_N1_R3P0: u64 = 0x413f_d0c0;
const MIDR_N1_R3P1: u64 = 0x413f_d0c1;
const MIDR_N1_R4P0: u64 = 0x414f_d0c0;

/// A CTR_EL0 value with the given fields (bit 31 is RES1).
const fn ctr(imin: u64, dmin: u64, cwg: u64, idc: bool, dic: bool) -> u64 {
    (1 << 31) | ((dic as u64) << 29) | ((idc as u64) << 28) | (cwg << 24) | (dmin << 16) | imin
}

fn run(ctr_el0: u64, midr: u64, write: usize, exec: usize, len: usize) -> std::vec::Vec<Op> {
    let rec = Recorder::new();
    let sync = CodeSync::new(
        FakeCache::new(&rec, 0, 0),
        SyncPolicy::from_registers(ctr_el0, midr),
    );
    // SAFETY: the fake backend touches no memory.
    unsafe { sync.sync_range(write, exec, len) };
    rec.cache_ops().iter().copied().collect()
}

#[test]
fn geometry_of_real_cores() {
    let a72 = CacheGeometry::from_ctr_el0(CTR_A72);
    assert_eq!(
        a72,
        CacheGeometry {
            dline: 64,
            iline: 64,
            idc: false,
            dic: false,
            writeback_granule: 64
        }
    );
    let n1 = CacheGeometry::from_ctr_el0(CTR_N1);
    assert!(n1.idc && n1.dic);
    assert_eq!((n1.dline, n1.iline), (64, 64));
}

#[test]
fn geometry_fields_and_cwg_zero() {
    let g = CacheGeometry::from_ctr_el0(ctr(3, 2, 0, false, true));
    assert_eq!(g.iline, 32);
    assert_eq!(g.dline, 16);
    assert_eq!(g.writeback_granule, 2048);
    assert!(!g.idc);
    assert!(g.dic);
    let g = CacheGeometry::from_ctr_el0(ctr(0, 15, 9, true, false));
    assert_eq!(g.iline, 4);
    assert_eq!(g.dline, 4 << 15);
    assert_eq!(g.writeback_granule, 2048);
    assert!(g.idc && !g.dic);
    assert_eq!(
        CacheGeometry::from_ctr_el0(ctr(4, 4, 3, false, false)).writeback_granule,
        32
    );
}

#[test]
fn merge_is_conservative() {
    let a = CacheGeometry::from_ctr_el0(ctr(4, 3, 4, true, true));
    let b = CacheGeometry::from_ctr_el0(ctr(3, 4, 0, true, false));
    let m = a.merge(b);
    assert_eq!(
        m,
        CacheGeometry {
            dline: 32,
            iline: 32,
            idc: true,
            dic: false,
            writeback_granule: 2048
        }
    );
    let e = Errata::from_midr_el1(MIDR_A53_R0P0).merge(Errata::from_midr_el1(MIDR_N1_R3P0));
    assert!(e.clean_with_civac && e.n1_1542419);
}

#[test]
fn midr_fields() {
    assert_eq!(
        Midr::from_raw(MIDR_N1_R3P1),
        Midr {
            implementer: 0x41,
            variant: 3,
            part: 0xd0c,
            revision: 1
        }
    );
}

#[test]
fn errata_by_revision() {
    for (midr, civac, n1) in [
        (MIDR_A53_R0P0, true, false),
        (0x410f_d031, true, false),
        (MIDR_A53_R0P2, true, false),
        (MIDR_A53_R0P3, false, false),
        (MIDR_A53_R0P4, false, false),
        (0x411f_d030, false, false), // A53 r1p0
        (MIDR_A72_R0P3, false, false),
        (MIDR_N1_R0P0, false, true),
        (0x412f_d0c1, false, true), // r2p1
        (MIDR_N1_R3P0, false, true),
        (MIDR_N1_R3P1, false, false),
        (MIDR_N1_R4P0, false, false),
        (0x510f_d030, false, false), // another implementer, same part number
    ] {
        let e = Errata::from_midr_el1(midr);
        assert_eq!(
            (e.clean_with_civac, e.n1_1542419),
            (civac, n1),
            "MIDR {midr:#x}"
        );
    }
    assert_eq!(Errata::from_midr_el1(MIDR_A72_R0P3), Errata::NONE);
}

#[test]
fn full_sequence_one_line() {
    assert_eq!(
        run(CTR_A72, MIDR_A72_R0P3, 0x1000, 0x8000, 8),
        [DcCvau(0x1000), DsbIsh, IcIvau(0x8000), DsbIsh]
    );
}

#[test]
fn unaligned_range_spanning_lines() {
    // 0x103c..0x1044 touches the lines at 0x1000 and 0x1040.
    assert_eq!(
        run(CTR_A72, MIDR_A72_R0P3, 0x103c, 0x803c, 8),
        [
            DcCvau(0x1000),
            DcCvau(0x1040),
            DsbIsh,
            IcIvau(0x8000),
            IcIvau(0x8040),
            DsbIsh
        ]
    );
    // Ending exactly on a line boundary does not touch the next line.
    assert_eq!(
        run(CTR_A72, MIDR_A72_R0P3, 0x1004, 0x9004, 0x3c),
        [DcCvau(0x1000), DsbIsh, IcIvau(0x9000), DsbIsh]
    );
    // The aliases need not share an offset within a line.
    assert_eq!(
        run(CTR_A72, MIDR_A72_R0P3, 0x1030, 0x9000, 0x20),
        [
            DcCvau(0x1000),
            DcCvau(0x1040),
            DsbIsh,
            IcIvau(0x9000),
            DsbIsh
        ]
    );
}

#[test]
fn each_side_steps_by_its_own_line() {
    // Data lines 64 bytes, instruction lines 32 bytes.
    assert_eq!(
        run(ctr(3, 4, 4, false, false), 0, 0x1000, 0x8000, 0x80),
        [
            DcCvau(0x1000),
            DcCvau(0x1040),
            DsbIsh,
            IcIvau(0x8000),
            IcIvau(0x8020),
            IcIvau(0x8040),
            IcIvau(0x8060),
            DsbIsh
        ]
    );
    // Data lines 16 bytes, instruction lines 64 bytes, unaligned start.
    assert_eq!(
        run(ctr(4, 2, 4, false, false), 0, 0x1038, 0x8038, 0x20),
        [
            DcCvau(0x1030),
            DcCvau(0x1040),
            DcCvau(0x1050),
            DsbIsh,
            IcIvau(0x8000),
            IcIvau(0x8040),
            DsbIsh
        ]
    );
}

#[test]
fn idc_elides_clean_but_keeps_dsb_ishst() {
    assert_eq!(
        run(ctr(4, 4, 4, true, false), 0, 0x1000, 0x8000, 0x44),
        [DsbIshst, IcIvau(0x8000), IcIvau(0x8040), DsbIsh]
    );
}

#[test]
fn dic_elides_invalidate() {
    assert_eq!(
        run(ctr(4, 4, 4, false, true), 0, 0x1000, 0x8000, 0x44),
        [DcCvau(0x1000), DcCvau(0x1040), DsbIsh]
    );
    assert_eq!(run(CTR_N1, MIDR_N1_R4P0, 0x1000, 0x8000, 0x44), [DsbIshst]);
}

#[test]
fn a53_early_revisions_clean_with_civac() {
    assert_eq!(
        run(CTR_A53, MIDR_A53_R0P2, 0x1000, 0x8000, 0x48),
        [
            DcCivac(0x1000),
            DcCivac(0x1040),
            DsbIsh,
            IcIvau(0x8000),
            IcIvau(0x8040),
            DsbIsh
        ]
    );
    assert_eq!(
        run(CTR_A53, MIDR_A53_R0P4, 0x1000, 0x8000, 4),
        [DcCvau(0x1000), DsbIsh, IcIvau(0x8000), DsbIsh]
    );
}

#[test]
fn n1_erratum_restores_invalidate_page_sized() {
    // r3p0 with DIC advertised: DIC is ignored and the stride is one page.
    assert_eq!(
        run(CTR_N1, MIDR_N1_R3P0, 0x1ff0, 0x8ff0, 0x20),
        [DsbIshst, IcIvau(0x8000), IcIvau(0x9000), DsbIsh]
    );
    // Without DIC the erratum changes nothing: line by line as usual.
    assert_eq!(
        run(CTR_A72, MIDR_N1_R3P0, 0x1000, 0x8000, 4),
        [DcCvau(0x1000), DsbIsh, IcIvau(0x8000), DsbIsh]
    );
}

#[test]
fn empty_range_issues_nothing() {
    assert_eq!(run(CTR_A72, MIDR_A72_R0P3, 0x1000, 0x8000, 0), []);
    assert_eq!(run(CTR_N1, MIDR_N1_R4P0, 0x1000, 0x8000, 0), []);
}

#[test]
fn top_of_address_space_does_not_wrap() {
    let top = usize::MAX - 3;
    assert_eq!(
        run(CTR_A72, MIDR_A72_R0P3, top, top, 4),
        [
            DcCvau(usize::MAX - 63),
            DsbIsh,
            IcIvau(usize::MAX - 63),
            DsbIsh
        ]
    );
}

#[test]
fn policy_read_from_this_core() {
    let rec = Recorder::new();
    let sync = CodeSync::for_this_core(FakeCache::new(&rec, CTR_A53, MIDR_A53_R0P0));
    assert_eq!(rec.cache_ops().as_slice(), [ReadCtr, ReadMidr]);
    assert_eq!(
        sync.policy(),
        SyncPolicy {
            dline: 64,
            iline: 64,
            clean: Some(super::CleanOp::Civac),
            invalidate: true
        }
    );
}
