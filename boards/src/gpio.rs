//! BCM283x/BCM2711 GPIO: just enough to give the PL011 its header pins (GPIO 14/15, ALT0).
//!
//! Register names from the BCM2835 ARM Peripherals datasheet (section 6) and the BCM2711 ARM
//! Peripherals datasheet (section 5.2), which replaced the pull-up/down clocking with a direct
//! register.

use tock_registers::interfaces::{ReadWriteable, Writeable};
use tock_registers::registers::ReadWrite;
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,

    /// GPIO Function Select 1: pins 10-19, three bits each.
    GPFSEL1 [
        /// Pin 15 (RXD0 in ALT0).
        FSEL15 OFFSET(15) NUMBITS(3) [
            Input = 0b000,
            Alt0 = 0b100
        ],
        /// Pin 14 (TXD0 in ALT0).
        FSEL14 OFFSET(12) NUMBITS(3) [
            Input = 0b000,
            Alt0 = 0b100
        ]
    ],

    /// BCM2835 GPIO Pull-up/down: the control applied to pins clocked by GPPUDCLK0/1.
    GPPUD [
        /// 00 = off (no pull), 01 = pull down, 10 = pull up.
        PUD OFFSET(0) NUMBITS(2) [
            Off = 0b00
        ]
    ],

    /// BCM2835 GPIO Pull-up/down Clock 0: pins 0-31.
    GPPUDCLK0 [
        /// Assert the control on pin 15.
        PUDCLK15 OFFSET(15) NUMBITS(1) [],
        /// Assert the control on pin 14.
        PUDCLK14 OFFSET(14) NUMBITS(1) []
    ],

    /// BCM2711 GPIO Pull-up/pull-down register 0: pins 0-15, two bits each.
    GPIO_PUP_PDN_CNTRL_REG0 [
        /// Pin 15: 00 = no resistor.
        GPIO_PUP_PDN_CNTRL15 OFFSET(30) NUMBITS(2) [
            NoResistor = 0b00
        ],
        /// Pin 14: 00 = no resistor.
        GPIO_PUP_PDN_CNTRL14 OFFSET(28) NUMBITS(2) [
            NoResistor = 0b00
        ]
    ]
}

register_structs! {
    #[allow(non_snake_case)]
    Regs {
        (0x00 => _reserved0),
        (0x04 => GPFSEL1: ReadWrite<u32, GPFSEL1::Register>),
        (0x08 => _reserved1),
        (0x94 => GPPUD: ReadWrite<u32, GPPUD::Register>),
        (0x98 => GPPUDCLK0: ReadWrite<u32, GPPUDCLK0::Register>),
        (0x9c => _reserved2),
        (0xe4 => GPIO_PUP_PDN_CNTRL_REG0: ReadWrite<u32, GPIO_PUP_PDN_CNTRL_REG0::Register>),
        (0xe8 => @END),
    }
}

/// Which pull-resistor interface the SoC has.
#[derive(Clone, Copy)]
#[allow(dead_code, reason = "each Pi build uses one of the two")]
pub enum Pulls {
    /// BCM2837 (Pi 3): GPPUD and a clocked enable.
    Bcm2835,
    /// BCM2711 (Pi 4): one register, two bits per pin.
    Bcm2711,
}

/// Muxes GPIO 14/15 to the PL011 (ALT0) with no pull resistors, as the UART needs on a real board.
///
/// # Safety
///
/// `base` must be the SoC's GPIO block, mapped as device memory, with nothing else driving pins
/// 14 and 15.
pub unsafe fn route_uart0(base: usize, pulls: Pulls) {
    // SAFETY: the caller vouches for `base` as the GPIO register block.
    let regs = unsafe { &*(base as *const Regs) };
    match pulls {
        Pulls::Bcm2835 => {
            // The datasheet's sequence: set the control, wait 150 cycles, clock it into the pins,
            // wait 150 cycles, remove the clock.
            regs.GPPUD.write(GPPUD::PUD::Off);
            delay_cycles(150);
            regs.GPPUDCLK0
                .write(GPPUDCLK0::PUDCLK15::SET + GPPUDCLK0::PUDCLK14::SET);
            delay_cycles(150);
            regs.GPPUDCLK0.set(0);
        }
        Pulls::Bcm2711 => regs.GPIO_PUP_PDN_CNTRL_REG0.modify(
            GPIO_PUP_PDN_CNTRL_REG0::GPIO_PUP_PDN_CNTRL15::NoResistor
                + GPIO_PUP_PDN_CNTRL_REG0::GPIO_PUP_PDN_CNTRL14::NoResistor,
        ),
    }
    regs.GPFSEL1
        .modify(GPFSEL1::FSEL15::Alt0 + GPFSEL1::FSEL14::Alt0);
}

fn delay_cycles(n: u32) {
    for _ in 0..n {
        aarch64_cpu::asm::nop();
    }
}
