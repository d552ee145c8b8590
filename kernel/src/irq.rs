//! IRQ dispatch: drain the interrupt controller, hand each interrupt to its owner.

use boards::{Board, Current, Irq};

/// Called by the exception vector for every IRQ, with IRQs masked.
pub fn handle() {
    while Current::irq_handle_one(&mut |irq| match irq {
        Irq::Ipi => crate::ipi::handle(),
        Irq::Timer => crate::timer::handle(),
        Irq::Other(n) => defmt::warn!("spurious interrupt {=u32}", n),
    }) {}
}
