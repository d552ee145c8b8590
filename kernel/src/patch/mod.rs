//! The patch service: the kernel's side of `patcher`, and the only code that writes the arena.
//!
//! Data flows one way, through one path ([`sites::Site::publish`]): a block (payload bytes) is
//! checked (`patcher::check`) against the slot it will run from, copied into a free arena slot
//! through the write alias, made what consumers run by its site's strategy, and its predecessor
//! is retired and reused only after a QSBR grace period (`patcher::publish`).
//!
//! The arena (see `arch::mmu`) is cut into a fixed page, for code that is rewritten in place
//! (the flip site, the stop-the-world site, the flush stub, written once), and slots.

pub mod call_sites;
pub mod contain;
pub mod exports;
pub mod negative;
pub mod payload;
pub mod platform;
pub mod sites;

use crate::arch::mmu;
use boards::MAX_CORES;
use core::time::Duration;
use patcher::arena::{Arena, Region};
use patcher::cache::hw::Hw;
use patcher::cache::{CodeSync, Maintenance};
use patcher::grace::Qsbr;
use patcher::platform::Platform as _;
pub use patcher::publish::PlaceError;
use patcher::publish::{Failure, Publisher};
use patcher::strategy::{Env, FLUSH_STUB};
use platform::KernelPlatform;

/// Slots in the arena: few, so that the stress tests reuse them through grace periods.
pub const SLOTS: usize = 8;
/// Bytes per slot.
pub const SLOT_SIZE: usize = protocol::exports::SLOT_BYTES;

/// Which patches this image admits: the public key and the development switch it was built with
/// (`kernel/build.rs` writes them from `GRAFT_PATCH_PUBLIC_KEY` and `GRAFT_UNSIGNED_PATCHES`).
pub const ADMISSION: protocol::signing::Admission =
    include!(concat!(env!("OUT_DIR"), "/patch_key.rs"));

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
    arena: Arena<SLOTS>,
    /// Grace periods: consumers report quiescent states here.
    pub qsbr: Qsbr<MAX_CORES>,
}

impl Service {
    /// The one publication path over this arena and these grace periods.
    pub fn publisher(&'static self) -> Publisher<SLOTS, MAX_CORES> {
        Publisher::new(&self.arena, &self.qsbr)
    }

    /// The arena's slots.
    pub fn arena(&'static self) -> &'static Arena<SLOTS> {
        &self.arena
    }
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
        sites::check_table();
        install_fixed_page(&sync);
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

/// Makes code just written at `write` (executable at `exec`) fresh on every online core, without
/// relying on broadcast invalidation: clean and invalidate here, then each other core
/// invalidates the range itself in an IPI and synchronizes on its return
/// (`patcher::strategy::RemoteInvalidate`, the same work `ipi-sync-remote` uses). For code
/// installed before anyone runs it (stubs, a site's first word); publication is the sites' job.
///
/// # Safety
///
/// `write..write + len` and `exec..exec + len` are the two views of one range of the arena.
pub unsafe fn install(
    sync: &CodeSync<Hw>,
    write: usize,
    exec: usize,
    len: usize,
) -> Result<(), patcher::strategy::PublishError> {
    let env = Env {
        platform: &KernelPlatform,
        sync,
        timeout: INSTALL_TIMEOUT,
    };
    // SAFETY: the caller's contract: both views of the arena are mapped for good.
    let r = unsafe { sites::remote().sync_everywhere(&env, write, exec, len) };
    sync.backend().isb();
    r
}

const INSTALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes the fixed page's code once, before anything runs it: the flush stub, its broken twin
/// (for the negative control), and a `NOP` in the flip word (CMODX-safe, so the first flip may
/// replace it).
fn install_fixed_page(sync: &CodeSync<Hw>) {
    let broken = FLUSH_STUB.map(|w| {
        if w == patcher::insn::ISB {
            patcher::insn::nop()
        } else {
            w
        }
    });
    assert!(broken != FLUSH_STUB, "the flush stub has an ISB to remove");
    let nop = [patcher::insn::nop()];
    for (off, words) in [
        (Fixed::STUB, &FLUSH_STUB[..]),
        (Fixed::BROKEN_STUB, &broken[..]),
        (Fixed::FLIP, &nop[..]),
    ] {
        let (exec, write) = arena_addr(off);
        for (i, w) in words.iter().enumerate() {
            // SAFETY: the fixed page's writable view; nothing executes these words yet.
            unsafe { (write as *mut u32).add(i).write_volatile(*w) };
        }
        // SAFETY: both views of the fixed page.
        unsafe { install(sync, write, exec, words.len() * 4) }
            .expect("a core did not take the fixed page's installation IPI");
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

/// Every other online core takes an IPI (its exception entry and return synchronize its
/// context), at most `timeout`.
pub fn sync_all(timeout: Duration) -> Result<(), PatchError> {
    let env = env(timeout);
    KernelPlatform
        .ipi_sync(env.others(), patcher::platform::SYNC_ONLY, timeout)
        .map_err(|e| PatchError::Publish(e.into()))
}

/// Why a patch was not applied: see each variant for what the site leads to.
#[derive(Clone, Copy, Debug)]
pub enum PatchError {
    /// No site has this name.
    UnknownSite,
    /// Another producer is publishing to this site now; nothing was written.
    Busy,
    /// The block was refused before anything was written (or no slot came free).
    Place(PlaceError),
    /// The publication failed; [`PublishError::block_reachable`] says whether the site already
    /// leads to the new block.
    Publish(patcher::strategy::PublishError),
    /// The arena refused a slot's state change (a bookkeeping error).
    Arena(patcher::arena::ArenaError),
    /// A rollback found no previous code kept (the site was patched once, or rolled back
    /// already).
    NothingKept,
}

impl From<Failure> for PatchError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Publish(patcher::strategy::PublishError::Busy) => Self::Busy,
            Failure::Publish(e) => Self::Publish(e),
            Failure::Arena(e) => Self::Arena(e),
            Failure::NothingKept => Self::NothingKept,
        }
    }
}

impl defmt::Format for PatchError {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::UnknownSite => defmt::write!(f, "unknown site"),
            Self::Busy => defmt::write!(f, "another producer is publishing to this site"),
            Self::Place(PlaceError::ArenaFull { lagging }) => defmt::write!(
                f,
                "arena full: {} never quiescent",
                defmt::Debug2Format(lagging)
            ),
            Self::Place(PlaceError::Check(e)) => {
                defmt::write!(f, "block refused: {}", defmt::Debug2Format(e))
            }
            Self::Place(PlaceError::Arena(e)) | Self::Arena(e) => {
                defmt::write!(f, "arena: {}", defmt::Debug2Format(e))
            }
            Self::NothingKept => defmt::write!(f, "no previous code is kept"),
            Self::Place(PlaceError::Vetoed { exec }) => {
                defmt::write!(f, "slot at {=u64:#x} vetoed", exec)
            }
            Self::Publish(e) => defmt::write!(
                f,
                "publication failed ({=str}): {}",
                if e.block_reachable() {
                    "the site leads to the new block"
                } else {
                    "the site still leads to the previous block"
                },
                defmt::Debug2Format(e)
            ),
        }
    }
}
