//! The mirrors: one kernel test per catalogue test, each naming it and its verdict.
//!
//! Names: `lit-` for the catalogue's `DIC0-IDC0` tests, `li1-` for `DIC0-IDC1` (`IDC1.` prefix,
//! sanitized with `idc=1`), `ld1-` for `DIC1-IDC1` (`DIC1.`, sanitized with `idc=1 dic=1`). Each
//! can catch a sanitizer verdict that differs from the catalogue's for that shape (see the module
//! documentation of `litmus`); none can show what hardware does.

use super::shapes::{self, *};
use super::{Flag, Mirror, Verdict, run};
use crate::tests::{Ctx, TestResult, kernel_test};

/// Registers one mirror: test name, catalogue name, verdict, `[idc, dic]`, consumer template,
/// producer (or `None`), flag kind.
macro_rules! mirror {
    ($static:ident, $fn:ident, $name:literal, $catalogue:literal, $verdict:ident, [$idc:literal, $dic:literal], $consumer:path, $producer:expr, $flag:ident) => {
        kernel_test!(
            $static,
            $name,
            Pass,
            timeout_s = 300,
            min_cores = 2,
            $fn,
            tcg = MultiThreaded,
            sanitized = [$verdict, No],
            ctr = [$idc, $dic]
        );
        fn $fn(ctx: &Ctx) -> TestResult {
            run(
                &Mirror {
                    name: $name,
                    catalogue: $catalogue,
                    verdict: Verdict::$verdict,
                    consumer: $consumer,
                    producer: $producer,
                    flag: Flag::$flag,
                },
                ctx,
            )
        }
    };
}

const P_DMBST: Option<Producer> = Some(graft_lit_p_dmbst);
const P_SYNC: Option<Producer> = Some(graft_lit_p_sync);
const P_DC_DSB: Option<Producer> = Some(graft_lit_p_dc_dsb);
const P_DC_DMB: Option<Producer> = Some(graft_lit_p_dc_dmb);
const P_DSB_IC: Option<Producer> = Some(graft_lit_p_dsb_ic);
const P_PLAIN: Option<Producer> = Some(graft_lit_p_plain);
const P_FF_DMBST: Option<Producer> = Some(graft_lit_p_ff_dmbst);
const P_FF_DSB: Option<Producer> = Some(graft_lit_p_ff_dsb);
const P_FF_DC_DSB: Option<Producer> = Some(graft_lit_p_ff_dc_dsb);

// ---- DIC0-IDC0: message passing, the consumer reads a flag, then runs the rewritten word.
mirror!(
    L01,
    l01,
    "lit-mp-dmbst-ctrlisb",
    "MP.RF+dmb.st+ctrlisb",
    Allowed,
    [false, false],
    shapes::mp_ctrlisb,
    P_DMBST,
    One
);
mirror!(
    L02,
    l02,
    "lit-mp-sync-ctrlisb",
    "MP.RF+dc-dsb-ic-dsb+ctrlisb",
    Forbidden,
    [false, false],
    shapes::mp_ctrlisb,
    P_SYNC,
    One
);
mirror!(
    L03,
    l03,
    "lit-mp-dcdsb-ctrlisb-ic",
    "MP.RF+dc-dsb+ctrlisb-ic-dsb-isb",
    Forbidden,
    [false, false],
    shapes::mp_ctrlisb_ic,
    P_DC_DSB,
    One
);
mirror!(
    L04,
    l04,
    "lit-mp-dmbst-ctrlisb-ic",
    "MP.RF+dmb.st+ctrlisb-ic-dsb-isb",
    Allowed,
    [false, false],
    shapes::mp_ctrlisb_ic,
    P_DMBST,
    One
);
mirror!(
    L05,
    l05,
    "lit-mp-dmbst-dmbish-full",
    "MP.RF+dmb.st+dmb.ish-dc-dsb-ic-dsb-isb",
    Forbidden,
    [false, false],
    shapes::mp_dmbish_full,
    P_DMBST,
    One
);
mirror!(
    L06,
    l06,
    "lit-mp-dmbst-dmbld-full",
    "MP.RF+dmb.st+dmb.ld-dc-dsb-ic-dsb-isb",
    Allowed,
    [false, false],
    shapes::mp_dmbld_full,
    P_DMBST,
    One
);
mirror!(
    L07,
    l07,
    "lit-mp-dmbst-dsbld-full",
    "MP.RF+dmb.st+dsb.ld-dc-dsb-ic-dsb-isb",
    Forbidden,
    [false, false],
    shapes::mp_dsbld_full,
    P_DMBST,
    One
);
mirror!(
    L08,
    l08,
    "lit-mp-dmbst-dsb-isb",
    "MP.RF+dmb.st+dsb.ish-isb",
    Allowed,
    [false, false],
    shapes::mp_dsb_isb,
    P_DMBST,
    One
);
mirror!(
    L09,
    l09,
    "lit-mp-dmbst-dsb-ic-isb",
    "MP.RF+dmb.st+dsb.ish-ic.ivau-dsb.ish-isb",
    Allowed,
    [false, false],
    shapes::mp_dsb_ic,
    P_DMBST,
    One
);
mirror!(
    L10,
    l10,
    "lit-mp-sync-dsbld-isb",
    "MP.RF+dc-dsb-ic-dsb+dsb.ld-isb",
    Forbidden,
    [false, false],
    shapes::mp_dsbld_isb,
    P_SYNC,
    One
);
mirror!(
    L11,
    l11,
    "lit-mp-sync-dsb-isb",
    "MP.RF+cachesync+dsb-isb",
    Forbidden,
    [false, false],
    shapes::mp_dsb_isb,
    P_SYNC,
    One
);
mirror!(
    L12,
    l12,
    "lit-mp-dsbic-ctrlisb",
    "MP.RF+dsb-ic-dsb+ctrlisb",
    Allowed,
    [false, false],
    shapes::mp_ctrlisb,
    P_DSB_IC,
    One
);
mirror!(
    L13,
    l13,
    "lit-mp-dmb-ctrlisb-full",
    "MP.RF+dmb+ctrlisb-dc-dsb-ic-dsb-isb",
    Forbidden,
    [false, false],
    shapes::mp_ctrlisb_full,
    P_DMBST,
    One
);
mirror!(
    L14,
    l14,
    "lit-mp-dcdmb-dsb-ic-isb",
    "MP.RF+dc.cvau-dmb.ish+dsb.ish-ic.ivau-dsb.ish-isb",
    Forbidden,
    [false, false],
    shapes::mp_dsb_ic,
    P_DC_DMB,
    One
);
mirror!(
    L15,
    l15,
    "lit-mp-dcdsb-dsb-ic-isb",
    "MP.RF+DC-DSB+DSB-IC-DSB-ISB",
    Forbidden,
    [false, false],
    shapes::mp_dsb_ic,
    P_DC_DSB,
    One
);

// ---- DIC0-IDC0: a code pointer instead of a flag.
mirror!(
    L16,
    l16,
    "lit-minijit01",
    "miniJit01",
    Allowed,
    [false, false],
    shapes::mini_jit01,
    P_SYNC,
    CodePointer
);
mirror!(
    L17,
    l17,
    "lit-minijit02",
    "miniJit02",
    Forbidden,
    [false, false],
    shapes::mini_jit02,
    P_SYNC,
    CodePointer
);

// ---- DIC0-IDC0: one core rewrites its own next instruction (run on core 1).
mirror!(
    L18,
    l18,
    "lit-sm-isb",
    "SM.B+isb",
    Allowed,
    [false, false],
    shapes::sm_isb,
    None,
    One
);
mirror!(
    L19,
    l19,
    "lit-sm-dsb",
    "SM.B+dsb.ish",
    Allowed,
    [false, false],
    shapes::sm_dsb,
    None,
    One
);
mirror!(
    L20,
    l20,
    "lit-sm-dsb-isb",
    "SM.B+dsb.ish-isb",
    Allowed,
    [false, false],
    shapes::sm_dsb_isb,
    None,
    One
);
mirror!(
    L21,
    l21,
    "lit-sm-dc-dsb",
    "SM.B+dc.cvau-dsb.ish",
    Allowed,
    [false, false],
    shapes::sm_dc_dsb,
    None,
    One
);
mirror!(
    L22,
    l22,
    "lit-sm-dc-dsb-isb",
    "SM.B+dc.cvau-dsb.ish-isb",
    Allowed,
    [false, false],
    shapes::sm_dc_dsb_isb,
    None,
    One
);
mirror!(
    L23,
    l23,
    "lit-sm-dsb-ic-isb",
    "SM.B+dsb.ish-ic.ivau-dsb.ish-isb",
    Allowed,
    [false, false],
    shapes::sm_dsb_ic_isb,
    None,
    One
);
mirror!(
    L24,
    l24,
    "lit-sm-sync-isb",
    "SM.B+cachesync-isb",
    Forbidden,
    [false, false],
    shapes::sm_sync_isb,
    None,
    One
);

// ---- DIC0-IDC0: two rewritten words, the consumer runs the second-written one first.
mirror!(
    L25,
    l25,
    "lit-ff-dmbst-po",
    "MP.FF+dmb.st+po",
    Allowed,
    [false, false],
    shapes::ff_po,
    P_FF_DMBST,
    One
);
mirror!(
    L26,
    l26,
    "lit-ff-dsb-po",
    "MP.FF+dsb.ish+po",
    Allowed,
    [false, false],
    shapes::ff_po,
    P_FF_DSB,
    One
);
mirror!(
    L27,
    l27,
    "lit-ff-dmbst-sync",
    "MP.FF+dmb.st+cachesync",
    Allowed,
    [false, false],
    shapes::ff_sync,
    P_FF_DMBST,
    One
);
mirror!(
    L28,
    l28,
    "lit-ff-dmbst-sync-isb",
    "MP.FF+dmb.st+cachesync-isb",
    Forbidden,
    [false, false],
    shapes::ff_sync_isb,
    P_FF_DMBST,
    One
);
mirror!(
    L29,
    l29,
    "lit-ff-dcdsb-ic-isb",
    "MP.FF+dc-dsb+ic-dsb-isb",
    Forbidden,
    [false, false],
    shapes::ff_ic_isb,
    P_FF_DC_DSB,
    One
);
mirror!(
    L30,
    l30,
    "lit-ff-dmbst-ic-isb",
    "MP.FF+dmb.st+ic-dsb-isb",
    Allowed,
    [false, false],
    shapes::ff_ic_isb,
    P_FF_DMBST,
    One
);
mirror!(
    L31,
    l31,
    "lit-coff",
    "coFF",
    Allowed,
    [false, false],
    shapes::co_ff,
    P_PLAIN,
    One
);

// ---- DIC0-IDC1 (no clean needed): sanitized with idc=1.
mirror!(
    I01,
    i01,
    "li1-mp-dmbst-ctrlisb",
    "IDC1.MP.RF+dmb.st+ctrlisb",
    Allowed,
    [true, false],
    shapes::mp_ctrlisb,
    P_DMBST,
    One
);
mirror!(
    I02,
    i02,
    "li1-mp-dmbst-ctrlisb-ic",
    "IDC1.MP.RF+dmb.st+ctrlisb-ic-dsb-isb",
    Forbidden,
    [true, false],
    shapes::mp_ctrlisb_ic,
    P_DMBST,
    One
);
mirror!(
    I03,
    i03,
    "li1-mp-dmbst-dsb-ic-isb",
    "IDC1.MP.RF+dmb.st+dsb.ish-ic.ivau-dsb.ish-isb",
    Forbidden,
    [true, false],
    shapes::mp_dsb_ic,
    P_DMBST,
    One
);
mirror!(
    I04,
    i04,
    "li1-mp-dsbic-ctrlisb",
    "IDC1.MP.RF+dsb-ic-dsb+ctrlisb",
    Forbidden,
    [true, false],
    shapes::mp_ctrlisb,
    P_DSB_IC,
    One
);
mirror!(
    I05,
    i05,
    "li1-sm-dsb-ic-isb",
    "IDC1.SM.B+dsb.ish-ic.ivau-dsb.ish-isb",
    Forbidden,
    [true, false],
    shapes::sm_dsb_ic_isb,
    None,
    One
);
mirror!(
    I06,
    i06,
    "li1-sm-dsb-isb",
    "IDC1.SM.B+dsb.ish-isb",
    Allowed,
    [true, false],
    shapes::sm_dsb_isb,
    None,
    One
);

// ---- DIC1-IDC1 (no clean, no invalidate needed): sanitized with idc=1 dic=1.
mirror!(
    D01,
    d01,
    "ld1-mp-dmbst-ctrlisb",
    "DIC1.MP.RF+dmb.st+ctrlisb",
    Forbidden,
    [true, true],
    shapes::mp_ctrlisb,
    P_DMBST,
    One
);
mirror!(
    D02,
    d02,
    "ld1-mp-dmbst-dsb-isb",
    "DIC1.MP.RF+dmb.st+dsb.ish-isb",
    Forbidden,
    [true, true],
    shapes::mp_dsb_isb,
    P_DMBST,
    One
);
mirror!(
    D03,
    d03,
    "ld1-sm-dsb-isb",
    "DIC1.SM.B+dsb.ish-isb",
    Forbidden,
    [true, true],
    shapes::sm_dsb_isb,
    None,
    One
);
mirror!(
    D04,
    d04,
    "ld1-sm-isb",
    "DIC1.SM.B+isb",
    Allowed,
    [true, true],
    shapes::sm_isb,
    None,
    One
);
mirror!(
    D05,
    d05,
    "ld1-minijit01",
    "DIC1.miniJit01",
    Allowed,
    [true, true],
    shapes::mini_jit01,
    P_SYNC,
    CodePointer
);
