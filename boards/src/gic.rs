//! The Arm GIC (v2 or v3) through the `arm-gic` crate, shaped to the [`crate::Board`] interface.
//!
//! QEMU `virt` offers either version and the Raspberry Pi 4 a GIC-400 (v2). The distributor is
//! shared, so each driver sits behind a spin lock taken with IRQs masked on this core; the GICv3
//! CPU interface is per core system registers and needs no lock.

use crate::{CoreMask, Irq};
use arm_gic::gicv2::{GicV2, SgiTarget as SgiTargetV2, SgiTargetListFilter};
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, Trigger, UniqueMmioPointer};
use core::ptr::NonNull;

/// The SGI that carries Graft's inter-core interrupt.
const IPI_SGI: IntId = IntId::sgi(1);
/// The EL1 virtual timer's PPI (INTID 27), the same on every GIC board.
const TIMER_PPI: IntId = IntId::ppi(11);
/// Priority of both interrupts: all equal, none preempts another.
const PRIORITY: u8 = 0x80;

/// Where a GIC's register frames are.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code, reason = "the Pi 4 build uses only GICv2")]
pub enum GicFrames {
    /// GICv2: distributor and CPU interface.
    V2 {
        /// Distributor base.
        gicd: usize,
        /// CPU interface base.
        gicc: usize,
    },
    /// GICv3: distributor and the first redistributor.
    V3 {
        /// Distributor base.
        gicd: usize,
        /// First redistributor base.
        gicr: usize,
    },
}

/// How a core waits for the driver lock: a `YIELD` hint per look at it.
///
/// Not spin's default, `core::hint::spin_loop`, which is an `ISB` on AArch64: that is no hint to
/// anyone, and under QEMU's round-robin TCG (`-icount`) it does not end the waiting vCPU's turn,
/// so a core that finds the lock held spins through its whole time slice while the holder,
/// descheduled inside its critical section, cannot run to release it. The timer's IRQ takes this
/// lock to acknowledge, so every loop that met such a holder took its tick several periods late.
/// `YIELD` ends the vCPU's turn there (as the kernel's own busy-waits do), and on hardware tells
/// an SMT core to favour its sibling.
struct Yield;

impl spin::RelaxStrategy for Yield {
    #[inline(always)]
    fn relax() {
        yield_hint();
    }
}

/// One `YIELD` instruction.
#[inline(always)]
fn yield_hint() {
    // SAFETY: YIELD is a hint with no architectural effect.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// The lock around a driver: a spin lock that yields while it waits ([`Yield`]).
type Lock<T> = spin::mutex::SpinMutex<T, Yield>;

enum Driver {
    V2(Lock<GicV2<'static>>, InterruptGroup),
    V3(Lock<GicV3<'static>>),
}

static GIC: spin::Once<Driver> = spin::Once::new();

/// Runs `f` with IRQs masked on this core, so a lock it takes cannot be re-entered by a handler.
///
/// Plain `asm!` rather than aarch64-cpu's `DAIF` accessors, which are `nomem` (and their reads
/// `pure`): the compiler must not move `f`'s memory accesses (the lock) out of the section, nor
/// reuse a `DAIF` value read elsewhere.
fn irqs_masked<R>(f: impl FnOnce() -> R) -> R {
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
    let r = f();
    // SAFETY: restores the DAIF value read above.
    unsafe { core::arch::asm!("msr daif, {}", in(reg) saved, options(nostack, preserves_flags)) };
    r
}

fn driver() -> &'static Driver {
    GIC.get().expect("GIC used before gic::init_global")
}

/// Sets up the distributor (and, for v3, every redistributor). Primary core, once.
///
/// # Safety
///
/// `frames` must describe the board's GIC, mapped as device memory, and nothing else may drive it.
pub unsafe fn init_global(frames: GicFrames, cores: usize) {
    GIC.call_once(|| match frames {
        GicFrames::V2 { gicd, gicc } => {
            // SAFETY: the caller guarantees both frames are this GIC's, mapped as device memory,
            // and driven by nothing else.
            let mut gic = unsafe { GicV2::new(gicd as *mut _, gicc as *mut _) };
            gic.setup();
            let group = if gic.typer().has_security_extension() {
                InterruptGroup::Group1
            } else {
                InterruptGroup::Group0
            };
            Driver::V2(Lock::new(gic), group)
        }
        GicFrames::V3 { gicd, gicr } => {
            // SAFETY: as above, for the distributor and the redistributor frames.
            let mut gic = unsafe {
                GicV3::new(
                    UniqueMmioPointer::new(NonNull::new(gicd as *mut _).unwrap()),
                    NonNull::new(gicr as *mut _).unwrap(),
                    cores,
                )
            }
            .expect("GICv3 redistributor frames not recognised");
            gic.setup(0);
            Driver::V3(Lock::new(gic))
        }
    });
}

/// Sets up this core's CPU interface and enables its IPI and timer interrupts.
pub fn init_core(core: usize) {
    irqs_masked(|| match driver() {
        Driver::V2(gic, _) => {
            let mut gic = gic.lock();
            // The CPU interface and the SGI/PPI registers are banked per core, so every core
            // runs the setup itself.
            gic.setup();
            for id in [IPI_SGI, TIMER_PPI] {
                gic.set_interrupt_priority(id, PRIORITY);
                gic.enable_interrupt(id, true)
                    .expect("GICv2 refused a private interrupt");
            }
            gic.set_trigger(TIMER_PPI, Trigger::Level);
        }
        Driver::V3(gic) => {
            let mut gic = gic.lock();
            if core != 0 {
                gic.init_cpu(core);
                GicCpuInterface::enable_group1(true);
            }
            GicCpuInterface::set_priority_mask(0xff);
            for id in [IPI_SGI, TIMER_PPI] {
                gic.set_interrupt_priority(id, Some(core), PRIORITY)
                    .expect("GICv3 priority");
                gic.enable_interrupt(id, Some(core), true)
                    .expect("GICv3 enable");
            }
        }
    })
}

/// Acknowledges the highest-priority pending interrupt, runs `handler` on it, and ends it.
///
/// The driver lock is not held while `handler` runs: a handler may itself send IPIs.
pub fn handle_one(handler: &mut dyn FnMut(Irq)) -> bool {
    let id = match driver() {
        Driver::V2(gic, group) => irqs_masked(|| gic.lock().get_and_acknowledge_interrupt(*group)),
        Driver::V3(_) => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1),
    };
    let Some(id) = id else { return false };
    // GICv2 reports an SGI's source core in bits [12:10]; the interrupt number is below. The
    // end-of-interrupt write must carry the acknowledged value whole, so `id` is kept as it is.
    let number = u32::from(id) & 0x3ff;
    handler(if number == u32::from(IPI_SGI) {
        Irq::Ipi
    } else if number == u32::from(TIMER_PPI) {
        Irq::Timer
    } else {
        Irq::Other(number)
    });
    match driver() {
        Driver::V2(gic, group) => irqs_masked(|| gic.lock().end_interrupt(id, *group)),
        Driver::V3(_) => GicCpuInterface::end_interrupt(id, InterruptGroup::Group1),
    }
    true
}

/// Raises the IPI SGI on `targets`, whose affinities `mpidr_of` gives.
pub fn send_ipi(targets: CoreMask, mpidr_of: impl Fn(usize) -> u64) {
    match driver() {
        Driver::V2(gic, _) => {
            // GICv2 CPU interface numbers are the linear core indices (at most 8).
            let target_list = targets.bits() as u16 & 0xff;
            irqs_masked(|| {
                gic.lock().send_sgi(
                    IPI_SGI,
                    SgiTargetV2::List {
                        target_list_filter: SgiTargetListFilter::CPUTargetList,
                        target_list,
                    },
                )
            });
        }
        Driver::V3(_) => {
            // One SGI write reaches the cores of one Aff3.Aff2.Aff1 cluster: group by cluster.
            let mut left = targets;
            while let Some(first) = left.iter().next() {
                let cluster = mpidr_of(first) & !0xff;
                let mut list = 0u16;
                for core in left.iter() {
                    let mpidr = mpidr_of(core);
                    if mpidr & !0xff == cluster {
                        list |= 1 << (mpidr & 0xf);
                        left = left.without(core);
                    }
                }
                let target = SgiTarget::List {
                    affinity3: (cluster >> 32) as u8,
                    affinity2: (cluster >> 16) as u8,
                    affinity1: (cluster >> 8) as u8,
                    target_list: list,
                };
                GicCpuInterface::send_sgi(IPI_SGI, target, SgiTargetGroup::CurrentGroup1)
                    .expect("IPI_SGI is an SGI");
            }
        }
    }
}
