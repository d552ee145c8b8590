//! Raspberry Pi 3 Model B (BCM2837, four Cortex-A53): PL011 on GPIO 14/15, the BCM2836 local
//! controller's mailboxes for IPIs, spin-table secondaries.
//!
//! Addresses from the BCM2835 ARM Peripherals datasheet (bus address 0x7Exx_xxxx appears to the
//! ARM at 0x3Fxx_xxxx) and the BCM2836 ARM-local peripherals document.

use crate::bcm2836_local::LocalIntc;
use crate::gpio::{self, Pulls};
use crate::pl011::Pl011;
use crate::{Board, BootLevel, CoreMask, Irq, MemoryMap, Region, StartError, spin_table};

/// ARM-visible RAM below the GPU's share (the firmware's default split leaves at least this).
const RAM: Region = Region {
    start: 0,
    end: 0x3c00_0000,
};
/// SoC peripherals and the ARM-local block.
const DEVICES: &[Region] = &[Region {
    start: 0x3f00_0000,
    end: 0x4010_0000,
}];
const GPIO: usize = 0x3f20_0000;
const UART: usize = 0x3f20_1000;
const LOCAL: usize = 0x4000_0000;
/// The PL011 clock `config.txt` asks the firmware for (`init_uart_clock=48000000`).
const UART_CLOCK_HZ: u32 = 48_000_000;
const CORES: usize = 4;

// SAFETY: UART is the PL011's address on the BCM2837; only this module drives it.
static CONSOLE: Pl011 = unsafe { Pl011::new(UART) };
// SAFETY: LOCAL is the ARM-local block on the BCM2837; only this module drives it.
static INTC: LocalIntc = unsafe { LocalIntc::new(LOCAL) };

/// The Raspberry Pi 3 Model B.
pub struct Rpi3;

fn this_core() -> usize {
    (aarch64_cpu::registers::MPIDR_EL1.get() & 0xff) as usize
}

use aarch64_cpu::registers::Readable;

impl Board for Rpi3 {
    const NAME: &'static str = "rpi3";

    fn memory_map() -> MemoryMap {
        MemoryMap {
            ram: RAM,
            devices: DEVICES,
        }
    }

    fn console_init() {
        // SAFETY: GPIO is the BCM2837's GPIO block, mapped by the kernel; only the console uses
        // pins 14 and 15.
        unsafe { gpio::route_uart0(GPIO, Pulls::Bcm2835) };
        CONSOLE.init(UART_CLOCK_HZ, 115_200);
    }

    fn console_write(bytes: &[u8]) {
        for &b in bytes {
            CONSOLE.write_byte(b);
        }
    }

    fn console_read() -> Option<u8> {
        CONSOLE.read_byte()
    }

    fn set_boot_level(_level: BootLevel) {}

    fn core_count() -> usize {
        CORES
    }

    fn mpidr_of(core: usize) -> u64 {
        core as u64
    }

    fn core_index(mpidr: u64) -> usize {
        (mpidr & 0xff) as usize
    }

    fn start_core(core: usize, entry: usize) -> Result<(), StartError> {
        if core == 0 || core >= CORES {
            return Err(StartError::NoSuchCore(core));
        }
        spin_table::release(core, entry);
        Ok(())
    }

    fn irq_init_global(_cores: usize) {}

    fn irq_init_core(core: usize) {
        INTC.init_core(core);
    }

    fn irq_handle_one(handler: &mut dyn FnMut(Irq)) -> bool {
        INTC.handle_one(this_core(), handler)
    }

    fn send_ipi(targets: CoreMask) {
        INTC.send_ipi(targets);
    }
}
