//! Call sites (jump labels): the caller's own `BL` is the flipped word, so a call costs what a
//! direct call costs.
//!
//! Every call site of a patchable function is a `BL` in the caller, recorded by the kernel as a
//! [`CallSiteRecord`] {word, key}; a key names one patchable function and may have many call
//! sites. Publishing to a key rewrites every word of that key to `BL block` (each with its own
//! PC-relative offset), refused before anything is written if one of them cannot reach the
//! block. Unlike Linux's jump labels, which synchronize per site, all words of a key share one
//! maintenance pass ([`CodeSync::sync_words`](crate::cache::CodeSync::sync_words): each line
//! cleaned, one `DSB ISH`, each line invalidated, one `DSB ISH`) and one IPI round. Old and new
//! words are both `BL`, so a core racing the stores runs one or the other (the CMODX set).

use super::{Claim, Env, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::Maintenance;
use crate::code_write;
use crate::insn;
use crate::platform::{IpiError, Platform, SYNC_ONLY};
use core::sync::atomic::AtomicBool;

#[cfg(test)]
#[path = "tests/call_site.rs"]
mod tests;

/// One call site as the kernel records it (in its `.graft_callsites` section): the executable
/// address of the `BL` word and the key it belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSiteRecord {
    /// The executable address of the call site's word.
    pub word: u64,
    /// The key (a patchable function) the word calls.
    pub key: u64,
}

const _: () = assert!(core::mem::size_of::<CallSiteRecord>() == 16);
const _: () = assert!(core::mem::offset_of!(CallSiteRecord, word) == 0);
const _: () = assert!(core::mem::offset_of!(CallSiteRecord, key) == 8);

/// Every call site of one key, known through both aliases: the word executes at `word` and is
/// written at `word + write_offset` (wrapping).
pub struct CallSiteKey {
    records: &'static [CallSiteRecord],
    key: u64,
    write_offset: usize,
    /// Serializes flips of this key, so stores to its words never race.
    lock: spin::Mutex<()>,
    /// Held by the producer publishing to this key (a second one gets `Busy`).
    producer: AtomicBool,
}

impl CallSiteKey {
    /// The call sites of `key` among `records`, written through `word + write_offset`.
    ///
    /// # Safety
    ///
    /// For the rest of the program, for every record of `key`:
    /// 1. `word` is mapped executable, and `word + write_offset` is mapped writable Normal
    ///    memory holding the same word;
    /// 2. nothing but this `CallSiteKey` writes that word.
    pub unsafe fn new(
        records: &'static [CallSiteRecord],
        key: u64,
        write_offset: usize,
    ) -> Result<Self, PublishError> {
        let site = Self {
            records,
            key,
            write_offset,
            lock: spin::Mutex::new(()),
            producer: AtomicBool::new(false),
        };
        if let Some((exec, _)) = site.words().find(|&(x, w)| x % 4 != 0 || w % 4 != 0) {
            return Err(PublishError::Misaligned { addr: exec });
        }
        Ok(site)
    }

    /// The key.
    pub const fn key(&self) -> u64 {
        self.key
    }

    /// Each call site's `(executable, writable)` address, in record order.
    pub fn words(&self) -> impl Iterator<Item = (usize, usize)> + Clone + '_ {
        let (key, offset) = (self.key, self.write_offset);
        self.records
            .iter()
            .filter(move |r| r.key == key)
            .map(move |r| (r.word as usize, (r.word as usize).wrapping_add(offset)))
    }

    /// How many call sites the key has.
    pub fn count(&self) -> usize {
        self.words().count()
    }

    /// The word now, read through its writable address.
    fn read(write: usize) -> u32 {
        // SAFETY: duty 1 of `new` makes the word readable; the stores that may race with this
        // read are single aligned 32-bit stores made under the key's lock (duty 2), which
        // AArch64 makes single-copy atomic, and the read is volatile.
        unsafe { code_write::read_word(write as *const u32) }
    }

    /// Every call site's word now, in record order.
    pub fn current(&self) -> impl Iterator<Item = u32> + '_ {
        self.words().map(|(_, w)| Self::read(w))
    }
}

/// The call-site strategy.
///
/// # Example
///
/// On the host, with the crate's fakes (feature `fake`): both call sites of key 7 become
/// `BL block`, each with its own offset.
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::insn;
/// use patcher::strategy::{CallSite, CallSiteKey, CallSiteRecord, Strategy};
///
/// let w = ExampleWorld::new(3);
/// let words: &'static mut [u32; 2] = Box::leak(Box::new([insn::bl(0).unwrap(); 2]));
/// let exec = w.block.exec_addr() + 0x1000;
/// let offset = (words.as_ptr() as usize).wrapping_sub(exec as usize);
/// let records: &'static [CallSiteRecord] = Box::leak(Box::new([
///     CallSiteRecord { word: exec, key: 7 },
///     CallSiteRecord { word: exec + 4, key: 7 },
/// ]));
/// // SAFETY: the words are leaked and written only through this key; the fakes never run them.
/// let key = unsafe { CallSiteKey::new(records, 7, offset) }.unwrap();
/// CallSite::new().publish(&w.env(), &key, &w.block).unwrap();
/// assert_eq!(words[0], insn::bl(-0x1000).unwrap());
/// assert_eq!(words[1], insn::bl(-0x1004).unwrap());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CallSite {
    /// Whether the flip ends with the IPI round (false only in the negative control).
    sync_others: bool,
}

impl Default for CallSite {
    fn default() -> Self {
        Self::new()
    }
}

impl CallSite {
    /// The strategy.
    pub const fn new() -> Self {
        Self { sync_others: true }
    }

    /// **Broken on purpose**, for the negative control only: the flip without its IPI round,
    /// so other cores may keep running the old `BL` indefinitely. The coherence sanitizer must
    /// flag it.
    pub const fn without_ipi_round() -> Self {
        Self { sync_others: false }
    }

    /// The new word of each call site: `BL target`, each with its own offset. Refused, with
    /// nothing written, if one of them cannot reach `target` or holds a word outside the CMODX
    /// set.
    fn check(&self, site: &CallSiteKey, target: u64) -> Result<(), PublishError> {
        for (exec, write) in site.words() {
            let new = insn::bl(target as i64 - exec as i64)?;
            let old = CallSiteKey::read(write);
            if !insn::is_cmodx_safe(old) {
                return Err(PublishError::NotCmodxSafe { old, new });
            }
        }
        Ok(())
    }

    /// Rewrites every call site of `site` to `BL target`: the stores, one maintenance pass over
    /// all of them, one IPI round (every other core's exception entry and return is its context
    /// synchronization event), then the publisher's own `ISB`.
    pub fn retarget<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &CallSiteKey,
        target: u64,
    ) -> Result<(), PublishError> {
        let _guard = site.lock.lock();
        self.check(site, target)?;
        for (exec, write) in site.words() {
            // `check` proved every offset in range.
            let new = insn::bl(target as i64 - exec as i64)?;
            // SAFETY: duty 1 of `CallSiteKey::new` makes the word writable; the lock held
            // here and duty 2 mean no other store races with this one.
            unsafe { code_write::write_word(write as *mut u32, new) };
        }
        // SAFETY: duty 1 of `CallSiteKey::new`: both aliases of every word are mapped.
        unsafe { env.sync.sync_words(site.words().map(|(x, w)| (w, x))) };
        let result = if self.sync_others {
            env.platform
                .ipi_sync(env.others(), SYNC_ONLY, env.timeout)
                // The words are written (taking them back would need the same round): the new
                // block is reachable, and these cores may still run the old one.
                .map_err(|e| PublishError::Unsynchronized {
                    missing: match e {
                        IpiError::Timeout { missing } => missing,
                        IpiError::Offline { cores } => cores,
                    },
                })
        } else {
            Ok(())
        };
        env.sync.backend().isb();
        result
    }
}

impl Strategy for CallSite {
    type Site = CallSiteKey;

    /// Checks every call site can reach `block`, makes the block fresh (full maintenance) and
    /// synchronizes every core (IPI), then retargets every call site to it ([`Self::retarget`]).
    ///
    /// The first IPI is branch flip's margin, for the CMODX race: a core may fetch a new `BL`
    /// before the second round reaches it and then runs the block, so every core has had a
    /// context synchronization event after the block's maintenance before any word changes
    /// (herd7 forbids the stale run even without it, as for `branch-flip-early.litmus`).
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &CallSiteKey,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = Claim::take(&site.producer)?;
        // Refuse before anything is made fresh or sent, so that a refusal costs nothing.
        self.check(site, block.exec_addr())?;
        block.sync(env.sync);
        env.platform
            .ipi_sync(env.others(), SYNC_ONLY, env.timeout)?;
        self.retarget(env, site, block.exec_addr())
    }
}
