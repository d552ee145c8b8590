//! Every patch site, declared once by name with its strategy, and the one publication path.
//!
//! [`SITES`] is the table. Each [`Site`] owns its site objects (target cell, per-core cells,
//! flip word, in-place range) and its slots, and is what every producer calls: the demo, the
//! stress tests, the bench and the host through the `live` test.
//!
//! - [`Site::install`] puts a site's first code in place before its consumers run it;
//! - [`Site::publish`] checks, places and publishes a block with the site's strategy
//!   (acknowledgements included) and retires what it replaced (`patcher::publish`); the error
//!   says what is reachable ([`PatchError`]);
//! - [`Site::running`] says what runs there now; [`Site::entry`] is where consumers call, after
//!   [`Site::enter`] (the sequence check's entry check; nothing for the others).
//!
//! Consumers reach a site through its entry sequence (`extern "C"`, the payload's signature):
//! - indirect sites: `ADRP X16; LDR X16; BR X16` through one target cell (three instructions, no
//!   barrier);
//! - per-core sites: `MRS X16, TPIDR_EL0` (or `TPIDRRO_EL0`); `LDR X17, [X16]; BR X17`, through
//!   the calling core's own [`ConsumerCell`], leaving its address in `X16` as the flush stub
//!   expects (no EL0 code runs here, so both registers are free);
//! - the flip word and the in-place range live in the arena's fixed page ([`super::Fixed`]).
//!
//! Adding a strategy: its type in `patcher/src/strategy/`, one entry in [`SITES`] (and its
//! storage and stress test beside it), its litmus file in `tests/litmus/`, and its name as a
//! `protocol::Strategy` variant (the records the host checks name it).

use super::payload::Answer;
use super::{Fixed, PatchError, service};
use boards::MAX_CORES;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use patcher::arena::CodeBlock;
use patcher::cache::hw::Hw;
use patcher::platform::CoreId;
use patcher::publish::{Bound, Publish, Slots};
use patcher::strategy::{
    BranchFlip, ConsumerCell, Env, FlipSite, FlushThenRedirect, InPlace, InPlaceSite, IndirectSite,
    IpiSync, IpiSyncRemote, PublishError, RemoteInvalidate, Rendezvous, SeqCheck, Strategy as _,
};
use protocol::Strategy;

use super::platform::KernelPlatform;

/// What the kernel's strategies publish with.
pub type KernelEnv<'a> = Env<'a, KernelPlatform, Hw>;
type Publisher = dyn Publish<KernelPlatform, Hw>;

/// Declares a patchable entry point: a static target cell and its trampoline
/// (`ADRP X16; LDR X16; BR X16`), named `$symbol` in the ELF, and a function giving its address.
macro_rules! indirect_site {
    ($(#[$doc:meta])* $cell:ident, $entry:ident, $symbol:literal) => {
        $(#[$doc])*
        static $cell: IndirectSite = IndirectSite::new(0);

        core::arch::global_asm!(
            ".section .text.graft_sites, \"ax\"",
            ".balign 64",
            concat!(".global ", $symbol),
            concat!($symbol, ":"),
            "    adrp x16, {cell}",
            "    ldr  x16, [x16, :lo12:{cell}]",
            "    br   x16",
            cell = sym $cell,
        );

        fn $entry() -> usize {
            unsafe extern "C" {
                #[link_name = $symbol]
                fn trampoline();
            }
            trampoline as *const () as usize
        }
    };
}

/// Declares a per-core patchable entry point: `MRS X16, $reg; LDR X17, [X16]; BR X17`, through
/// the calling core's cell in `$cells` (see [`init_core`]).
macro_rules! per_core_site {
    ($(#[$doc:meta])* $cells:ident, $entry:ident, $reg:literal, $symbol:literal) => {
        $(#[$doc])*
        static $cells: [ConsumerCell; MAX_CORES] = [const { ConsumerCell::new(0) }; MAX_CORES];

        core::arch::global_asm!(
            ".section .text.graft_sites, \"ax\"",
            ".balign 64",
            concat!(".global ", $symbol),
            concat!($symbol, ":"),
            concat!("    mrs  x16, ", $reg),
            "    ldr  x17, [x16]",
            "    br   x17",
        );

        fn $entry() -> usize {
            unsafe extern "C" {
                #[link_name = $symbol]
                fn trampoline();
            }
            trampoline as *const () as usize
        }
    };
}

indirect_site!(
    /// The `ipi-sync` site's target.
    IPI_SYNC_CELL,
    ipi_sync_entry,
    "graft_site_ipi_sync"
);
indirect_site!(
    /// The `ipi-sync-remote` site's target.
    IPI_REMOTE_CELL,
    ipi_remote_entry,
    "graft_site_ipi_sync_remote"
);
indirect_site!(
    /// The `seq-check` site's target.
    SEQ_CELL,
    seq_entry,
    "graft_site_seq_check"
);
per_core_site!(
    /// The `flush-then-redirect` site's cells, one per core.
    FTR_CELLS,
    ftr_entry,
    "tpidr_el0",
    "graft_site_flush_then_redirect"
);
per_core_site!(
    /// The `ftr-multi` site's cells, one per core.
    FTR_MULTI_CELLS,
    ftr_multi_entry,
    "tpidrro_el0",
    "graft_site_ftr_multi"
);

const _: () = assert!(core::mem::size_of::<ConsumerCell>() == 128);

/// Points this core's per-core sites at its own cells: call once on every core at bring-up.
pub fn init_core(core: usize) {
    use aarch64_cpu::registers::{TPIDR_EL0, TPIDRRO_EL0, Writeable as _};
    TPIDR_EL0.set(&FTR_CELLS[core] as *const ConsumerCell as u64);
    TPIDRRO_EL0.set(&FTR_MULTI_CELLS[core] as *const ConsumerCell as u64);
}

static IPI_SYNC: Bound<IpiSync, IndirectSite> = Bound::new(&IpiSync, &IPI_SYNC_CELL);
static SEQ: SeqCheck<MAX_CORES> = SeqCheck::new();
static SEQ_SITE: Bound<SeqCheck<MAX_CORES>, IndirectSite> = Bound::new(&SEQ, &SEQ_CELL);

/// A per-core site: flush-then-redirect over the cells of the cores that consume it.
struct PerCore {
    cells: &'static [ConsumerCell; MAX_CORES],
    one_at_a_time: bool,
    /// The stub consumers are redirected to instead of the flush stub (0: the flush stub).
    stub_override: AtomicU64,
    /// Consumers are cores `first..end`; `end` 0: up to the last online core.
    first: AtomicUsize,
    end: AtomicUsize,
}

impl PerCore {
    const fn new(cells: &'static [ConsumerCell; MAX_CORES], one_at_a_time: bool) -> Self {
        Self {
            cells,
            one_at_a_time,
            stub_override: AtomicU64::new(0),
            first: AtomicUsize::new(1),
            end: AtomicUsize::new(0),
        }
    }

    fn strategy(&self) -> FlushThenRedirect {
        let stub = match self.stub_override.load(Ordering::Acquire) {
            0 => super::stub_addr(),
            other => other,
        };
        if self.one_at_a_time {
            FlushThenRedirect::one_at_a_time(stub)
        } else {
            FlushThenRedirect::new(stub)
        }
    }

    fn consumers(&self) -> &'static [ConsumerCell] {
        let end = match self.end.load(Ordering::Acquire) {
            0 => crate::smp::online().len(),
            n => n,
        }
        .min(MAX_CORES);
        let first = self.first.load(Ordering::Acquire).min(end);
        &self.cells[first..end]
    }
}

impl Publish<KernelPlatform, Hw> for PerCore {
    fn publish(&self, env: &KernelEnv<'_>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        self.strategy().publish(env, self.consumers(), block)
    }

    fn install(&self, env: &KernelEnv<'_>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        self.strategy().install(env, self.consumers(), block)
    }
}

static FTR: PerCore = PerCore::new(&FTR_CELLS, true);
static FTR_MULTI: PerCore = PerCore::new(&FTR_MULTI_CELLS, false);

/// The sites in the arena's fixed page, made once its addresses are known.
struct FixedSites {
    flip: Bound<BranchFlip, FlipSite>,
    in_place: InPlace<Hw, MAX_CORES>,
    remote: Bound<IpiSyncRemote<Hw>, IndirectSite>,
}

static FIXED: spin::Once<FixedSites> = spin::Once::new();
static FLIP_SITE: spin::Once<FlipSite> = spin::Once::new();
static IN_PLACE_SITE: spin::Once<InPlaceSite> = spin::Once::new();
static RENDEZVOUS: spin::Once<Rendezvous<Hw, MAX_CORES>> = spin::Once::new();
static REMOTE: spin::Once<RemoteInvalidate<Hw>> = spin::Once::new();
static IPI_REMOTE: spin::Once<IpiSyncRemote<Hw>> = spin::Once::new();

/// The remote-invalidation work (one for the kernel: installation and `ipi-sync-remote`).
pub(super) fn remote() -> &'static RemoteInvalidate<Hw> {
    REMOTE.call_once(|| RemoteInvalidate::new(patcher::cache::CodeSync::for_this_core(Hw)))
}

/// Stop-the-world's rendezvous (one for the kernel).
pub fn rendezvous() -> &'static Rendezvous<Hw, MAX_CORES> {
    RENDEZVOUS.call_once(|| Rendezvous::new(patcher::cache::CodeSync::for_this_core(Hw)))
}

fn fixed() -> &'static FixedSites {
    FIXED.call_once(|| {
        let (flip_exec, flip_write) = super::arena_addr(Fixed::FLIP);
        let flip = FLIP_SITE.call_once(|| {
            // SAFETY: (1) the fixed page's flip word, mapped through both views; (2) only this
            // FlipSite writes it (service set-up wrote its first NOP before anything ran it).
            unsafe { FlipSite::new(flip_write, flip_exec) }.expect("aligned flip word")
        });
        let (ip_exec, ip_write) = super::arena_addr(Fixed::IN_PLACE);
        let in_place = IN_PLACE_SITE.call_once(|| {
            // SAFETY: the fixed page's in-place range, mapped through both views and written
            // only through stop-the-world.
            unsafe { InPlaceSite::new(ip_write, ip_exec, Fixed::IN_PLACE_LEN / 4) }
                .expect("aligned in-place site")
        });
        let ipi_remote = IPI_REMOTE.call_once(|| IpiSyncRemote::new(remote()));
        FixedSites {
            flip: Bound::new(&BranchFlip, flip),
            in_place: InPlace::new(rendezvous(), in_place),
            remote: Bound::new(ipi_remote, &IPI_REMOTE_CELL),
        }
    })
}

/// Where a site's consumers call, for each kind of site.
#[derive(Clone, Copy)]
enum Entry {
    Trampoline(fn() -> usize),
    Fixed(usize),
}

/// What a site is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A publication strategy: the demo, the bench and the stress tests run it.
    Strategy,
    /// A site for the host's live patches (the strategy of an existing one, its own storage).
    Live,
}

/// One patchable site. See the module documentation.
pub struct Site {
    /// Its name (for publication strategies, the strategy's name).
    pub name: &'static str,
    /// The strategy it publishes with, as both sides name it.
    strategy: Strategy,
    /// What it is for.
    pub role: Role,
    publisher: fn() -> &'static Publisher,
    entry: Entry,
    /// Whether consumers run the sequence check's entry check before the call.
    seq_checked: bool,
    per_core: Option<&'static PerCore>,
    /// The consumer's path through the site, for people (the bench prints it).
    pub path: &'static str,
    /// What the site leads to; the lock serializes producers.
    slots: spin::Mutex<Slots>,
    /// Publications completed (what `running` reports for sites that copy code in place).
    published: AtomicU64,
}

impl Site {
    /// The same site under another name (a site for live patches that shares a strategy).
    const fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The strategy it publishes with.
    pub const fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The same site, with `path` describing the consumer's path through it.
    const fn path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    /// The same site, consumed through per-core cells.
    const fn per_core(mut self, cells: &'static PerCore) -> Self {
        self.per_core = Some(cells);
        self
    }

    const fn new(
        strategy: Strategy,
        role: Role,
        publisher: fn() -> &'static Publisher,
        entry: Entry,
        seq_checked: bool,
    ) -> Self {
        Self {
            name: strategy.name(),
            strategy,
            role,
            publisher,
            entry,
            seq_checked,
            per_core: None,
            path: "",
            slots: spin::Mutex::new(Slots::new()),
            published: AtomicU64::new(0),
        }
    }
}

fn ipi_sync() -> &'static Publisher {
    &IPI_SYNC
}
fn ipi_remote() -> &'static Publisher {
    &fixed().remote
}
fn flip() -> &'static Publisher {
    &fixed().flip
}
fn ftr() -> &'static Publisher {
    &FTR
}
fn ftr_multi() -> &'static Publisher {
    &FTR_MULTI
}
fn seq() -> &'static Publisher {
    &SEQ_SITE
}
fn in_place() -> &'static Publisher {
    &fixed().in_place
}
/// The sequence check's entry check on `core` (what `seq-check` consumers run before the call).
#[inline]
pub fn seq_enter(core: CoreId) -> bool {
    SEQ.enter(core, &Hw)
}

indirect_site!(
    /// The `live` site's target: what the host patches.
    LIVE_CELL,
    live_entry,
    "graft_site_live"
);
static LIVE: Bound<IpiSync, IndirectSite> = Bound::new(&IpiSync, &LIVE_CELL);
fn live() -> &'static Publisher {
    &LIVE
}

/// Every site, publication strategies in the order the demo and the bench run them.
pub static SITES: [Site; 8] = [
    Site::new(
        Strategy::BranchFlip,
        Role::Strategy,
        flip,
        Entry::Fixed(Fixed::FLIP),
        false,
    )
    .path("BL site; B block"),
    Site::new(
        Strategy::IpiSync,
        Role::Strategy,
        ipi_sync,
        Entry::Trampoline(ipi_sync_entry),
        false,
    )
    .path("ADRP, LDR, BR"),
    Site::new(
        Strategy::IpiSyncRemote,
        Role::Strategy,
        ipi_remote,
        Entry::Trampoline(ipi_remote_entry),
        false,
    )
    .path("ADRP, LDR, BR"),
    Site::new(
        Strategy::FlushThenRedirect,
        Role::Strategy,
        ftr,
        Entry::Trampoline(ftr_entry),
        false,
    )
    .per_core(&FTR)
    .path("MRS, LDR, BR"),
    Site::new(
        Strategy::FtrMulti,
        Role::Strategy,
        ftr_multi,
        Entry::Trampoline(ftr_multi_entry),
        false,
    )
    .per_core(&FTR_MULTI)
    .path("MRS, LDR, BR"),
    Site::new(
        Strategy::SeqCheck,
        Role::Strategy,
        seq,
        Entry::Trampoline(seq_entry),
        true,
    )
    .path("entry check in Rust, then ADRP, LDR, BR"),
    Site::new(
        Strategy::StopTheWorld,
        Role::Strategy,
        in_place,
        Entry::Fixed(Fixed::IN_PLACE),
        false,
    )
    .path("code patched in place: a direct call"),
    Site::new(
        Strategy::IpiSync,
        Role::Live,
        live,
        Entry::Trampoline(live_entry),
        false,
    )
    .named("indirect")
    .path("ADRP, LDR, BR"),
];

// Each strategy's stress test (`tests/patch.rs`) and its sanitized verdicts: [with default
// switches, with ic-broadcast=off]. `patch-ipi` and `patch-branch` rely on broadcast
// invalidation and must be flagged without it; `patch-ipi-remote` and the flush-then-redirect
// consumers invalidate on each core and must pass either way.
use crate::tests::patch::{How, stress_test};
stress_test!(
    PATCH_BRANCH,
    "patch-branch",
    Strategy::BranchFlip.name(),
    How::PLAIN,
    [Clean, Hazard]
);
stress_test!(
    PATCH_IPI,
    "patch-ipi",
    Strategy::IpiSync.name(),
    How::PLAIN,
    [Clean, Hazard]
);
stress_test!(
    PATCH_IPI_REMOTE,
    "patch-ipi-remote",
    Strategy::IpiSyncRemote.name(),
    How::PLAIN,
    [Clean, Clean]
);
// Its single consumer, core 1.
stress_test!(
    PATCH_FTR,
    "patch-ftr",
    Strategy::FlushThenRedirect.name(),
    How {
        end: 2,
        ..How::PLAIN
    },
    [Clean, No]
);
stress_test!(
    PATCH_FTR_MULTI,
    "patch-ftr-multi",
    Strategy::FtrMulti.name(),
    How::PLAIN,
    [Clean, Clean]
);
stress_test!(
    PATCH_SEQ,
    "patch-seq",
    Strategy::SeqCheck.name(),
    How::PLAIN,
    [Clean, No]
);
// Consumers mask IRQs around the call, as a control loop would (patch-stw-irq does not).
stress_test!(
    PATCH_STW,
    "patch-stw",
    Strategy::StopTheWorld.name(),
    How {
        irqs_masked: true,
        ..How::PLAIN
    },
    [Clean, No]
);

/// Edits the stop-the-world site postponed so far because a stopped core was inside it.
pub fn in_place_postponed() -> u64 {
    fixed().in_place.postponed()
}

/// How many sites are publication strategies: one per strategy both sides name.
pub const STRATEGIES: usize = Strategy::ALL.len();

/// Checks the table's shape once (the strategies come first, names are unique).
pub(super) fn check_table() {
    for (i, site) in SITES.iter().enumerate() {
        assert_eq!(
            site.role == Role::Strategy,
            i < STRATEGIES,
            "the strategies come first in SITES"
        );
        if i < STRATEGIES {
            assert_eq!(
                site.strategy,
                Strategy::ALL[i],
                "SITES lists the strategies in protocol's report order"
            );
        }
        assert!(
            SITES[..i].iter().all(|s| s.name != site.name),
            "two sites are called {}",
            site.name
        );
    }
}

/// The publication strategies' sites, in demo order.
pub fn strategies() -> &'static [Site] {
    &SITES[..STRATEGIES]
}

/// The site called `name`.
pub fn site(name: &str) -> Result<&'static Site, PatchError> {
    SITES
        .iter()
        .find(|s| s.name == name)
        .ok_or(PatchError::UnknownSite)
}

impl Site {
    /// Points a per-core site at `stub` instead of the flush stub: only for the negative
    /// control that runs the stub without its `ISB`.
    pub(super) fn use_stub(&self, stub: u64) -> Result<(), PatchError> {
        let cells = self.per_core.ok_or(PatchError::UnknownSite)?;
        cells.stub_override.store(stub, Ordering::Release);
        Ok(())
    }
}

impl Site {
    /// Where consumers call (with the payload's own signature), after [`enter`](Self::enter).
    pub fn entry(&self) -> usize {
        match self.entry {
            Entry::Trampoline(f) => f(),
            Entry::Fixed(off) => super::arena_addr(off).0,
        }
    }

    /// The consumer-side entry check of `core` (the sequence check's; nothing elsewhere):
    /// whether it had to synchronize.
    ///
    /// Inline, not through a function pointer: the check is on every call's path.
    #[inline]
    pub fn enter(&self, core: CoreId) -> bool {
        self.seq_checked && seq_enter(core)
    }

    /// Only cores `first..end` consume this site (per-core sites; others ignore it). By
    /// default every online core but core 0 does.
    pub fn set_consumers(&self, first: usize, end: usize) {
        if let Some(cells) = self.per_core {
            cells.first.store(first, Ordering::Release);
            cells.end.store(end, Ordering::Release);
        }
    }

    /// What runs at the site now: the executable address of the block it leads to (for sites
    /// that copy code in place, the site's own address), and how many publications completed.
    pub fn running(&self) -> (u64, u64) {
        let addr = self
            .slots
            .lock()
            .live()
            .and_then(|slot| service().arena().exec_addr(slot).ok())
            .unwrap_or(self.entry() as u64);
        (addr, self.published.load(Ordering::Acquire))
    }

    /// Checks `code`, places it and makes it the site's first code, before any consumer runs
    /// it; then every core synchronizes its context once.
    pub fn install(&self, code: &[u8], timeout: Duration) -> Result<(), PatchError> {
        self.publish_with(code, timeout, |_| true, true)?;
        super::sync_all(timeout)
    }

    /// Checks `code`, places it, publishes it with the site's strategy and retires what it
    /// replaced. One producer at a time: a second one gets [`PatchError::Busy`]. Refused, with
    /// nothing written, when the block breaks a rule or no slot comes free in `timeout`.
    pub fn publish(&self, code: &[u8], timeout: Duration) -> Result<(), PatchError> {
        self.publish_with(code, timeout, |_| true, false)
    }

    /// [`publish`](Self::publish), where `vet` sees the slot's executable address before
    /// anything is written and may refuse it ([`PatchError::Place`] `Vetoed`).
    pub fn publish_vetted(
        &self,
        code: &[u8],
        timeout: Duration,
        vet: impl FnOnce(u64) -> bool,
    ) -> Result<(), PatchError> {
        self.publish_with(code, timeout, vet, false)
    }

    fn publish_with(
        &self,
        code: &[u8],
        timeout: Duration,
        vet: impl FnOnce(u64) -> bool,
        first: bool,
    ) -> Result<(), PatchError> {
        self.publish_through((self.publisher)(), code, timeout, vet, first)
    }

    /// The one path: place, publish through `site` (this site's strategy, or a wrapper of it),
    /// settle the slots.
    fn publish_through(
        &self,
        site: &Publisher,
        code: &[u8],
        timeout: Duration,
        vet: impl FnOnce(u64) -> bool,
        first: bool,
    ) -> Result<(), PatchError> {
        let mut slots = self.slots.try_lock().ok_or(PatchError::Busy)?;
        let env = super::env(timeout);
        let publisher = service().publisher();
        let block = publisher
            .place(
                &KernelPlatform,
                timeout,
                code,
                &patcher::check::Externals::NONE,
                vet,
            )
            .map_err(PatchError::Place)?;
        let result = if first {
            publisher.install(&env, site, &mut slots, block)
        } else {
            publisher.publish(&env, site, &mut slots, block)
        };
        result.map_err(PatchError::from)?;
        self.published.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Publishes `code` to a per-core site and returns the publisher's own instructions for
    /// redirecting every consumer's cell (its wait for their acknowledgements excluded): what
    /// each consumer costs the publisher, for the bench.
    pub fn redirect_cost(&self, code: &[u8], timeout: Duration) -> Result<u64, PatchError> {
        /// The site's strategy, with the redirect counted on the PMU.
        struct Counted(&'static PerCore, AtomicU64);
        impl Publish<KernelPlatform, Hw> for Counted {
            fn publish(
                &self,
                env: &KernelEnv<'_>,
                block: &CodeBlock<'static>,
            ) -> Result<(), PublishError> {
                let (ftr, cells) = (self.0.strategy(), self.0.consumers());
                let before = crate::arch::pmu::instructions();
                ftr.redirect(env, cells, block)?;
                self.1
                    .store(crate::arch::pmu::instructions() - before, Ordering::Relaxed);
                ftr.wait_acknowledged(env, cells, block)
            }
        }
        let cells = self.per_core.ok_or(PatchError::UnknownSite)?;
        let counted = Counted(cells, AtomicU64::new(0));
        self.publish_through(&counted, code, timeout, |_| true, false)?;
        Ok(counted.1.load(Ordering::Relaxed))
    }

    /// Holds the site as a producer would while publishing (for tests of concurrent producers).
    pub fn hold(&self) -> Option<spin::MutexGuard<'_, Slots>> {
        self.slots.try_lock()
    }
}

/// Calls the code at `entry` with the payload signature.
///
/// # Safety
///
/// `entry` must be a site's entry whose code is a payload (`patch::payload`), and `inside` a
/// valid, writable cell.
pub unsafe fn call_payload(entry: usize, inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract; every trampoline passes x0 through to the payload.
    unsafe {
        let f = core::mem::transmute::<usize, super::payload::Entry>(entry);
        f(inside)
    }
}
