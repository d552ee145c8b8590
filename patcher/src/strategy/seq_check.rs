//! Sequence check: consumers synchronize themselves at an entry check; the producer waits.
//!
//! A global sequence is published with release after the block's full maintenance. Each core
//! keeps the highest sequence it has synchronized to, on its own cache line; its entry check
//! compares the two and, when behind, runs `ISB` (after a compare and branch on the loaded
//! value: the control-dependency-then-`ISB` shape, which the instruction-fetch model forbids
//! from running stale code) and records the new value. The producer stores the site's
//! pointer only once every online core has caught up, so no consumer can reach the block
//! before it is fresh for it. No interrupt reaches a consumer; the cost is one load and
//! compare per entry.
//!
//! The kernel's consumers run the check in assembly, in their site's own trampoline
//! (`seq_check_site!` in `kernel/src/patch/sites.rs`, herd7: `tests/litmus/seq-check.litmus`):
//! load-acquire the site's pointer, load the sequence and this core's record
//! ([`seen_addr`](SeqCheck::seen_addr)), compare, and only when they differ `ISB` and
//! store-release the sequence into the record; then branch through the pointer.
//! [`enter`](SeqCheck::enter) is the same check in Rust: the publisher's own, and what the host
//! tests' consumers run. The contract both keep: a record holds a sequence only after an `ISB`
//! that a compare and branch on that loaded sequence ordered after its load.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{Env, IndirectSite, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::Maintenance;
use crate::platform::{CoreId, CoreSet, MAX_CORES, Platform};

#[repr(C, align(128))]
struct Seq(AtomicU64);

const _: () = assert!(core::mem::size_of::<Seq>() == 128);

/// # Example
///
/// A publication waits until every other online core has run its entry check; a core that
/// never does is named in the error, and the pointer is left as it was.
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::platform::{CoreId, CoreSet};
/// use patcher::strategy::{IndirectSite, PublishError, SeqCheck, Strategy};
///
/// let w = ExampleWorld::new(2);
/// let seq: &'static SeqCheck<2> = Box::leak(Box::new(SeqCheck::new()));
/// let site = IndirectSite::new(0);
/// // Core 1 never calls `seq.enter(CoreId(1), ..)` here, so the publication times out.
/// let r = seq.publish(&w.env(), &site, &w.block);
/// assert_eq!(r, Err(PublishError::Timeout { missing: CoreSet::EMPTY.with(CoreId(1)) }));
/// assert_eq!(site.target(), 0);
/// ```
///
/// Sequence-check state for up to `N` cores. `repr(C)`: the kernel's trampoline reads the
/// sequence at [`SEQUENCE_OFFSET`](Self::SEQUENCE_OFFSET) and each core's record through
/// [`seen_addr`](Self::seen_addr).
#[repr(C)]
pub struct SeqCheck<const N: usize> {
    // `SEEN_SHIFT` relies on a record's size being a power of two (it is its alignment).
    seq: Seq,
    seen: [Seq; N],
}

impl<const N: usize> Default for SeqCheck<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SeqCheck<N> {
    /// Sequence 0, every core synchronized to it.
    pub const fn new() -> Self {
        assert!(
            N <= MAX_CORES,
            "SeqCheck: more cores than a CoreSet can name"
        );
        Self {
            seq: Seq(AtomicU64::new(0)),
            seen: [const { Seq(AtomicU64::new(0)) }; N],
        }
    }

    /// Where the global sequence (a `u64`) lies, from the start of the state.
    pub const SEQUENCE_OFFSET: usize = core::mem::offset_of!(Self, seq);

    /// Where core 0's record lies, from the start of the state.
    pub const SEEN_OFFSET: usize = core::mem::offset_of!(Self, seen);

    /// log2 of the distance between two cores' records: core `i`'s record is at
    /// `SEEN_OFFSET + (i << SEEN_SHIFT)`, so a trampoline finds it from the core's index.
    pub const SEEN_SHIFT: u32 = core::mem::size_of::<Seq>().trailing_zeros();

    /// The address of `core`'s record (a `u64` alone on its cache line pair): what its entry
    /// check compares with the sequence and, after its `ISB`, store-releases the sequence into.
    ///
    /// # Panics
    ///
    /// When `core` is not below `N`.
    pub fn seen_addr(&self, core: CoreId) -> usize {
        &self.seen[core.index()].0 as *const AtomicU64 as usize
    }

    /// The entry check, run by `core` before it enters patchable code. Returns whether it had
    /// to synchronize.
    ///
    /// # Panics
    ///
    /// When `core` is not below `N`.
    #[inline]
    pub fn enter<M: Maintenance>(&self, core: CoreId, backend: &M) -> bool {
        let s = self.seq.0.load(Ordering::Acquire);
        let seen = &self.seen[core.index()].0;
        if seen.load(Ordering::Relaxed) == s {
            return false;
        }
        backend.isb();
        seen.store(s, Ordering::Release);
        true
    }

    /// The sequence `core` has synchronized to.
    pub fn seen(&self, core: CoreId) -> u64 {
        self.seen[core.index()].0.load(Ordering::Acquire)
    }

    fn behind(&self, cores: CoreSet, s: u64) -> CoreSet {
        let mut set = CoreSet::EMPTY;
        for c in cores.iter() {
            if c.index() < N && self.seen(c) < s {
                set = set.with(c);
            }
        }
        set
    }
}

impl<const N: usize> Strategy for SeqCheck<N> {
    type Site = IndirectSite;

    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &IndirectSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = site.claim()?;
        block.sync(env.sync);
        let s = self.seq.0.fetch_add(1, Ordering::Release) + 1;
        let others = env.others();
        if !env
            .platform
            .wait_for(env.timeout, &mut || self.behind(others, s).is_empty())
        {
            return Err(PublishError::Timeout {
                missing: self.behind(others, s),
            });
        }
        self.enter(env.platform.current_core(), env.sync.backend());
        site.store_release(block.exec_addr(), env.sync.backend());
        Ok(())
    }

    /// Before any consumer runs (none is there to pass an entry check): full maintenance, an
    /// IPI to every other core (its context synchronization), then the pointer, as
    /// [`IpiSync`](super::IpiSync) publishes.
    fn install<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &IndirectSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        super::IpiSync.publish(env, site, block)
    }
}
