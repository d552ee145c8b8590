//! The patch service: the kernel's side of `patcher`.
//!
//! Data flows one way: a block (payload bytes) is checked (`patcher::check`) against the slot
//! it will run from, copied into a free arena slot through the write alias, made what consumers
//! run by a strategy, and its predecessor is retired and reused only after a QSBR grace period.
//!
//! The arena (see `arch::mmu`) is cut into a fixed page, for code that is rewritten in place
//! (the flip site, the stop-the-world site, the flush stub, written once), and slots.

pub mod payload;
pub mod platform;
pub mod service;
pub mod sites;

use crate::arch::mmu;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use patcher::arena::{Arena, Region};
use patcher::cache::hw::Hw;
use patcher::cache::{CodeSync, Maintenance};
use patcher::grace::Qsbr;
use patcher::strategy::{Env, FLUSH_STUB};
use platform::KernelPlatform;

/// Slots in the arena: few, so that the stress tests reuse them through grace periods.
pub const SLOTS: usize = 8;
/// Bytes per slot.
pub const SLOT_SIZE: usize = 128;

/// Offsets in the arena's fixed page.
pub struct Fixed;

impl Fixed {
    /// The flush stub, written once at start-up.
    pub const STUB: usize = 0x000;
    /// The same stub with its `ISB` made a `NOP`: only for the negative-control test.
    pub const BROKEN_STUB: usize = 0x080;
    /// The branch-flip site: one word, always a `B`.
    pub const FLIP: usize = 0x100;
    /// The in-place site rewritten under stop-the-world (and by the naive negative control).
    pub const IN_PLACE: usize = 0x200;
    /// Size of the in-place site.
    pub const IN_PLACE_LEN: usize = payload::MAX_LEN;
    /// The naive negative control's function, rewritten with no maintenance at all.
    pub const NAIVE: usize = 0x300;
    /// Where the slots start.
    pub const SLOTS: usize = 0x1000;
}

/// Everything the patch service keeps.
pub struct Service {
    /// This core's (the primary's) cache policy, from `CTR_EL0` and `MIDR_EL1`.
    pub sync: CodeSync<Hw>,
    /// The arena's slots.
    pub arena: Arena<SLOTS>,
    /// Grace periods.
    pub qsbr: Qsbr<MAX_CORES>,
}

static SERVICE: spin::Once<Service> = spin::Once::new();

/// The executable and writable addresses of offset `off` in the arena.
pub fn arena_addr(off: usize) -> (usize, usize) {
    let exec = mmu::arena().start + off;
    (exec, exec + mmu::WRITE_ALIAS_OFFSET)
}

/// The service, set up on first use (by one core, before consumers start).
pub fn service() -> &'static Service {
    SERVICE.call_once(|| {
        let (exec, write) = arena_addr(Fixed::SLOTS);
        let region = Region {
            write_base: write,
            exec_base: exec,
            slot_size: SLOT_SIZE,
            slot_count: SLOTS,
        };
        // SAFETY: (1) the arena's writable view is mapped writable, normal memory, and from
        // Fixed::SLOTS on only this arena touches it; (2) its executable view maps the same pages.
        let arena = unsafe { Arena::new(region) }.expect("arena layout");
        let sync = CodeSync::for_this_core(Hw);
        // The sanitizer tracks writes to code it has not seen run: the whole arena is code.
        check_layout();
        let code = mmu::arena();
        crate::arch::markers::track_code(code.start, code.end - code.start);
        install_stub(&sync);
        Service {
            sync,
            arena,
            qsbr: Qsbr::new(),
        }
    })
}

unsafe extern "C" {
    static graft_flush_stub: u8;
    static graft_flush_stub_broken: u8;
    static graft_flip_site: u8;
    static graft_in_place_site: u8;
    static graft_naive_site: u8;
    static graft_arena_slots: u8;
}

/// Checks the linker's names for the fixed page against [`Fixed`].
fn check_layout() {
    let base = mmu::arena().start;
    let named = [
        (&raw const graft_flush_stub, Fixed::STUB),
        (&raw const graft_flush_stub_broken, Fixed::BROKEN_STUB),
        (&raw const graft_flip_site, Fixed::FLIP),
        (&raw const graft_in_place_site, Fixed::IN_PLACE),
        (&raw const graft_naive_site, Fixed::NAIVE),
        (&raw const graft_arena_slots, Fixed::SLOTS),
    ];
    for (symbol, off) in named {
        // black_box: the compiler may assume two distinct statics never share an address, and
        // graft_flush_stub is __arena_start.
        let addr = core::hint::black_box(symbol as usize);
        assert_eq!(
            addr,
            base + off,
            "linker/common.ld and patch::Fixed disagree"
        );
    }
}

/// The executable address of the flush stub.
pub fn stub_addr() -> u64 {
    arena_addr(Fixed::STUB).0 as u64
}

/// The executable address of the broken stub (no `ISB`), for the negative control.
pub fn broken_stub_addr() -> u64 {
    arena_addr(Fixed::BROKEN_STUB).0 as u64
}

/// The range [`install`] asks other cores to invalidate (one installation at a time).
static INSTALLING: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static INSTALL_LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// The IPI handler of [`install`]: `DMB ISH` (the installer's clean reached this core through the
/// mailbox's acquire, which does not order an `IC`), invalidate the range here, `DSB ISH`; the
/// exception return is this core's context synchronization.
fn invalidate_here(_sender: usize, _arg: usize) {
    let (exec, len) = (
        INSTALLING[0].load(Ordering::Acquire),
        INSTALLING[1].load(Ordering::Acquire),
    );
    let sync = CodeSync::for_this_core(Hw);
    sync.backend().dmb_ish();
    // SAFETY: `install` published a range of the arena's executable view, which is mapped.
    unsafe { sync.invalidate_range(exec, len) };
}

/// Makes code just written at `write` (executable at `exec`) fresh on every online core, without
/// relying on broadcast invalidation: clean and invalidate here, then each other core
/// invalidates the range itself in an IPI and synchronizes on its return. For code installed
/// before anyone runs it (stubs, a site's first word); publication is the strategies' job.
pub fn install(
    sync: &CodeSync<Hw>,
    write: usize,
    exec: usize,
    len: usize,
) -> Result<(), crate::ipi::IpiError> {
    let _one = INSTALL_LOCK.lock();
    // SAFETY: callers pass a range of the arena, whose two views are both mapped.
    unsafe { sync.sync_range(write, exec, len) };
    INSTALLING[0].store(exec, Ordering::Release);
    INSTALLING[1].store(len, Ordering::Release);
    crate::ipi::call_others(invalidate_here, 0, INSTALL_TIMEOUT_US)
}

const INSTALL_TIMEOUT_US: u64 = 5_000_000;

fn install_stub(sync: &CodeSync<Hw>) {
    let broken = FLUSH_STUB.map(|w| {
        if w == patcher::insn::ISB {
            patcher::insn::nop()
        } else {
            w
        }
    });
    assert!(broken != FLUSH_STUB, "the flush stub has an ISB to remove");
    for (off, words) in [(Fixed::STUB, &FLUSH_STUB), (Fixed::BROKEN_STUB, &broken)] {
        let (exec, write) = arena_addr(off);
        for (i, w) in words.iter().enumerate() {
            // SAFETY: the fixed page's writable view, nothing executes the stubs yet.
            unsafe { (write as *mut u32).add(i).write_volatile(*w) };
        }
        install(sync, write, exec, words.len() * 4)
            .expect("a core did not take the flush stub's installation IPI");
    }
}

/// The environment strategies run in, with `timeout` for every cross-core wait.
pub fn env(timeout: Duration) -> Env<'static, KernelPlatform, Hw> {
    Env {
        platform: &KernelPlatform,
        sync: &service().sync,
        timeout,
    }
}

/// Why a block could not be placed in a slot. Nothing was written.
pub enum PlaceError {
    /// Every slot stayed live or retired for the whole timeout; these cores never reported a
    /// quiescent state.
    ArenaFull {
        /// The cores holding the grace period back, as a bit mask.
        lagging: u64,
    },
    /// The block broke a rule (`patcher::check`).
    Check(patcher::check::CheckError),
    /// The arena refused a state change.
    Arena(patcher::arena::ArenaError),
    /// The caller's own check of the slot failed.
    Vetoed {
        /// The slot's executable address.
        exec: u64,
    },
}

/// Checks `code` against the slot it gets, waiting (at most `timeout`) for grace periods to
/// free one, and writes it: the block is then ready for a strategy to publish. `vet` sees the
/// slot's executable address before anything is written and may refuse it.
pub fn place(
    code: &[u8],
    timeout: Duration,
    vet: impl FnOnce(u64) -> bool,
) -> Result<patcher::arena::CodeBlock<'static>, PlaceError> {
    use patcher::arena::ArenaError;
    let svc = service();
    let deadline =
        crate::arch::cpu::ticks() + crate::arch::cpu::us_to_ticks(timeout.as_micros() as u64);
    let mut slot = loop {
        match svc.arena.alloc() {
            Ok(slot) => break slot,
            Err(ArenaError::ArenaFull) => {
                svc.arena.reclaim(svc.qsbr.safe_epoch());
                if crate::arch::cpu::ticks() > deadline {
                    let lagging = svc.qsbr.lagging(svc.qsbr.current()).bits();
                    return Err(PlaceError::ArenaFull { lagging });
                }
                crate::arch::cpu::relax();
            }
            Err(e) => return Err(PlaceError::Arena(e)),
        }
    };
    let exec = slot.exec_addr();
    if !vet(exec) {
        return Err(PlaceError::Vetoed { exec });
    }
    let checked =
        patcher::check::check_block(code, exec, SLOT_SIZE, &patcher::check::Externals::NONE)
            .map_err(PlaceError::Check)?;
    slot.write(&checked).map_err(PlaceError::Arena)?;
    slot.publish().map_err(PlaceError::Arena)
}

/// Retires the slot a site no longer leads to (after its replacement was published) and frees
/// every slot whose grace period has ended.
pub fn retire(old: patcher::arena::SlotId) -> Result<(), patcher::arena::ArenaError> {
    let svc = service();
    let epoch = svc.qsbr.unlink();
    svc.arena.retire(old, epoch)?;
    svc.arena.reclaim(svc.qsbr.safe_epoch());
    Ok(())
}

impl defmt::Format for PlaceError {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::ArenaFull { lagging } => {
                defmt::write!(f, "arena full: cores {=u64:#b} never quiescent", lagging)
            }
            Self::Check(e) => defmt::write!(f, "block refused: {}", defmt::Debug2Format(e)),
            Self::Arena(e) => defmt::write!(f, "arena: {}", defmt::Debug2Format(e)),
            Self::Vetoed { exec } => defmt::write!(f, "slot at {=u64:#x} vetoed", exec),
        }
    }
}

/// Rewrites the in-place site with `words` under stop-the-world, postponing (within the
/// environment's timeout) while a stopped core was interrupted inside the site: it would resume
/// in the middle of the new code. Returns how many attempts were postponed.
pub fn rewrite_in_place(
    stw: &patcher::strategy::StopTheWorld<Hw, MAX_CORES>,
    env: &Env<'_, KernelPlatform, Hw>,
    site: &patcher::strategy::InPlaceSite,
    words: &[u32],
) -> Result<u64, patcher::strategy::PublishError> {
    use patcher::strategy::PublishError;
    let deadline =
        crate::arch::cpu::ticks() + crate::arch::cpu::us_to_ticks(env.timeout.as_micros() as u64);
    let mut postponed = 0;
    loop {
        match stw.patch_in_place(env, site, words) {
            Err(e @ PublishError::InsideSite { .. }) => {
                if crate::arch::cpu::ticks() > deadline {
                    return Err(e);
                }
                postponed += 1;
                // Let the interrupted core run on past the site before stopping it again.
                for _ in 0..16 {
                    crate::arch::cpu::relax();
                }
            }
            other => return other.map(|()| postponed),
        }
    }
}
