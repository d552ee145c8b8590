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
pub(crate) mod plant;
mod stats;

use crate::arch::cpu;
use crate::patch::platform::KernelPlatform;
use crate::patch::sites::{self, STRATEGIES, Site};
use crate::sync::Barrier;
use crate::{ipi, timer};
use boards::MAX_CORES;
use controller::{Kind, LoopState, Params};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use patcher::platform::{CoreId, Platform};
pub use stats::{PhaseStats, Summary};

/// Control loops' rate.
pub const LOOP_HZ: u64 = 10_000;
/// Publications per second.
pub const PUBLISH_HZ: u64 = 1_000;
const DT: f32 = 1.0 / LOOP_HZ as f32;
const TIMEOUT: Duration = Duration::from_millis(50);

/// The strategy the loops use now (an index into [`sites::strategies`]; past the end: stop).
static PHASE: AtomicUsize = AtomicUsize::new(0);
/// The newest version whose publication has returned.
static DONE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static SETPOINT: AtomicU32 = AtomicU32::new(0);
static START: Barrier = Barrier::new();
static END: Barrier = Barrier::new();

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

/// The call through the site; returns the output and whether the site's entry check (the
/// sequence check's, in its trampoline) had to synchronize.
pub(crate) fn step(site: &Site, core: usize, measured: f32, setpoint: f32) -> (f32, bool) {
    let before = site.synced_to(CoreId(core as u8));
    let out = call(site, core, measured, setpoint);
    (out, site.synced_to(CoreId(core as u8)) != before)
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
        setup(&sites::strategies()[0], 0).map_err(drop)?;
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

/// The control law of `kind` for `version`, as a block.
fn law(kind: Kind, version: u64) -> ([u8; controller::MAX_LEN], usize) {
    controller::build(kind, params(kind, version))
}

/// Makes `site` lead to `version` of the PID before the loops switch to it.
pub(crate) fn setup(site: &Site, version: u64) -> Result<(), ()> {
    let (buf, len) = law(Kind::Pid, version);
    site.install(&buf[..len], TIMEOUT)
        .map_err(|e| defmt::error!("demo: setting up {=str} failed: {}", site.name, e))
}

/// Publishes `version` of `kind` to `site`.
pub(crate) fn publish(site: &Site, kind: Kind, version: u64) -> Result<(), ()> {
    publish_with(site, kind, version, Site::publish)
}

/// [`publish`], returning the producer's own instructions for the publication
/// ([`Site::publish_cost`]).
pub(crate) fn publish_cost(site: &Site, kind: Kind, version: u64) -> Result<u64, ()> {
    publish_with(site, kind, version, Site::publish_cost)
}

fn publish_with<T>(
    site: &Site,
    kind: Kind,
    version: u64,
    how: impl FnOnce(&Site, &[u8], Duration) -> Result<T, crate::patch::PatchError>,
) -> Result<T, ()> {
    let (buf, len) = law(kind, version);
    how(site, &buf[..len], TIMEOUT).map_err(|e| {
        defmt::error!(
            "demo: {=str} failed to publish version {=u64}: {}",
            site.name,
            version,
            e
        )
    })
}

fn producer(cores: usize, secs: u64) -> Result<Summary, ()> {
    let per_phase = (secs * PUBLISH_HZ / STRATEGIES as u64).max(4);
    let mut version = 0;
    let mut patches = [0u64; STRATEGIES];
    let mut last = timer::ticks(0);
    timer::start(PUBLISH_HZ);
    for (phase, site) in sites::strategies().iter().enumerate() {
        if phase > 0 {
            setup(site, version)?;
        }
        PHASE.store(phase, Ordering::Release);
        defmt::info!(
            "demo: {=str}: publishing {=u64} versions at {=u64} Hz",
            site.name,
            per_phase,
            PUBLISH_HZ
        );
        for k in 0..per_phase {
            if timer::wait_tick(0, &mut last, &STOP).is_none() {
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
            publish(site, kind, version)?;
            DONE.store(version, Ordering::Release);
            patches[phase] += 1;
        }
    }
    timer::stop();
    PHASE.store(STRATEGIES, Ordering::Release);
    STOP.store(true, Ordering::Release);
    // Wake the loops so that they see STOP, and wait until they have filed their figures.
    ipi::kick(crate::smp::online().without(0));
    if !KernelPlatform.wait_for(Duration::from_secs(5), &mut || stats::filed() == cores - 1) {
        defmt::error!("demo: a control loop did not stop");
        return Err(());
    }
    Ok(stats::summarize(&patches, cores))
}

pub(crate) fn call(site: &Site, core: usize, measured: f32, setpoint: f32) -> f32 {
    let st = state(core);
    // SAFETY: every site leads to a published control law (`setup` installed one before the
    // phase began), whose signature is `Law`, and `st` is this core's own state.
    unsafe {
        let law = core::mem::transmute::<usize, controller::Law>(site.entry());
        law(st, measured, setpoint)
    }
}

fn consumer(core: usize) {
    let svc = crate::patch::service();
    let me = CoreId(core as u8);
    svc.qsbr.online(me);
    timer::start(LOOP_HZ);
    let period = timer::period();
    let mut plant = plant::Thermal::new();
    let mut u = 0.0f32;
    let mut last = timer::ticks(core);
    let mut seen_version = 0;
    let mut figures = [PhaseStats::default(); STRATEGIES];
    while let Some(passed) = timer::wait_tick(core, &mut last, &STOP) {
        let skipped = passed - 1;
        let phase = PHASE.load(Ordering::Acquire);
        let Some(site) = sites::strategies().get(phase) else {
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
        let (out, synced) = step(site, core, plant.temperature, setpoint);
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
