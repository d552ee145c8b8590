//! Patch sites: the fixed entry points consumers call, and the cells that steer them.
//!
//! - [`INDIRECT`]: `ADRP X16; LDR X16; BR X16` through one target cell (IPI sync, sequence check):
//!   three instructions, no barrier.
//! - [`PER_CORE`]: each core branches through its own [`ConsumerCell`] (flush-then-redirect);
//!   the sequence leaves the cell's address in `X16`, as the flush stub expects.
//! - The flip site, the in-place site and the flush stub live in the arena's fixed page (they
//!   are rewritten through the write alias), see [`super::Fixed`].
//!
//! A call through any site is `extern "C" fn(inside: *mut u64) -> Answer`; the trampolines
//! touch only `X16`/`X17`.

use super::payload::Answer;
use boards::MAX_CORES;
use patcher::strategy::{ConsumerCell, IndirectSite};

/// The one-pointer site.
pub static INDIRECT: IndirectSite = IndirectSite::new(0);

/// Per-core cells, 128 bytes apart (`X16 = PER_CORE + core << 7`).
pub static PER_CORE: [ConsumerCell; MAX_CORES] = [const { ConsumerCell::new(0) }; MAX_CORES];

const _: () = assert!(core::mem::size_of::<ConsumerCell>() == 128);

core::arch::global_asm!(
    ".section .text.graft_sites, \"ax\"",
    ".balign 64",
    ".global graft_site_indirect",
    "graft_site_indirect:",
    "    adrp x16, {indirect}",
    "    ldr  x16, [x16, :lo12:{indirect}]",
    "    br   x16",
    ".balign 64",
    ".global graft_site_per_core",
    "graft_site_per_core:",
    "    mrs  x17, tpidr_el1",
    "    adrp x16, {cells}",
    "    add  x16, x16, :lo12:{cells}",
    "    add  x16, x16, x17, lsl #7",
    "    ldr  x17, [x16]",
    "    br   x17",
    indirect = sym INDIRECT,
    cells = sym PER_CORE,
);

unsafe extern "C" {
    fn graft_site_indirect(inside: *mut u64) -> Answer;
    fn graft_site_per_core(inside: *mut u64) -> Answer;
}

/// Calls through the indirect site.
///
/// # Safety
///
/// The site's target must be a published payload, and `inside` a valid, writable cell.
pub unsafe fn call_indirect(inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract.
    unsafe { graft_site_indirect(inside) }
}

/// Calls through this core's per-core cell.
///
/// # Safety
///
/// This core's cell must lead to a published payload or to the flush stub with a pending one,
/// and `inside` must be a valid, writable cell.
pub unsafe fn call_per_core(inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract.
    unsafe { graft_site_per_core(inside) }
}

/// Calls the code at `exec` (the flip site or the in-place site in the arena).
///
/// # Safety
///
/// `exec` must hold a payload's code (or a `B` to one), fresh for this core.
pub unsafe fn call_at(exec: usize, inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract.
    unsafe {
        let f: super::payload::Entry = core::mem::transmute(exec);
        f(inside)
    }
}

/// The indirect site's entry address (for callers with their own signature).
pub fn indirect_addr() -> usize {
    graft_site_indirect as *const () as usize
}

/// The per-core site's entry address (for callers with their own signature).
pub fn per_core_addr() -> usize {
    graft_site_per_core as *const () as usize
}
