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
