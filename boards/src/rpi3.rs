//! Raspberry Pi 3 Model B (BCM2837, four Cortex-A53): PL011 on GPIO 14/15, the BCM2836 local
//! controller's mailboxes for IPIs, spin-table secondaries.
//!
//! Addresses from the BCM2835 ARM Peripherals datasheet (bus address 0x7Exx_xxxx appears to the
//! ARM at 0x3Fxx_xxxx) and the BCM2836 ARM-local peripherals document.

use crate::bcm2836_local::LocalIntc;
use crate::gpio::Pulls;
use crate::pl011::Pl011;
use crate::{Board, BootLevel, CoreMask, Irq, MemoryMap, Region, StartError, pi};

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
        unsafe { pi::console_init(&CONSOLE, GPIO, Pulls::Bcm2835) };
    }

    fn console_write(bytes: &[u8]) {
        CONSOLE.write_bytes(bytes);
    }

    fn console_read() -> Option<u8> {
        CONSOLE.read_byte()
    }

    fn set_boot_level(_level: BootLevel) {}

    fn core_count() -> usize {
        pi::CORES
    }

    fn mpidr_of(core: usize) -> u64 {
        pi::mpidr_of(core)
    }

    fn core_index(mpidr: u64) -> usize {
        pi::core_index(mpidr)
    }

    fn start_core(core: usize, entry: usize) -> Result<(), StartError> {
        pi::start_core(core, entry)
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
