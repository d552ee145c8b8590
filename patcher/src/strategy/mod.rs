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

mod branch_flip;
mod flush_redirect;
mod ipi_sync;
mod seq_check;
mod stop_world;
#[cfg(test)]
mod tests;

pub use branch_flip::{BranchFlip, FlipSite};
pub use flush_redirect::{ConsumerCell, FLUSH_STUB, FLUSH_STUB_WORDS, FlushThenRedirect};
pub use ipi_sync::{IpiSync, IpiSyncRemote, RemoteInvalidate};
pub use seq_check::SeqCheck;
pub use stop_world::{InPlaceSite, Rendezvous, StopTheWorld};

use core::sync::atomic::{AtomicU64, Ordering};
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

/// Why a publication did not complete. Where this is returned the new block has not been made
/// reachable, unless the variant says otherwise.
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
    /// These consumers (by position) have not yet acknowledged the previous publication to
    /// their cells; nothing was written.
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
    /// The platform could not tell where a stopped core was interrupted, so an in-place edit
    /// could not be proven safe. Nothing was written.
    PositionUnknown {
        /// The core.
        core: CoreId,
    },
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
}

const _: () = assert!(core::mem::size_of::<IndirectSite>() == 128);
const _: () = assert!(core::mem::offset_of!(IndirectSite, target) == 0);

impl IndirectSite {
    /// A site whose consumers initially branch to `initial`.
    pub const fn new(initial: u64) -> Self {
        Self {
            target: AtomicU64::new(initial),
        }
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
}
