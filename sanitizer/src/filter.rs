//! Lock-free filters that let most callbacks return without taking the model's lock.
//!
//! Each filter may answer "maybe" wrongly but never "no" wrongly while it is kept up to date
//! under the model lock, so the fast path can only skip work the model would not have done.
//! One assumption: a virtual page that held no code keeps its physical page until a `TLBI`,
//! a write to `SCTLR`/`TTBR`/`TCR`, an exception entry or `ERET` (which may switch the
//! translation regime), or a new code page, each of which empties the per-thread cache.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::clock::MAX_CORES;

/// Pages below 4 GiB get one bit each; higher pages always answer "maybe".
const PAGES: usize = 1 << 20;
/// Bits in the address filter for remembered stores.
const BLOOM_BITS: usize = 1 << 16;
/// Pending pages tracked individually; more make every block check take the lock.
const SLOTS: usize = 64;

const NOT_CODE_SLOTS: usize = 256;

thread_local! {
    /// Per-thread direct-mapped cache of (virtual page, generation) known to hold no code.
    static NOT_CODE: [Cell<(u64, u64)>; NOT_CODE_SLOTS] =
        std::array::from_fn(|_| Cell::new((u64::MAX, u64::MAX)));
}

/// The filters.
pub struct Filters {
    generation: AtomicU64,
    code: Box<[AtomicU64]>,
    high_code: AtomicBool,
    /// Pages written while they held code (one bit each, as `code`).
    written: Box<[AtomicU64]>,
    high_written: AtomicBool,
    bloom: Box<[AtomicU64]>,
    bloom_va: Box<[AtomicU64]>,
    /// Some bloom bit may be set (clearing is skipped otherwise: it touches 2,048 words).
    any_cell: AtomicBool,
    pending_n: AtomicUsize,
    pending: [AtomicU64; SLOTS],
    store_matters: [AtomicBool; MAX_CORES],
    release_matters: [AtomicBool; MAX_CORES],
}

fn bits(n: usize) -> Box<[AtomicU64]> {
    (0..n / 64).map(|_| AtomicU64::new(0)).collect()
}

fn bloom_bit(pa: u64) -> usize {
    ((pa >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize % BLOOM_BITS
}

impl Default for Filters {
    fn default() -> Self {
        Self::new()
    }
}

impl Filters {
    /// Empty filters: no code, nothing pending.
    pub fn new() -> Self {
        Self {
            generation: AtomicU64::new(0),
            code: bits(PAGES),
            high_code: AtomicBool::new(false),
            written: bits(PAGES),
            high_written: AtomicBool::new(false),
            bloom: bits(BLOOM_BITS),
            bloom_va: bits(BLOOM_BITS),
            any_cell: AtomicBool::new(false),
            pending_n: AtomicUsize::new(0),
            pending: std::array::from_fn(|_| AtomicU64::new(0)),
            store_matters: std::array::from_fn(|_| AtomicBool::new(false)),
            release_matters: std::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    /// Notes that physical page `page` holds (or may hold) code.
    pub fn add_code_page(&self, page: u64) {
        let new = match usize::try_from(page).ok().filter(|&p| p < PAGES) {
            Some(p) => self.code[p / 64].fetch_or(1 << (p % 64), Relaxed) & (1 << (p % 64)) == 0,
            None => !self.high_code.swap(true, Relaxed),
        };
        if new {
            self.forget_mappings();
        }
    }

    /// Invalidates every cached "this virtual page holds no code" answer (mappings or the
    /// set of code pages changed).
    pub fn forget_mappings(&self) {
        self.generation.fetch_add(1, Relaxed);
    }

    /// True if this thread found virtual page `va_page` to hold no code, with nothing changed
    /// since. Each vCPU runs on its own host thread under multi-threaded TCG; under round-robin
    /// TCG the vCPUs share one thread, and so this cache, which is right while they share
    /// their translation tables (Graft's cores do).
    pub fn known_not_code(&self, va_page: u64) -> bool {
        let g = self.generation.load(Relaxed);
        NOT_CODE.with(|c| c[(va_page % NOT_CODE_SLOTS as u64) as usize].get() == (va_page, g))
    }

    /// Caches, for this thread, that virtual page `va_page` holds no code.
    pub fn note_not_code(&self, va_page: u64) {
        let g = self.generation.load(Relaxed);
        NOT_CODE.with(|c| c[(va_page % NOT_CODE_SLOTS as u64) as usize].set((va_page, g)));
    }

    /// Could page `page` hold code?
    pub fn maybe_code_page(&self, page: u64) -> bool {
        match usize::try_from(page).ok().filter(|&p| p < PAGES) {
            Some(p) => self.code[p / 64].load(Relaxed) & (1 << (p % 64)) != 0,
            None => self.high_code.load(Relaxed),
        }
    }

    /// Notes that code page `page` was written.
    pub fn note_code_written(&self, page: u64) {
        match usize::try_from(page).ok().filter(|&p| p < PAGES) {
            Some(p) => {
                self.written[p / 64].fetch_or(1 << (p % 64), Relaxed);
            }
            None => self.high_written.store(true, Relaxed),
        }
    }

    /// Was page `page` ever written while it held code?
    pub fn code_written(&self, page: u64) -> bool {
        match usize::try_from(page).ok().filter(|&p| p < PAGES) {
            Some(p) => self.written[p / 64].load(Relaxed) & (1 << (p % 64)) != 0,
            None => self.high_written.load(Relaxed),
        }
    }

    /// Notes that a store's ordering at `pa` is remembered.
    pub fn add_cell(&self, pa: u64) {
        let b = bloom_bit(pa);
        self.any_cell.store(true, Relaxed);
        self.bloom[b / 64].fetch_or(1 << (b % 64), Relaxed);
    }

    /// Notes the virtual address a remembered store was made through (see
    /// [`Filters::store_may_matter`]).
    pub fn add_cell_va(&self, va: u64) {
        let b = bloom_bit(va);
        self.any_cell.store(true, Relaxed);
        self.bloom_va[b / 64].fetch_or(1 << (b % 64), Relaxed);
    }

    /// Could a store by `core` (any core if `None`) through `va` change what the model
    /// remembers? Either its ordering matters, or it overwrites a remembered store made through
    /// the same virtual address (sync cells written through two aliases are not supported).
    pub fn store_may_matter(&self, core: Option<usize>, release: bool, va: u64) -> bool {
        let b = bloom_bit(va);
        self.store_matters_for(core, release)
            || self.bloom_va[b / 64].load(Relaxed) & (1 << (b % 64)) != 0
    }

    /// Could a store by `core` (any core if `None`; a release if `release`) matter?
    pub fn store_matters_for(&self, core: Option<usize>, release: bool) -> bool {
        core.map_or_else(
            || self.store_matters_any(release),
            |c| self.store_matters(c, release),
        )
    }

    /// Could a store's ordering at `pa` be remembered?
    pub fn maybe_cell(&self, pa: u64) -> bool {
        let b = bloom_bit(pa);
        self.bloom[b / 64].load(Relaxed) & (1 << (b % 64)) != 0
    }

    /// Forgets every remembered cell (the model dropped them all).
    pub fn clear_cells(&self) {
        if !self.any_cell.swap(false, Relaxed) {
            return;
        }
        for w in self.bloom.iter().chain(self.bloom_va.iter()) {
            w.store(0, Relaxed);
        }
    }

    /// Replaces the set of pages with pending words.
    pub fn set_pending(&self, pages: &[u64]) {
        if pages.len() > SLOTS {
            self.pending_n.store(usize::MAX, Relaxed);
            return;
        }
        for (slot, &p) in self.pending.iter().zip(pages) {
            slot.store(p, Relaxed);
        }
        self.pending_n.store(pages.len(), Relaxed);
    }

    /// Could page `page` hold a pending word?
    pub fn maybe_pending(&self, page: u64) -> bool {
        match self.pending_n.load(Relaxed) {
            usize::MAX => true,
            n => self.pending[..n].iter().any(|s| s.load(Relaxed) == page),
        }
    }

    /// Records whether a (release) store by `core` could matter to the model now.
    pub fn set_store_matters(&self, core: usize, plain: bool, release: bool) {
        self.store_matters[core].store(plain, Relaxed);
        self.release_matters[core].store(release, Relaxed);
    }

    /// Could a store by some core (a release if `release`) matter to the model?
    pub fn store_matters_any(&self, release: bool) -> bool {
        (0..MAX_CORES).any(|c| self.store_matters(c, release))
    }

    /// Could a store by `core` (a release if `release`) matter to the model?
    pub fn store_matters(&self, core: usize, release: bool) -> bool {
        if release {
            self.release_matters[core].load(Relaxed)
        } else {
            self.store_matters[core].load(Relaxed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_answer_maybe_for_what_was_added() {
        let f = Filters::new();
        assert!(!f.maybe_code_page(0x40201));
        f.add_code_page(0x40201);
        assert!(f.maybe_code_page(0x40201) && !f.maybe_code_page(0x40202));
        f.add_code_page(1 << 40);
        assert!(
            f.maybe_code_page(1 << 41),
            "high pages: always maybe once any exists"
        );
        assert!(!f.code_written(0x40201));
        f.note_code_written(0x40201);
        assert!(f.code_written(0x40201) && !f.code_written(0x40202));
        f.add_cell(0x4030_0000);
        assert!(f.maybe_cell(0x4030_0000));
        f.clear_cells();
        assert!(!f.maybe_cell(0x4030_0000));
        f.set_pending(&[0x40201]);
        assert!(f.maybe_pending(0x40201) && !f.maybe_pending(0x40200));
        f.set_pending(&(0..100).collect::<Vec<_>>());
        assert!(f.maybe_pending(12345));
        f.note_not_code(0x80201);
        assert!(f.known_not_code(0x80201) && !f.known_not_code(0x80202));
        f.add_code_page(0x40300);
        assert!(
            !f.known_not_code(0x80201),
            "a new code page invalidates the cache"
        );
        assert!(!f.store_matters_any(true));
        f.set_store_matters(1, false, true);
        assert!(!f.store_matters(1, false) && f.store_matters(1, true));
        assert!(f.store_matters_any(true) && !f.store_matters_any(false));
        assert!(
            f.store_may_matter(None, true, 0x1000) && !f.store_may_matter(Some(2), true, 0x1000)
        );
    }
}
