//! Raspberry Pi 4 Model B (BCM2711, four Cortex-A72): PL011 on GPIO 14/15, a GIC-400 (GICv2)
//! for IPIs and timers, spin-table secondaries.
//!
//! Addresses from the BCM2711 ARM Peripherals datasheet in its "low peripheral" mode (the
//! default), where the bus address 0x7Exx_xxxx appears to the ARM at 0xFExx_xxxx.

use crate::gic::{self, GicFrames};
use crate::gpio::Pulls;
use crate::pl011::Pl011;
use crate::{Board, BootLevel, CoreMask, Irq, MemoryMap, Region, StartError, pi};

/// The first 1 GiB less the GPU's share: present on every Pi 4 model.
const RAM: Region = Region {
    start: 0,
    end: 0x3c00_0000,
};
/// SoC peripherals and the GIC-400.
const DEVICES: &[Region] = &[Region {
    start: 0xfc00_0000,
    end: 0x1_0000_0000,
}];
const GPIO: usize = 0xfe20_0000;
const UART: usize = 0xfe20_1000;
const GICD: usize = 0xff84_1000;
const GICC: usize = 0xff84_2000;

// SAFETY: UART is the PL011's address on the BCM2711; only this module drives it.
static CONSOLE: Pl011 = unsafe { Pl011::new(UART) };

/// The Raspberry Pi 4 Model B.
pub struct Rpi4;

impl Board for Rpi4 {
    const NAME: &'static str = "rpi4";

    fn memory_map() -> MemoryMap {
        MemoryMap {
            ram: RAM,
            devices: DEVICES,
        }
    }

    fn console_init() {
        // SAFETY: GPIO is the BCM2711's GPIO block, mapped by the kernel; only the console uses
        // pins 14 and 15.
        unsafe { pi::console_init(&CONSOLE, GPIO, Pulls::Bcm2711) };
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

    fn irq_init_global(cores: usize) {
        // SAFETY: the GIC-400's frames on the BCM2711, inside DEVICES, driven only from here.
        unsafe {
            gic::init_global(
                GicFrames::V2 {
                    gicd: GICD,
                    gicc: GICC,
                },
                cores,
            )
        };
    }

    fn irq_init_core(core: usize) {
        gic::init_core(core);
    }

    fn irq_handle_one(handler: &mut dyn FnMut(Irq)) -> bool {
        gic::handle_one(handler)
    }

    fn send_ipi(targets: CoreMask) {
        gic::send_ipi(targets, Self::mpidr_of);
    }
}
