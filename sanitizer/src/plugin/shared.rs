//! The state every callback shares, and the bookkeeping that keeps the fast paths honest.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};

use qemu_plugin::sys::qemu_plugin_cb_flags;
use qemu_plugin::{PluginU64, VCPUIndex, qemu_plugin_outs, qemu_plugin_u64_set};

use super::reg::Reg;
use crate::filter::Filters;
use crate::model::Model;
use crate::report::Report;

/// State shared by every callback.
pub(super) struct Shared {
    pub(super) model: Mutex<Model>,
    pub(super) out: Mutex<Option<File>>,
    /// Per-vCPU scoreboard of [`ARM_SLOTS`] u64 flags; slot [`arm_slot`]`(page)` is non-zero
    /// while that page may hold a word awaiting synchronization.
    pub(super) armed: PluginU64,
    /// The slots currently armed, as a bit mask.
    pub(super) armed_mask: AtomicU64,
    pub(super) open: AtomicBool,
    pub(super) cores: usize,
    /// Host address minus physical address of guest RAM; `i64::MIN` until known.
    pub(super) delta: AtomicI64,
    /// Virtual page -> physical page, learned from memory accesses and translations.
    pub(super) pages: Mutex<HashMap<u64, u64>>,
    pub(super) vbars: Mutex<Vec<u64>>,
    pub(super) regs: OnceLock<Regs>,
    /// `core-reg=NAME`: events are attributed by that register, not by the vCPU index.
    pub(super) core_reg_name: Option<String>,
    /// The `core-reg` register, once a vCPU exists to look it up (`None` inside: not found).
    pub(super) core_reg: OnceLock<Option<Reg>>,
    /// Callbacks whose core could not be named: a vCPU index outside `0..cores` (QEMU's
    /// `thread=single`/`-icount` behaviour), or a `core-reg` value that is no core number.
    pub(super) bad_index: AtomicU64,
    pub(super) filters: Filters,
    /// Stores that may matter, performed (or about to be) but not yet recorded by their memory
    /// callback, which QEMU runs only after the store is visible to other vCPUs.
    pub(super) in_flight: AtomicU64,
    /// Translations that gave up waiting for a store to their words to be recorded.
    pub(super) late_code_stores: AtomicU64,
}

/// Arming slots: blocks on a page whose slot is clear cost one inline compare and no call.
pub(super) const ARM_SLOTS: usize = 64;
/// Scoreboard slot set while a plain store by this vCPU could matter to the model.
pub(super) const MATTERS_PLAIN: usize = ARM_SLOTS;
/// Scoreboard slot set while a store-release by this vCPU could matter to the model.
pub(super) const MATTERS_RELEASE: usize = ARM_SLOTS + 1;
/// Scoreboard slots per vCPU.
pub(super) const SLOTS: usize = ARM_SLOTS + 2;

thread_local! {
    /// This vCPU thread announced a store in flight that its memory callback has not recorded.
    static IN_FLIGHT: Cell<bool> = const { Cell::new(false) };
}

/// The arming slot of a physical page (collisions only cost extra checks).
pub(super) fn arm_slot(page: u64) -> usize {
    (page.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

// SAFETY: `armed` (a `PluginU64`, hence a raw pointer, hence neither Send nor Sync) points to a
// QEMU scoreboard that lives as long as the plugin and is only used through QEMU's accessors;
// everything else is Sync already.
unsafe impl Sync for Shared {}
// SAFETY: as above; the scoreboard pointer is not tied to a thread.
unsafe impl Send for Shared {}

/// The general-purpose registers, by number (31 unused).
pub(super) struct Regs {
    pub(super) x: [Reg; 31],
}

impl Regs {
    pub(super) fn read(&self, n: u8) -> u64 {
        self.x.get(n as usize).and_then(Reg::read).unwrap_or(0)
    }
}

impl Shared {
    /// True when events are attributed through `core-reg` (round-robin TCG): per-vCPU
    /// scoreboard slots are then read through whichever vCPU translated the block, so they
    /// must hold the same value for every vCPU.
    pub(super) fn by_register(&self) -> bool {
        self.core_reg_name.is_some()
    }

    /// The flags of a callback that calls [`Shared::core`]: reading `core-reg` needs register
    /// access, which otherwise costs TCG a sync of its globals before every call.
    pub(super) fn core_flags(&self) -> qemu_plugin_cb_flags {
        if self.by_register() {
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS
        } else {
            qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS
        }
    }

    /// A cheap guess at the core for the lock-free filters: the vCPU index (out-of-range
    /// ones are caught later by [`Shared::core`]), or `None` (any core) where that index
    /// means nothing.
    pub(super) fn core_hint(&self, vcpu: VCPUIndex) -> Option<usize> {
        (!self.by_register()).then(|| (vcpu as usize).min(crate::clock::MAX_CORES - 1))
    }

    /// The core a callback runs for, or `None` (counted, reported once) if it cannot be named:
    /// the model is then not fed rather than fed wrong.
    pub(super) fn core(&self, vcpu: VCPUIndex) -> Option<usize> {
        let claimed = match &self.core_reg_name {
            None => vcpu as u64,
            Some(_) => self
                .core_reg
                .get()
                .and_then(Option::as_ref)
                .and_then(Reg::read)
                .unwrap_or(u64::MAX),
        };
        if claimed < self.cores as u64 {
            return Some(claimed as usize);
        }
        if self.bad_index.fetch_add(1, Relaxed) == 0 {
            let why = match &self.core_reg_name {
                None => format!(
                    "vcpu-index={vcpu} cores={}: QEMU gives wrong vCPU indices under -icount or \
                     thread=single; use multi-threaded TCG or core-reg=",
                    self.cores
                ),
                Some(name) => format!(
                    "core-reg={name} value={claimed:#x} cores={}: the register is missing or holds \
                     no core number",
                    self.cores
                ),
            };
            self.emit(&format!("{} error {why}", crate::report::PREFIX));
        }
        None
    }

    /// Before a store that may matter executes: a load that sees its value waits for it.
    pub(super) fn announce_store(&self) {
        if !IN_FLIGHT.with(|f| f.replace(true)) {
            self.in_flight.fetch_add(1, SeqCst);
        }
    }

    /// The store announced by this thread is recorded (or was not one that matters).
    pub(super) fn store_recorded(&self) {
        if IN_FLIGHT.with(|f| f.replace(false)) {
            self.in_flight.fetch_sub(1, SeqCst);
        }
    }

    /// Waits (bounded) until no announced store is unrecorded, so that a load that read such a
    /// store's value finds what the store carries. Call without the model lock.
    pub(super) fn wait_for_stores(&self) {
        // This thread's own announcement (a store that faulted before its memory callback)
        // cannot be what this load read.
        let own = IN_FLIGHT.with(Cell::get) as u64;
        for _ in 0..100_000 {
            if self.in_flight.load(SeqCst) <= own {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Waits (bounded) until the model knows every word of a block being translated as the
    /// value translated, or knows nothing of it (code never seen before). A word that differs
    /// was written by a store whose memory callback has not run yet. Call without the model
    /// lock.
    pub(super) fn wait_for_code_stores(&self, block: &[(u64, u64)], words: &[u32]) {
        for _ in 0..100_000 {
            {
                let m = self.model.lock().expect("model");
                let known = block
                    .iter()
                    .zip(words)
                    .all(|(&(_, pa), &w)| m.current_word(pa).is_none_or(|k| k == w));
                if known {
                    return;
                }
            }
            std::thread::yield_now();
        }
        self.late_code_stores.fetch_add(1, Relaxed);
    }

    pub(super) fn emit(&self, line: &str) {
        let mut out = self.out.lock().expect("output lock");
        match out.as_mut() {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => {
                let _ = qemu_plugin_outs(format!("{line}\n"));
            }
        }
    }

    pub(super) fn report(&self, r: Option<Report>) {
        if let Some(r) = r {
            self.emit(&r.to_string());
        }
    }

    /// Brings the lock-free filters and the per-block arming up to date after `core` changed
    /// the model (called with the model locked).
    pub(super) fn refresh(&self, m: &Model, core: usize) {
        self.open.store(m.open(), Relaxed);
        let pages = m.pending_pages();
        self.filters.set_pending(&pages);
        let (plain, release) = m.store_matters_both(core);
        self.filters.set_store_matters(core, plain, release);
        if !m.has_cells() {
            self.filters.clear_cells();
        }
        // Round-robin TCG (`core-reg`) registers no conditional callback: nothing reads the
        // scoreboard there.
        if !self.by_register() {
            self.arm(&pages, core, plain, release);
        }
    }

    /// Sets the scoreboard slots the conditional callbacks test: one per page slot (for every
    /// vCPU) and `core`'s two store slots.
    fn arm(&self, pages: &[u64], core: usize, plain: bool, release: bool) {
        let mask = pages.iter().fold(0u64, |a, &p| a | 1 << arm_slot(p));
        let changed = self.armed_mask.swap(mask, Relaxed) ^ mask;
        for slot in (0..ARM_SLOTS).filter(|i| changed & (1 << i) != 0) {
            let entry = PluginU64 {
                offset: slot * 8,
                ..self.armed
            };
            for v in 0..self.cores {
                qemu_plugin_u64_set(entry, v as VCPUIndex, (mask >> slot) & 1);
            }
        }
        for (slot, on) in [(MATTERS_PLAIN, plain), (MATTERS_RELEASE, release)] {
            let entry = PluginU64 {
                offset: slot * 8,
                ..self.armed
            };
            qemu_plugin_u64_set(entry, core as VCPUIndex, on as u64);
        }
    }

    pub(super) fn track_pages(&self, start: u64, end: u64) {
        for page in (start >> 12)..=(end.saturating_sub(1) >> 12) {
            self.filters.add_code_page(page);
        }
    }

    pub(super) fn va_to_pa(&self, va: u64, m: &mut Model) -> u64 {
        match self.pages.lock().expect("pages").get(&(va >> 12)) {
            Some(p) => (p << 12) | (va & 0xFFF),
            None => {
                m.summary.unresolved_maintenance += 1;
                va
            }
        }
    }

    pub(super) fn reg(&self, n: u8) -> u64 {
        self.regs.get().map_or(0, |r| r.read(n))
    }
}
