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

/// Remote invalidation, the one implementation: make a range of code fresh on every online core
/// without relying on broadcast `IC IVAU` (the IPI work of [`IpiSyncRemote`], and what a kernel
/// uses to install code before anyone runs it). Lives in a `static`, because a late core may run
/// the work after the caller gave up.
pub struct RemoteInvalidate<M: 'static> {
    sync: CodeSync<M>,
    /// The executable range being made fresh: start and length.
    range: spin::RwLock<Option<(usize, usize)>>,
    serial: spin::Mutex<()>,
}

impl<M: Maintenance> RemoteInvalidate<M> {
    /// Work that invalidates with `sync` (each core's own backend, e.g. `hw::Hw`).
    pub const fn new(sync: CodeSync<M>) -> Self {
        Self {
            sync,
            range: spin::RwLock::new(None),
            serial: spin::Mutex::new(()),
        }
    }
}

impl<M: Maintenance + Sync> RemoteInvalidate<M> {
    /// Makes the `len` bytes written at `write_va` (executable at `exec_va`) fresh on every
    /// online core: clean and invalidate here (`DC CVAU`, `DSB ISH`, `IC IVAU`, `DSB ISH`), then
    /// each other core invalidates the range itself in an IPI (`DMB ISH`, `IC IVAU`, `DSB ISH`)
    /// and synchronizes on its exception return. The caller synchronizes itself (`ISB`).
    ///
    /// # Safety
    ///
    /// Both ranges are mapped (the write alias as Normal memory) for the rest of the program.
    pub unsafe fn sync_everywhere<P: Platform + ?Sized, N: Maintenance>(
        &'static self,
        env: &Env<'_, P, N>,
        write_va: usize,
        exec_va: usize,
        len: usize,
    ) -> Result<(), PublishError> {
        // One range at a time: the range the work carries is this one.
        let _serial = self.serial.lock();
        // SAFETY: the caller's contract.
        unsafe { env.sync.sync_range(write_va, exec_va, len) };
        *self.range.write() = Some((exec_va, len));
        env.platform
            .ipi_sync(env.others(), self, env.timeout)
            .map_err(PublishError::from)
    }
}

impl<M: Maintenance + Sync> IpiWork for RemoteInvalidate<M> {
    fn run(&self, _core: CoreId) {
        if let Some((exec_va, len)) = *self.range.read() {
            // The producer's clean reached this core through the mailbox's release/acquire, which
            // orders later loads and stores but not an IC: a DMB ISH orders the invalidation after
            // what the acquire observed (catalogue: MP.RF+dmb.st+dmb.ish-dc-dsb-ic-dsb-isb is
            // Forbidden, its DMB LD twin Allowed; found by the sanitizer with ic-broadcast=off).
            self.sync.backend().dmb_ish();
            // SAFETY: `sync_everywhere`'s caller guaranteed the range stays mapped.
            unsafe { self.sync.invalidate_range(exec_va, len) };
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
        // SAFETY: a live block's two aliases are mapped for as long as its arena exists, and
        // arenas that publish are statics (see `Strategy::publish`).
        unsafe {
            self.work.sync_everywhere(
                env,
                block.write_addr(),
                block.exec_addr() as usize,
                block.len(),
            )?
        };
        env.sync.backend().isb();
        site.store_release(block.exec_addr(), env.sync.backend());
        Ok(())
    }
}
