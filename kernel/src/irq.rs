//! IRQ dispatch: drain the interrupt controller, hand each interrupt to its owner.

use crate::arch::{cpu, pmu};
use boards::{Board, Current, Irq, MAX_CORES};
use core::sync::atomic::{AtomicU64, Ordering};

/// Retired-instruction counts spent in IRQ handlers, per core (zero unless the PMU counter was
/// started on that core: the benchmarks read it to charge a publication's IPIs to the loop).
static SPENT: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// IRQ exceptions each core has taken.
static TAKEN: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// IRQ exceptions `core` has taken (each one exception entry and one return).
pub fn taken(core: usize) -> u64 {
    TAKEN[core].load(Ordering::Relaxed)
}

/// Instructions `core` has spent handling IRQs (see [`SPENT`]).
pub fn spent(core: usize) -> u64 {
    SPENT[core].load(Ordering::Relaxed)
}

/// Called by the exception vector for every IRQ, with IRQs masked.
pub fn handle() {
    let start = pmu::instructions();
    while Current::irq_handle_one(&mut |irq| match irq {
        Irq::Ipi => crate::ipi::handle(),
        Irq::Timer => crate::timer::handle(),
        Irq::Other(n) => defmt::warn!("spurious interrupt {=u32}", n),
    }) {}
    let me = cpu::core_id();
    SPENT[me].fetch_add(pmu::instructions().wrapping_sub(start), Ordering::Relaxed);
    TAKEN[me].fetch_add(1, Ordering::Relaxed);
}
