//! Arena code outside the sites, each the point of a test: the negative controls the sanitizer
//! must flag, and the scratch code the catalogue mirrors rewrite.
//!
//! Nothing here publishes. Every write below either is the bug a negative control exists to
//! show (documented where it happens), or happens before anything runs the code and is then
//! installed on every core.

use super::sites::Site;
use super::{Fixed, PatchError, arena_addr, install, service};
use patcher::insn::{self, Reg, Width};

/// The naive negative control's function in the fixed page: `MOVZ X0, #version; RET`,
/// rewritten in place with no maintenance and no synchronization (`naive-rewrite`).
pub struct NaiveSite;

impl NaiveSite {
    /// Where its consumers call (`extern "C" fn() -> u64`).
    pub fn exec() -> usize {
        arena_addr(Fixed::NAIVE).0
    }

    /// Writes version `v` properly (full maintenance, every core's own invalidation), before any
    /// core runs it.
    pub fn install(v: u16) -> Result<(), PatchError> {
        let (exec, write) = arena_addr(Fixed::NAIVE);
        let words = [
            insn::movz(Width::X, Reg::x(0), v, 0).expect("MOVZ X0, #v"),
            insn::ret(Reg::x(30)).expect("RET"),
        ];
        for (i, w) in words.iter().enumerate() {
            // SAFETY: the naive site's writable view, before anyone runs it.
            unsafe { (write as *mut u32).add(i).write_volatile(*w) };
        }
        // SAFETY: both views of the fixed page's naive site.
        unsafe { install(&service().sync, write, exec, words.len() * 4) }
            .map_err(PatchError::Publish)
    }

    /// Rewrites the `MOVZ` for version `v` with no maintenance and no synchronization at all:
    /// the bug the sanitizer must report.
    pub fn rewrite_naively(v: u16) {
        let (_, write) = arena_addr(Fixed::NAIVE);
        let movz = insn::movz(Width::X, Reg::x(0), v, 0).expect("MOVZ X0, #v");
        // SAFETY: the naive site's writable view; the whole point is that nothing orders or
        // synchronizes this store with the cores running the code.
        unsafe { (write as *mut u32).write_volatile(movz) };
    }
}

/// Makes a per-core site (`flush-then-redirect` or `ftr-multi`) redirect its consumers to the
/// flush stub without its `ISB`: the negative control `patch-ftr-broken`.
pub fn use_broken_stub(site: &Site) -> Result<(), PatchError> {
    site.use_stub(arena_addr(Fixed::BROKEN_STUB).0 as u64)
}

/// The slot area as scratch code, for the catalogue mirrors (`tests/litmus`), which run alone:
/// no site is used in the same run.
pub struct Scratch {
    /// The executable address.
    pub exec: usize,
    /// The writable address of the same code (the mirrors' producers rewrite words there).
    pub write: usize,
}

impl Scratch {
    /// The scratch area's addresses.
    pub fn get() -> Self {
        let (exec, write) = arena_addr(Fixed::SLOTS);
        Self { exec, write }
    }

    /// The scratch area, once the patch service is set up (the fixed page installed, the arena
    /// known to the sanitizer as code): call on one core, before it writes any word.
    pub fn set_up() -> Self {
        service();
        Self::get()
    }

    /// Writes `words` from word `first` on. Call only while no core runs them, then
    /// [`install`](Self::install).
    pub fn write_words(&self, first: usize, words: &[u32]) {
        for (i, w) in words.iter().enumerate() {
            // SAFETY: the slot area's writable view, which only this run's mirror uses; the
            // caller guarantees no core runs these words meanwhile.
            unsafe { (self.write as *mut u32).add(first + i).write_volatile(*w) };
        }
    }

    /// Makes the first `len` bytes fresh on every core (each core's own invalidation).
    pub fn install(&self, len: usize) -> Result<(), PatchError> {
        // SAFETY: both views of the slot area.
        unsafe { install(&service().sync, self.write, self.exec, len) }.map_err(PatchError::Publish)
    }
}
