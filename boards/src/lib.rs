//! Graft's boards: the only place that knows an address.
//!
//! Each board is a zero-sized type implementing [`Board`]: its memory map, its console, how its
//! secondary cores start, and how its interrupt controller delivers inter-core interrupts and
//! timer ticks. The kernel sees the chosen board as [`Current`] and nothing else; `patcher` sees
//! no board at all.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod coremask;
pub use coremask::{CoreMask, MAX_CORES};

#[cfg(all(target_arch = "aarch64", feature = "rpi3"))]
mod bcm2836_local;
#[cfg(all(target_arch = "aarch64", any(feature = "virt", feature = "rpi4")))]
mod gic;
#[cfg(all(target_arch = "aarch64", any(feature = "rpi3", feature = "rpi4")))]
mod gpio;
#[cfg(all(target_arch = "aarch64", any(feature = "rpi3", feature = "rpi4")))]
mod pi;
#[cfg(target_arch = "aarch64")]
mod pl011;
#[cfg(all(target_arch = "aarch64", feature = "rpi3"))]
pub mod rpi3;
#[cfg(all(target_arch = "aarch64", feature = "rpi4"))]
pub mod rpi4;
#[cfg(all(target_arch = "aarch64", any(feature = "rpi3", feature = "rpi4")))]
mod spin_table;
#[cfg(all(target_arch = "aarch64", feature = "virt"))]
pub mod virt;

/// The board this kernel was built for.
#[cfg(all(target_arch = "aarch64", feature = "virt"))]
pub type Current = virt::Virt;
/// The board this kernel was built for.
#[cfg(all(target_arch = "aarch64", feature = "rpi3"))]
pub type Current = rpi3::Rpi3;
/// The board this kernel was built for.
#[cfg(all(target_arch = "aarch64", feature = "rpi4"))]
pub type Current = rpi4::Rpi4;

#[cfg(all(feature = "virt", feature = "rpi3"))]
compile_error!("choose one board feature");
#[cfg(all(feature = "virt", feature = "rpi4"))]
compile_error!("choose one board feature");
#[cfg(all(feature = "rpi3", feature = "rpi4"))]
compile_error!("choose one board feature");

/// A physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// What the kernel must map, as the board describes it.
#[derive(Clone, Copy, Debug)]
pub struct MemoryMap {
    /// All RAM the kernel may use (normal memory, write-back cacheable).
    pub ram: Region,
    /// Device MMIO ranges (device-nGnRE, never executable).
    pub devices: &'static [Region],
}

/// How the kernel was entered, which decides how it talks to firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootLevel {
    /// Entered at EL1: the hypervisor (QEMU) answers PSCI over `HVC`.
    El1,
    /// Entered at EL2 and dropped to EL1: firmware answers PSCI over `SMC`.
    El2,
}

/// What an acknowledged interrupt is, as the kernel needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Irq {
    /// The inter-core interrupt (an SGI on a GIC, a mailbox on the BCM2836).
    Ipi,
    /// This core's generic-timer tick.
    Timer,
    /// Anything else, by its controller's number.
    Other(u32),
}

/// Why a secondary core did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The board has no core with that index.
    NoSuchCore(usize),
    /// The firmware refused (PSCI error code).
    Firmware(i32),
}

/// Everything board-specific, behind one interface.
pub trait Board {
    /// The name `cargo xtask --board` uses.
    const NAME: &'static str;

    /// The RAM and devices to map.
    fn memory_map() -> MemoryMap;

    /// Brings up the console. Called once, by the primary core, before any log.
    fn console_init();
    /// Writes raw bytes to the console, blocking until they are queued.
    fn console_write(bytes: &[u8]);
    /// Takes one byte the console has received, or None when none is waiting. Never blocks.
    fn console_read() -> Option<u8>;

    /// Records how the kernel was entered; called first, on the primary core.
    fn set_boot_level(level: BootLevel);
    /// The number of cores present.
    fn core_count() -> usize;
    /// The MPIDR affinity value of the core with linear index `core`.
    fn mpidr_of(core: usize) -> u64;
    /// The linear index of the core with affinity `mpidr`.
    fn core_index(mpidr: u64) -> usize;
    /// Starts secondary core `core` at physical address `entry`, with `core` in `x0`.
    fn start_core(core: usize, entry: usize) -> Result<(), StartError>;

    /// Sets up the interrupt controller; primary core, once, before any `irq_init_core`.
    fn irq_init_global(cores: usize);
    /// Sets up this core's interface to the interrupt controller.
    fn irq_init_core(core: usize);
    /// Acknowledges the highest-priority pending interrupt, passes it to `handler`, then ends it.
    /// Returns false when nothing was pending.
    fn irq_handle_one(handler: &mut dyn FnMut(Irq)) -> bool;
    /// Raises the inter-core interrupt on every core in `targets`.
    ///
    /// Callers order their mailbox stores before this with `DSB ISHST`.
    fn send_ipi(targets: CoreMask);

    /// Turns the machine off, if the board can (PSCI `SYSTEM_OFF`); returns when it cannot. A
    /// run without semihosting ends this way, so QEMU exits (a Pi halts instead).
    fn power_off() {}
}
