//! Indirect site + IPI sync: maintenance, every core synchronized, then the pointer.
//!
//! Like Linux's `kick_all_cpus_sync` or `membarrier(SYNC_CORE)`. Consumers run
//! `ADRP; LDR; BR` through an [`IndirectSite`] with no barrier of their own: the publisher
//! makes the block fresh for every core before any core can load the new pointer. The
//! remote-invalidation variant also runs `IC IVAU` on each core in the IPI, for systems where
//! instruction-cache invalidation is not broadcast to the Inner Shareable domain.

use super::{Env, IndirectSite, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::{CodeSync, Maintenance};
use crate::platform::{CoreId, IpiWork, Platform, SYNC_ONLY};

/// Broadcast invalidation (zero-sized): clean, `DSB ISH`, invalidate, `DSB ISH`, IPI every other
/// online core and wait for all acknowledgements, `ISB`, store-release the pointer.
///
/// # Example
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::strategy::{IndirectSite, IpiSync, Strategy};
///
/// let w = ExampleWorld::new(3);
/// let site = IndirectSite::new(0);
/// IpiSync.publish(&w.env(), &site, &w.block).unwrap();
/// // Consumers branching through the site now reach the block, fresh on every core.
/// assert_eq!(site.target(), w.block.exec_addr());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct IpiSync;

impl Strategy for IpiSync {
    type Site = IndirectSite;

    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &IndirectSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = site.claim()?;
        block.sync(env.sync);
        env.platform
            .ipi_sync(env.others(), SYNC_ONLY, env.timeout)?;
        env.sync.backend().isb();
        site.store_release(block.exec_addr(), env.sync.backend());
        Ok(())
    }
}

/// The IPI work of [`IpiSyncRemote`]: invalidate the block being published on the core that
/// runs it. Lives in a `static`, because a late core may run it after the publisher gave up.
pub struct RemoteInvalidate<M: 'static> {
    sync: CodeSync<M>,
    block: spin::RwLock<Option<CodeBlock<'static>>>,
    serial: spin::Mutex<()>,
}

impl<M: Maintenance> RemoteInvalidate<M> {
    /// Work that invalidates with `sync` (each core's own backend, e.g. `hw::Hw`).
    pub const fn new(sync: CodeSync<M>) -> Self {
        Self {
            sync,
            block: spin::RwLock::new(None),
            serial: spin::Mutex::new(()),
        }
    }
}

impl<M: Maintenance + Sync> IpiWork for RemoteInvalidate<M> {
    fn run(&self, _core: CoreId) {
        if let Some(block) = *self.block.read() {
            // The producer's clean reached this core through the mailbox's release/acquire, which
            // orders later loads and stores but not an IC: a DMB ISH orders the invalidation after
            // what the acquire observed (catalogue: MP.RF+dmb.st+dmb.ish-dc-dsb-ic-dsb-isb is
            // Forbidden, its DMB LD twin Allowed; found by the sanitizer with ic-broadcast=off).
            self.sync.backend().dmb_ish();
            block.invalidate(&self.sync);
        }
    }
}

/// IPI sync with remote invalidation: clean, `DSB ISH`, invalidate locally, `DSB ISH`, IPI every
/// other online core to invalidate too (`DMB ISH`, `IC IVAU`, `DSB ISH`, then its exception
/// return), `ISB`,
/// store-release the pointer.
///
/// # Example
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::strategy::{IndirectSite, IpiSyncRemote, RemoteInvalidate, Strategy};
///
/// let w = ExampleWorld::new(3);
/// // The work each core runs in its IPI handler: invalidate the block on that core.
/// let work = Box::leak(Box::new(RemoteInvalidate::new(*w.sync)));
/// let site = IndirectSite::new(0);
/// IpiSyncRemote::new(work).publish(&w.env(), &site, &w.block).unwrap();
/// assert_eq!(site.target(), w.block.exec_addr());
/// ```
#[derive(Clone, Copy)]
pub struct IpiSyncRemote<M: 'static> {
    work: &'static RemoteInvalidate<M>,
}

impl<M: Maintenance + Sync> IpiSyncRemote<M> {
    /// The strategy, with its IPI work.
    pub const fn new(work: &'static RemoteInvalidate<M>) -> Self {
        Self { work }
    }
}

impl<W: Maintenance + Sync> Strategy for IpiSyncRemote<W> {
    type Site = IndirectSite;

    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &IndirectSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = site.claim()?;
        // One publication at a time per work item: the block it carries is this one.
        let _serial = self.work.serial.lock();
        block.sync(env.sync);
        *self.work.block.write() = Some(*block);
        env.platform
            .ipi_sync(env.others(), self.work, env.timeout)?;
        env.sync.backend().isb();
        site.store_release(block.exec_addr(), env.sync.backend());
        Ok(())
    }
}
