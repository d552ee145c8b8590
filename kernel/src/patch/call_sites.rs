//! Call sites: `BL` words in kernel text that are themselves what a publication rewrites.
//!
//! A call site is one `BL` in a caller, emitted by [`call_site_asm!`] and recorded in the
//! `.graft_callsites` section (`linker/common.ld`) as a `patcher::strategy::CallSiteRecord`
//! {address of the word, key}. A key names one patchable function; every call site of it is
//! rewritten by one publication (`patcher::strategy::CallSite`), so a call costs what a direct
//! call costs.
//!
//! Kernel text is executable and read-only. The pages holding call sites get a second mapping,
//! writable and never executable, at `physical + mmu::WRITE_ALIAS_OFFSET` (the arena's rule), so
//! no address is ever both writable and executable; [`pages`] is what `arch::mmu` maps. Only
//! [`key`]'s `CallSiteKey` writes through it, and only recorded words.

use crate::arch::{markers, mmu};
use core::sync::atomic::{AtomicBool, Ordering};
use patcher::arena::CodeBlock;
use patcher::cache::hw::Hw;
use patcher::publish::Publish;
use patcher::strategy::{CallSite, CallSiteKey, CallSiteRecord, PublishError, Strategy as _};

use super::platform::KernelPlatform;
use super::sites::KernelEnv;

/// The keys: one per patchable function reached through call sites.
pub mod keys {
    /// The `call-site` strategy's site (its stress test, the demo, the bench).
    pub const CALL_SITE: u64 = 1;
}

/// The asm of one call site, for `asm!` or `global_asm!`: `BL {callee}` at a local label `1`,
/// recorded as {that word, `{key}`} in `.graft_callsites`. The caller names the operands:
/// `callee = sym` the function the site calls until its key is first published, `key = const`
/// one of [`keys`]. Uses the local label `1`. (In scope in this file: a caller elsewhere is a
/// `pub(crate) use` away.)
macro_rules! call_site_asm {
    () => {
        concat!(
            "1:  bl {callee}\n",
            "    .pushsection .graft_callsites, \"a\"\n",
            "    .balign 8\n",
            "    .quad 1b, {key}\n",
            "    .popsection",
        )
    };
}

// Two callers of the `call-site` site with the payload's signature, each with its own call
// site (`STP; MOV; BL site; LDP; RET`: the frame holds the link register the `BL` overwrites;
// every argument register passes through), and a loop for the bench.
core::arch::global_asm!(
    ".section .text.graft_sites, \"ax\"",
    ".balign 64",
    ".global graft_call_site_a",
    "graft_call_site_a:",
    "    stp  x29, x30, [sp, #-16]!",
    "    mov  x29, sp",
    call_site_asm!(),
    "    ldp  x29, x30, [sp], #16",
    "    ret",
    ".balign 64",
    ".global graft_call_site_b",
    "graft_call_site_b:",
    "    stp  x29, x30, [sp, #-16]!",
    "    mov  x29, sp",
    call_site_asm!(),
    "    ldp  x29, x30, [sp], #16",
    "    ret",
    // x0 = n: calls through a call site of the same key n times; the shape of the bench's
    // `graft_bench_empty` with its NOP replaced by the call site.
    ".balign 64",
    ".global graft_call_site_calls",
    "graft_call_site_calls:",
    "    stp  x29, x30, [sp, #-32]!",
    "    stp  x19, x20, [sp, #16]",
    "    mov  x19, x0",
    "    mov  x20, x0",
    "2:",
    call_site_asm!(),
    "    subs x20, x20, #1",
    "    b.ne 2b",
    "    ldp  x19, x20, [sp, #16]",
    "    ldp  x29, x30, [sp], #32",
    "    ret",
    // The same loop with a direct `BL` to a `RET` in kernel text: what a call site must cost.
    ".balign 64",
    ".global graft_call_site_direct_calls",
    "graft_call_site_direct_calls:",
    "    stp  x29, x30, [sp, #-32]!",
    "    stp  x19, x20, [sp, #16]",
    "    mov  x19, x0",
    "    mov  x20, x0",
    "2:  bl   graft_call_site_ret",
    "    subs x20, x20, #1",
    "    b.ne 2b",
    "    ldp  x19, x20, [sp, #16]",
    "    ldp  x29, x30, [sp], #32",
    "    ret",
    "graft_call_site_ret:",
    "    ret",
    // What every call site calls before its key's first publication: an answer no payload
    // gives (version and checksum 0), so a consumer that runs it fails its check.
    ".global graft_call_site_unset",
    "graft_call_site_unset:",
    "    mov  x0, xzr",
    "    mov  x1, xzr",
    "    ret",
    callee = sym graft_call_site_unset,
    key = const keys::CALL_SITE,
);

unsafe extern "C" {
    fn graft_call_site_a();
    fn graft_call_site_b();
    fn graft_call_site_calls(n: u64);
    fn graft_call_site_direct_calls(n: u64);
    fn graft_call_site_unset();
    static __graft_callsites_start: u8;
    static __graft_callsites_end: u8;
}

/// The first caller's entry (the payload's signature).
pub fn entry_a() -> usize {
    graft_call_site_a as *const () as usize
}

/// The second caller's entry: another call site of the same key.
pub fn entry_b() -> usize {
    graft_call_site_b as *const () as usize
}

/// Calls through a call site of [`keys::CALL_SITE`] `n` times (at least once), for the bench:
/// a loop of `BL word; SUBS; B.NE`, the shape of `graft_bench_empty` with the call in place of
/// its `NOP`. The site must lead to a block that returns without touching memory (the bench
/// installs a `RET`): the call passes no argument.
///
/// # Safety
///
/// The `call-site` site's code is a function of no arguments that preserves the callee-saved
/// registers and touches no memory (a `RET` block).
pub unsafe fn calls(n: u64) {
    // SAFETY: the caller's contract; the loop itself only runs the call site n.max(1) times.
    unsafe { graft_call_site_calls(n.max(1)) }
}

/// The same loop as [`calls`] with a direct `BL` to a `RET` in kernel text in place of the
/// call site: the baseline a call site must equal.
pub fn direct_calls(n: u64) {
    // SAFETY: the loop calls only a `RET` in kernel text, n.max(1) times, and restores every
    // callee-saved register it uses.
    unsafe { graft_call_site_direct_calls(n.max(1)) }
}

/// Every call site recorded in the image.
pub fn records() -> &'static [CallSiteRecord] {
    // SAFETY: the linker script gathers only `CallSiteRecord`s (16 bytes, 8-aligned, from
    // `call_site_asm!`) between these two symbols, in rodata, which is never written.
    unsafe {
        let start = (&raw const __graft_callsites_start).cast::<CallSiteRecord>();
        let end = (&raw const __graft_callsites_end).cast::<CallSiteRecord>();
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The start of every page holding a call site (the kernel is identity mapped: physical and
/// executable addresses agree), each once when the records are in address order.
pub fn pages() -> impl Iterator<Item = usize> {
    let mut last = None;
    records().iter().filter_map(move |r| {
        let page = r.word as usize & !(PAGE - 1);
        (last != Some(page)).then(|| {
            last = Some(page);
            page
        })
    })
}

const PAGE: usize = 4096;

static KEY: spin::Once<CallSiteKey> = spin::Once::new();

/// The call sites of [`keys::CALL_SITE`], set up on first use (before any is written).
pub fn key() -> &'static CallSiteKey {
    KEY.call_once(|| {
        for page in pages() {
            // Writes there are code from now on, also on a page the sanitizer saw no code run on.
            markers::track_code(page, PAGE);
        }
        // SAFETY: (1) `arch::mmu` maps every page holding a call site at its address (read-only,
        // executable) and at that plus WRITE_ALIAS_OFFSET (writable, never executable); (2) only
        // this key writes those words.
        let key = unsafe { CallSiteKey::new(records(), keys::CALL_SITE, mmu::WRITE_ALIAS_OFFSET) };
        key.expect("aligned call sites")
    })
}

/// Whether publications leave out the IPI round (the negative control only).
static WITHOUT_IPI_ROUND: AtomicBool = AtomicBool::new(false);

/// Makes every later publication to the call sites skip its final IPI round: the negative
/// control the sanitizer must flag (`patch-call-site-broken`).
pub fn break_ipi_round() {
    WITHOUT_IPI_ROUND.store(true, Ordering::Release);
}

/// The `call-site` site's publisher: the strategy over [`key`], telling the sanitizer when the
/// words are published (from then on a core that runs an old word is a hazard, not a race).
pub struct Publisher;

impl Publisher {
    fn mark(published: bool) {
        for (exec, _) in key().words() {
            if published {
                markers::mark_published(exec, 4);
            } else {
                markers::mark_unpublished(exec, 4);
            }
        }
    }
}

impl Publish<KernelPlatform, Hw> for Publisher {
    fn publish(&self, env: &KernelEnv<'_>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        let strategy = if WITHOUT_IPI_ROUND.load(Ordering::Acquire) {
            CallSite::without_ipi_round()
        } else {
            CallSite::new()
        };
        Self::mark(false);
        let result = strategy.publish(env, key(), block);
        // Published, or refused with every word as it was; after `Unsynchronized` some core
        // may still run an old word, which is then not yet a hazard.
        if !result.is_err_and(|e| e.block_reachable()) {
            Self::mark(true);
        }
        result
    }
}
