//! PL011 UART: the console on every Graft board.
//!
//! Register file shape as in the Arm PrimeCell UART (PL011) Technical Reference Manual
//! (DDI 0183): bitfields, then the register block with its reserved gaps, then the driver.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,

    /// Flag Register.
    FR [
        /// Transmit FIFO full: with FIFOs enabled, set when the transmit FIFO is full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty: with FIFOs enabled, set when the receive FIFO is empty.
        RXFE OFFSET(4) NUMBITS(1) []
    ],

    /// Data Register.
    DR [
        /// Data character: on a read, the received character.
        DATA OFFSET(0) NUMBITS(8) []
    ],

    /// Integer Baud Rate Divisor.
    IBRD [
        /// The integer part of the baud rate divisor.
        BAUD_DIVINT OFFSET(0) NUMBITS(16) []
    ],

    /// Fractional Baud Rate Divisor.
    FBRD [
        /// The fractional part of the baud rate divisor, in 64ths.
        BAUD_DIVFRAC OFFSET(0) NUMBITS(6) []
    ],

    /// Line Control Register.
    LCR_H [
        /// Word length: the number of data bits transmitted or received in a frame.
        WLEN OFFSET(5) NUMBITS(2) [
            EightBit = 0b11
        ],
        /// Enable FIFOs.
        FEN OFFSET(4) NUMBITS(1) []
    ],

    /// Control Register.
    CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) []
    ],

    /// Interrupt Clear Register.
    ICR [
        /// Clears all interrupts when written with ones.
        ALL OFFSET(0) NUMBITS(11) []
    ]
}

register_structs! {
    /// The PL011 register block.
    pub Pl011Regs {
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: WriteOnly<u32, IBRD::Register>),
        (0x28 => fbrd: WriteOnly<u32, FBRD::Register>),
        (0x2c => lcr_h: WriteOnly<u32, LCR_H::Register>),
        (0x30 => cr: WriteOnly<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x44 => icr: WriteOnly<u32, ICR::Register>),
        (0x48 => @END),
    }
}

/// A PL011 at a fixed address.
pub struct Pl011 {
    regs: *const Pl011Regs,
}

// SAFETY: the driver only performs single-register MMIO accesses; the caller serialises whole
// messages with a lock (the logger's), so sharing the handle between cores is sound.
unsafe impl Sync for Pl011 {}
// SAFETY: as for `Sync`: the handle is an address, not per-core state.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// A driver for the PL011 at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a PL011 register block mapped as device memory for as long
    /// as the driver is used, and no other driver may program it.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            regs: base as *const Pl011Regs,
        }
    }

    fn regs(&self) -> &Pl011Regs {
        // SAFETY: `new`'s contract: `regs` points at a live, mapped PL011 block.
        unsafe { &*self.regs }
    }

    /// Programs 8N1 with FIFOs at `baud` from a `clock_hz` reference clock, and enables TX and RX.
    pub fn init(&self, clock_hz: u32, baud: u32) {
        let r = self.regs();
        r.cr.set(0);
        r.icr.write(ICR::ALL::SET);
        // Divisor = clock / (16 * baud), kept in 64ths for the fractional register.
        let div64 = (u64::from(clock_hz) * 4).div_ceil(u64::from(baud));
        r.ibrd.write(IBRD::BAUD_DIVINT.val((div64 >> 6) as u32));
        r.fbrd.write(FBRD::BAUD_DIVFRAC.val((div64 & 0x3f) as u32));
        r.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        r.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    /// Queues every byte of `bytes`, waiting while the transmit FIFO is full.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    /// Queues one byte, waiting while the transmit FIFO is full.
    pub fn write_byte(&self, byte: u8) {
        let r = self.regs();
        while r.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        r.dr.set(u32::from(byte));
    }

    /// Takes one received byte, or None when the receive FIFO is empty. Never waits.
    ///
    /// The error bits beside the data (framing, parity, break, overrun) are dropped: the
    /// protocols above check their own frames.
    pub fn read_byte(&self) -> Option<u8> {
        let r = self.regs();
        if r.fr.is_set(FR::RXFE) {
            None
        } else {
            Some(r.dr.read(DR::DATA) as u8)
        }
    }
}
