//! Graft's bare-metal runtime for multi-core AArch64 boards.
//!
//! Design rules, in order of importance:
//! - every cross-core wait has a bound, and its error names the cores that did not answer;
//! - every `unsafe` block carries the reason it is sound. Where they live, and why there:
//!   - `arch/`: assembly, system registers, the MMU, exception vectors and semihosting (the
//!     hardware itself);
//!   - `patch/`: the only writes to the code arena (through its writable view) and the sites'
//!     constructors whose contract is a mapping;
//!   - `ipi`/`smp`/`log`: the mailbox and per-core cells handed between cores;
//!   - `demo/` and `tests/`: calls into code the arena holds (a payload or a control law through a
//!     site's entry, whose signature the caller vouches for), the catalogue mirrors' own
//!     assembly, and faults a test provokes on purpose;
//! - the kernel knows its board only as `boards::Current`, and no address;
//! - a run ends with an exit status the host checks (semihosting, or PSCI power-off after a
//!   final record where there is none): never a hang.
//!
//! Boot order: `arch::boot` (asm) -> [`primary_main`] -> MMU, interrupts, secondaries ->
//! the kernel test or demo named on the command line.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod arch;
mod demo;
mod ipi;
mod irq;
mod log;
mod panic;
mod patch;
mod report;
mod smp;
mod sync;
mod tests;
mod timer;
mod wait;

use arch::{cpu, mmu, semihosting};
use boards::{Board, BootLevel, Current};
use protocol::testinfo::EXIT_FAIL;

/// How long a secondary may take to come online.
const CORE_START_TIMEOUT_US: u64 = 2_000_000;

/// The primary core, from `boot.s`: MMU off, IRQs masked, `.bss` zeroed.
fn primary_main(level: BootLevel) -> ! {
    Current::set_boot_level(level);
    Current::console_init();
    // SAFETY: first thing on the primary, MMU off, no other core running.
    unsafe { mmu::init_primary() };
    report::emit(&protocol::Record::Image {
        build_id: arch::build_id::get(),
    });
    defmt::info!(
        "Graft on {=str}: entered at EL{=u8}, running at EL{=u64}, MMU on",
        Current::NAME,
        if level == BootLevel::El2 { 2 } else { 1 },
        cpu::current_el()
    );
    let cores = Current::core_count();
    Current::irq_init_global(cores);
    Current::irq_init_core(0);
    patch::sites::init_core(0);
    smp::mark_online(0, level);
    cpu::irq_enable();
    if let Err(e) = smp::start_secondaries(cores, CORE_START_TIMEOUT_US) {
        defmt::error!("bring-up failed: {}", e);
        semihosting::exit(EXIT_FAIL);
    }
    defmt::info!("{=usize} cores online", smp::online().len());
    tests::run()
}

/// Every secondary core, from `boot.s`: MMU on, IRQs masked.
fn secondary_main(core: usize, level: BootLevel) -> ! {
    Current::irq_init_core(core);
    patch::sites::init_core(core);
    smp::mark_online(core, level);
    cpu::irq_enable();
    smp::idle_loop(core)
}
