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
//! - [`Site::running`] says what runs there now; [`Site::entry`] is where consumers call.
//!
//! Consumers reach a site through its entry sequence (`extern "C"`, the payload's signature):
//! - indirect sites: `ADRP X16; LDR X16; BR X16` through one target cell (three instructions, no
//!   barrier);
//! - the sequence-checked site: its entry check, then the branch through its cell, all in its
//!   trampoline (`seq_check_site!`: nine instructions when nothing was published);
//! - per-core sites: `MRS X16, TPIDR_EL0` (or `TPIDRRO_EL0`); `LDR X17, [X16]; BR X17`, through
//!   the calling core's own [`ConsumerCell`], leaving its address in `X16` as the flush stub
//!   expects (no EL0 code runs here, so both registers are free);
//! - the flip word and the in-place range live in the arena's fixed page ([`super::Fixed`]);
//! - call sites: the caller's own `BL` is the word a publication rewrites (`super::call_sites`);
//!   the site's two entries are two callers, each with its own call site of the one key.
//!
//! Adding a strategy touches three files: its type in a new file in `patcher/src/strategy/`
//! (the directory's modules are declared by listing it), one entry in [`SITES`] with its name
//! in [`names`] (its storage, consumer path and stress test beside it, all in this file), and
//! its litmus file in `tests/litmus/`. The host learns the strategies from the kernel
//! ([`announce`]), so neither the protocol crate nor xtask lists them.

use super::payload::Answer;
use super::{Fixed, PatchError, PlaceError, SLOT_SIZE, service};
use boards::MAX_CORES;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use patcher::arena::CodeBlock;
use patcher::cache::hw::Hw;
use patcher::platform::CoreId;
use patcher::publish::{Bound, Publish, Slots};
use patcher::strategy::{
    BranchFlip, ConsumerCell, ConsumerCells, Env, FlipSite, FlushThenRedirect, InPlace,
    InPlaceSite, IndirectSite, IpiSync, IpiSyncRemote, PublishError, RemoteInvalidate, Rendezvous,
    SeqCheck, Strategy as _,
};
use protocol::record::{NAME_BYTES, Name, Record};

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
        static $cells: ConsumerCells<[ConsumerCell; MAX_CORES]> = ConsumerCells::new(0);

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

/// A sequence-checked site's target cell and sequence state, on one page so that its
/// trampoline reaches both from one `ADRP` (page aligned: the cell is at the page's start,
/// where `LDAR`, which takes no offset, can load it).
#[repr(C, align(4096))]
struct SeqState {
    cell: IndirectSite,
    check: SeqCheck<MAX_CORES>,
}

const _: () = assert!(core::mem::offset_of!(SeqState, cell) == 0);
const _: () = assert!(core::mem::offset_of!(SeqState, check) % 8 == 0);

/// Declares a sequence-checked entry point: its [`SeqState`] `$state` and its trampoline, named
/// `$symbol` in the ELF, which runs the entry check itself (herd7:
/// `tests/litmus/seq-check.litmus`), 9 instructions when nothing was published:
///
/// ```text
/// ADRP X17, state; LDAR X16, [X17]      the cell first, with acquire
/// LDR X9, [X17, #seq]                   the global sequence
/// MRS X10, TPIDR_EL1                    this core's index (boot.s)
/// ADD X10, X17, X10, LSL #shift         and its record, from the state's page
/// LDR X11, [X10, #seen]
/// CMP X9, X11; B.NE 1f; BR X16
/// 1: ISB; ADD X10, X10, #seen
/// STLR X9, [X10]; BR X16                behind: synchronize, then record the sequence
/// ```
///
/// The `ISB` sits under the `B.NE` on the loaded sequence, so it is ordered after the
/// producer's maintenance that the sequence's store-release follows; only then does the
/// record (which the producer waits for before it stores the cell) say so. It clobbers only
/// `X9`-`X11`, `X16` and `X17`, and passes every argument register through to the block. (It
/// used to read its record's address from `SP_EL0`; that register is now the kernel's own stack,
/// exceptions running on `SP_EL1`, so it computes the address from the core's index: one more
/// instruction on its path.)
macro_rules! seq_check_site {
    ($(#[$doc:meta])* $state:ident, $entry:ident, $symbol:literal) => {
        $(#[$doc])*
        static $state: SeqState = SeqState {
            cell: IndirectSite::new(0),
            check: SeqCheck::new(),
        };

        core::arch::global_asm!(
            ".section .text.graft_sites, \"ax\"",
            ".balign 64",
            concat!(".global ", $symbol),
            concat!($symbol, ":"),
            "    adrp x17, {state}",
            "    ldar x16, [x17]",
            "    ldr  x9, [x17, #{seq}]",
            "    mrs  x10, tpidr_el1",
            "    add  x10, x17, x10, lsl #{shift}",
            "    ldr  x11, [x10, #{seen}]",
            "    cmp  x9, x11",
            "    b.ne 1f",
            "    br   x16",
            "1:  isb",
            "    add  x10, x10, #{seen}",
            "    stlr x9, [x10]",
            "    br   x16",
            state = sym $state,
            seq = const core::mem::offset_of!(SeqState, check)
                + SeqCheck::<MAX_CORES>::SEQUENCE_OFFSET,
            seen = const core::mem::offset_of!(SeqState, check)
                + SeqCheck::<MAX_CORES>::SEEN_OFFSET,
            shift = const SeqCheck::<MAX_CORES>::SEEN_SHIFT,
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
seq_check_site!(
    /// The `seq-check` site: its target and its sequences.
    SEQ,
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
///
/// (The sequence-checked trampoline finds its record from `TPIDR_EL1`, the core's index;
/// `SP_EL0` is the kernel's own stack: exceptions run on `SP_EL1`, see `arch::boot`.)
pub fn init_core(core: usize) {
    use aarch64_cpu::registers::{TPIDR_EL0, TPIDRRO_EL0, Writeable as _};
    let cell = |site: &ConsumerCells| &site.cells()[core] as *const ConsumerCell as u64;
    TPIDR_EL0.set(cell(&FTR_CELLS));
    TPIDRRO_EL0.set(cell(&FTR_MULTI_CELLS));
    debug_assert_eq!(
        SEQ.check.seen_addr(CoreId(core as u8)),
        &SEQ as *const SeqState as usize
            + core::mem::offset_of!(SeqState, check)
            + SeqCheck::<MAX_CORES>::SEEN_OFFSET
            + (core << SeqCheck::<MAX_CORES>::SEEN_SHIFT),
        "the trampoline's record address"
    );
}

static IPI_SYNC: Bound<IpiSync, IndirectSite> = Bound::new(&IpiSync, &IPI_SYNC_CELL);
static SEQ_SITE: Bound<SeqCheck<MAX_CORES>, IndirectSite> = Bound::new(&SEQ.check, &SEQ.cell);

/// A per-core site: flush-then-redirect over the cells of the cores that consume it.
struct PerCore {
    cells: &'static ConsumerCells,
    one_at_a_time: bool,
    /// The stub consumers are redirected to instead of the flush stub (0: the flush stub).
    stub_override: AtomicU64,
    /// Consumers are cores `first..end`; `end` 0: up to the last online core.
    first: AtomicUsize,
    end: AtomicUsize,
}

impl PerCore {
    const fn new(cells: &'static ConsumerCells, one_at_a_time: bool) -> Self {
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

    /// The site, its consumers set to cores `first..end` (`end` 0: up to the last online
    /// core, counted now).
    fn consumers(&self) -> &'static ConsumerCells {
        let end = match self.end.load(Ordering::Acquire) {
            0 => crate::smp::online().len(),
            n => n,
        };
        self.cells
            .set_consumers(self.first.load(Ordering::Acquire), end);
        self.cells
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
    /// The strategy it publishes with, as reports name it (one of [`names`]).
    strategy: &'static str,
    /// What it is for.
    pub role: Role,
    publisher: fn() -> &'static Publisher,
    entry: Entry,
    /// Another entry to the same code (call sites: a second caller of the key).
    second: Option<fn() -> usize>,
    /// The sequences its trampoline checks (sequence-checked sites only).
    seq: Option<&'static SeqCheck<MAX_CORES>>,
    /// Whether a publication keeps the replaced block live in its slot, for [`Site::restore`]
    /// (a site of blocks linked for their slot's address; it holds two slots).
    keeps_previous: bool,
    per_core: Option<&'static PerCore>,
    /// The consumer's path through the site, for people (the bench prints it).
    pub path: &'static str,
    /// What the site leads to; the lock serializes producers.
    slots: spin::Mutex<Slots>,
    /// Publications completed (what `running` reports for sites that copy code in place).
    published: AtomicU64,
    /// The code it runs now and what it ran before: what a rollback puts back.
    history: spin::Mutex<History>,
}

/// The one publication path's publisher over the kernel's arena.
type KernelPublisher = patcher::publish::Publisher<{ super::SLOTS }, MAX_CORES>;

/// A slot reserved for a block still to be built for its address ([`Site::reserve`]).
pub struct Reservation {
    slot: patcher::arena::SlotWriter<'static, { super::SLOTS }>,
}

impl Reservation {
    /// The slot's executable address: where the block will run.
    pub fn addr(&self) -> u64 {
        self.slot.exec_addr()
    }

    /// Runs the checks [`Site::publish_reserved`] runs on `code` at this slot, writing nothing:
    /// a staged block is checked before it is activated.
    pub fn check(
        &self,
        code: &[u8],
        externals: &'static patcher::check::Externals<'static>,
    ) -> Result<(), PatchError> {
        self.slot
            .check(code, externals, &patcher::check::Policy::KERNEL_SITES)
            .map(|_| ())
            .map_err(|e| PatchError::Place(PlaceError::Check(e)))
    }
}

/// Placement in a free slot, with `vet` and `policy` ([`Site::publish`]'s).
fn fresh<'c>(
    code: &'c [u8],
    timeout: Duration,
    vet: impl FnOnce(u64) -> bool + 'c,
    policy: &'static patcher::check::Policy<'static>,
) -> impl FnOnce(&KernelPublisher) -> Result<CodeBlock<'static>, PlaceError> + 'c {
    move |p| {
        p.place(
            &KernelPlatform,
            timeout,
            code,
            &patcher::check::Externals::NONE,
            policy,
            vet,
        )
    }
}

/// What [`Site::state`] reports.
pub struct SiteState {
    /// The publication count that made the current code current (0: none yet).
    pub version: u64,
    /// CRC-32 of the current code.
    pub hash: u32,
    /// The previous code's version and hash, if a copy is kept.
    pub previous: Option<(u64, u32)>,
    /// Whether the previous block is kept in its slot (a [`Site::restore`] can lead back to it).
    pub kept_in_slot: bool,
}

/// A site's last two codes, for [`Site::roll_back`]: two buffers, the current one by index, so
/// that a publication copies only its own bytes (a rollback is on the loops' critical path,
/// and whole 4 KiB buffers moved on every publication cost it thousands of instructions).
struct History {
    kept: [Kept; 2],
    current: usize,
}

impl History {
    const EMPTY: Self = Self {
        kept: [Kept::NONE; 2],
        current: 0,
    };

    fn current(&self) -> &Kept {
        &self.kept[self.current]
    }

    fn previous(&self) -> &Kept {
        &self.kept[1 - self.current]
    }

    /// `code` became current with publication count `version`; what was current is previous.
    fn push(&mut self, code: &[u8], version: u64) {
        let next = 1 - self.current;
        self.kept[next].set(code, version);
        self.current = next;
    }

    /// The previous code became current again with publication count `version`; what it
    /// replaced is forgotten.
    fn restore(&mut self, version: u64) {
        self.current = 1 - self.current;
        self.kept[self.current].version = version;
        self.forget_previous();
    }

    /// Nothing is kept to roll back to.
    fn forget_previous(&mut self) {
        self.kept[1 - self.current].len = 0;
    }
}

/// One code a site ran, copied when published (empty: none, or too long to keep).
struct Kept {
    bytes: [u8; SLOT_SIZE],
    len: usize,
    /// The publication count that made it current.
    version: u64,
}

impl Kept {
    const NONE: Self = Self {
        bytes: [0; SLOT_SIZE],
        len: 0,
        version: 0,
    };

    fn set(&mut self, code: &[u8], version: u64) {
        match self.bytes.get_mut(..code.len()) {
            Some(dst) => {
                dst.copy_from_slice(code);
                self.len = code.len();
                self.version = version;
            }
            None => self.len = 0,
        }
    }

    fn code(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Site {
    /// The same site under another name (a site for live patches that shares a strategy).
    const fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The strategy it publishes with (one of [`names`]).
    pub const fn strategy(&self) -> &'static str {
        self.strategy
    }

    /// The same site, whose trampoline checks `seq`'s sequences.
    const fn seq_checked(mut self, seq: &'static SeqCheck<MAX_CORES>) -> Self {
        self.seq = Some(seq);
        self
    }

    /// The same site, with a second entry to the same code.
    const fn second_entry(mut self, entry: fn() -> usize) -> Self {
        self.second = Some(entry);
        self
    }

    /// The same site, with `path` describing the consumer's path through it.
    const fn path(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    /// The same site, keeping each replaced block in its slot for [`Site::restore`].
    const fn keeping_previous(mut self) -> Self {
        self.keeps_previous = true;
        self
    }

    /// The same site, consumed through per-core cells.
    const fn per_core(mut self, cells: &'static PerCore) -> Self {
        self.per_core = Some(cells);
        self
    }

    const fn new(
        strategy: &'static str,
        role: Role,
        publisher: fn() -> &'static Publisher,
        entry: Entry,
    ) -> Self {
        Self {
            name: strategy,
            strategy,
            role,
            publisher,
            entry,
            second: None,
            seq: None,
            keeps_previous: false,
            per_core: None,
            path: "",
            slots: spin::Mutex::new(Slots::new()),
            published: AtomicU64::new(0),
            history: spin::Mutex::new(History::EMPTY),
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
static CALL_SITE: super::call_sites::Publisher = super::call_sites::Publisher;
fn call_site() -> &'static Publisher {
    &CALL_SITE
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

indirect_site!(
    /// The `law` site's target: a control law (`graft_patch::Law`) the host patches from Rust
    /// source, staged at a reserved slot.
    LAW_CELL,
    law_entry,
    "graft_site_law"
);
static LAW: Bound<IpiSync, IndirectSite> = Bound::new(&IpiSync, &LAW_CELL);
fn law() -> &'static Publisher {
    &LAW
}

/// The strategies' names, as reports and the host spell them (at most `NAME_BYTES` bytes).
pub mod names {
    /// [`patcher::strategy::BranchFlip`].
    pub const BRANCH_FLIP: &str = "branch-flip";
    /// [`patcher::strategy::CallSite`]: the callers' own `BL` words of one key.
    pub const CALL_SITE: &str = "call-site";
    /// [`patcher::strategy::IpiSync`].
    pub const IPI_SYNC: &str = "ipi-sync";
    /// [`patcher::strategy::IpiSyncRemote`].
    pub const IPI_SYNC_REMOTE: &str = "ipi-sync-remote";
    /// [`patcher::strategy::FlushThenRedirect`], one consumer's cell at a time.
    pub const FLUSH_THEN_REDIRECT: &str = "flush-then-redirect";
    /// [`patcher::strategy::FlushThenRedirect`], one publication for every consumer's cell.
    pub const FTR_MULTI: &str = "ftr-multi";
    /// [`patcher::strategy::SeqCheck`].
    pub const SEQ_CHECK: &str = "seq-check";
    /// [`patcher::strategy::StopTheWorld`], through [`patcher::strategy::InPlace`].
    pub const STOP_THE_WORLD: &str = "stop-the-world";
}

/// How many sites are publication strategies: the first entries of [`SITES`].
pub const STRATEGIES: usize = 8;

/// Every site, publication strategies first, in the order the demo and the bench run them.
pub static SITES: [Site; STRATEGIES + 2] = [
    Site::new(
        names::BRANCH_FLIP,
        Role::Strategy,
        flip,
        Entry::Fixed(Fixed::FLIP),
    )
    .path("BL site; B block"),
    Site::new(
        names::CALL_SITE,
        Role::Strategy,
        call_site,
        Entry::Trampoline(super::call_sites::entry_a),
    )
    .second_entry(super::call_sites::entry_b)
    .path("the caller's own BL (bench: a loop of calls through it)"),
    Site::new(
        names::IPI_SYNC,
        Role::Strategy,
        ipi_sync,
        Entry::Trampoline(ipi_sync_entry),
    )
    .path("ADRP, LDR, BR"),
    Site::new(
        names::IPI_SYNC_REMOTE,
        Role::Strategy,
        ipi_remote,
        Entry::Trampoline(ipi_remote_entry),
    )
    .path("ADRP, LDR, BR"),
    Site::new(
        names::FLUSH_THEN_REDIRECT,
        Role::Strategy,
        ftr,
        Entry::Trampoline(ftr_entry),
    )
    .per_core(&FTR)
    .path("MRS, LDR, BR"),
    Site::new(
        names::FTR_MULTI,
        Role::Strategy,
        ftr_multi,
        Entry::Trampoline(ftr_multi_entry),
    )
    .per_core(&FTR_MULTI)
    .path("MRS, LDR, BR"),
    Site::new(
        names::SEQ_CHECK,
        Role::Strategy,
        seq,
        Entry::Trampoline(seq_entry),
    )
    .seq_checked(&SEQ.check)
    .path("ADRP, LDAR, LDR, MRS, ADD, LDR, CMP, B.NE, BR"),
    Site::new(
        names::STOP_THE_WORLD,
        Role::Strategy,
        in_place,
        Entry::Fixed(Fixed::IN_PLACE),
    )
    .path("code patched in place: a direct call"),
    Site::new(
        names::IPI_SYNC,
        Role::Live,
        live,
        Entry::Trampoline(live_entry),
    )
    .named("indirect")
    .path("ADRP, LDR, BR"),
    Site::new(
        names::IPI_SYNC,
        Role::Live,
        law,
        Entry::Trampoline(law_entry),
    )
    .named("law")
    .path("ADRP, LDR, BR")
    .keeping_previous(),
];

// Each strategy's stress test (`tests/patch.rs`) and its sanitized verdicts: [with default
// switches, with ic-broadcast=off]. `patch-ipi` and `patch-branch` rely on broadcast
// invalidation and must be flagged without it; `patch-ipi-remote` and the flush-then-redirect
// consumers invalidate on each core and must pass either way.
use crate::tests::patch::{How, stress_test};
stress_test!(
    PATCH_BRANCH,
    "patch-branch",
    names::BRANCH_FLIP,
    How::PLAIN,
    [Clean, Hazard]
);
// Consumers alternate between the key's two callers; both column verdicts as patch-branch's.
stress_test!(
    PATCH_CALL_SITE,
    "patch-call-site",
    names::CALL_SITE,
    How::PLAIN,
    [Clean, Hazard]
);
stress_test!(
    PATCH_IPI,
    "patch-ipi",
    names::IPI_SYNC,
    How::PLAIN,
    [Clean, Hazard]
);
stress_test!(
    PATCH_IPI_REMOTE,
    "patch-ipi-remote",
    names::IPI_SYNC_REMOTE,
    How::PLAIN,
    [Clean, Clean]
);
// Its single consumer, core 1.
stress_test!(
    PATCH_FTR,
    "patch-ftr",
    names::FLUSH_THEN_REDIRECT,
    How {
        end: 2,
        ..How::PLAIN
    },
    [Clean, No]
);
stress_test!(
    PATCH_FTR_MULTI,
    "patch-ftr-multi",
    names::FTR_MULTI,
    How::PLAIN,
    [Clean, Clean]
);
stress_test!(
    PATCH_SEQ,
    "patch-seq",
    names::SEQ_CHECK,
    How::PLAIN,
    [Clean, No]
);
// Consumers mask IRQs around the call, as a control loop would (patch-stw-irq does not).
stress_test!(
    PATCH_STW,
    "patch-stw",
    names::STOP_THE_WORLD,
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

/// Checks the table's shape once (the strategies come first, names are unique and fit a
/// record's name field).
pub(super) fn check_table() {
    for (i, site) in SITES.iter().enumerate() {
        assert_eq!(
            site.role == Role::Strategy,
            i < STRATEGIES,
            "the strategies come first in SITES"
        );
        assert!(
            site.name.len() <= NAME_BYTES && site.strategy.len() <= NAME_BYTES,
            "site {} has a name longer than a record's name field",
            site.name
        );
        assert!(
            SITES[..i].iter().all(|s| s.name != site.name),
            "two sites are called {}",
            site.name
        );
    }
}

/// Announces the strategies to the host, in report order: a [`Record::Strategy`] each, sent
/// before any record that names one, so the host expects a result for each.
pub fn announce() {
    for (i, site) in strategies().iter().enumerate() {
        crate::report::emit(&Record::Strategy {
            index: i as u8,
            count: STRATEGIES as u8,
            name: Name::new(site.strategy),
        });
    }
}

/// The publication strategies' sites, in demo order.
pub fn strategies() -> &'static [Site] {
    &SITES[..STRATEGIES]
}

/// Every site: the strategies', then the live service's.
pub fn all() -> &'static [Site] {
    &SITES
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
    /// Where consumers call (with the payload's own signature).
    pub fn entry(&self) -> usize {
        match self.entry {
            Entry::Trampoline(f) => f(),
            Entry::Fixed(off) => super::arena_addr(off).0,
        }
    }

    /// Both entries to the site's code (the same one twice unless the site has a second): the
    /// stress tests alternate between them.
    pub fn entries(&self) -> [usize; 2] {
        [
            self.entry(),
            self.second.map_or_else(|| self.entry(), |f| f()),
        ]
    }

    /// The sequence `core` last synchronized to in this site's entry check (sequence-checked
    /// sites; `None` elsewhere): a change across a call says the call had to synchronize.
    pub fn synced_to(&self, core: CoreId) -> Option<u64> {
        self.seq.map(|seq| seq.seen(core))
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
        let policy = &patcher::check::Policy::KERNEL_SITES;
        let place = fresh(code, timeout, vet, policy);
        self.publish_through((self.publisher)(), code, timeout, first, place)
    }

    /// Reserves a free slot for a block still to be built for its address (two-phase patching:
    /// the host links a patch at [`Reservation::addr`], then [`publish_reserved`] checks and
    /// publishes it). Nothing can reach the slot; dropping the reservation frees it.
    ///
    /// [`publish_reserved`]: Self::publish_reserved
    pub fn reserve(&self, timeout: Duration) -> Result<Reservation, PatchError> {
        service()
            .publisher()
            .reserve(&KernelPlatform, timeout)
            .map(|slot| Reservation { slot })
            .map_err(PatchError::Place)
    }

    /// Checks `code` at the reserved slot with `externals` (what the image exports for
    /// patches) and the sites' policy, writes it there and publishes it with the site's
    /// strategy: [`publish`](Self::publish)'s path from the placement on. A refusal writes
    /// nothing and frees the slot.
    pub fn publish_reserved(
        &self,
        reservation: Reservation,
        code: &[u8],
        externals: &'static patcher::check::Externals<'static>,
        timeout: Duration,
    ) -> Result<(), PatchError> {
        let policy = &patcher::check::Policy::KERNEL_SITES;
        let place = move |_: &KernelPublisher| {
            KernelPublisher::fill(reservation.slot, code, externals, policy)
        };
        self.publish_through((self.publisher)(), code, timeout, false, place)
    }

    /// [`publish`](Self::publish) past the verifier (the shape rules still hold): the test-only
    /// door through which the fault-containment tests publish code that faults or hangs. Only
    /// kernel tests call it; no frame from outside reaches it.
    pub(crate) fn publish_unverified_for_tests(
        &self,
        code: &[u8],
        timeout: Duration,
    ) -> Result<(), PatchError> {
        let policy = &patcher::check::Policy::UNVERIFIED_TEST_DOOR;
        let place = fresh(code, timeout, |_| true, policy);
        self.publish_through((self.publisher)(), code, timeout, false, place)
    }

    /// Leads a site that keeps its previous block ([`Site::keeping_previous`]) back to it, in
    /// its slot, with one publication through the site's strategy; the block it replaces is
    /// retired and nothing is kept after. Returns the new publication count and the one that
    /// first made the restored code current.
    pub fn restore(&self, timeout: Duration) -> Result<(u64, u64), PatchError> {
        if !self.keeps_previous {
            return Err(PatchError::NothingKept);
        }
        let mut slots = self.slots.try_lock().ok_or(PatchError::Busy)?;
        let env = super::env(timeout);
        service()
            .publisher()
            .restore_previous(&env, (self.publisher)(), &mut slots)?;
        let version = self.published.fetch_add(1, Ordering::Release) + 1;
        let mut history = self.history.lock();
        let restored = history.previous().version;
        history.restore(version);
        Ok((version, restored))
    }

    /// What the site runs and keeps, for `patch list`.
    pub fn state(&self) -> SiteState {
        // Slots before history, as every publication takes them.
        let kept_in_slot = self.slots.lock().previous().is_some();
        let history = self.history.lock();
        let hash = |k: &Kept| protocol::crc32::crc32(k.code());
        let (current, previous) = (history.current(), history.previous());
        SiteState {
            version: current.version,
            hash: hash(current),
            previous: (previous.len > 0).then(|| (previous.version, hash(previous))),
            kept_in_slot,
        }
    }

    /// The site's publication count (each publication's version, as fault reports name it).
    pub fn version(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Rolls the site back to the code it ran before, if the block it leads to now holds `elr`
    /// (the faulting instruction): one publication of the kept previous code, through the
    /// site's own strategy and [`publish`](Self::publish)'s path. Returns the faulting and the
    /// restored version, or `None` when the site no longer leads to that block (another core's
    /// fault already rolled it back, or a producer replaced it).
    pub fn roll_back(&self, elr: u64, timeout: Duration) -> Result<Option<(u64, u64)>, RollBack> {
        let (block, version) = self.running();
        let here = (block..block + SLOT_SIZE as u64).contains(&elr);
        if !here || self.history.lock().current().version != version {
            return Ok(None);
        }
        if self.keeps_previous {
            // Back to the kept block in its own slot: a block linked for its address (a patch
            // from Rust source calling the kernel's exports) runs only there.
            return match self.restore(timeout) {
                Ok((_, restored)) => Ok(Some((version, restored))),
                Err(PatchError::NothingKept) => Err(RollBack::NothingKept),
                Err(e) => Err(RollBack::Publish(e)),
            };
        }
        // Its bytes only (the publication takes the history's lock again).
        let (code, restored) = {
            let history = self.history.lock();
            let previous = history.previous();
            let code: heapless::Vec<u8, SLOT_SIZE> =
                heapless::Vec::from_slice(previous.code()).map_err(|_| RollBack::NothingKept)?;
            (code, previous.version)
        };
        if code.is_empty() {
            return Err(RollBack::NothingKept);
        }
        self.publish_with(&code, timeout, |_| true, false)
            .map_err(RollBack::Publish)?;
        // What faulted is never put back by a later rollback.
        self.history.lock().forget_previous();
        Ok(Some((version, restored)))
    }

    /// The one path: place, publish through `site` (this site's strategy, or a wrapper of it),
    /// settle the slots. `place` puts `code` in a slot ([`fresh`] takes a free one; a staged
    /// block fills the slot it reserved).
    fn publish_through(
        &self,
        site: &Publisher,
        code: &[u8],
        timeout: Duration,
        first: bool,
        place: impl FnOnce(&KernelPublisher) -> Result<CodeBlock<'static>, PlaceError>,
    ) -> Result<(), PatchError> {
        let mut slots = self.slots.try_lock().ok_or(PatchError::Busy)?;
        let env = super::env(timeout);
        let publisher = service().publisher();
        let block = place(&publisher).map_err(PatchError::Place)?;
        let result = if first {
            publisher.install(&env, site, &mut slots, block)
        } else if self.keeps_previous {
            publisher.publish_keeping(&env, site, &mut slots, block)
        } else {
            publisher.publish(&env, site, &mut slots, block)
        };
        result.map_err(PatchError::from)?;
        let version = self.published.fetch_add(1, Ordering::Release) + 1;
        self.history.lock().push(code, version);
        Ok(())
    }

    /// Publishes `code` and returns the instructions this core ran inside the strategy's
    /// publication: placing and checking the block before it, and every wait for other cores in
    /// it ([`crate::wait`]), excluded. What one publication costs its producer, for the bench.
    pub fn publish_cost(&self, code: &[u8], timeout: Duration) -> Result<u64, PatchError> {
        let site = (self.publisher)();
        self.counted(code, timeout, site.runs_in_slot(), move |env, block| {
            crate::wait::own_instructions(|| site.publish(env, block))
        })
    }

    /// Publishes `code` to a per-core site and returns the publisher's own instructions for
    /// redirecting every consumer's cell (its wait for their acknowledgements excluded): what
    /// each consumer costs the publisher, for the bench.
    pub fn redirect_cost(&self, code: &[u8], timeout: Duration) -> Result<u64, PatchError> {
        let cells = self.per_core.ok_or(PatchError::UnknownSite)?;
        self.counted(code, timeout, true, move |env, block| {
            let (ftr, consumers) = (cells.strategy(), cells.consumers());
            let (result, spent) =
                crate::wait::own_instructions(|| ftr.redirect(env, consumers, block));
            let result = result.and_then(|()| ftr.wait_acknowledged(env, consumers, block));
            (result, spent)
        })
    }

    /// Publishes `code` through `publish`, which returns its result and the instructions it
    /// counted; returns that count.
    fn counted<F>(
        &self,
        code: &[u8],
        timeout: Duration,
        runs_in_slot: bool,
        publish: F,
    ) -> Result<u64, PatchError>
    where
        F: Fn(&KernelEnv<'_>, &CodeBlock<'static>) -> (Result<(), PublishError>, u64)
            + Sync
            + 'static,
    {
        /// A publication whose count is kept.
        struct Counted<F>(F, bool, AtomicU64);
        impl<F> Publish<KernelPlatform, Hw> for Counted<F>
        where
            F: Fn(&KernelEnv<'_>, &CodeBlock<'static>) -> (Result<(), PublishError>, u64) + Sync,
        {
            fn publish(
                &self,
                env: &KernelEnv<'_>,
                block: &CodeBlock<'static>,
            ) -> Result<(), PublishError> {
                let (result, spent) = (self.0)(env, block);
                self.2.store(spent, Ordering::Relaxed);
                result
            }

            fn runs_in_slot(&self) -> bool {
                self.1
            }
        }
        let counted = Counted(publish, runs_in_slot, AtomicU64::new(0));
        let policy = &patcher::check::Policy::KERNEL_SITES;
        let place = fresh(code, timeout, |_| true, policy);
        self.publish_through(&counted, code, timeout, false, place)?;
        Ok(counted.2.load(Ordering::Relaxed))
    }

    /// Holds the site as a producer would while publishing (for tests of concurrent producers).
    pub fn hold(&self) -> Option<spin::MutexGuard<'_, Slots>> {
        self.slots.try_lock()
    }
}

/// Why a rollback did not happen.
#[derive(Debug)]
pub enum RollBack {
    /// The site kept no previous code (its first, or a block longer than a slot).
    NothingKept,
    /// Publishing the previous code failed.
    Publish(PatchError),
}

/// Calls the code at `entry` with the payload signature.
///
/// # Safety
///
/// `entry` must be a site's entry whose code is a payload (`patch::payload`), and `inside` a
/// valid, writable cell of 16 bytes (what `patcher::check::Policy::KERNEL_SITES` lets it write).
pub unsafe fn call_payload(entry: usize, inside: *mut u64) -> Answer {
    // SAFETY: the caller's contract; every trampoline passes x0 through to the payload.
    unsafe {
        let f = core::mem::transmute::<usize, super::payload::Entry>(entry);
        f(inside)
    }
}
