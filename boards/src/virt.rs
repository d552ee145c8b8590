//! QEMU `virt` with a Cortex-A72: GICv2 or GICv3, PSCI, a PL011.
//!
//! Memory map from QEMU's `hw/arm/virt.c`. One kernel image serves `virt`, `virt-gicv3` and
//! `virt-el2`: the GIC version is read from `ID_AA64PFR0_EL1.GIC` and the PSCI conduit from the
//! level the kernel was entered at.

use crate::gic::{self, GicFrames};
use crate::pl011::Pl011;
use crate::{Board, BootLevel, CoreMask, Irq, MAX_CORES, MemoryMap, Region, StartError};
use aarch64_cpu::registers::{ID_AA64PFR0_EL1, Readable};
use core::sync::atomic::{AtomicBool, Ordering};
use smccc::psci::{self, AffinityState, LowestAffinityLevel};
use smccc::{Hvc, Smc};

const RAM: Region = Region {
    start: 0x4000_0000,
    end: 0x4000_0000 + RAM_SIZE,
};
/// QEMU's default `virt` RAM; xtask passes `-m` with the same size.
const RAM_SIZE: usize = 128 << 20;
/// GIC distributor, CPU interface / ITS / redistributors, and the UART, as one device range.
const DEVICES: &[Region] = &[Region {
    start: 0x0800_0000,
    end: 0x0900_1000,
}];
const GICD: usize = 0x0800_0000;
const GICC: usize = 0x0801_0000;
const GICR: usize = 0x080a_0000;
const UART: usize = 0x0900_0000;
/// QEMU's PL011 reference clock on `virt` (the `apb-pclk` fixed clock).
const UART_CLOCK_HZ: u32 = 24_000_000;
/// GICv3 redistributors are grouped 16 to an Aff1 cluster on `virt` (8 for GICv2, but GICv2
/// allows only 8 cores, so the formula below covers both).
const CLUSTER: usize = 16;

// SAFETY: UART is the PL011's address in this board's map; only this module drives it.
static CONSOLE: Pl011 = unsafe { Pl011::new(UART) };
static ENTERED_AT_EL2: AtomicBool = AtomicBool::new(false);

/// The QEMU `virt` machine.
pub struct Virt;

impl Virt {
    fn psci_cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), psci::error::Error> {
        if ENTERED_AT_EL2.load(Ordering::Relaxed) {
            psci::cpu_on::<Smc>(mpidr, entry, context)
        } else {
            psci::cpu_on::<Hvc>(mpidr, entry, context)
        }
    }

    fn psci_present(mpidr: u64) -> bool {
        let state = if ENTERED_AT_EL2.load(Ordering::Relaxed) {
            psci::affinity_info::<Smc>(mpidr, LowestAffinityLevel::All)
        } else {
            psci::affinity_info::<Hvc>(mpidr, LowestAffinityLevel::All)
        };
        matches!(
            state,
            Ok(AffinityState::On | AffinityState::Off | AffinityState::OnPending)
        )
    }

    fn has_gicv3() -> bool {
        // GIC field [27:24] (aarch64-cpu does not name it): 0 = no system-register interface
        // (GICv2), 1 or 3 = GICv3/v4.
        (ID_AA64PFR0_EL1.get() >> 24) & 0xf != 0
    }
}

impl Board for Virt {
    const NAME: &'static str = "virt";

    fn memory_map() -> MemoryMap {
        MemoryMap {
            ram: RAM,
            devices: DEVICES,
        }
    }

    fn console_init() {
        CONSOLE.init(UART_CLOCK_HZ, 115_200);
    }

    fn console_write(bytes: &[u8]) {
        CONSOLE.write_bytes(bytes);
    }

    fn console_read() -> Option<u8> {
        CONSOLE.read_byte()
    }

    fn set_boot_level(level: BootLevel) {
        ENTERED_AT_EL2.store(level == BootLevel::El2, Ordering::Relaxed);
    }

    fn core_count() -> usize {
        // PSCI AFFINITY_INFO answers INVALID_PARAMETERS for an MPIDR with no core behind it.
        (0..MAX_CORES)
            .take_while(|&c| Self::psci_present(Self::mpidr_of(c)))
            .count()
    }

    fn mpidr_of(core: usize) -> u64 {
        (((core / CLUSTER) << 8) | (core % CLUSTER)) as u64
    }

    fn core_index(mpidr: u64) -> usize {
        ((mpidr >> 8) & 0xff) as usize * CLUSTER + (mpidr & 0xff) as usize
    }

    fn start_core(core: usize, entry: usize) -> Result<(), StartError> {
        if core >= MAX_CORES {
            return Err(StartError::NoSuchCore(core));
        }
        Self::psci_cpu_on(Self::mpidr_of(core), entry as u64, core as u64).map_err(|e| {
            if matches!(e, psci::error::Error::InvalidParameters) {
                StartError::NoSuchCore(core)
            } else {
                StartError::Firmware(i64::from(e) as i32)
            }
        })
    }

    fn irq_init_global(cores: usize) {
        let frames = if Self::has_gicv3() {
            GicFrames::V3 {
                gicd: GICD,
                gicr: GICR,
            }
        } else {
            GicFrames::V2 {
                gicd: GICD,
                gicc: GICC,
            }
        };
        // SAFETY: these are the GIC frames of QEMU `virt`, inside DEVICES (mapped as device
        // memory by the kernel), and this board module is their only driver.
        unsafe { gic::init_global(frames, cores) };
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

    fn power_off() {
        // Through the conduit PSCI uses here; on failure the caller halts.
        let _ = if ENTERED_AT_EL2.load(Ordering::Relaxed) {
            psci::system_off::<Smc>()
        } else {
            psci::system_off::<Hvc>()
        };
    }
}
