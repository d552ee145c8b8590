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
pub mod sites;

use crate::arch::mmu;
use boards::MAX_CORES;
use core::time::Duration;
use patcher::arena::{Arena, Region};
use patcher::cache::CodeSync;
use patcher::cache::hw::Hw;
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
    /// The branch-flip site: one word, always a `B`.
    pub const FLIP: usize = 0x100;
    /// The in-place site rewritten under stop-the-world (and by the naive negative control).
    pub const IN_PLACE: usize = 0x200;
    /// Size of the in-place site.
    pub const IN_PLACE_LEN: usize = payload::MAX_LEN;
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
        install_stub(&sync);
        Service {
            sync,
            arena,
            qsbr: Qsbr::new(),
        }
    })
}

/// The executable address of the flush stub.
pub fn stub_addr() -> u64 {
    arena_addr(Fixed::STUB).0 as u64
}

fn install_stub(sync: &CodeSync<Hw>) {
    let (exec, write) = arena_addr(Fixed::STUB);
    for (i, w) in FLUSH_STUB.iter().enumerate() {
        // SAFETY: the fixed page's writable view, nothing executes the stub yet.
        unsafe { (write as *mut u32).add(i).write_volatile(*w) };
    }
    // SAFETY: both views of the stub are mapped.
    unsafe { sync.sync_range(write, exec, FLUSH_STUB.len() * 4) };
}

/// The environment strategies run in, with `timeout` for every cross-core wait.
pub fn env(timeout: Duration) -> Env<'static, KernelPlatform, Hw> {
    Env {
        platform: &KernelPlatform,
        sync: &service().sync,
        timeout,
    }
}
