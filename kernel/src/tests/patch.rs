//! Patch stress tests: consumers call a site in a loop while core 0 publishes new versions.
//!
//! One scenario per publication strategy, declared with its site in `patch::sites` (`patch-ipi`,
//! `patch-ipi-remote`, `patch-branch`, `patch-ftr`, `patch-ftr-multi`, `patch-seq`,
//! `patch-stw`, `patch-call-site`), and three variants here (`patch-stw-irq`, `patch-ftr-broken`,
//! `patch-call-site-broken`). In each, cores 1-3
//! call the site (patch-ftr: core 1 only, its single consumer) and check every answer: the
//! block's own checksum of its code words must match its template (a torn or half-old block
//! fails it), and its version must not be older than the last version whose publication had
//! returned when the call began (a core still running old code fails it). Core 0 publishes
//! `pubs` versions (default 100,000) through the site's one publication path, over an arena of
//! 8 slots, so slots are reused through QSBR grace periods; before it writes a slot it checks
//! that no consumer is inside it (each block marks itself on entry and exit).
//!
//! TCG mode: round-robin TCG (`thread=single`), plain and sanitized, where QEMU itself never
//! leaves a core on old translated code (docs/design.md section 4), so a stale version is our
//! bug. QEMU keeps instruction fetch coherent, so a plain pass says nothing about cache
//! maintenance: that is the sanitized runs' job (`--sanitize`; the sanitizer names cores by
//! `TPIDR_EL1` there).

use super::{Ctx, Failed, TestResult};
use crate::arch::cpu;
use crate::patch::negative;
use crate::patch::payload;
use crate::patch::sites::{self, Site};
use crate::sync::Barrier;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use patcher::platform::CoreId;

/// One stress test: 4 cores, up to 10 minutes, round-robin TCG, its sanitized verdicts
/// (`[with default switches, with ic-broadcast=off]`), and how it runs its site.
macro_rules! stress_test {
    ($static:ident, $name:literal, $site:expr, $how:expr, [$s0:ident, $s1:ident]) => {
        $crate::tests::kernel_test!(
            $static,
            $name,
            Pass,
            timeout_s = 600,
            min_cores = 4,
            |ctx| $crate::tests::patch::run($site, $how, ctx),
            tcg = SingleThreaded,
            sanitized = [$s0, $s1]
        );
    };
}
pub(crate) use stress_test;

/// How a stress test runs its site.
#[derive(Clone, Copy)]
pub struct How {
    /// Consumers are cores `1..end` (0: every core but core 0).
    pub end: usize,
    /// Whether consumers mask IRQs around each call, as a control loop would (stop-the-world
    /// needs it unless its rendezvous checks where each core stopped).
    pub irqs_masked: bool,
    /// Publish through the flush stub without its `ISB` (the negative control).
    pub broken_stub: bool,
    /// Publish to call sites without the IPI round after the words (the negative control).
    pub broken_call_site: bool,
}

impl How {
    /// Every core but core 0 consumes, IRQs enabled.
    pub const PLAIN: How = How {
        end: 0,
        irqs_masked: false,
        broken_stub: false,
        broken_call_site: false,
    };
}

// Stop-the-world with consumers that keep IRQs enabled inside the site: the rendezvous must
// postpone every edit while a parked core would resume (or return) into the site.
stress_test!(
    PATCH_STW_IRQ,
    "patch-stw-irq",
    sites::names::STOP_THE_WORLD,
    How::PLAIN,
    [Clean, No]
);
// The negative control: the flush stub without its ISB, which the sanitizer must flag.
stress_test!(
    PATCH_FTR_BROKEN,
    "patch-ftr-broken",
    sites::names::FTR_MULTI,
    How {
        broken_stub: true,
        ..How::PLAIN
    },
    [Hazard, No]
);

// The negative control: call sites rewritten and maintained, but no IPI round after the words,
// so a consumer may run an old BL after the publication returned; the sanitizer must flag it.
stress_test!(
    PATCH_CALL_SITE_BROKEN,
    "patch-call-site-broken",
    sites::names::CALL_SITE,
    How {
        broken_call_site: true,
        ..How::PLAIN
    },
    [Hazard, No]
);

const DEFAULT_PUBS: u64 = 100_000;
/// How long a core waits at a barrier: the test's own time limit, since a core that is not a
/// consumer waits at the end barrier for the whole run (sanitized runs take about a minute: the
/// board checks every block, but interprets each template once per slot, `patcher::check::Memo`).
const BARRIER_TIMEOUT_US: u64 = 600_000_000;
const TIMEOUT: Duration = Duration::from_secs(20);

#[repr(align(128))]
struct PerCore {
    /// The payload's `inside` cell, and the spare word that makes it the 16 writable bytes the
    /// sites' policy lets a patch write (`patcher::check::Policy::KERNEL_SITES`).
    inside: [AtomicU64; 2],
    calls: AtomicU64,
}

static CORES: [PerCore; MAX_CORES] = [const {
    PerCore {
        inside: [AtomicU64::new(0), AtomicU64::new(0)],
        calls: AtomicU64::new(0),
    }
}; MAX_CORES];
/// The newest version whose publication has returned.
static DONE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static START: Barrier = Barrier::new();
static END: Barrier = Barrier::new();

/// Runs the stress test of `site` on this core.
pub fn run(site: &str, how: How, ctx: &Ctx) -> TestResult {
    let site = sites::site(site).map_err(|e| {
        defmt::error!("stress test: {}", e);
        Failed
    })?;
    let pubs = match ctx.cmdline.number("pubs") {
        Some(Ok(n)) if n > 0 => n,
        _ => DEFAULT_PUBS,
    };
    let end = if how.end == 0 { ctx.cores } else { how.end };
    if ctx.core == 0 {
        setup(site, how, end)?;
    }
    wait(&START, ctx)?;
    let result = if ctx.core == 0 {
        producer(site, end, pubs)
    } else if (1..end).contains(&ctx.core) {
        consumer(site, how, ctx)
    } else {
        Ok(())
    };
    if ctx.core == 0 {
        // Also when the producer failed: the consumers must not wait for versions that never come.
        STOP.store(true, Ordering::Release);
    }
    wait(&END, ctx)?;
    result
}

fn wait(b: &Barrier, ctx: &Ctx) -> TestResult {
    super::wait_all(b, ctx, BARRIER_TIMEOUT_US)
}

/// Installs version 0, so that the site leads to valid code before consumers start.
fn setup(site: &Site, how: How, end: usize) -> TestResult {
    site.set_consumers(1, end);
    if how.broken_stub {
        negative::use_broken_stub(site).map_err(|_| Failed)?;
    }
    if how.broken_call_site {
        crate::patch::call_sites::break_ipi_round();
    }
    let (buf, len) = payload::build(0);
    site.install(&buf[..len], TIMEOUT).map_err(|e| {
        defmt::error!("setup: the first block was refused: {}", e);
        Failed
    })
}

/// Before a slot is written: no consumer may be inside it (each block marks itself).
fn nobody_inside(exec: u64) -> bool {
    CORES.iter().enumerate().all(|(core, c)| {
        let inside = c.inside[0].load(Ordering::Acquire) == exec;
        if inside {
            defmt::error!(
                "slot at {=u64:#x} reused while core {=usize} is inside it",
                exec,
                core
            );
        }
        !inside
    })
}

fn producer(site: &Site, end: usize, pubs: u64) -> TestResult {
    let start = cpu::ticks();
    for version in 1..=pubs {
        let (buf, len) = payload::build(version);
        if let Err(e) = site.publish_vetted(&buf[..len], TIMEOUT, nobody_inside) {
            defmt::error!("publishing version {=u64} failed: {}", version, e);
            return Err(Failed);
        }
        DONE.store(version, Ordering::Release);
    }
    let elapsed = cpu::ticks() - start;
    STOP.store(true, Ordering::Release);
    let calls: u64 = (1..end)
        .map(|c| CORES[c].calls.load(Ordering::Relaxed))
        .sum();
    defmt::info!(
        "published {=u64} versions in {=u64} ms (counter time); consumers made {=u64} calls, all checked",
        pubs,
        elapsed * 1000 / cpu::tick_hz(),
        calls
    );
    defmt::info!(
        "every block was checked; {=u64} interpreted in full, the others answered from their slot's memo",
        crate::patch::service().arena().memo().interpreted()
    );
    if site.strategy() == sites::names::STOP_THE_WORLD {
        defmt::info!(
            "stop-the-world: {=u64} edits postponed while a core was stopped inside the site",
            sites::in_place_postponed()
        );
    }
    Ok(())
}

fn consumer(site: &Site, how: How, ctx: &Ctx) -> TestResult {
    let qsbr = &crate::patch::service().qsbr;
    let me = CoreId(ctx.core as u8);
    let cell = &CORES[ctx.core];
    let expected = [payload::expected_checksum(0), payload::expected_checksum(1)];
    // Two entries for call sites (two callers of one key), alternately; one otherwise.
    let entries = site.entries();
    qsbr.online(me);
    let mut last = 0;
    let mut result = Ok(());
    while !STOP.load(Ordering::Acquire) {
        let floor = DONE.load(Ordering::Acquire);
        // `patch-stw` masks IRQs around the call, as a control loop would, so the rendezvous IPI
        // lands between calls; `patch-stw-irq` leaves them enabled, and the rendezvous itself
        // must postpone the edit while a core is inside the site.
        let saved = how.irqs_masked.then(cpu::irq_save);
        let entry = entries[(cell.calls.load(Ordering::Relaxed) % 2) as usize];
        // SAFETY: the site leads to a published payload (setup installed version 0 before the
        // consumers started) and `inside` is this core's own cell.
        let a = unsafe { sites::call_payload(entry, cell.inside[0].as_ptr()) };
        if let Some(saved) = saved {
            cpu::irq_restore(saved);
        }
        qsbr.quiescent(me);
        let n = cell.calls.fetch_add(1, Ordering::Relaxed);
        if a.checksum != expected[(a.version % 2) as usize] {
            defmt::error!(
                "core {=usize}, call {=u64}: version {=u64} has checksum {=u64:#x}, expected {=u64:#x} (torn or mixed code)",
                ctx.core,
                n,
                a.version,
                a.checksum,
                expected[(a.version % 2) as usize]
            );
            result = Err(Failed);
            break;
        }
        if a.version < floor || a.version < last {
            defmt::error!(
                "core {=usize}, call {=u64}: ran version {=u64} after version {=u64} was published (and {=u64} seen)",
                ctx.core,
                n,
                a.version,
                floor,
                last
            );
            result = Err(Failed);
            break;
        }
        last = a.version;
        // An iteration boundary: lets round-robin TCG run the producer now.
        cpu::relax();
    }
    qsbr.offline(me);
    result
}
