//! Secondary cores: start them, know who is online, and hand them work.
//!
//! Idle secondaries sleep in `WFI` with IRQs masked around the check, so a wake-up IPI that lands
//! between "no work" and `WFI` still wakes them (a pending interrupt ends `WFI` even when masked).

use crate::arch::{boot, cpu};
use crate::ipi;
use boards::{Board, BootLevel, CoreMask, Current, MAX_CORES};
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

static ONLINE: AtomicU64 = AtomicU64::new(0);
/// The exception level each core was entered at (0 = not yet reported).
static BOOT_EL: [AtomicU8; MAX_CORES] = [const { AtomicU8::new(0) }; MAX_CORES];

/// Cores that finished their bring-up and take IPIs.
pub fn online() -> CoreMask {
    CoreMask::from_bits(ONLINE.load(Ordering::Acquire))
}

/// Marks this core online after recording the level it was entered at.
pub fn mark_online(core: usize, level: BootLevel) {
    BOOT_EL[core].store(
        if level == BootLevel::El2 { 2 } else { 1 },
        Ordering::Relaxed,
    );
    ONLINE.fetch_or(1 << core, Ordering::Release);
}

/// Takes this core out of the online set: it stopped for good (a stack overflow), so IPIs stop
/// waiting for it. (Its QSBR state is not retired: a grace period may then wait for it.)
pub fn mark_stopped(core: usize) {
    ONLINE.fetch_and(!(1 << core), Ordering::Release);
}

/// The level `core` was entered at (1 or 2), or 0 if it never came up.
pub fn boot_el(core: usize) -> u8 {
    BOOT_EL[core].load(Ordering::Relaxed)
}

/// Why bring-up failed.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub enum SmpError {
    /// The firmware refused to start a core.
    StartRefused {
        /// The core.
        core: usize,
    },
    /// A started core never reported online.
    Timeout {
        /// The core.
        core: usize,
    },
}

/// Starts cores `1..count` one after another, waiting for each, at most `timeout_us` each.
pub fn start_secondaries(count: usize, timeout_us: u64) -> Result<(), SmpError> {
    for core in 1..count {
        Current::start_core(core, boot::secondary_entry_address())
            .map_err(|_| SmpError::StartRefused { core })?;
        let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
        while !online().contains(core) {
            if cpu::ticks() > deadline {
                return Err(SmpError::Timeout { core });
            }
            cpu::relax();
        }
    }
    Ok(())
}

/// Work for every core: a function of the core index, and its per-core results.
pub type Job = fn(core: usize) -> bool;

static JOB: AtomicUsize = AtomicUsize::new(0);
static JOB_GENERATION: AtomicU64 = AtomicU64::new(0);

#[repr(align(64))]
struct Done {
    generation: AtomicU64,
    ok: AtomicU8,
}

static DONE: [Done; MAX_CORES] = [const {
    Done {
        generation: AtomicU64::new(0),
        ok: AtomicU8::new(0),
    }
}; MAX_CORES];

/// Runs `job` on every online core (this one included) and waits at most `timeout_us` for all.
///
/// Returns the cores whose job returned false, or `Err` with the cores that had not finished. A
/// core that stopped on a stack overflow meanwhile is finished: failed, unless its test said it
/// expected that (`exceptions::expect_overflow`).
pub fn run_everywhere(job: Job, timeout_us: u64) -> Result<CoreMask, CoreMask> {
    let me = cpu::core_id();
    let cores = online();
    JOB.store(job as usize, Ordering::Relaxed);
    let generation = JOB_GENERATION.fetch_add(1, Ordering::Release) + 1;
    ipi::kick(cores.without(me));
    let ok = job(me);
    DONE[me].ok.store(ok as u8, Ordering::Relaxed);
    DONE[me].generation.store(generation, Ordering::Release);
    let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
    loop {
        let unfinished = cores
            .iter()
            .filter(|&c| DONE[c].generation.load(Ordering::Acquire) != generation)
            .filter(|&c| online().contains(c))
            .fold(CoreMask::EMPTY, CoreMask::with);
        if unfinished.is_empty() {
            break;
        }
        if cpu::ticks() > deadline {
            return Err(unfinished);
        }
        cpu::relax();
    }
    let stopped = |c: usize| !online().contains(c);
    Ok(cores
        .iter()
        .filter(|&c| {
            if stopped(c) {
                !crate::arch::exceptions::overflow_expected(c)
            } else {
                DONE[c].ok.load(Ordering::Relaxed) == 0
            }
        })
        .fold(CoreMask::EMPTY, CoreMask::with))
}

/// A secondary's life after bring-up: sleep until there is a job, run it, report, repeat.
pub fn idle_loop(core: usize) -> ! {
    let mut seen = 0;
    loop {
        let saved = cpu::irq_save();
        while JOB_GENERATION.load(Ordering::Acquire) == seen {
            cpu::wfi();
            // Take the pending interrupt (it may be a call for this core), then check again.
            cpu::irq_restore(saved);
            cpu::irq_save();
        }
        cpu::irq_restore(saved);
        seen = JOB_GENERATION.load(Ordering::Acquire);
        // SAFETY: `run_everywhere` stored a `Job` fn pointer before publishing the generation with
        // release; the acquire load above makes it visible.
        let job: Job = unsafe { core::mem::transmute::<usize, Job>(JOB.load(Ordering::Relaxed)) };
        let ok = job(core);
        DONE[core].ok.store(ok as u8, Ordering::Relaxed);
        DONE[core].generation.store(seen, Ordering::Release);
    }
}
