//! Starting Raspberry Pi secondaries: the firmware's spin table.
//!
//! The Pi's boot stub (and QEMU's, for a raw image) parks cores 1-3 in a `WFE` loop reading
//! `0xd8 + 8 * core`; a non-zero value is the address to jump to, at EL2, with `x0 = 0`. Graft
//! writes the address of a small trampoline that puts the core's index in `x0` (from
//! `MPIDR_EL1.Aff0`) and jumps to the kernel's secondary entry, published here beforehand.

use core::sync::atomic::{AtomicUsize, Ordering};

/// The spin table's first slot (core 0's, unused).
const SPIN_TABLE: usize = 0xd8;

/// The kernel's secondary entry, read by the trampoline with the MMU off.
#[repr(C, align(64))]
struct Entry(AtomicUsize);

static SECONDARY_ENTRY: Entry = Entry(AtomicUsize::new(0));

core::arch::global_asm!(
    ".section .text.graft_spin_trampoline, \"ax\"",
    ".global graft_spin_trampoline",
    "graft_spin_trampoline:",
    "    mrs x0, mpidr_el1",
    "    and x0, x0, #0xff",
    "    ldr x1, ={entry}",
    "    ldr x1, [x1]",
    "    br  x1",
    entry = sym SECONDARY_ENTRY,
);

unsafe extern "C" {
    fn graft_spin_trampoline();
}

/// Cleans and invalidates the data cache line at `addr` to the point of coherency, so that a
/// core reading with its MMU and caches off sees the value.
fn clean_to_poc(addr: usize) {
    // SAFETY: DC CIVAC of a mapped, ordinary RAM address writes the line back; no data changes.
    unsafe { core::arch::asm!("dc civac, {}", in(reg) addr, options(nostack, preserves_flags)) };
}

/// Releases `core` (1-3) into `entry`, with its index in `x0`.
pub fn release(core: usize, entry: usize) {
    SECONDARY_ENTRY.0.store(entry, Ordering::Relaxed);
    clean_to_poc(&SECONDARY_ENTRY as *const Entry as usize);
    let slot = (SPIN_TABLE + 8 * core) as *mut u64;
    // SAFETY: the spin table is in low RAM, mapped by the kernel as normal memory, and owned by
    // the parked cores' boot stub, which only reads it.
    unsafe { slot.write_volatile(graft_spin_trampoline as *const () as u64) };
    clean_to_poc(slot as usize);
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
    aarch64_cpu::asm::sev();
}
