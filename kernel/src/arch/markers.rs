//! Markers for the coherence sanitizer: unallocated `HINT` instructions, `NOP`s everywhere else.
//!
//! The numbers are the sanitizer's protocol (`sanitizer/src/markers.rs`); the kernel mirrors them
//! here rather than depend on the plugin crate, which stays an independent oracle. On hardware and
//! in plain QEMU each marker costs one `NOP`.

use core::arch::asm;

/// `HINT #116`: this core announces its index, so the sanitizer can check its attribution.
const CORE_ID: u32 = 116;
/// `HINT #117`: writes to the physical range `[x0, x0 + x1)` are code from now on.
const TRACK_CODE: u32 = 117;

/// Tells the sanitizer which core this is.
#[inline]
pub fn core_id(core: usize) {
    // SAFETY: an unallocated hint executes as a NOP; it only reads x0.
    unsafe {
        asm!("hint #{n}", n = const CORE_ID, in("x0") core, options(nomem, nostack, preserves_flags))
    };
}

/// Tells the sanitizer that `[pa, pa + len)` holds code (written before it ever runs).
#[inline]
pub fn track_code(pa: usize, len: usize) {
    // SAFETY: an unallocated hint executes as a NOP; it only reads x0 and x1.
    unsafe {
        asm!("hint #{n}", n = const TRACK_CODE, in("x0") pa, in("x1") len, options(nomem, nostack, preserves_flags))
    };
}

/// `HINT #114`: this core starts iteration `x0` of a litmus-style test.
const ITERATION: u32 = 114;
/// `HINT #115`: the outcome of this core's current iteration is `x0`.
const OUTCOME: u32 = 115;
/// `HINT #112`: the code at `[x0, x0 + x1)` (executable view) is published.
const MARK_PUBLISHED: u32 = 112;
/// `HINT #113`: the code at `[x0, x0 + x1)` (executable view) is being rewritten again.
const MARK_UNPUBLISHED: u32 = 113;

/// Tells the sanitizer that this core starts iteration `n`: its reports carry `iter=n`.
#[inline]
pub fn iteration(n: usize) {
    // SAFETY: an unallocated hint executes as a NOP; it only reads x0.
    unsafe {
        asm!("hint #{n}", n = const ITERATION, in("x0") n, options(nomem, nostack, preserves_flags))
    };
}

/// Tells the sanitizer this core's outcome for its current iteration (echoed as an `outcome` line).
#[inline]
pub fn outcome(value: usize) {
    // SAFETY: an unallocated hint executes as a NOP; it only reads x0.
    unsafe {
        asm!("hint #{n}", n = const OUTCOME, in("x0") value, options(nomem, nostack, preserves_flags))
    };
}

/// Tells the sanitizer that the code at `[va, va + len)` (executable view) is published: stale
/// executions of it are hazards from now on.
#[inline]
#[allow(dead_code)] // the protocol's full set; no kernel test publishes through it yet
pub fn mark_published(va: usize, len: usize) {
    // SAFETY: an unallocated hint executes as a NOP; it only reads x0 and x1.
    unsafe {
        asm!("hint #{n}", n = const MARK_PUBLISHED, in("x0") va, in("x1") len, options(nomem, nostack, preserves_flags))
    };
}

/// Tells the sanitizer that the code at `[va, va + len)` is being rewritten again (a new flip in
/// flight): stale executions of it are expected until it is published again.
#[inline]
#[allow(dead_code)] // the protocol's full set; no kernel test publishes through it yet
pub fn mark_unpublished(va: usize, len: usize) {
    // SAFETY: an unallocated hint executes as a NOP; it only reads x0 and x1.
    unsafe {
        asm!("hint #{n}", n = const MARK_UNPUBLISHED, in("x0") va, in("x1") len, options(nomem, nostack, preserves_flags))
    };
}
