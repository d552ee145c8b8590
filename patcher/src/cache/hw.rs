//! The real AArch64 backend: one instruction per function.
//!
//! This is one of the two places in the crate that executes instructions of its own (the other
//! is the arena's code copy). No `asm!` here is `nomem`: each acts as a compiler barrier, so the
//! compiler cannot move the code stores a clean must follow, or the pointer store a barrier must
//! precede, across it. Operations by address are `unsafe fn`s whose contract is the mapping;
//! barriers and register reads have no caller duty, so they are safe functions around one
//! documented `unsafe` block.

use core::arch::asm;

use super::Maintenance;

/// `DC CVAU, va`.
///
/// # Safety
///
/// `va` must be mapped as Normal memory in the current translation regime.
#[inline(always)]
pub unsafe fn dc_cvau(va: usize) {
    // SAFETY: the caller guarantees `va` is mapped Normal memory; a clean changes no data.
    unsafe { asm!("dc cvau, {va}", va = in(reg) va, options(nostack, preserves_flags)) }
}

/// `DC CIVAC, va`.
///
/// # Safety
///
/// `va` must be mapped as Normal memory in the current translation regime.
#[inline(always)]
pub unsafe fn dc_civac(va: usize) {
    // SAFETY: the caller guarantees `va` is mapped Normal memory; a clean-and-invalidate writes
    // dirty data back before dropping the line, so it changes no data.
    unsafe { asm!("dc civac, {va}", va = in(reg) va, options(nostack, preserves_flags)) }
}

/// `IC IVAU, va`.
///
/// # Safety
///
/// `va` must be mapped in the current translation regime.
#[inline(always)]
pub unsafe fn ic_ivau(va: usize) {
    // SAFETY: the caller guarantees `va` is mapped; invalidating instruction cache lines only
    // makes later fetches go to memory.
    unsafe { asm!("ic ivau, {va}", va = in(reg) va, options(nostack, preserves_flags)) }
}

/// `DSB ISH`.
#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: a barrier reads and writes no memory and has no precondition.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) }
}

/// `DSB ISHST`.
#[inline(always)]
pub fn dsb_ishst() {
    // SAFETY: a barrier reads and writes no memory and has no precondition.
    unsafe { asm!("dsb ishst", options(nostack, preserves_flags)) }
}

/// `DMB ISH`.
#[inline(always)]
pub fn dmb_ish() {
    // SAFETY: a barrier reads and writes no memory and has no precondition.
    unsafe { asm!("dmb ish", options(nostack, preserves_flags)) }
}

/// `ISB`.
#[inline(always)]
pub fn isb() {
    // SAFETY: a context synchronization event changes no memory or register state.
    unsafe { asm!("isb", options(nostack, preserves_flags)) }
}

/// `YIELD`: a busy-wait hint.
#[inline(always)]
pub fn yield_hint() {
    // SAFETY: a hint reads and writes no memory and has no precondition.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) }
}

/// `MRS CTR_EL0`.
#[inline(always)]
pub fn read_ctr_el0() -> u64 {
    let v: u64;
    // SAFETY: reading CTR_EL0 has no side effect; at EL1 and above it never traps.
    unsafe { asm!("mrs {v}, ctr_el0", v = out(reg) v, options(nostack, preserves_flags)) };
    v
}

/// `MRS MIDR_EL1`.
#[inline(always)]
pub fn read_midr_el1() -> u64 {
    let v: u64;
    // SAFETY: reading MIDR_EL1 has no side effect; at EL1 and above it never traps.
    unsafe { asm!("mrs {v}, midr_el1", v = out(reg) v, options(nostack, preserves_flags)) };
    v
}

/// The hardware backend: executes each operation on the calling core.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hw;

impl Maintenance for Hw {
    unsafe fn dc_cvau(&self, va: usize) {
        // SAFETY: the trait's contract for `dc_cvau` is this function's.
        unsafe { dc_cvau(va) }
    }
    unsafe fn dc_civac(&self, va: usize) {
        // SAFETY: the trait's contract for `dc_civac` is this function's.
        unsafe { dc_civac(va) }
    }
    unsafe fn ic_ivau(&self, va: usize) {
        // SAFETY: the trait's contract for `ic_ivau` is this function's.
        unsafe { ic_ivau(va) }
    }
    fn dsb_ish(&self) {
        dsb_ish()
    }
    fn dsb_ishst(&self) {
        dsb_ishst()
    }
    fn dmb_ish(&self) {
        dmb_ish()
    }
    fn isb(&self) {
        isb()
    }
    fn relax(&self) {
        yield_hint()
    }
    fn ctr_el0(&self) -> u64 {
        read_ctr_el0()
    }
    fn midr_el1(&self) -> u64 {
        read_midr_el1()
    }
}
