//! The BCM2836 "ARM local" interrupt controller of the Raspberry Pi 2/3: per-core timer
//! interrupt routing, per-core mailboxes (Graft's IPIs) and per-core IRQ sources.
//!
//! Register layout from the "BCM2836 ARM-local peripherals" document (QA7, rev 3.4), section 4.

use crate::{CoreMask, Irq};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,

    /// Core timers interrupt control: which of the core's generic-timer interrupts are routed.
    TIMER_CNTRL [
        /// nCNTVIRQ (the virtual timer) to IRQ.
        CNTV_IRQ OFFSET(3) NUMBITS(1) []
    ],

    /// Core mailboxes interrupt control.
    MBOX_CNTRL [
        /// Mailbox 0 to IRQ.
        MBOX0_IRQ OFFSET(0) NUMBITS(1) []
    ],

    /// Core IRQ source: what is asserting this core's IRQ.
    IRQ_SOURCE [
        /// Mailbox 0.
        MBOX0 OFFSET(4) NUMBITS(1) [],
        /// The virtual timer (nCNTVIRQ).
        CNTV OFFSET(3) NUMBITS(1) []
    ]
}

register_structs! {
    Regs {
        (0x00 => _reserved0),
        (0x40 => timer_cntrl: [ReadWrite<u32, TIMER_CNTRL::Register>; 4]),
        (0x50 => mbox_cntrl: [ReadWrite<u32, MBOX_CNTRL::Register>; 4]),
        (0x60 => irq_source: [ReadOnly<u32, IRQ_SOURCE::Register>; 4]),
        (0x70 => _reserved1),
        /// Mailbox write-set registers: 4 cores x 4 mailboxes.
        (0x80 => mbox_set: [WriteOnly<u32>; 16]),
        /// Mailbox read / write-high-to-clear registers: 4 cores x 4 mailboxes.
        (0xc0 => mbox_clr: [ReadWrite<u32>; 16]),
        (0x100 => @END),
    }
}

/// The controller at a fixed address.
pub struct LocalIntc {
    base: usize,
}

impl LocalIntc {
    /// A driver for the controller at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the ARM-local block, mapped as device memory, driven by nothing else.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn regs(&self) -> &Regs {
        // SAFETY: `new`'s contract: `base` is the mapped ARM-local register block.
        unsafe { &*(self.base as *const Regs) }
    }

    /// Routes `core`'s virtual-timer interrupt and mailbox 0 to its IRQ.
    pub fn init_core(&self, core: usize) {
        self.regs().timer_cntrl[core].write(TIMER_CNTRL::CNTV_IRQ::SET);
        self.regs().mbox_cntrl[core].write(MBOX_CNTRL::MBOX0_IRQ::SET);
    }

    /// Sets bit 0 of mailbox 0 of every core in `targets`.
    pub fn send_ipi(&self, targets: CoreMask) {
        for core in targets.iter().filter(|&c| c < 4) {
            self.regs().mbox_set[core * 4].set(1);
        }
    }

    /// Handles the highest-priority source of `core`'s IRQ: mailbox first, then the timer.
    pub fn handle_one(&self, core: usize, handler: &mut dyn FnMut(Irq)) -> bool {
        let source = self.regs().irq_source[core].extract();
        if source.is_set(IRQ_SOURCE::MBOX0) {
            // Clear before handling: a request sent meanwhile raises the mailbox again.
            let pending = self.regs().mbox_clr[core * 4].get();
            self.regs().mbox_clr[core * 4].set(pending);
            handler(Irq::Ipi);
            true
        } else if source.is_set(IRQ_SOURCE::CNTV) {
            // The handler re-arms the timer, which drops the level.
            handler(Irq::Timer);
            true
        } else {
            false
        }
    }
}
