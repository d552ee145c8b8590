//! Publication strategies: how new code becomes what other cores run.
//!
//! Each strategy is a type with one job, behind the one [`Strategy`] trait, so the patch
//! service and the benchmarks can run them side by side. All of them start from a
//! [`CodeBlock`] already written into a live arena slot and end with the block reachable, and
//! all of them guarantee that no core can reach it before it is fresh for that core: cleaned,
//! invalidated, and followed on that core by a context synchronization event.
//!
//! Cores that are offline during a publication are neither interrupted nor waited for. The
//! kernel must give a core a context synchronization event (an `ISB`, or the exception return
//! that brings it back) when it comes online, before it runs patchable code.
//!
//! - [`BranchFlip`]: rewrite one CMODX-safe word at a site, then IPI everyone.
//! - [`CallSite`]: the callers' own `BL` words of one key, all rewritten, with one maintenance
//!   pass and one IPI round for all of them (jump labels, batched).
//! - [`IpiSync`] / [`IpiSyncRemote`]: full maintenance, IPI everyone (the remote variant also
//!   invalidates on each core, for systems whose `IC IVAU` is not broadcast), then store-release
//!   the site's pointer.
//! - [`FlushThenRedirect`]: clean only, then redirect each consumer's own cell to a fixed flush
//!   stub that invalidates and synchronizes on the consumer before jumping to the block.
//! - [`SeqCheck`]: full maintenance, bump a sequence, wait until every online core's entry check
//!   has synchronized to it, then store-release the pointer.
//!
//! - [`StopTheWorld`]: park every other core, edit anything in place, release; the baseline.
//!
//! A test-only naive publication (the pointer stored with no maintenance and no
//! synchronization) is the negative control that the tests' ordering oracle must reject.

// Every file in this directory is a strategy's public module, declared by `build.rs` without a
// list, so that a new strategy is one new file (its host tests go inline or under `tests/`).
include!(concat!(env!("OUT_DIR"), "/strategies.rs"));
#[cfg(test)]
mod tests;

pub use branch_flip::{BranchFlip, FlipSite};
pub use call_site::{CallSite, CallSiteKey, CallSiteRecord};
pub use flush_redirect::{
    ConsumerCell, ConsumerCells, FLUSH_STUB, FLUSH_STUB_WORDS, FlushThenRedirect, Publication,
};
pub use ipi_sync::{IpiSync, IpiSyncRemote, RemoteInvalidate};
pub use seq_check::SeqCheck;
pub use stop_world::{InPlace, InPlaceSite, Rendezvous, StopTheWorld};

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use crate::arena::CodeBlock;
use crate::cache::{CodeSync, Maintenance};
use crate::insn::EncodeError;
use crate::platform::{CoreId, CoreSet, Interrupted, IpiError, Platform};

/// What a strategy works with: the platform, the maintenance policy, and the bound on every
/// cross-core wait.
pub struct Env<'a, P: ?Sized, M> {
    /// Core identity, online set, IPIs and bounded waits.
    pub platform: &'a P,
    /// The maintenance backend and policy.
    pub sync: &'a CodeSync<M>,
    /// How long any one cross-core wait may take.
    pub timeout: Duration,
}

impl<P: Platform + ?Sized, M: Maintenance> Env<'_, P, M> {
    /// Every online core but the caller.
    pub fn others(&self) -> CoreSet {
        self.platform
            .online_cores()
            .without(self.platform.current_core())
    }
}

/// Why a publication did not complete.
///
/// Every variant but [`Unsynchronized`](Self::Unsynchronized) means the new block was **not**
/// made reachable: the site leads where it led, and the block may be retired. After
/// `Unsynchronized` the site leads to the new block ([`block_reachable`](Self::block_reachable)),
/// so the caller must keep it, and must keep the previous block too until a later publication
/// synchronizes every core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// An IPI was not acknowledged in time or could not be sent.
    Ipi(IpiError),
    /// Cores did not synchronize in time (their entry checks or flush stubs did not run).
    Timeout {
        /// The cores that did not.
        missing: CoreSet,
    },
    /// An in-place rewrite where the old or the new word is outside the CMODX set.
    NotCmodxSafe {
        /// The word at the site.
        old: u32,
        /// The word asked for.
        new: u32,
    },
    /// The branch to the block cannot be encoded at the site (out of range).
    Encode(EncodeError),
    /// An in-place edit whose length differs from its site's.
    LengthMismatch {
        /// Words in the site.
        expected: usize,
        /// Words given.
        found: usize,
    },
    /// A site address is not aligned to 4.
    Misaligned {
        /// The address.
        addr: usize,
    },
    /// These consumers (by their index in the site's cells) have not yet acknowledged the
    /// previous publication to their cells; nothing was written.
    Pending {
        /// The consumers still on the flush stub.
        consumers: CoreSet,
    },
    /// A stopped core was interrupted inside the code to be rewritten in place (or would return
    /// into it): it would resume in the middle of the new code. Nothing was written; try again
    /// once it has left.
    InsideSite {
        /// The core.
        core: CoreId,
        /// Where it was interrupted.
        at: Interrupted,
    },
    /// Another producer is publishing to this site now; nothing was written.
    Busy,
    /// The site already leads to the new block, but these cores did not confirm their
    /// synchronization in time (the second IPI of a branch flip; flush-then-redirect consumers,
    /// by index in the site's cells, that have not yet taken the block): they may still run the
    /// previous block.
    Unsynchronized {
        /// The cores (or consumers) that did not confirm.
        missing: CoreSet,
    },
    /// The platform could not tell where a stopped core was interrupted, so an in-place edit
    /// could not be proven safe. Nothing was written.
    PositionUnknown {
        /// The core.
        core: CoreId,
    },
}

impl PublishError {
    /// Whether the site may lead to the new block after this error (see the type's
    /// documentation).
    pub const fn block_reachable(&self) -> bool {
        matches!(self, Self::Unsynchronized { .. })
    }
}

/// One producer's exclusive hold on a site for one publication: taken without waiting (a second
/// producer gets [`PublishError::Busy`]), released when dropped.
pub(crate) struct Claim<'a>(&'a AtomicBool);

impl<'a> Claim<'a> {
    pub(crate) fn take(flag: &'a AtomicBool) -> Result<Self, PublishError> {
        flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| Self(flag))
            .map_err(|_| PublishError::Busy)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl From<IpiError> for PublishError {
    fn from(e: IpiError) -> Self {
        Self::Ipi(e)
    }
}

impl From<EncodeError> for PublishError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

/// An indirect patch site: the pointer its consumers load and branch through
/// (`ADRP; LDR; BR`), alone on its cache line pair.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct IndirectSite {
    target: AtomicU64,
    /// Held by the producer publishing to this site (see [`Claim`]).
    producer: AtomicBool,
}

const _: () = assert!(core::mem::size_of::<IndirectSite>() == 128);
const _: () = assert!(core::mem::offset_of!(IndirectSite, target) == 0);

impl IndirectSite {
    /// A site whose consumers initially branch to `initial`.
    pub const fn new(initial: u64) -> Self {
        Self {
            target: AtomicU64::new(initial),
            producer: AtomicBool::new(false),
        }
    }

    /// This site for one producer, or [`PublishError::Busy`].
    pub(crate) fn claim(&self) -> Result<Claim<'_>, PublishError> {
        Claim::take(&self.producer)
    }

    /// The current target (load-acquire).
    pub fn target(&self) -> u64 {
        self.target.load(Ordering::Acquire)
    }

    /// The cell's address, for the consumers' `ADRP`/`LDR`.
    pub fn cell_addr(&self) -> usize {
        &self.target as *const AtomicU64 as usize
    }

    /// The publishing store: release, then the observation hook.
    pub(crate) fn store_release<M: Maintenance>(&self, value: u64, backend: &M) {
        self.target.store(value, Ordering::Release);
        backend.observe_store(self.cell_addr(), value);
    }
}

/// A way of making a written block what a site's consumers run.
pub trait Strategy {
    /// What a publication retargets.
    type Site: ?Sized;

    /// Makes `block` fresh for every core that may reach it, then makes `site` lead to it.
    ///
    /// Blocks are `'static` because IPI work may still read them on a core that missed a
    /// deadline; kernel arenas are statics.
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &Self::Site,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError>;

    /// Makes `block` the site's first code, before any consumer runs it: [`publish`](Self::publish)
    /// unless the strategy waits for its consumers (who are not running yet).
    fn install<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &Self::Site,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        self.publish(env, site, block)
    }
}
