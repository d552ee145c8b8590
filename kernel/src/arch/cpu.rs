//! Small processor helpers: who am I, time, waiting, and masking interrupts.

use aarch64_cpu::asm;
use aarch64_cpu::registers::Readable;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, CurrentEL, MPIDR_EL1};

/// This core's linear index, which `boot.s` stored in `TPIDR_EL1`.
#[inline]
pub fn core_id() -> usize {
    aarch64_cpu::registers::TPIDR_EL1.get() as usize
}

/// This core's `MPIDR_EL1` affinity fields.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// The exception level the code runs at now.
pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// The generic timer's counter value (virtual count).
#[inline]
pub fn ticks() -> u64 {
    // The ISB keeps the read from being hoisted above earlier instructions.
    asm::barrier::isb(asm::barrier::SY);
    CNTVCT_EL0.get()
}

/// Counter ticks per second.
pub fn tick_hz() -> u64 {
    CNTFRQ_EL0.get()
}

/// Counter ticks in `us` microseconds.
pub fn us_to_ticks(us: u64) -> u64 {
    us * tick_hz() / 1_000_000
}

/// Microseconds since the counter started.
pub fn micros() -> u64 {
    let hz = tick_hz().max(1);
    (u128::from(ticks()) * 1_000_000 / u128::from(hz)) as u64
}

/// The body of every busy-wait loop: a `YIELD` hint.
///
/// On hardware it tells an SMT core to favour its sibling; under QEMU's round-robin TCG
/// (`-icount`, `thread=single`) it ends this vCPU's turn, so the core being waited for runs now
/// rather than after a scheduler tick. (`core::hint::spin_loop` emits `ISB`, which is neither.)
#[inline]
pub fn relax() {
    // SAFETY: YIELD is a hint with no architectural effect.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Waits for an interrupt (idle cores sleep here rather than spin).
#[inline]
pub fn wfi() {
    asm::wfi();
}

// aarch64-cpu's `DAIF` accessors are `asm!(.., nomem)`, and its reads also `pure`: not compiler
// barriers, so the compiler may move a critical section's memory accesses across the mask or
// unmask, or reuse a `DAIF` value read earlier. These three are plain `asm!` (which the compiler
// must treat as reading and writing any memory), one instruction each concern.

/// Unmasks IRQs on this core.
pub fn irq_enable() {
    // SAFETY: unmasking IRQs at EL1; the vector table is installed before any core gets here.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Masks IRQs on this core, returning the previous `DAIF` for [`irq_restore`].
pub fn irq_save() -> u64 {
    let saved: u64;
    // SAFETY: reading DAIF and masking IRQs at EL1 has no other effect.
    unsafe {
        core::arch::asm!(
            "mrs {saved}, daif",
            "msr daifset, #2",
            saved = out(reg) saved,
            options(nostack, preserves_flags)
        )
    };
    saved
}

/// Restores a `DAIF` value from [`irq_save`].
pub fn irq_restore(saved: u64) {
    // SAFETY: `saved` is a DAIF value this core read in `irq_save`.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) saved, options(nostack, preserves_flags)) };
}

/// `CTR_EL0`, the cache type register (aarch64-cpu does not provide it).
pub fn ctr_el0() -> u64 {
    let v: u64;
    // SAFETY: reading CTR_EL0 has no side effects and is allowed at EL1.
    unsafe {
        core::arch::asm!("mrs {}, ctr_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// The smallest data-cache line, from `CTR_EL0.DminLine` (bits 19:16, log2 of words).
pub fn dcache_line() -> usize {
    4 << ((ctr_el0() >> 16) & 0xf)
}

/// The smallest instruction-cache line, from `CTR_EL0.IminLine` (bits 3:0, log2 of words).
pub fn icache_line() -> usize {
    4 << (ctr_el0() & 0xf)
}
