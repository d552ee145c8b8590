//! Branch flip (static key): one site word flips between CMODX-safe instructions.
//!
//! The running code already contains the branch (or a `NOP` in its place), so the fast path costs
//! nothing. A flip is a single aligned 32-bit store through the write alias, maintenance on that
//! one line, and an IPI to every other online core, whose exception entry and return is its
//! context synchronization event; the publisher then synchronizes itself with an `ISB`. Both
//! the old and the new word must be in the CMODX set, so a core racing the store runs one or
//! the other, never a torn mix.

use super::{Claim, Env, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::Maintenance;
use crate::code_write;
use crate::insn;
use crate::platform::{IpiError, Platform, SYNC_ONLY};
use core::sync::atomic::AtomicBool;

/// A code word that may be flipped, known through both aliases.
pub struct FlipSite {
    write_va: usize,
    exec_va: usize,
    /// Serializes flips of this site, so stores to the word never race.
    lock: spin::Mutex<()>,
    /// Held by the producer publishing to this site (a second one gets `Busy`).
    pub(crate) producer: AtomicBool,
}

impl FlipSite {
    /// A site at `write_va` (writable alias) / `exec_va` (executable alias).
    ///
    /// # Safety
    ///
    /// For the rest of the program:
    /// 1. `write_va` is mapped writable Normal memory and `exec_va` maps the same word;
    /// 2. nothing but this `FlipSite` writes that word.
    pub unsafe fn new(write_va: usize, exec_va: usize) -> Result<Self, PublishError> {
        for addr in [write_va, exec_va] {
            if !addr.is_multiple_of(4) {
                return Err(PublishError::Misaligned { addr });
            }
        }
        Ok(Self {
            write_va,
            exec_va,
            lock: spin::Mutex::new(()),
            producer: AtomicBool::new(false),
        })
    }

    /// The executable address of the word.
    pub const fn exec_addr(&self) -> usize {
        self.exec_va
    }

    /// The word now.
    pub fn word(&self) -> u32 {
        // SAFETY: duty 1 of `new` makes the word readable; the stores that may race with this
        // read are single aligned 32-bit stores (duty 2 and `flip`), which AArch64 makes
        // single-copy atomic, and the read is volatile.
        unsafe { code_write::read_word(self.write_va as *const u32) }
    }
}

/// The branch-flip strategy (zero-sized).
///
/// # Example
///
/// On the host, with the crate's fakes (feature `fake`): the site's word becomes `B block`.
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::insn;
/// use patcher::strategy::{BranchFlip, FlipSite, Strategy};
///
/// let w = ExampleWorld::new(3);
/// let word: &'static mut u32 = Box::leak(Box::new(insn::nop()));
/// let exec = w.block.exec_addr() as usize + 0x80;
/// // SAFETY: the word is leaked and written only through this site; the fakes never run it.
/// let site = unsafe { FlipSite::new(word as *mut u32 as usize, exec) }.unwrap();
/// BranchFlip.publish(&w.env(), &site, &w.block).unwrap();
/// assert_eq!(site.word(), insn::b(w.block.exec_addr() as i64 - exec as i64).unwrap());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BranchFlip;

impl BranchFlip {
    /// Replaces the site's word with `new`; returns the old word. Refused, with nothing
    /// written, unless both words are in the CMODX set.
    pub fn flip<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &FlipSite,
        new: u32,
    ) -> Result<u32, PublishError> {
        let _guard = site.lock.lock();
        let old = site.word();
        if !insn::is_cmodx_safe(old) || !insn::is_cmodx_safe(new) {
            return Err(PublishError::NotCmodxSafe { old, new });
        }
        // SAFETY: duty 1 of `FlipSite::new` makes the word writable; the lock held here and
        // duty 2 mean no other store races with this one.
        unsafe { code_write::write_word(site.write_va as *mut u32, new) };
        // SAFETY: duty 1 of `FlipSite::new`: both aliases of the word are mapped.
        unsafe { env.sync.sync_range(site.write_va, site.exec_va, 4) };
        let result = env
            .platform
            .ipi_sync(env.others(), SYNC_ONLY, env.timeout)
            // The word is already written (it cannot be taken back safely without the same
            // synchronization): the new branch is reachable, and these cores may still run the
            // old one.
            .map_err(|e| PublishError::Unsynchronized {
                missing: match e {
                    IpiError::Timeout { missing } => missing,
                    IpiError::Offline { cores } => cores,
                },
            });
        env.sync.backend().isb();
        result.map(|()| old)
    }

    /// Flips the site to `B block`.
    pub fn branch_to<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &FlipSite,
        target: u64,
    ) -> Result<u32, PublishError> {
        let word = insn::b(target as i64 - site.exec_va as i64)?;
        self.flip(env, site, word)
    }
}

impl Strategy for BranchFlip {
    type Site = FlipSite;

    /// Makes `block` fresh (full maintenance) and synchronizes every core (IPI), then flips the
    /// site to branch to it (a second IPI makes the new branch what every core runs).
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &FlipSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = Claim::take(&site.producer)?;
        block.sync(env.sync);
        // A consumer may fetch the new branch before the flip's IPI reaches it, and then runs
        // the block with no context synchronization of its own since the block was made
        // fresh. So every core synchronizes once the block is fresh, before the flip.
        env.platform
            .ipi_sync(env.others(), SYNC_ONLY, env.timeout)?;
        self.branch_to(env, site, block.exec_addr()).map(drop)
    }
}
