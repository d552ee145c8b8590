//! Boot: the entry of every core (`boot.s`) and the first Rust functions they call.
//!
//! `boot.s` leaves EL2 when entered there, enables FP/SIMD, installs the vectors and picks the
//! core's stack; the primary clears `.bss`. This module owns the stacks and the MMU configuration
//! that secondaries read with their MMU still off.

use crate::arch::mmu::MmuConfig;
use boards::{BootLevel, MAX_CORES};
use core::cell::UnsafeCell;

/// Bytes of stack per core.
pub const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stacks(UnsafeCell<[[u8; STACK_SIZE]; MAX_CORES]>);

// SAFETY: each core uses only its own stack, chosen by its index in boot.s; Rust code never
// touches this memory by name.
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new([[0; STACK_SIZE]; MAX_CORES]));

/// The MMU configuration secondaries load in `boot.s` before running any Rust.
#[repr(C, align(64))]
pub struct SharedMmuConfig(pub UnsafeCell<MmuConfig>);

// SAFETY: written once by the primary before any secondary starts (and cleaned to the point of
// coherency), read-only afterwards.
unsafe impl Sync for SharedMmuConfig {}

/// Published by the primary in [`crate::arch::mmu::init_primary`].
pub static MMU_CONFIG: SharedMmuConfig = SharedMmuConfig(UnsafeCell::new(MmuConfig::ZERO));

core::arch::global_asm!(
    include_str!("boot.s"),
    stacks = sym STACKS,
    stack_size = const STACK_SIZE,
    mmu_config = sym MMU_CONFIG,
    primary_main = sym primary_entry,
    secondary_main = sym secondary_entry,
);

unsafe extern "C" {
    /// The secondary cores' entry point in `boot.s` (linear core index in `x0`).
    fn graft_secondary_entry();
}

/// The physical address secondaries start at (identity mapped).
pub fn secondary_entry_address() -> usize {
    graft_secondary_entry as *const () as usize
}

fn boot_level(current_el: u64) -> BootLevel {
    if current_el == 2 {
        BootLevel::El2
    } else {
        BootLevel::El1
    }
}

extern "C" fn primary_entry(current_el: u64) -> ! {
    crate::primary_main(boot_level(current_el))
}

extern "C" fn secondary_entry(core: usize, current_el: u64) -> ! {
    crate::secondary_main(core, boot_level(current_el))
}
