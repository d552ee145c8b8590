//! Host tests of the model as a state machine, many of them mirrors of herd7 `aarch64-ifetch`
//! catalogue tests (named, with their verdict). A Forbidden test must give no report in the
//! execution its `exists` clause describes; an Allowed one must give a report there.

use crate::decode::{BarrierKind::*, DcOp, IcOp};
use crate::model::{Config, Cse, LoadKind, Model};
use crate::report::{Kind, Missing, Report};

const CODE: u64 = 0x4020_1000;
const FLAG: u64 = 0x4030_0000;
const MOV1: u32 = 0xD280_0029; // mov x9, #1
const MOV2: u32 = 0xD280_0049; // mov x9, #2
const NOP: u32 = 0xD503_201F;
const B: u32 = 0x1400_0002;

const PLAIN: LoadKind = LoadKind {
    acquire: false,
    ctrl: false,
    addr_cmo: false,
};
const CTRL: LoadKind = LoadKind {
    ctrl: true,
    ..PLAIN
};
const ACQ: LoadKind = LoadKind {
    acquire: true,
    ..PLAIN
};
const ADDR: LoadKind = LoadKind {
    addr_cmo: true,
    ..PLAIN
};

fn model(cfg: Config) -> Model {
    let mut m = Model::new(cfg);
    m.note_code(CODE, MOV1);
    m
}

fn cfg() -> Config {
    Config::default()
}

/// `CTR_EL0.IDC = DIC = 1`.
fn dic_cfg() -> Config {
    Config {
        idc: true,
        dic: true,
        ..cfg()
    }
}

fn write(m: &mut Model, core: usize, new: u32) {
    m.store(core, 0x4020_0100, CODE, &new.to_le_bytes(), false);
}

fn flag(m: &mut Model, core: usize, release: bool) {
    m.store(core, 0x4020_0200, FLAG, &[1, 0, 0, 0], release);
}

/// The writer's full sequence: `DC CVAU; DSB ISH; IC IVAU; DSB ISH`.
fn cachesync(m: &mut Model, core: usize) {
    m.dc(core, CODE, DcOp::Clean);
    m.dsb(core, Full);
    m.ic(core, IcOp::Ivau, CODE);
    m.dsb(core, Full);
}

fn run(m: &mut Model, core: usize) -> Option<Report> {
    m.exec(core, CODE, CODE)
}

fn missing(m: &mut Model, core: usize) -> Missing {
    run(m, core).expect("a report").missing
}

#[test]
fn naive_rewrite_is_unpredictable() {
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    let r = run(&mut m, 1).expect("report");
    assert_eq!(r.kind, Kind::Unpredictable);
    assert!(r.hazard);
    assert_eq!(r.missing, Missing::Clean);
    assert_eq!((r.writer_core, r.old, r.new), (0, Some(MOV1), MOV2));
    assert_eq!(run(&mut m, 1), None, "one report per write and core");
    assert_eq!(m.summary.unpredictable, 1);
}

#[test]
fn full_sequence_then_ctrl_isb_is_fresh() {
    // MP.RF+dc-dsb-ic-dsb+ctrlisb: Forbidden.
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
    assert!(m.open(), "core 0 has not synchronized yet");
    m.cse(0, Cse::Isb);
    assert!(
        !m.open() && !m.is_pending(CODE),
        "fresh everywhere: forgotten"
    );
}

#[test]
fn missing_isb_is_context_sync() {
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    flag(&mut m, 0, true);
    m.load(1, FLAG, ACQ);
    assert_eq!(missing(&mut m, 1), Missing::ContextSync);
}

#[test]
fn missing_dsb_between_clean_and_invalidate() {
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.ic(0, IcOp::Ivau, CODE);
    m.dsb(0, Full);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::CleanCompletion);
}

#[test]
fn missing_final_dsb_and_missing_clean() {
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dsb(0, Full);
    m.ic(0, IcOp::Ivau, CODE);
    flag(&mut m, 0, true);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::InvalidateCompletion);

    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    m.dsb(0, Full);
    m.ic(0, IcOp::Ivau, CODE);
    m.dsb(0, Full);
    assert_eq!(missing(&mut m, 1), Missing::Clean);
}

#[test]
fn mini_jit_01_allowed_02_forbidden() {
    // miniJit01 (Allowed): LDR x,[cell]; BR x, no ISB.
    let mut m = model(cfg());
    write(&mut m, 0, B);
    cachesync(&mut m, 0);
    flag(&mut m, 0, false);
    m.load(1, FLAG, PLAIN);
    assert_eq!(missing(&mut m, 1), Missing::ContextSync);
    // miniJit02 (Forbidden): LDR; CMP; B.EQ; ISB; BR.
    let mut m = model(cfg());
    write(&mut m, 0, B);
    cachesync(&mut m, 0);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
}

#[test]
fn acquire_then_isb_without_dependency_is_not_enough() {
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    flag(&mut m, 0, true);
    m.load(1, FLAG, ACQ);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::ContextSync);
    // ... while DSB LD then ISB is (MP.RF+dc-dsb-ic-dsb+dsb.ld-isb, Forbidden).
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    flag(&mut m, 0, false);
    m.load(1, FLAG, PLAIN);
    m.dsb(1, Load);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
}

/// MP.RF+dmb.st+dmb.{ish,ld}-dc-dsb-ic-dsb-isb: the reader does the maintenance.
fn reader_maintains(reader_barrier: crate::decode::BarrierKind) -> Option<Report> {
    let mut m = model(cfg());
    write(&mut m, 0, NOP);
    m.dmb(0, Store);
    flag(&mut m, 0, false);
    m.load(1, FLAG, PLAIN);
    m.dmb(1, reader_barrier);
    cachesync(&mut m, 1);
    m.cse(1, Cse::Isb);
    run(&mut m, 1)
}

#[test]
fn dmb_ish_reader_differs_from_dmb_ld() {
    assert_eq!(reader_maintains(Full), None, "DMB ISH: Forbidden");
    let r = reader_maintains(Load).expect("DMB LD: Allowed");
    assert_eq!(r.missing, Missing::CleanOrder);
    assert_eq!(
        r.kind,
        Kind::Unpredictable,
        "B -> NOP with unknown... old is MOV1"
    );
}

#[test]
fn clean_then_dmb_then_addr_dependent_invalidate() {
    // MP.RF+dc-dmb+addr-ic-dsb-isb: Forbidden.
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dmb(0, Full);
    flag(&mut m, 0, false);
    m.load(1, FLAG, ADDR);
    m.ic(1, IcOp::Ivau, CODE);
    m.dsb(1, Full);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
    // Without the dependency the IC is not ordered after the clean.
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dmb(0, Full);
    flag(&mut m, 0, false);
    m.load(1, FLAG, PLAIN);
    m.ic(1, IcOp::Ivau, CODE);
    m.dsb(1, Full);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::CleanCompletion);
}

#[test]
fn same_core_needs_its_isb() {
    // SM.B+cachesync-isb: Forbidden.
    let mut m = model(cfg());
    write(&mut m, 0, B);
    cachesync(&mut m, 0);
    m.cse(0, Cse::Isb);
    assert_eq!(run(&mut m, 0), None);
    // Without the ISB: herd7 says Forbidden, the Arm ARM asks for the ISB; reported.
    let mut m = model(cfg());
    write(&mut m, 0, B);
    cachesync(&mut m, 0);
    assert_eq!(missing(&mut m, 0), Missing::ContextSync);
}

#[test]
fn ic_broadcast_off_needs_remote_invalidate() {
    let off = Config {
        ic_broadcast: false,
        ..cfg()
    };
    let mut m = model(off);
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::Invalidate);

    let mut m = model(off);
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dsb(0, Full);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    m.ic(1, IcOp::Ivau, CODE);
    m.dsb(1, Full);
    m.cse(1, Cse::Isb);
    assert_eq!(
        run(&mut m, 1),
        None,
        "the consumer invalidated its own cache"
    );
    // The same with broadcast on and the writer's IC is fine too (control).
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
}

#[test]
fn idc_makes_the_clean_unnecessary() {
    let seq = |m: &mut Model| {
        write(m, 0, MOV2);
        m.dsb(0, Store);
        m.ic(0, IcOp::Ivau, CODE);
        m.dsb(0, Full);
        flag(m, 0, false);
        m.load(1, FLAG, CTRL);
        m.cse(1, Cse::Isb);
        run(m, 1)
    };
    let idc = Config { idc: true, ..cfg() };
    assert_eq!(seq(&mut model(idc)), None);
    assert_eq!(seq(&mut model(cfg())).unwrap().missing, Missing::Clean);
    // IDC=1 still needs the write ordered before the IC: no DSB ST, no order.
    let mut m = model(idc);
    write(&mut m, 0, MOV2);
    m.ic(0, IcOp::Ivau, CODE);
    m.dsb(0, Full);
    assert_eq!(missing(&mut m, 0), Missing::CleanCompletion);
}

#[test]
fn dic_makes_the_invalidate_unnecessary_but_not_the_isb() {
    let dic = dic_cfg();
    // DIC1.SM.B+isb: Allowed. DIC1.SM.B+dsb.ish-isb: Forbidden.
    let mut m = model(dic);
    write(&mut m, 0, B);
    m.cse(0, Cse::Isb);
    assert_eq!(missing(&mut m, 0), Missing::CleanCompletion);
    let mut m = model(dic);
    write(&mut m, 0, B);
    m.dsb(0, Full);
    m.cse(0, Cse::Isb);
    assert_eq!(run(&mut m, 0), None);
    // DIC1.MP.RF+dmb.st+ctrlisb: Forbidden; without the ISB it is reported.
    let mut m = model(dic);
    write(&mut m, 0, B);
    m.dmb(0, Store);
    flag(&mut m, 0, false);
    m.load(1, FLAG, CTRL);
    assert_eq!(missing(&mut m, 1), Missing::ContextSync);
    m.cse(1, Cse::Isb);
    let mut m2 = model(dic);
    write(&mut m2, 0, B);
    m2.dmb(0, Store);
    flag(&mut m2, 0, false);
    m2.load(1, FLAG, CTRL);
    m2.cse(1, Cse::Isb);
    assert_eq!(run(&mut m2, 1), None);
    // DIC=1, IDC=0 still needs the clean.
    let mut m = model(Config { dic: true, ..cfg() });
    write(&mut m, 0, MOV2);
    m.dsb(0, Full);
    m.cse(0, Cse::Isb);
    assert_eq!(missing(&mut m, 0), Missing::Clean);
}

#[test]
fn cmodx_words_are_stale_and_hazards_once_published() {
    let mut m = Model::new(cfg());
    m.note_code(CODE, NOP);
    write(&mut m, 0, B);
    let r = run(&mut m, 1).unwrap();
    assert_eq!((r.kind, r.hazard, r.published), (Kind::Stale, false, false));
    m.set_published(CODE, 4, true);
    write(&mut m, 0, NOP);
    let r = run(&mut m, 1).unwrap();
    assert_eq!((r.kind, r.hazard, r.published), (Kind::Stale, true, true));
    m.set_published(CODE, 4, false);
    write(&mut m, 0, B);
    assert!(!run(&mut m, 1).unwrap().hazard);
    assert_eq!((m.summary.stale, m.summary.hazards), (3, 1));
    // NOP -> MOV is outside the set.
    write(&mut m, 0, MOV2);
    assert_eq!(run(&mut m, 1).unwrap().kind, Kind::Unpredictable);
}

#[test]
fn exception_entry_synchronizes_after_completion_only() {
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    m.cse(1, Cse::Exception);
    assert_eq!(
        run(&mut m, 1),
        None,
        "IPI-style: completion, then exception entry"
    );
    let mut m = model(cfg());
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dsb(0, Full);
    m.ic(0, IcOp::Ivau, CODE);
    m.cse(1, Cse::Exception);
    assert_eq!(missing(&mut m, 1), Missing::InvalidateCompletion);
}

#[test]
fn wrc_fetch_of_new_code_does_not_publish_the_invalidation() {
    // WRC-inst+cachesync+ctrlisb: Allowed (3 cores).
    let mut m = model(Config { cores: 3, ..cfg() });
    write(&mut m, 0, NOP);
    cachesync(&mut m, 0);
    m.cse(0, Cse::Isb);
    let _ = run(&mut m, 1); // core 1 runs it unsynchronized (reported, may be new or old)
    flag(&mut m, 1, false);
    m.load(2, FLAG, CTRL);
    m.cse(2, Cse::Isb);
    assert_eq!(missing(&mut m, 2), Missing::ContextSync);
}

#[test]
fn partial_stores_merge_into_the_word() {
    let mut m = model(cfg());
    // strb of the low byte: mov x9,#1 (0xd2800029) becomes 0xd2800049 (mov x9,#2).
    m.store(0, 0, CODE, &[0x49], false);
    let r = run(&mut m, 1).unwrap();
    assert_eq!((r.old, r.new), (Some(MOV1), MOV2));
}

#[test]
fn unrelated_words_and_rewrites_with_the_same_value_are_quiet() {
    let mut m = model(cfg());
    m.store(0, 0, CODE, &MOV1.to_le_bytes(), false);
    assert_eq!(run(&mut m, 1), None, "same value");
    assert_eq!(
        m.exec(1, CODE + 4, CODE + 4),
        None,
        "other word of the line"
    );
    m.store(0, 0, 0x4100_0000, &[0; 8], false);
    assert!(!m.is_pending(0x4100_0000), "data page, never code");
}

#[test]
fn one_cores_invalidate_does_not_cancel_anothers() {
    // Flush-then-redirect with two consumers: each invalidates the new block itself. Consumer 1
    // issues its IC, consumer 2 issues its own before consumer 1's DSB; consumer 1's DSB
    // completes its own IC, so after its ISB the line is fresh for it. (A model that kept one
    // invalidation per core let consumer 2's pending IC replace consumer 1's and reported a
    // missing context synchronization here.)
    let mut m = model(Config { cores: 3, ..cfg() });
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dsb(0, Full);
    flag(&mut m, 0, true);
    for c in [1, 2] {
        m.load(c, FLAG, PLAIN);
        m.dmb(c, Full);
    }
    m.ic(1, IcOp::Ivau, CODE);
    m.ic(2, IcOp::Ivau, CODE);
    m.dsb(1, Full);
    m.cse(1, Cse::Isb);
    assert_eq!(
        run(&mut m, 1),
        None,
        "consumer 1 completed its own invalidation"
    );
    // Consumer 2 has not completed its IC yet (and consumer 1's broadcast one has no ISB on 2
    // after it): not fresh for 2 until its own DSB and ISB.
    assert_eq!(missing(&mut m, 2), Missing::ContextSync);
    // And with broadcast off, consumer 2 needs its own completed IC, not consumer 1's.
    let off = Config {
        cores: 3,
        ic_broadcast: false,
        ..cfg()
    };
    let mut m2 = Model::new(off);
    m2.note_code(CODE, MOV1);
    write(&mut m2, 0, MOV2);
    m2.dc(0, CODE, DcOp::Clean);
    m2.dsb(0, Full);
    flag(&mut m2, 0, true);
    for c in [1, 2] {
        m2.load(c, FLAG, PLAIN);
        m2.dmb(c, Full);
    }
    m2.ic(1, IcOp::Ivau, CODE);
    m2.dsb(1, Full);
    m2.cse(2, Cse::Isb);
    assert_eq!(missing(&mut m2, 2), Missing::Invalidate);
}

#[test]
fn fetching_the_new_word_orders_what_preceded_its_write() {
    // MP.FF+dmb.st+cachesync-isb: Forbidden. P0 rewrites A, DMB ST, rewrites B; P1 runs the new B
    // (unsynchronized: reported), then cleans and invalidates A itself, DSB, ISB, and runs A:
    // having fetched the new B, its maintenance is ordered after the write of A. B sits on another
    // line: the model keeps maintenance per line and undoes it on any later write to the line,
    // which is stricter than herd7's per-location view (see the README).
    const B_ADDR: u64 = CODE + 0x100;
    let mut m = model(cfg());
    m.note_code(B_ADDR, B);
    write(&mut m, 0, MOV2);
    m.dmb(0, Store);
    m.store(0, 0x4020_0104, B_ADDR, &NOP.to_le_bytes(), false);
    assert!(
        m.exec(1, B_ADDR, B_ADDR).is_some(),
        "the new B itself was not guaranteed"
    );
    cachesync(&mut m, 1);
    m.cse(1, Cse::Isb);
    assert_eq!(
        run(&mut m, 1),
        None,
        "A is fresh after P1's own maintenance"
    );
    // Without the DMB ST between the two writes, the first is not ordered before the second
    // (MP.FF+po-style): A stays stale.
    let mut m = model(cfg());
    m.note_code(B_ADDR, B);
    write(&mut m, 0, MOV2);
    m.store(0, 0x4020_0104, B_ADDR, &NOP.to_le_bytes(), false);
    let _ = m.exec(1, B_ADDR, B_ADDR);
    cachesync(&mut m, 1);
    m.cse(1, Cse::Isb);
    assert!(
        run(&mut m, 1).is_some(),
        "without DMB ST the first write is not ordered"
    );
}

#[test]
fn store_matters_both_agrees_with_store_matters() {
    let mut m = model(Config { cores: 2, ..cfg() });
    let both = |m: &Model, c: usize| (m.store_matters(c, false), m.store_matters(c, true));
    let mut seen = Vec::new();
    let mut check = |m: &Model| {
        for c in 0..2 {
            assert_eq!(m.store_matters_both(c), both(m, c), "core {c}");
            seen.push(both(m, c));
        }
    };
    check(&m);
    write(&mut m, 0, MOV2);
    check(&m);
    m.dc(0, CODE, DcOp::Clean);
    check(&m);
    m.dsb(0, Full);
    check(&m);
    m.ic(0, IcOp::Ivau, CODE);
    m.dmb(0, Full);
    check(&m);
    flag(&mut m, 0, true);
    m.load(1, FLAG, ACQ);
    check(&m);
    // The walk must have met both answers, or the comparison proved little.
    assert!(seen.contains(&(false, false)) && seen.iter().any(|&(_, r)| r));
}

// Catalogue tests the generated litmus programs disagreed on before the model kept its progress
// per word, followed from-read and observed writes through fetches and loads.

const CODE2: u64 = CODE + 0x14; // another word of the same line

fn sync_word(m: &mut Model, core: usize, pa: u64) {
    m.dc(core, pa, DcOp::Clean);
    m.dsb(core, Full);
    m.ic(core, IcOp::Ivau, pa);
    m.dsb(core, Full);
}

/// `core` reads the flag, `DSB`, cleans and invalidates the word itself, `DSB`, `ISB`, runs it.
fn flag_then_sync_and_run(m: &mut Model, core: usize) -> Option<Report> {
    m.load(core, FLAG, PLAIN);
    m.dsb(core, Full);
    sync_word(m, core, CODE);
    m.cse(core, Cse::Isb);
    run(m, core)
}

#[test]
fn a_later_write_to_another_word_keeps_the_clean_of_the_first() {
    // MP.FF+dc-dsb+ic-dsb-isb, Forbidden: P0 writes A, cleans it, DSB, writes B of the same
    // line; P1 runs the new B, invalidates A, DSB, ISB, runs A. A model that undid the whole
    // line's progress at B's write reported A as missing its clean.
    let mut m = model(cfg());
    m.note_code(CODE2, MOV1);
    m.store(0, 0x4020_0100, CODE2, &NOP.to_le_bytes(), false);
    m.dc(0, CODE2, DcOp::Clean);
    m.dsb(0, Full);
    m.store(0, 0x4020_0104, CODE, &NOP.to_le_bytes(), false);
    assert!(
        m.exec(1, CODE, CODE).is_some(),
        "B itself had no maintenance"
    );
    m.ic(1, IcOp::Ivau, CODE2);
    m.dsb(1, Full);
    m.cse(1, Cse::Isb);
    assert_eq!(m.exec(1, CODE2, CODE2), None);
}

#[test]
fn a_fetch_of_the_old_word_orders_the_fetcher_before_its_overwrite() {
    // SB-bnop-cachesyncs, Forbidden. P0 writes P1's word A and synchronizes it fully, then runs
    // its own word B while B still holds its old value; P1 then overwrites B, synchronizes it
    // and runs A. P0's fetch of B read from before P1's write (from-read), so P0's completed
    // invalidation of A is ordered before P1's ISB: A is fresh for P1.
    let mut m = model(cfg());
    m.note_code(CODE2, MOV1);
    write(&mut m, 0, NOP);
    sync_word(&mut m, 0, CODE);
    m.cse(0, Cse::Isb);
    assert_eq!(m.exec(0, CODE2, CODE2), None, "B is not written yet");
    m.store(1, 0x4020_0200, CODE2, &NOP.to_le_bytes(), false);
    sync_word(&mut m, 1, CODE2);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
}

#[test]
fn two_fetches_that_cannot_both_be_stale_exclude_each_other() {
    // SB-bnop-cachesyncs again, when both cores wrote before either ran the other's word: each
    // fetch alone may be stale (no order between one core's completion and the other's ISB),
    // but had P1's been stale it read from before P0's write, which orders P1's own completion
    // before P0's ISB. The second report names the first as excluded.
    let mut m = model(cfg());
    m.note_code(CODE2, MOV1);
    write(&mut m, 0, NOP);
    m.store(1, 0x4020_0200, CODE2, &NOP.to_le_bytes(), false);
    sync_word(&mut m, 0, CODE);
    sync_word(&mut m, 1, CODE2);
    m.cse(1, Cse::Isb);
    m.cse(0, Cse::Isb);
    let first = run(&mut m, 1).expect("P1's fetch of A alone may be stale");
    let second = m
        .exec(0, CODE2, CODE2)
        .expect("P0's fetch of B alone may be stale");
    assert_eq!(first.missing, Missing::ContextSync);
    assert!(first.excludes.is_empty());
    assert_eq!(second.excludes, vec![first.id]);
}

#[test]
fn a_fetch_that_read_a_write_orders_it_before_the_fetchers_later_stores() {
    // WRC-inst+po+dsb-cachesyncisb, Forbidden: P1 runs P0's new word, then stores a flag; P2
    // reads the flag, DSB, cleans and invalidates the word, DSB, ISB, runs it. The fetch
    // observed the write, so P2's clean is ordered after it.
    let mut m = model(Config { cores: 3, ..cfg() });
    write(&mut m, 0, NOP);
    assert!(run(&mut m, 1).is_some(), "P1 ran it unsynchronized");
    flag(&mut m, 1, false);
    assert_eq!(flag_then_sync_and_run(&mut m, 2), None);
}

#[test]
fn a_load_of_the_new_word_orders_a_later_clean_of_its_line() {
    // 2SM.B+cachesync-isb, Forbidden: P1 loads the word P0 wrote (and sees the new value),
    // then cleans, invalidates, DSB, ISB and runs it.
    let mut m = model(cfg());
    write(&mut m, 0, NOP);
    m.load(1, CODE, PLAIN);
    sync_word(&mut m, 1, CODE);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
    // Without the load (2SM.B+dsb.ish-ic.vau-dsb.ish's writer side), the clean is unordered.
    let mut m = model(cfg());
    write(&mut m, 0, NOP);
    sync_word(&mut m, 1, CODE);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::CleanOrder);
}

/// A second code word, on another line than `CODE`.
const B_WORD_ADDR: u64 = CODE + 0x100;

/// A model that has translated `B` at [`B_WORD_ADDR`] too.
fn with_b(cfg: Config) -> Model {
    let mut m = model(cfg);
    m.note_code(B_WORD_ADDR, B);
    m
}

/// `core` overwrites the word at [`B_WORD_ADDR`] with a `NOP`.
fn write_b(m: &mut Model, core: usize) {
    m.store(core, 0x4020_0104, B_WORD_ADDR, &NOP.to_le_bytes(), false);
}

#[test]
fn a_fetch_after_one_that_read_a_later_write_is_ordered_by_it() {
    // DIC1.MP.FF+dmb.st+po, Forbidden: P0 writes A, DMB ST, writes B; P1 runs the new B, then
    // A. With DIC = 1 a fetch that follows one which read B cannot read from before A
    // (herd7's Instr-read-ordered-before holds `ca`), with no ISB.
    let dic = dic_cfg();
    let mut m = with_b(dic);
    write(&mut m, 0, MOV2);
    m.dmb(0, Store);
    write_b(&mut m, 0);
    assert!(
        m.exec(1, B_WORD_ADDR, B_WORD_ADDR).is_some(),
        "B itself is unordered"
    );
    assert_eq!(run(&mut m, 1), None, "A follows a fetch that read B");
    // Without the DMB ST the first write is not ordered before the second: Allowed.
    let mut m = with_b(dic);
    write(&mut m, 0, MOV2);
    write_b(&mut m, 0);
    let _ = m.exec(1, B_WORD_ADDR, B_WORD_ADDR);
    assert!(
        run(&mut m, 1).is_some(),
        "IDC1.MP.FF+po-style: A may be old"
    );
    // With DIC = 0 the fetch order alone is not enough: nothing invalidated A (Allowed).
    let mut m = with_b(cfg());
    write(&mut m, 0, MOV2);
    m.dmb(0, Store);
    write_b(&mut m, 0);
    let _ = m.exec(1, B_WORD_ADDR, B_WORD_ADDR);
    assert!(run(&mut m, 1).is_some(), "MP.FF+dmb.st+po: Allowed");
}

#[test]
fn a_fetch_after_one_that_read_past_a_completed_invalidation_is_fresh() {
    // MP.FF+dc.cvau-dsb.ish-ic.ivau-dsb.ish+po, Forbidden: P0 writes A, synchronizes it fully,
    // then writes B; P1 runs the new B, then A, with no ISB. Its fetch of B read from a write
    // after the DSB that completed A's invalidation, so the later fetch of A follows the
    // invalidation (herd7's IC-ob).
    let mut m = with_b(cfg());
    write(&mut m, 0, MOV2);
    cachesync(&mut m, 0);
    write_b(&mut m, 0);
    assert!(
        m.exec(1, B_WORD_ADDR, B_WORD_ADDR).is_some(),
        "B itself is unsynchronized"
    );
    assert_eq!(run(&mut m, 1), None);
    // The same with A's invalidation not completed before B's write: A may be old (Allowed).
    let mut m = with_b(cfg());
    write(&mut m, 0, MOV2);
    m.dc(0, CODE, DcOp::Clean);
    m.dsb(0, Full);
    m.ic(0, IcOp::Ivau, CODE);
    write_b(&mut m, 0);
    let _ = m.exec(1, B_WORD_ADDR, B_WORD_ADDR);
    assert_eq!(missing(&mut m, 1), Missing::InvalidateCompletion);
}

#[test]
fn a_data_word_beside_code_does_not_become_code_by_being_written() {
    // DIC1.WRC-inst, Forbidden (3 cores, DIC = IDC = 1): P0 writes the code word; P1 runs it and
    // stores a flag; P2 reads the flag, ISB, runs the word. The generated program's P0 also
    // updates its random-delay state, a data word on the code's page, before the write. Once
    // that word's own write had been synchronized for every core the model took it for code,
    // so each later update counted as a code write and the code write no longer carried
    // itself to its readers: P2 was reported from then on.
    const DATA: u64 = CODE + 0x440;
    let dic = Config {
        cores: 3,
        ..dic_cfg()
    };
    let mut m = model(dic);
    m.store(0, 0x4020_0300, DATA, &[7, 0, 0, 0], false);
    m.dsb(0, Full);
    flag(&mut m, 0, true);
    for c in [1, 2] {
        m.load(c, FLAG, CTRL);
        m.cse(c, Cse::Isb);
    }
    m.cse(0, Cse::Isb);
    assert!(!m.is_pending(DATA), "the data word's write is synchronized");
    m.store(0, 0x4020_0300, DATA, &[8, 0, 0, 0], false);
    write(&mut m, 0, NOP);
    assert!(run(&mut m, 1).is_some(), "P1 runs the word unsynchronized");
    m.store(1, 0x4020_0400, FLAG + 0x40, &[1, 0, 0, 0], false);
    m.load(2, FLAG + 0x40, CTRL);
    m.cse(2, Cse::Isb);
    assert_eq!(run(&mut m, 2), None);
}

#[test]
fn a_core_that_ran_its_own_write_orders_it_before_its_later_stores() {
    // WRC-mmrb-1, Forbidden (3 cores): P1 writes the word, runs it (unsynchronized), stores a
    // flag; P2 reads the flag, DSB, cleans and invalidates the word, DSB, ISB, runs it. A fetch
    // is ordered before its core's later events (herd7's f-ob), its own write included. Before
    // the test, an earlier write of P1's to the word was overwritten by P0 and synchronized
    // (the generated program's reset): no longer pending, it must not keep P1's new write out
    // of what its flag carries.
    let mut m = model(Config { cores: 3, ..cfg() });
    write(&mut m, 1, MOV2);
    write(&mut m, 0, MOV1);
    sync_word(&mut m, 0, CODE);
    m.store(0, 0x4020_0300, FLAG + 0x80, &[1, 0, 0, 0], true);
    m.cse(0, Cse::Isb);
    for c in [1, 2] {
        m.load(c, FLAG + 0x80, CTRL);
        m.cse(c, Cse::Isb);
    }
    assert!(!m.is_pending(CODE), "the reset is synchronized");
    write(&mut m, 1, NOP);
    assert!(
        run(&mut m, 1).is_some(),
        "P1 ran its own write unsynchronized"
    );
    flag(&mut m, 1, false);
    assert_eq!(flag_then_sync_and_run(&mut m, 2), None);
}

#[test]
fn a_load_of_the_value_a_store_replaces_orders_what_preceded_it_before_that_store() {
    // SB.RF+dmb+dmb.ish-cachesync-isb, Forbidden: P0 writes P1's word, DMB SY, reads z (the
    // initial value); P1 stores z, DMB ISH, cleans and invalidates the word, DSB, ISB, runs
    // it. P0's load read from before P1's store (from-read), so P0's write is ordered before
    // P1's clean.
    const Z: u64 = FLAG + 0x100;
    let mut m = model(cfg());
    write(&mut m, 0, NOP);
    m.dmb(0, Full);
    m.load(0, Z, PLAIN);
    m.store(1, 0x4020_0400, Z, &[1, 0, 0, 0], false);
    m.dmb(1, Full);
    sync_word(&mut m, 1, CODE);
    m.cse(1, Cse::Isb);
    assert_eq!(run(&mut m, 1), None);
    // Without P0's DMB the write is not ordered before its load: the clean is unordered.
    let mut m = model(cfg());
    write(&mut m, 0, NOP);
    m.load(0, Z, PLAIN);
    m.store(1, 0x4020_0400, Z, &[1, 0, 0, 0], false);
    m.dmb(1, Full);
    sync_word(&mut m, 1, CODE);
    m.cse(1, Cse::Isb);
    assert_eq!(missing(&mut m, 1), Missing::CleanOrder);
}

#[test]
fn a_local_invalidate_after_its_cores_clean_counts_for_a_stale_fetch_of_the_other_word() {
    // SB-bnop-cachesyncs3, Forbidden: P0 writes P1's word A, cleans it, DSB, ISB, runs its own
    // word B; P1 writes B, cleans it, DSB, IC IALLU (its own cache only), DSB, ISB, runs A.
    // Either fetch alone may be stale, not both: had P0's fetch of B read the old word, P1's
    // IC IALLU, which follows P1's clean of B, came after that fetch, hence after P0's clean
    // of A, and so it invalidated A for P1.
    const A: u64 = CODE;
    const B_WORD: u64 = CODE + 0x100;
    let both = |reordered: bool| {
        let mut m = model(cfg());
        m.note_code(B_WORD, B);
        m.store(0, 0x4020_0300, A, &NOP.to_le_bytes(), false);
        m.store(1, 0x4020_0400, B_WORD, &NOP.to_le_bytes(), false);
        m.dc(0, A, DcOp::Clean);
        m.dsb(0, Full);
        m.cse(0, Cse::Isb);
        if reordered {
            // SB-bnop-cachesyncs1-reordered's shape, Allowed: P1 invalidates A before it
            // cleans B, so nothing orders P0's clean before that invalidation.
            m.dsb(1, Full);
            m.ic(1, IcOp::Ivau, A);
            m.dsb(1, Full);
            m.dc(1, B_WORD, DcOp::Clean);
            m.dsb(1, Full);
        } else {
            m.dc(1, B_WORD, DcOp::Clean);
            m.dsb(1, Full);
            m.ic(1, IcOp::AllLocal, 0);
            m.dsb(1, Full);
        }
        m.cse(1, Cse::Isb);
        let first = m
            .exec(0, B_WORD, B_WORD)
            .expect("P0's fetch of B alone may be stale");
        let second = m.exec(1, A, A).expect("P1's fetch of A alone may be stale");
        (first.id, second.excludes)
    };
    let (first, excludes) = both(false);
    assert_eq!(excludes, vec![first]);
    let (_, excludes) = both(true);
    assert!(excludes.is_empty(), "the reordered shape is Allowed");
}
