//! Patch sites: the fixed entry points consumers call, and the cells that steer them.
//!
//! - [`INDIRECT`]: `ADRP X16; LDR X16; BR X16` through one target cell (IPI sync, sequence check):
//!   three instructions, no barrier.
//! - [`PER_CORE`]: each core branches through its own [`ConsumerCell`] (flush-then-redirect):
//!   `MRS X16, TPIDR_EL0; LDR X17, [X16]; BR X17`, three instructions, leaving the cell's address
//!   in `X16` as the flush stub expects.
//! - The flip site, the in-place site and the flush stub live in the arena's fixed page (they
//!   are rewritten through the write alias), see [`super::Fixed`].
//!
//! A call through any site is `extern "C" fn(inside: *mut u64) -> Answer`; the trampolines
//! touch only `X16`/`X17`.

use super::payload::Answer;
use boards::MAX_CORES;
use patcher::strategy::{ConsumerCell, IndirectSite};

/// Declares a patchable entry point: a static target cell and its trampoline
/// (`ADRP X16; LDR X16; BR X16`), named `$symbol` in the ELF, and a function giving its address.
macro_rules! indirect_site {
    ($(#[$doc:meta])* $cell:ident, $entry:ident, $symbol:literal) => {
        $(#[$doc])*
        pub static $cell: IndirectSite = IndirectSite::new(0);

        core::arch::global_asm!(
            ".section .text.graft_sites, \"ax\"",
            ".balign 64",
            concat!(".global ", $symbol),
            concat!($symbol, ":"),
            "    adrp x16, {cell}",
            "    ldr  x16, [x16, :lo12:{cell}]",
            "    br   x16",
            cell = sym $cell,
        );

        /// The entry point's address (call it with the payload's own signature).
        pub fn $entry() -> usize {
            unsafe extern "C" {
                #[link_name = $symbol]
                fn trampoline();
            }
            trampoline as *const () as usize
        }
    };
}

/// Declares a per-core patchable entry point: `MRS X16, TPIDR_EL0; LDR X17, [X16]; BR X17`,
/// through the calling core's [`ConsumerCell`] (see [`init_core`]).
macro_rules! per_core_site {
    ($entry:ident, $symbol:literal) => {
        core::arch::global_asm!(
            ".section .text.graft_sites, \"ax\"",
            ".balign 64",
            concat!(".global ", $symbol),
            concat!($symbol, ":"),
            "    mrs  x16, tpidr_el0",
            "    ldr  x17, [x16]",
            "    br   x17",
        );

        /// The entry point's address (call it with the payload's own signature).
        pub fn $entry() -> usize {
            unsafe extern "C" {
                #[link_name = $symbol]
                fn trampoline();
            }
            trampoline as *const () as usize
        }
    };
}

indirect_site!(
    /// The one-pointer site (IPI sync, sequence check, the named-site service).
    INDIRECT,
    indirect_addr,
    "graft_site_indirect"
);

per_core_site!(per_core_addr, "graft_site_per_core");

/// Per-core cells, each on its own 128 bytes; `TPIDR_EL0` holds this core's.
pub static PER_CORE: [ConsumerCell; MAX_CORES] = [const { ConsumerCell::new(0) }; MAX_CORES];

const _: () = assert!(core::mem::size_of::<ConsumerCell>() == 128);

/// Points this core's per-core sites at its own cell (`TPIDR_EL0`; no EL0 code runs here): call
/// once on every core at bring-up.
pub fn init_core(core: usize) {
    let cell = &PER_CORE[core] as *const ConsumerCell as u64;
    aarch64_cpu::registers::TPIDR_EL0.set(cell);
}

use aarch64_cpu::registers::Writeable as _;

/// Calls through the indirect site.
///
/// # Safety
///
/// The site's target must be a published payload, and `inside` a valid, writable cell.
pub unsafe fn call_indirect(inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract; the trampoline passes x0 through to the payload.
    unsafe { call_at(indirect_addr(), inside) }
}

/// Calls through this core's per-core cell.
///
/// # Safety
///
/// This core's cell must lead to a published payload or to the flush stub with a pending one,
/// and `inside` must be a valid, writable cell.
pub unsafe fn call_per_core(inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract; the trampoline passes x0 through to the payload.
    unsafe { call_at(per_core_addr(), inside) }
}

/// Calls the code at `exec` (the flip site or the in-place site in the arena).
///
/// # Safety
///
/// `exec` must hold a payload's code (or a `B` to one), fresh for this core.
pub unsafe fn call_at(exec: usize, inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract.
    unsafe {
        let f = core::mem::transmute::<usize, super::payload::Entry>(exec);
        f(inside)
    }
}
