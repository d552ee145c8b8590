//! Boot: the entry of every core (`boot.s`) and the first Rust functions they call.
//!
//! `boot.s` leaves EL2 when entered there, enables FP/SIMD, installs the vectors, unmasks
//! SError and picks the core's two stacks; the primary clears `.bss`. This module owns the stacks
//! and the MMU configuration that secondaries read with their MMU still off.
//!
//! Each core runs its code on `SP_EL0` (`EL1t`) and takes every exception on `SP_EL1` (`EL1h`),
//! its own exception stack, so an exception entry never needs the stack it interrupted: a stack
//! overflow or a patch that broke `SP` is still reported. Below each stack lies a guard page the
//! MMU leaves unmapped (`mmu::init_primary`), so an overflow faults instead of writing the next
//! core's stack.

use crate::arch::mmu::MmuConfig;
use boards::{BootLevel, MAX_CORES};
use core::cell::UnsafeCell;

/// Bytes of stack per core.
pub const STACK_SIZE: usize = 64 * 1024;
/// Bytes of exception stack per core (IRQ handlers, rendezvous, fault reports).
pub const EXCEPTION_STACK_SIZE: usize = 16 * 1024;
const PAGE: usize = 4096;

/// One core's stacks, each above its own guard page.
#[repr(C, align(4096))]
struct CoreStacks {
    guard: [u8; PAGE],
    stack: [u8; STACK_SIZE],
    exception_guard: [u8; PAGE],
    exception: [u8; EXCEPTION_STACK_SIZE],
}

const _: () = {
    assert!(core::mem::size_of::<CoreStacks>().is_multiple_of(PAGE));
    assert!(core::mem::offset_of!(CoreStacks, stack) == PAGE);
    assert!(STACK_SIZE.is_multiple_of(PAGE) && EXCEPTION_STACK_SIZE.is_multiple_of(PAGE));
};

#[repr(C, align(4096))]
struct Stacks(UnsafeCell<[CoreStacks; MAX_CORES]>);

// SAFETY: each core uses only its own stacks, chosen by its index in boot.s; Rust code never
// touches this memory by name (only the guard pages' addresses are computed).
unsafe impl Sync for Stacks {}

static STACKS: Stacks = Stacks(UnsafeCell::new(
    [const {
        CoreStacks {
            guard: [0; PAGE],
            stack: [0; STACK_SIZE],
            exception_guard: [0; PAGE],
            exception: [0; EXCEPTION_STACK_SIZE],
        }
    }; MAX_CORES],
));

/// Which stack a guard page protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarded {
    /// A core's own stack (`SP_EL0`).
    Stack,
    /// A core's exception stack (`SP_EL1`).
    Exception,
}

/// The guard pages, as `(core, which, first byte)`: what the MMU leaves unmapped.
pub fn guard_pages() -> impl Iterator<Item = (usize, Guarded, usize)> {
    let base = STACKS.0.get() as usize;
    let per_core = core::mem::size_of::<CoreStacks>();
    (0..MAX_CORES).flat_map(move |core| {
        let at = base + core * per_core;
        [
            (core, Guarded::Stack, at),
            (
                core,
                Guarded::Exception,
                at + core::mem::offset_of!(CoreStacks, exception_guard),
            ),
        ]
    })
}

/// The guard page `addr` lies in, if any: which core's, and which stack it protects.
pub fn guard_page_of(addr: u64) -> Option<(usize, Guarded)> {
    guard_pages()
        .find(|&(_, _, start)| (start as u64..(start + PAGE) as u64).contains(&addr))
        .map(|(core, which, _)| (core, which))
}

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
    core_stacks_size = const core::mem::size_of::<CoreStacks>(),
    stack_top = const core::mem::offset_of!(CoreStacks, exception_guard),
    exception_top = const core::mem::size_of::<CoreStacks>(),
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
