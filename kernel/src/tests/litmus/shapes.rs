//! The litmus shapes as assembly: consumer templates (copied into the arena and run from its
//! executable view) and producers (run in place from kernel text).
//!
//! Every instruction a catalogue thread runs is here, in the catalogue's order; nothing else sits
//! between them. The registers differ from the catalogue's because the arena has two views: the
//! store and `DC CVAU` go through the writable view, `IC IVAU` names the executable one (both
//! reach the same physical line, which is what the sanitizer tracks).
//!
//! A template starts with a 16-byte header of offsets from its start (`.word`s): the rewritten
//! word (label `7`), a second rewritten word that the consumer runs first (label `6`, `MP.FF`
//! shapes, else 0), and the initial branch target of the `miniJit` shapes (label `5`, else 0).
//! Its entry follows the header. Entry: `x0` the flag (or code pointer) cell, `x1` the rewritten
//! word's executable address, `x2` its writable address, `x3` the new word (`NOP`, for the
//! single-core shapes). It returns bit 0 set when the `exists` clause's other conditions held
//! (the iteration qualifies), and bit 1 set when it ran the new word there (what QEMU fetched,
//! informational).
//!
//! Producers: `x0` the new word, `x1`/`x2` the rewritten word's writable and executable
//! addresses, `x3` the flag cell, `x4` the second word's writable address, `x5` the value the
//! flag store writes (1, or the new code pointer for `miniJit`).

use super::Template;
use core::arch::global_asm;

/// A producer thread: see the module documentation for its registers.
pub type Producer = unsafe extern "C" fn(u32, usize, usize, *mut u64, usize, u64);

/// Declares a consumer template in read-only data and a function returning where it lies.
macro_rules! template {
    ($fn:ident, $start:ident, $end:ident, m1 = $m1:literal, l0 = $l0:literal, [$($body:literal),* $(,)?]) => {
        global_asm!(
            ".pushsection .rodata.graft_litmus, \"a\"",
            ".balign 64",
            concat!(".global ", stringify!($start)),
            concat!(stringify!($start), ":"),
            "0:",
            ".word 7f - 0b",
            concat!(".word ", $m1),
            concat!(".word ", $l0),
            ".word 0",
            $($body,)*
            concat!(".global ", stringify!($end)),
            concat!(stringify!($end), ":"),
            ".popsection",
        );
        #[doc = concat!("The `", stringify!($start), "` template.")]
        pub fn $fn() -> Template {
            unsafe extern "C" {
                static $start: u8;
                static $end: u8;
            }
            Template {
                start: &raw const $start,
                end: &raw const $end,
            }
        }
    };
}

/// A message-passing consumer (`MP.RF`): load the flag into `w2`, the reader's part of the shape,
/// then the rewritten `B`. Qualifies when it read the flag as written (1).
macro_rules! mp {
    ($fn:ident, $start:ident, $end:ident, [$($mid:literal),* $(,)?]) => {
        template!($fn, $start, $end, m1 = "0", l0 = "0", [
            "mov w9, #0",
            "ldr w2, [x0]",
            $($mid,)*
            "7: b 1f",
            "mov w9, #1",
            "1: cmp w2, #1",
            "cset w0, eq",
            "orr w0, w0, w9, lsl #1",
            "ret",
        ]);
    };
}

/// A single-core shape (`SM.B`): write the `NOP` over its own later `B`, then its part of the
/// shape. Every iteration qualifies (the clause is only the stale outcome).
macro_rules! sm {
    ($fn:ident, $start:ident, $end:ident, [$($mid:literal),* $(,)?]) => {
        template!($fn, $start, $end, m1 = "0", l0 = "0", [
            "mov w9, #0",
            "str w3, [x2]",
            $($mid,)*
            "7: b 1f",
            "mov w9, #1",
            "1: mov w0, #1",
            "orr w0, w0, w9, lsl #1",
            "ret",
        ]);
    };
}

/// A fetch-fetch consumer (`MP.FF`): run the first rewritten word (label `6`, the producer's
/// second write), its part of the shape, then the rewritten word. Qualifies when it ran the new
/// first word.
macro_rules! ff {
    ($fn:ident, $start:ident, $end:ident, [$($mid:literal),* $(,)?]) => {
        template!($fn, $start, $end, m1 = "6f - 0b", l0 = "0", [
            "mov w10, #0",
            "mov w11, #0",
            "6: b 1f",
            "mov w10, #1",
            "1:",
            $($mid,)*
            // The two rewritten words on separate cache lines, as herd7's locations are: the
            // sanitizer keeps maintenance per line (a later write to a line undoes it), which
            // would otherwise also tie the second word's freshness to the first's write.
            ".balignl 64, 0xd503201f",
            "7: b 2f",
            "mov w11, #1",
            "2: mov w0, w10",
            "orr w0, w0, w11, lsl #1",
            "ret",
        ]);
    };
}

mp!(
    mp_ctrlisb,
    graft_lit_mp_ctrlisb,
    graft_lit_mp_ctrlisb_end,
    ["cbnz w2, 2f", "2: isb"]
);
mp!(
    mp_ctrlisb_ic,
    graft_lit_mp_ctrlisb_ic,
    graft_lit_mp_ctrlisb_ic_end,
    ["cbnz w2, 2f", "2: isb", "ic ivau, x1", "dsb ish", "isb",]
);
mp!(
    mp_ctrlisb_full,
    graft_lit_mp_ctrlisb_full,
    graft_lit_mp_ctrlisb_full_end,
    [
        "cbnz w2, 2f",
        "2: isb",
        "dc cvau, x1",
        "dsb ish",
        "ic ivau, x1",
        "dsb ish",
        "isb",
    ]
);
mp!(
    mp_dmbish_full,
    graft_lit_mp_dmbish_full,
    graft_lit_mp_dmbish_full_end,
    [
        "dmb ish",
        "dc cvau, x1",
        "dsb ish",
        "ic ivau, x1",
        "dsb ish",
        "isb",
    ]
);
mp!(
    mp_dmbld_full,
    graft_lit_mp_dmbld_full,
    graft_lit_mp_dmbld_full_end,
    [
        "dmb ld",
        "dc cvau, x1",
        "dsb ish",
        "ic ivau, x1",
        "dsb ish",
        "isb",
    ]
);
mp!(
    mp_dsbld_full,
    graft_lit_mp_dsbld_full,
    graft_lit_mp_dsbld_full_end,
    [
        "dsb ld",
        "dc cvau, x1",
        "dsb ish",
        "ic ivau, x1",
        "dsb ish",
        "isb",
    ]
);
mp!(
    mp_dsb_isb,
    graft_lit_mp_dsb_isb,
    graft_lit_mp_dsb_isb_end,
    ["dsb ish", "isb"]
);
mp!(
    mp_dsb_ic,
    graft_lit_mp_dsb_ic,
    graft_lit_mp_dsb_ic_end,
    ["dsb ish", "ic ivau, x1", "dsb ish", "isb",]
);
mp!(
    mp_dsbld_isb,
    graft_lit_mp_dsbld_isb,
    graft_lit_mp_dsbld_isb_end,
    ["dsb ld", "isb"]
);

sm!(sm_isb, graft_lit_sm_isb, graft_lit_sm_isb_end, ["isb"]);
sm!(sm_dsb, graft_lit_sm_dsb, graft_lit_sm_dsb_end, ["dsb ish"]);
sm!(
    sm_dsb_isb,
    graft_lit_sm_dsb_isb,
    graft_lit_sm_dsb_isb_end,
    ["dsb ish", "isb"]
);
sm!(
    sm_dc_dsb,
    graft_lit_sm_dc_dsb,
    graft_lit_sm_dc_dsb_end,
    ["dc cvau, x2", "dsb ish"]
);
sm!(
    sm_dc_dsb_isb,
    graft_lit_sm_dc_dsb_isb,
    graft_lit_sm_dc_dsb_isb_end,
    ["dc cvau, x2", "dsb ish", "isb",]
);
sm!(
    sm_dsb_ic_isb,
    graft_lit_sm_dsb_ic_isb,
    graft_lit_sm_dsb_ic_isb_end,
    ["dsb ish", "ic ivau, x1", "dsb ish", "isb",]
);
sm!(
    sm_sync_isb,
    graft_lit_sm_sync_isb,
    graft_lit_sm_sync_isb_end,
    ["dc cvau, x2", "dsb ish", "ic ivau, x1", "dsb ish", "isb",]
);

ff!(ff_po, graft_lit_ff_po, graft_lit_ff_po_end, []);
ff!(
    ff_sync,
    graft_lit_ff_sync,
    graft_lit_ff_sync_end,
    ["dc cvau, x1", "dsb sy", "ic ivau, x1", "dsb sy",]
);
ff!(
    ff_sync_isb,
    graft_lit_ff_sync_isb,
    graft_lit_ff_sync_isb_end,
    ["dc cvau, x1", "dsb sy", "ic ivau, x1", "dsb sy", "isb",]
);
ff!(
    ff_ic_isb,
    graft_lit_ff_ic_isb,
    graft_lit_ff_ic_isb_end,
    ["ic ivau, x1", "dsb sy", "isb"]
);

// miniJit01: `LDR X1; BR X1`. The cell starts at L0 (label 5); the producer stores L1 (label 7,
// the rewritten `B L2`). Qualifies when it loaded L1; ran the new word when it got to `MOV W9,#3`.
template!(
    mini_jit01,
    graft_lit_mini_jit01,
    graft_lit_mini_jit01_end,
    m1 = "0",
    l0 = "5f - 0b",
    [
        "mov w9, #0",
        "ldr x1, [x0]",
        "br x1",
        "5: mov w9, #1",
        "b 3f",
        "7: b 2f",
        "mov w9, #3",
        "b 3f",
        "2: mov w9, #2",
        "3: adr x2, 7b",
        "cmp x1, x2",
        "cset w0, eq",
        "cmp w9, #3",
        "cset w3, eq",
        "orr w0, w0, w3, lsl #1",
        "ret",
    ]
);

// miniJit02: as miniJit01 with `CMP X1, L3; B.EQ L3; ISB` between the load and the `BR`.
template!(
    mini_jit02,
    graft_lit_mini_jit02,
    graft_lit_mini_jit02_end,
    m1 = "0",
    l0 = "5f - 0b",
    [
        "mov w9, #0",
        "ldr x1, [x0]",
        "adr x2, 3f",
        "cmp x1, x2",
        "b.eq 3f",
        "isb",
        "br x1",
        "5: mov w9, #1",
        "b 3f",
        "7: b 2f",
        "mov w9, #3",
        "b 3f",
        "2: mov w9, #2",
        "3: adr x2, 7b",
        "cmp x1, x2",
        "cset w0, eq",
        "cmp w9, #3",
        "cset w3, eq",
        "orr w0, w0, w3, lsl #1",
        "ret",
    ]
);

// coFF: call the rewritten function (label 7) twice. Qualifies when the first call ran the new
// word; bit 1 is the second call's.
template!(
    co_ff,
    graft_lit_co_ff,
    graft_lit_co_ff_end,
    m1 = "0",
    l0 = "0",
    [
        "mov x8, x30",
        "bl 7f",
        "mov w4, w9",
        "bl 7f",
        "mov w5, w9",
        "mov x30, x8",
        "and w0, w4, #1",
        "orr w0, w0, w5, lsl #1",
        "ret",
        "7: b 1f",
        "mov w9, #1",
        "ret",
        "1: mov w9, #0",
        "ret",
    ]
);

/// Declares a producer in kernel text.
macro_rules! producer {
    ($sym:ident, [$($body:literal),* $(,)?]) => {
        global_asm!(
            ".pushsection .text.graft_litmus, \"ax\"",
            ".balign 4",
            concat!(".global ", stringify!($sym)),
            concat!(stringify!($sym), ":"),
            $($body,)*
            "ret",
            ".popsection",
        );
    };
}

producer!(
    graft_lit_p_dmbst,
    ["str w0, [x1]", "dmb st", "str x5, [x3]"]
);
producer!(
    graft_lit_p_sync,
    [
        "str w0, [x1]",
        "dc cvau, x1",
        "dsb ish",
        "ic ivau, x2",
        "dsb ish",
        "str x5, [x3]",
    ]
);
producer!(
    graft_lit_p_dc_dsb,
    ["str w0, [x1]", "dc cvau, x1", "dsb ish", "str x5, [x3]"]
);
producer!(
    graft_lit_p_dc_dmb,
    ["str w0, [x1]", "dc cvau, x1", "dmb ish", "str x5, [x3]"]
);
producer!(
    graft_lit_p_dsb_ic,
    [
        "str w0, [x1]",
        "dsb ish",
        "ic ivau, x2",
        "dsb ish",
        "str x5, [x3]",
    ]
);
producer!(graft_lit_p_plain, ["str w0, [x1]"]);
producer!(
    graft_lit_p_ff_dmbst,
    ["str w0, [x1]", "dmb st", "str w0, [x4]"]
);
producer!(
    graft_lit_p_ff_dsb,
    ["str w0, [x1]", "dsb ish", "str w0, [x4]"]
);
producer!(
    graft_lit_p_ff_dc_dsb,
    ["str w0, [x1]", "dc cvau, x1", "dsb sy", "str w0, [x4]"]
);

unsafe extern "C" {
    /// `STR; DMB ST; STR flag`.
    pub fn graft_lit_p_dmbst(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DC CVAU; DSB ISH; IC IVAU; DSB ISH; STR flag`.
    pub fn graft_lit_p_sync(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DC CVAU; DSB ISH; STR flag`.
    pub fn graft_lit_p_dc_dsb(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DC CVAU; DMB ISH; STR flag`.
    pub fn graft_lit_p_dc_dmb(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DSB ISH; IC IVAU; DSB ISH; STR flag` (no clean).
    pub fn graft_lit_p_dsb_ic(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR` alone.
    pub fn graft_lit_p_plain(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DMB ST; STR` (second word).
    pub fn graft_lit_p_ff_dmbst(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DSB ISH; STR` (second word).
    pub fn graft_lit_p_ff_dsb(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
    /// `STR; DC CVAU; DSB SY; STR` (second word).
    pub fn graft_lit_p_ff_dc_dsb(new: u32, w: usize, x: usize, flag: *mut u64, w1: usize, v: u64);
}
