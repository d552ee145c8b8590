//! The live control-loop demo: patch a running controller with every strategy in turn.
//!
//! Cores 1-3 each run a control loop at 10 kHz from their own generic-timer tick: step a
//! simulated thermal plant, call the controller through the current strategy's patch site, check
//! the deadline (the step must end before the next tick is due). Core 0 publishes a new
//! controller version every millisecond (new gains; halfway through, a new control law), one
//! strategy after another, and at the end prints, per strategy: patches applied, loop iterations,
//! deadline misses, the largest and mean extra time one publication added to an iteration, and
//! how the plants tracked their set-point. The run passes when no loop missed a deadline and no
//! loop ran a version older than one already published.
//!
//! Run under `-icount shift=0,sleep=off` (xtask does): times are virtual nanoseconds, one
//! instruction each, the same on every run and on any host.

pub(crate) mod controller;
mod plant;
mod stats;

use crate::arch::cpu;
use crate::patch::{self, Fixed, platform::KernelPlatform, sites};
use crate::sync::Barrier;
use crate::{ipi, timer};
use boards::MAX_CORES;
use controller::{Kind, LoopState, Params};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use patcher::arena::{CodeBlock, SlotId};
use patcher::cache::hw::Hw;
use patcher::platform::{CoreId, Platform};
use patcher::strategy::{
    BranchFlip, FlipSite, FlushThenRedirect, InPlaceSite, IpiSync, Rendezvous, SeqCheck,
    StopTheWorld, Strategy as _,
};
pub use stats::{PhaseStats, Summary};

/// The strategies, in the order the demo uses them (the names `cargo xtask bench` uses too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One `B` flipped in place (CMODX), IPIs to synchronize.
    BranchFlip,
    /// An indirect site; full maintenance, IPI and acknowledgement, then the pointer.
    IpiSync,
    /// Each consumer synchronizes itself through the flush stub, one cell published at a time.
    FlushThenRedirect,
    /// The same with one publication for every consumer's cell.
    FtrMulti,
    /// Consumers synchronize at an entry check when a global sequence moved.
    SeqCheck,
    /// Every core parked in a rendezvous while the code is rewritten in place.
    StopTheWorld,
}

impl Strategy {
    /// All, in demo order.
    pub const ALL: [Strategy; 6] = [
        Strategy::BranchFlip,
        Strategy::IpiSync,
        Strategy::FlushThenRedirect,
        Strategy::FtrMulti,
        Strategy::SeqCheck,
        Strategy::StopTheWorld,
    ];

    /// The name `cargo xtask bench` reports.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::BranchFlip => "branch-flip",
            Strategy::IpiSync => "ipi-sync",
            Strategy::FlushThenRedirect => "flush-then-redirect",
            Strategy::FtrMulti => "ftr-multi",
            Strategy::SeqCheck => "seq-check",
            Strategy::StopTheWorld => "stop-the-world",
        }
    }
}

/// Control loops' rate.
pub const LOOP_HZ: u64 = 10_000;
/// Publications per second.
pub const PUBLISH_HZ: u64 = 1_000;
const DT: f32 = 1.0 / LOOP_HZ as f32;
const TIMEOUT: Duration = Duration::from_millis(50);

/// The strategy the loops use now (an index into [`Strategy::ALL`]; past the end: stop).
static PHASE: AtomicUsize = AtomicUsize::new(0);
/// The newest version whose publication has returned.
static DONE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static SETPOINT: AtomicU32 = AtomicU32::new(0);
static START: Barrier = Barrier::new();
static END: Barrier = Barrier::new();
static SEQ: SeqCheck<MAX_CORES> = SeqCheck::new();
static RENDEZVOUS: spin::Once<Rendezvous<Hw, MAX_CORES>> = spin::Once::new();

struct States(UnsafeCell<[LoopState; MAX_CORES]>);
// SAFETY: each core touches only its own element, and the laws it calls only that one.
unsafe impl Sync for States {}
static STATES: States = States(UnsafeCell::new(
    [LoopState {
        integral: 0.0,
        previous_error: 0.0,
        version: 0,
    }; MAX_CORES],
));

/// The rendezvous stop-the-world uses (one for the whole run).
pub(crate) fn rendezvous() -> &'static Rendezvous<Hw, MAX_CORES> {
    RENDEZVOUS.call_once(|| Rendezvous::new(patcher::cache::CodeSync::for_this_core(Hw)))
}

/// The entry check of `strategy` (sequence check only), then the call; returns the output and
/// whether the check had to synchronize.
pub(crate) fn step(strategy: Strategy, core: usize, measured: f32, setpoint: f32) -> (f32, bool) {
    let synced = strategy == Strategy::SeqCheck && SEQ.enter(CoreId(core as u8), &Hw);
    (call(strategy, core, measured, setpoint), synced)
}

/// The sequence check's entry check on this core (for the entry benchmark).
pub(crate) fn seq_enter_for_bench() {
    SEQ.enter(CoreId(cpu::core_id() as u8), &Hw);
}

/// The version of the law `core` ran last.
pub(crate) fn version_run(core: usize) -> u64 {
    // SAFETY: a plain read of this core's own state (or another's, racily, for progress only).
    unsafe { core::ptr::read_volatile(&raw const (*state(core)).version) }
}

fn state(core: usize) -> *mut LoopState {
    // SAFETY: in bounds; the pointer is used only by `core` (see `States`).
    unsafe { (*STATES.0.get()).as_mut_ptr().add(core) }
}

/// The gains of `version` (they drift a little with every version) for `kind`.
fn params(kind: Kind, version: u64) -> Params {
    let drift = (version % 5) as f32 * 0.002;
    match kind {
        Kind::Pid => Params {
            kp: 0.05 + drift,
            ki_dt: 4.0 * DT,
            k3: 0.000_02 * LOOP_HZ as f32,
            umax: 1.0,
            version,
        },
        Kind::PiAntiWindup => Params {
            kp: 0.06 + drift,
            ki_dt: 5.0 * DT,
            k3: 0.5,
            umax: 1.0,
            version,
        },
    }
}

/// Runs the demo on this core for `secs` virtual seconds (all strategies share them).
pub fn run(core: usize, cores: usize, secs: u64) -> Result<Summary, ()> {
    if core == 0 {
        SETPOINT.store(60.0f32.to_bits(), Ordering::Relaxed);
        setup(Strategy::ALL[0], 0, None).map_err(drop)?;
    }
    START.wait(cores, 60_000_000).map_err(drop)?;
    let result = if core == 0 {
        producer(cores, secs)
    } else {
        consumer(core);
        Ok(Summary::default())
    };
    STOP.store(true, Ordering::Release);
    END.wait(cores, 60_000_000).map_err(drop)?;
    result
}

fn law_words(kind: Kind, version: u64) -> [u32; Fixed::IN_PLACE_LEN / 4] {
    let (buf, _) = controller::build(kind, params(kind, version));
    let mut w = [0u32; Fixed::IN_PLACE_LEN / 4];
    for (i, chunk) in buf[..Fixed::IN_PLACE_LEN].chunks(4).enumerate() {
        w[i] = u32::from_le_bytes(chunk.try_into().unwrap());
    }
    w
}

fn place(kind: Kind, version: u64) -> Result<CodeBlock<'static>, ()> {
    let (buf, len) = controller::build(kind, params(kind, version));
    patch::place(&buf[..len], TIMEOUT, |_| true)
        .map_err(|e| defmt::error!("demo: placing version {=u64}: {}", version, e))
}

/// Makes `strategy`'s site lead to `version` of the PID before the loops switch to it.
pub(crate) fn setup(
    strategy: Strategy,
    version: u64,
    previous: Option<SlotId>,
) -> Result<Option<SlotId>, ()> {
    let svc = patch::service();
    let env = patch::env(TIMEOUT);
    let fail = |what: &str| {
        defmt::error!(
            "demo: setting up {=str} failed: {=str}",
            strategy.name(),
            what
        )
    };
    let slot = match strategy {
        Strategy::StopTheWorld => {
            let (buf, _) = controller::build(Kind::Pid, params(Kind::Pid, version));
            let (exec, write) = patch::arena_addr(Fixed::IN_PLACE);
            // SAFETY: the fixed page's in-place site; no loop runs it before the phase switch.
            unsafe {
                core::ptr::copy_nonoverlapping(buf.as_ptr(), write as *mut u8, Fixed::IN_PLACE_LEN)
            };
            patch::install(&svc.sync, write, exec, Fixed::IN_PLACE_LEN)
                .map_err(|_| fail("install"))?;
            None
        }
        Strategy::BranchFlip => {
            let block = place(Kind::Pid, version)?;
            patch::install(
                &svc.sync,
                block.write_addr(),
                block.exec_addr() as usize,
                block.len(),
            )
            .map_err(|_| fail("install"))?;
            let (exec, write) = patch::arena_addr(Fixed::FLIP);
            let word = patcher::insn::b(block.exec_addr() as i64 - exec as i64)
                .map_err(|_| fail("encode"))?;
            // SAFETY: the fixed page's flip word; no loop runs it before the phase switch.
            unsafe { (write as *mut u32).write_volatile(word) };
            patch::install(&svc.sync, write, exec, 4).map_err(|_| fail("install"))?;
            Some(block.slot())
        }
        Strategy::IpiSync | Strategy::SeqCheck => {
            let block = place(Kind::Pid, version)?;
            IpiSync
                .publish(&env, &sites::INDIRECT, &block)
                .map_err(|_| fail("publish"))?;
            Some(block.slot())
        }
        Strategy::FlushThenRedirect | Strategy::FtrMulti => {
            let block = place(Kind::Pid, version)?;
            let ftr = FlushThenRedirect::new(patch::stub_addr());
            let cells = consumer_cells();
            wait_acknowledged(cells).map_err(|_| fail("a loop never took its last block"))?;
            ftr.publish(&env, cells, &block)
                .map_err(|_| fail("publish"))?;
            Some(block.slot())
        }
    };
    if let Some(old) = previous {
        patch::retire(old).map_err(|_| fail("retire"))?;
    }
    Ok(slot)
}

/// The per-core cells of the loops (cores 1 to the last online).
fn consumer_cells() -> &'static [patcher::strategy::ConsumerCell] {
    &sites::PER_CORE[1..crate::smp::online().len()]
}

/// Waits until no loop's cell still leads to the flush stub (each took its pending block).
fn wait_acknowledged(cells: &[patcher::strategy::ConsumerCell]) -> Result<(), ()> {
    let stub = patch::stub_addr();
    let done = || {
        cells
            .iter()
            .all(|c| c.target.load(Ordering::Acquire) != stub)
    };
    if KernelPlatform.wait_for(TIMEOUT, &mut || done()) {
        Ok(())
    } else {
        Err(())
    }
}

/// Publishes `version` of `kind` with `strategy`; returns the slot now live (if it uses slots).
pub(crate) fn publish(
    strategy: Strategy,
    kind: Kind,
    version: u64,
    rv: &'static Rendezvous<Hw, MAX_CORES>,
) -> Result<Option<SlotId>, ()> {
    let env = patch::env(TIMEOUT);
    let fail = |e: &dyn core::fmt::Debug| {
        defmt::error!(
            "demo: {=str} failed to publish version {=u64}: {}",
            strategy.name(),
            version,
            defmt::Debug2Format(e)
        )
    };
    if strategy == Strategy::StopTheWorld {
        let (exec, write) = patch::arena_addr(Fixed::IN_PLACE);
        // SAFETY: the in-place site's two views; StopTheWorld holds every other core meanwhile.
        let site = unsafe { InPlaceSite::new(write, exec, Fixed::IN_PLACE_LEN / 4) }
            .map_err(|e| fail(&e))?;
        patch::rewrite_in_place(
            &StopTheWorld::new(rv),
            &env,
            &site,
            &law_words(kind, version),
        )
        .map_err(|e| fail(&e))?;
        return Ok(None);
    }
    let block = place(kind, version)?;
    let result = match strategy {
        Strategy::BranchFlip => {
            let (exec, write) = patch::arena_addr(Fixed::FLIP);
            // SAFETY: the flip word's two views; only this producer writes it.
            let site = unsafe { FlipSite::new(write, exec) }.map_err(|e| fail(&e))?;
            BranchFlip.publish(&env, &site, &block)
        }
        Strategy::IpiSync => IpiSync.publish(&env, &sites::INDIRECT, &block),
        Strategy::SeqCheck => SEQ.publish(&env, &sites::INDIRECT, &block),
        Strategy::FlushThenRedirect => {
            // One single-consumer publication per loop, each waited for.
            let ftr = FlushThenRedirect::new(patch::stub_addr());
            consumer_cells().chunks(1).try_for_each(|cell| {
                ftr.publish(&env, cell, &block)
                    .and_then(|()| ftr.wait_acknowledged(&env, cell, &block))
            })
        }
        Strategy::FtrMulti => {
            let ftr = FlushThenRedirect::new(patch::stub_addr());
            let cells = consumer_cells();
            ftr.publish(&env, cells, &block)
                .and_then(|()| ftr.wait_acknowledged(&env, cells, &block))
        }
        Strategy::StopTheWorld => unreachable!(),
    };
    result.map_err(|e| fail(&e))?;
    Ok(Some(block.slot()))
}

/// Sleeps until this core's next tick; returns how many ticks passed (more than 1: periods were
/// skipped), or None once the demo stops.
fn wait_tick(core: usize, last: &mut u64) -> Option<u64> {
    while timer::ticks(core) == *last {
        if STOP.load(Ordering::Acquire) {
            return None;
        }
        cpu::wfi();
    }
    let now = timer::ticks(core);
    let passed = now - *last;
    *last = now;
    Some(passed)
}

fn producer(cores: usize, secs: u64) -> Result<Summary, ()> {
    let rv = rendezvous();
    let per_phase = (secs * PUBLISH_HZ / Strategy::ALL.len() as u64).max(4);
    let mut version = 0;
    let mut live: Option<SlotId> = None;
    let mut patches = [0u64; 6];
    let mut last = timer::ticks(0);
    timer::start(PUBLISH_HZ);
    for (phase, &strategy) in Strategy::ALL.iter().enumerate() {
        if phase > 0 {
            live = setup(strategy, version, live)?;
        }
        PHASE.store(phase, Ordering::Release);
        defmt::info!(
            "demo: {=str}: publishing {=u64} versions at {=u64} Hz",
            strategy.name(),
            per_phase,
            PUBLISH_HZ
        );
        for k in 0..per_phase {
            if wait_tick(0, &mut last).is_none() {
                return Err(());
            }
            // The set-point steps up halfway through each strategy; the control law changes at
            // the same time (new gains at every version).
            let second_half = k >= per_phase / 2;
            SETPOINT.store(
                if second_half { 80.0f32 } else { 60.0f32 }.to_bits(),
                Ordering::Relaxed,
            );
            let kind = if second_half {
                Kind::PiAntiWindup
            } else {
                Kind::Pid
            };
            version += 1;
            let now_live = publish(strategy, kind, version, rv)?;
            DONE.store(version, Ordering::Release);
            patches[phase] += 1;
            if let Some(new) = now_live
                && let Some(old) = live.replace(new)
                && patch::retire(old).is_err()
            {
                defmt::error!("demo: retiring a slot failed");
                return Err(());
            }
        }
    }
    timer::stop();
    PHASE.store(Strategy::ALL.len(), Ordering::Release);
    STOP.store(true, Ordering::Release);
    // Wake the loops so that they see STOP, and wait until they have filed their figures.
    ipi::kick(crate::smp::online().without(0));
    if !KernelPlatform.wait_for(Duration::from_secs(5), &mut || stats::filed() == cores - 1) {
        defmt::error!("demo: a control loop did not stop");
        return Err(());
    }
    Ok(stats::summarize(&patches, cores))
}

pub(crate) fn call(strategy: Strategy, core: usize, measured: f32, setpoint: f32) -> f32 {
    let st = state(core);
    let entry = match strategy {
        Strategy::BranchFlip => patch::arena_addr(Fixed::FLIP).0,
        Strategy::StopTheWorld => patch::arena_addr(Fixed::IN_PLACE).0,
        Strategy::IpiSync | Strategy::SeqCheck => sites::indirect_addr(),
        Strategy::FlushThenRedirect | Strategy::FtrMulti => sites::per_core_addr(),
    };
    // SAFETY: every site leads to a published control law (`setup` installed one before the
    // phase began), whose signature is `Law`, and `st` is this core's own state.
    unsafe {
        let law = core::mem::transmute::<usize, controller::Law>(entry);
        law(st, measured, setpoint)
    }
}

fn consumer(core: usize) {
    let svc = patch::service();
    let me = CoreId(core as u8);
    svc.qsbr.online(me);
    timer::start(LOOP_HZ);
    let period = timer::period();
    let mut plant = plant::Thermal::new();
    let mut u = 0.0f32;
    let mut last = timer::ticks(core);
    let mut seen_version = 0;
    let mut figures = [PhaseStats::default(); 6];
    while let Some(passed) = wait_tick(core, &mut last) {
        let skipped = passed - 1;
        let phase = PHASE.load(Ordering::Acquire);
        let Some(&strategy) = Strategy::ALL.get(phase) else {
            break;
        };
        let due = timer::last_due(core);
        let ipis = ipi::handled(core);
        let floor = DONE.load(Ordering::Acquire);
        let setpoint = f32::from_bits(SETPOINT.load(Ordering::Relaxed));
        plant.step(u, DT);
        // The step runs with IRQs masked, as a control loop's would: a publication's IPI lands
        // between steps (stop-the-world needs that), and is counted in this iteration below.
        let saved = cpu::irq_save();
        let (out, synced) = step(strategy, core, plant.temperature, setpoint);
        u = out;
        cpu::irq_restore(saved);
        let end = cpu::ticks();
        svc.qsbr.quiescent(me);
        // SAFETY: this core's own state, which only this core and its laws touch.
        let version = unsafe { (*state(core)).version };
        let f = &mut figures[phase];
        if version < floor {
            f.stale += 1;
            defmt::error!(
                "demo: core {=usize} ran version {=u64} after version {=u64} was published",
                core,
                version,
                floor
            );
        }
        let disturbed = version != seen_version || synced || ipi::handled(core) != ipis;
        seen_version = version;
        let late = end > due + period;
        f.record(
            end - due,
            disturbed,
            late as u64 + skipped,
            (plant.temperature - setpoint).abs(),
        );
    }
    timer::stop();
    svc.qsbr.offline(me);
    stats::file(core, figures);
}
