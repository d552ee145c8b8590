//! The one publication path: place a block in a slot, make a site lead to it, retire what it
//! replaced once a grace period has passed.
//!
//! A kernel declares each site once, bound to its strategy ([`Publish`]: a strategy and its site
//! objects), keeps the site's [`Slots`] under a lock (one producer at a time), and drives every
//! publication through one [`Publisher`]:
//!
//! 1. [`Publisher::place`]: take a free slot, reclaiming slots whose grace period has ended and
//!    waiting (bounded) for one; check the block against that slot's address; write it through
//!    the write alias. Nothing is written when the check fails.
//! 2. [`Publisher::publish`]: the site's strategy makes the block what every consumer runs
//!    (acknowledgements included); then, and only then, the block it replaced is unlinked and
//!    retired. The order is the one rule that matters here: a grace period counts quiescent
//!    states from its unlink, so an unlink taken *before* the store that redirects consumers
//!    would let a core that passed a quiescent state, and then loaded the old pointer, count as
//!    done while it can still enter the old block.
//!
//! On failure the result says exactly what is reachable: a failed publication whose new block
//! never became reachable retires that block and leaves the site as it was; one that made it
//! reachable without every core confirming ([`PublishError::Unsynchronized`]) keeps it live and
//! holds the previous block back until a later publication synchronizes everyone.

#![deny(unsafe_code)]

#[cfg(test)]
mod tests;

use core::time::Duration;

use crate::arena::{Arena, ArenaError, CodeBlock, SlotId, SlotWriter};
use crate::cache::Maintenance;
use crate::check::{CheckError, Externals, Policy};
use crate::grace::Qsbr;
use crate::platform::{CoreSet, Platform};
use crate::strategy::{Env, PublishError, Strategy};

/// A site bound to its strategy: what [`Publisher::publish`] drives.
///
/// `publish` returns `Ok` only once every consumer can reach nothing but `block` (every
/// acknowledgement the strategy needs has come in).
pub trait Publish<P: Platform + ?Sized, M: Maintenance>: Sync {
    /// Makes `block` what the site's consumers run.
    fn publish(&self, env: &Env<'_, P, M>, block: &CodeBlock<'static>) -> Result<(), PublishError>;

    /// Makes `block` the site's first code, before any consumer runs it (no consumer is there
    /// to acknowledge yet). The same as `publish` unless the strategy waits for consumers.
    fn install(&self, env: &Env<'_, P, M>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        self.publish(env, block)
    }

    /// Whether consumers run the block from its slot (`false`: it was copied into the site, as
    /// stop-the-world does, and its slot is unreferenced once the publication returns).
    fn runs_in_slot(&self) -> bool {
        true
    }
}

/// A strategy and the site objects it publishes to.
pub struct Bound<S: 'static, T: ?Sized + 'static> {
    /// The strategy.
    pub strategy: &'static S,
    /// What it retargets.
    pub site: &'static T,
}

impl<S: 'static, T: ?Sized + 'static> Bound<S, T> {
    /// `strategy` publishing to `site`.
    pub const fn new(strategy: &'static S, site: &'static T) -> Self {
        Self { strategy, site }
    }
}

impl<P, M, S, T> Publish<P, M> for Bound<S, T>
where
    P: Platform + ?Sized,
    M: Maintenance,
    S: Strategy<Site = T> + Sync,
    T: ?Sized + Sync,
{
    fn publish(&self, env: &Env<'_, P, M>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        self.strategy.publish(env, self.site, block)
    }

    fn install(&self, env: &Env<'_, P, M>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        self.strategy.install(env, self.site, block)
    }
}

/// The slots one site holds. Keep it under the site's producer lock.
#[derive(Debug, Default)]
pub struct Slots {
    live: Option<SlotId>,
    /// The block in `live`, when it runs from its slot.
    current: Option<CodeBlock<'static>>,
    held_back: Option<SlotId>,
    /// The block `live` replaced, kept live for [`Publisher::restore_previous`] (only through
    /// [`Publisher::publish_keeping`]).
    previous: Option<CodeBlock<'static>>,
    lost: usize,
}

impl Slots {
    /// A site that holds no slot yet.
    pub const fn new() -> Self {
        Self {
            live: None,
            current: None,
            held_back: None,
            previous: None,
            lost: 0,
        }
    }

    /// The slot the site leads to now.
    pub const fn live(&self) -> Option<SlotId> {
        self.live
    }

    /// The block kept for a rollback: what the site led to before its last publication through
    /// [`Publisher::publish_keeping`], still in its slot.
    pub const fn previous(&self) -> Option<CodeBlock<'static>> {
        self.previous
    }

    /// A slot the site no longer leads to but some core may still run (after an
    /// unsynchronized publication), retired at the next synchronized one.
    pub const fn held_back(&self) -> Option<SlotId> {
        self.held_back
    }

    /// Slots given up for good: two unsynchronized publications in a row leave a block that a
    /// core which missed both may still run, and such a slot is never reused.
    pub const fn lost(&self) -> usize {
        self.lost
    }
}

/// Why a block could not be placed in a slot. Nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// Every slot stayed live or retired for the whole timeout; these cores never reported a
    /// quiescent state.
    ArenaFull {
        /// The cores holding the grace period back.
        lagging: CoreSet,
    },
    /// The block broke a rule ([`check::check_block`]).
    Check(CheckError),
    /// The arena refused a state change.
    Arena(ArenaError),
    /// The caller's own check of the slot failed.
    Vetoed {
        /// The slot's executable address.
        exec: u64,
    },
}

/// Why a publication through [`Publisher::publish`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The strategy failed; what is reachable is [`PublishError::block_reachable`].
    Publish(PublishError),
    /// The arena refused to retire a slot (a bookkeeping error: a slot in the wrong state).
    Arena(ArenaError),
    /// [`Publisher::restore_previous`]: the site keeps no previous block (it was never
    /// published through [`Publisher::publish_keeping`] twice, or was restored already).
    NothingKept,
}

/// What a publication does with the block it replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replaced {
    /// Retire it (a grace period from now on).
    Retire,
    /// Keep it live as the site's previous block, retiring the one kept before.
    Keep,
}

/// The arena, the grace periods, and the rule that ties them to publication.
pub struct Publisher<const S: usize, const N: usize> {
    arena: &'static Arena<S>,
    qsbr: &'static Qsbr<N>,
}

impl<const S: usize, const N: usize> Publisher<S, N> {
    /// A publisher over `arena`, with grace periods from `qsbr`.
    pub const fn new(arena: &'static Arena<S>, qsbr: &'static Qsbr<N>) -> Self {
        Self { arena, qsbr }
    }

    /// The grace periods (consumers report quiescent states here).
    pub const fn qsbr(&self) -> &'static Qsbr<N> {
        self.qsbr
    }

    /// The arena.
    pub const fn arena(&self) -> &'static Arena<S> {
        self.arena
    }

    /// Takes a free slot (reclaiming slots whose grace period has ended, and waiting at most
    /// `timeout` for one), checks `code` against it with `externals` and `policy`, and writes it: the block
    /// is then ready for [`publish`](Self::publish). `vet` sees the slot's executable address
    /// before anything is written and may refuse it.
    pub fn place<P: Platform + ?Sized>(
        &self,
        platform: &P,
        timeout: Duration,
        code: &[u8],
        externals: &Externals<'static>,
        policy: &Policy<'static>,
        vet: impl FnOnce(u64) -> bool,
    ) -> Result<CodeBlock<'static>, PlaceError> {
        let slot = self.reserve(platform, timeout)?;
        let exec = slot.exec_addr();
        if !vet(exec) {
            return Err(PlaceError::Vetoed { exec });
        }
        Self::fill(slot, code, externals, policy)
    }

    /// Takes a free slot, reclaiming slots whose grace period has ended and waiting at most
    /// `timeout` for one: the first half of [`place`](Self::place), for a block that must be
    /// built for the slot's address first (two-phase patching). Dropping the writer frees the
    /// slot; nothing can reach it until [`fill`](Self::fill) and a publication.
    pub fn reserve<P: Platform + ?Sized>(
        &self,
        platform: &P,
        timeout: Duration,
    ) -> Result<SlotWriter<'static, S>, PlaceError> {
        let mut slot = None;
        let mut other = None;
        platform.wait_for(timeout, &mut || match self.arena.alloc() {
            Ok(s) => {
                slot = Some(s);
                true
            }
            Err(ArenaError::ArenaFull) => {
                self.arena.reclaim(self.qsbr.safe_epoch());
                false
            }
            Err(e) => {
                other = Some(e);
                true
            }
        });
        if let Some(e) = other {
            return Err(PlaceError::Arena(e));
        }
        slot.ok_or_else(|| PlaceError::ArenaFull {
            lagging: self.qsbr.lagging(self.qsbr.current()),
        })
    }

    /// Checks `code` against the reserved `slot` and writes it: the second half of
    /// [`place`](Self::place). A refused block leaves nothing written, and the slot free.
    pub fn fill(
        mut slot: SlotWriter<'static, S>,
        code: &[u8],
        externals: &Externals<'static>,
        policy: &Policy<'static>,
    ) -> Result<CodeBlock<'static>, PlaceError> {
        let checked = slot
            .check(code, externals, policy)
            .map_err(PlaceError::Check)?;
        slot.write(&checked).map_err(PlaceError::Arena)?;
        slot.publish().map_err(PlaceError::Arena)
    }

    /// Publishes `block` (from [`place`](Self::place)) to `site`, then unlinks and retires the
    /// block the site led to before; see the module documentation for what each failure leaves.
    pub fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &dyn Publish<P, M>,
        slots: &mut Slots,
        block: CodeBlock<'static>,
    ) -> Result<(), Failure> {
        let result = site.publish(env, &block);
        self.settle(result, site, slots, block, Replaced::Retire)
    }

    /// [`publish`](Self::publish), keeping the block it replaces live in its slot (nothing can
    /// reach it, but nothing reuses it either) until the next publication, so that
    /// [`restore_previous`](Self::restore_previous) can lead the site back to it with one
    /// publication and no copy: a block linked for its slot's address runs only there. A site
    /// that keeps its previous block holds two slots. For strategies that copy code into the
    /// site (`runs_in_slot` false) it is [`publish`](Self::publish).
    pub fn publish_keeping<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &dyn Publish<P, M>,
        slots: &mut Slots,
        block: CodeBlock<'static>,
    ) -> Result<(), Failure> {
        let result = site.publish(env, &block);
        self.settle(result, site, slots, block, Replaced::Keep)
    }

    /// Leads the site back to its kept previous block ([`publish_keeping`]) with one
    /// publication through its strategy. On success the block it replaces is retired and
    /// nothing is kept (a second call is [`Failure::NothingKept`]); when the publication fails
    /// before the previous block became reachable, it stays kept, for a retry.
    ///
    /// [`publish_keeping`]: Self::publish_keeping
    pub fn restore_previous<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &dyn Publish<P, M>,
        slots: &mut Slots,
    ) -> Result<CodeBlock<'static>, Failure> {
        let previous = slots.previous.take().ok_or(Failure::NothingKept)?;
        match site.publish(env, &previous) {
            Err(e) if !e.block_reachable() => {
                slots.previous = Some(previous);
                Err(Failure::Publish(e))
            }
            result => self
                .settle(result, site, slots, previous, Replaced::Retire)
                .map(|()| previous),
        }
    }

    /// [`publish`](Self::publish) for a site's first code, before any consumer runs it
    /// ([`Publish::install`]).
    pub fn install<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &dyn Publish<P, M>,
        slots: &mut Slots,
        block: CodeBlock<'static>,
    ) -> Result<(), Failure> {
        let result = site.install(env, &block);
        self.settle(result, site, slots, block, Replaced::Retire)
    }

    /// The bookkeeping after a publication returned `result`.
    fn settle<P: Platform + ?Sized, M: Maintenance>(
        &self,
        result: Result<(), PublishError>,
        site: &dyn Publish<P, M>,
        slots: &mut Slots,
        block: CodeBlock<'static>,
        replaced: Replaced,
    ) -> Result<(), Failure> {
        match result {
            Ok(()) if !site.runs_in_slot() => {
                // Copied into the site: nothing branches to the slot.
                self.retire(block.slot()).map_err(Failure::Arena)
            }
            Ok(()) => {
                // Only now, after the store that redirects every consumer: see the module
                // documentation.
                let before = slots.current.replace(block);
                let mut old = [
                    slots.live.replace(block.slot()),
                    slots.held_back.take(),
                    None,
                ];
                if replaced == Replaced::Keep
                    && let Some(kept) = before
                {
                    old[0] = None;
                    old[2] = slots.previous.replace(kept).map(|b| b.slot());
                }
                for slot in old.into_iter().flatten() {
                    self.retire(slot).map_err(Failure::Arena)?;
                }
                Ok(())
            }
            Err(e) if e.block_reachable() => {
                slots.current = Some(block);
                if let Some(old) = slots.live.replace(block.slot())
                    && slots.held_back.replace(old).is_some()
                {
                    slots.lost += 1;
                }
                Err(Failure::Publish(e))
            }
            Err(e) => {
                // Never reachable, but a late acknowledgement may still be running the
                // strategy's work: reuse it only after a grace period, like any retired block.
                self.retire(block.slot()).map_err(Failure::Arena)?;
                Err(Failure::Publish(e))
            }
        }
    }

    /// Unlinks `slot` (a new grace period starts now) and retires it, then frees every slot
    /// whose grace period has ended.
    pub fn retire(&self, slot: SlotId) -> Result<(), ArenaError> {
        let epoch = self.qsbr.unlink();
        self.arena.retire(slot, epoch)?;
        self.arena.reclaim(self.qsbr.safe_epoch());
        Ok(())
    }
}
