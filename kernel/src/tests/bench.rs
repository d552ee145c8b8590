//! Benchmarks, as kernel runs under `-icount shift=0,sleep=off` (one instruction = one virtual
//! nanosecond): `cargo xtask bench` runs them and gathers the `bench-result` lines.
//!
//! - `bench-entry`: instructions per call through each kind of site, counted exactly with the
//!   PMU's retired-instruction counter (not timed), beside a direct call.
//! - `bench-strategy`: per strategy, with cores 1..N calling a site back to back, properties of
//!   Graft: the extra instructions publications add to the consumers' iterations (disturbance)
//!   and the IRQ exceptions they take for them, the producer's own instructions per publication
//!   (its waits for other cores excluded), and how many calls a consumer still makes to an older
//!   version after `publish` returned (latency in iterations). Beside them, informative and
//!   host-dependent: the virtual time from `publish` until every consumer ran the new version,
//!   and publications per virtual second back to back.
//!
//! These are figures, not checks: the runs fail only if something breaks (a publication error,
//! a consumer that never runs the new code).

use super::{Ctx, Failed, TestResult, kernel_test};
use crate::arch::{cpu, pmu};
use crate::demo::{self, controller::Kind};
use crate::patch::{self, sites};
use crate::report;
use crate::sync::Barrier;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use protocol::Record;
use protocol::record::Name;

kernel_test!(
    BENCH_ENTRY,
    "bench-entry",
    Pass,
    timeout_s = 120,
    min_cores = 1,
    entry,
    tcg = Icount,
    sanitized = [No, No]
);
kernel_test!(
    BENCH_STRATEGY,
    "bench-strategy",
    Pass,
    timeout_s = 900,
    min_cores = 2,
    strategies,
    tcg = Icount,
    sanitized = [No, No]
);

core::arch::global_asm!(
    ".section .text.graft_bench, \"ax\"",
    // x0 = target, x1 = n: call the target n times.
    ".global graft_bench_calls",
    "graft_bench_calls:",
    "    stp  x29, x30, [sp, #-32]!",
    "    stp  x19, x20, [sp, #16]",
    "    mov  x19, x0",
    "    mov  x20, x1",
    "1:  blr  x19",
    "    subs x20, x20, #1",
    "    b.ne 1b",
    "    ldp  x19, x20, [sp, #16]",
    "    ldp  x29, x30, [sp], #32",
    "    ret",
    // The same loop without the call.
    ".global graft_bench_empty",
    "graft_bench_empty:",
    "    stp  x29, x30, [sp, #-32]!",
    "    stp  x19, x20, [sp, #16]",
    "    mov  x19, x0",
    "    mov  x20, x1",
    "1:  nop",
    "    subs x20, x20, #1",
    "    b.ne 1b",
    "    ldp  x19, x20, [sp, #16]",
    "    ldp  x29, x30, [sp], #32",
    "    ret",
    ".global graft_bench_ret",
    "graft_bench_ret:",
    "    ret",
);

unsafe extern "C" {
    fn graft_bench_calls(target: usize, n: u64);
    fn graft_bench_empty(target: usize, n: u64);
    fn graft_bench_ret();
}

const CALLS: u64 = 1000;

/// Instructions one call to `target` costs (the call instruction included).
fn per_call(target: usize) -> u64 {
    // SAFETY: the loops only call `target`, which the caller made a valid function of no
    // arguments that preserves callee-saved registers, and visible to this core.
    unsafe {
        let a = pmu::instructions();
        graft_bench_empty(target, CALLS);
        let b = pmu::instructions();
        graft_bench_calls(target, CALLS);
        let c = pmu::instructions();
        ((c - b) - (b - a)) / CALLS + 1
    }
}

/// Instructions one call through the `call-site` site costs (its `BL` included), as
/// [`per_call`] counts them: the loop of calls against the same loop with a `NOP`.
fn call_site_per_call() -> u64 {
    let a = pmu::instructions();
    // SAFETY: as in `per_call`, the loop calls nothing.
    unsafe { graft_bench_empty(graft_bench_ret as *const () as usize, CALLS) };
    let b = pmu::instructions();
    // SAFETY: `entry` installed a `RET` block in every site, this one included, and this core
    // is its consumer.
    unsafe { crate::patch::call_sites::calls(CALLS) };
    let c = pmu::instructions();
    ((c - b).saturating_sub(b - a)) / CALLS + 1
}

/// `RET`, as the encoder gives it.
fn ret() -> Result<[u8; 4], Failed> {
    let ret = patcher::insn::ret(patcher::insn::Reg::x(30)).map_err(|_| Failed)?;
    Ok(ret.to_le_bytes())
}

fn entry(ctx: &Ctx) -> TestResult {
    if ctx.core != 0 {
        return Ok(());
    }
    sites::announce();
    pmu::start_instructions();
    let ret = ret()?;
    // Every site leads to a `ret` block; core 0 (the only one measuring) is the per-core sites'
    // consumer.
    for site in sites::strategies() {
        site.set_consumers(0, 1);
        site.install(&ret, Duration::from_secs(1)).map_err(|e| {
            defmt::error!("bench: installing {=str}: {}", site.name, e);
            Failed
        })?;
    }
    let direct = per_call(graft_bench_ret as *const () as usize);
    defmt::info!("bench-direct insns={=u64}", direct);
    report::emit(&Record::BenchDirect { insns: direct });
    for site in sites::strategies() {
        // Every site's entry checks (the sequence check's) run in its trampoline; a call site
        // is the caller's own `BL`, so it is counted in a loop of calls through it.
        let n = if site.strategy() == sites::names::CALL_SITE {
            call_site_per_call()
        } else {
            per_call(site.entry())
        };
        defmt::info!(
            "bench-entry strategy={=str} insns={=u64} extra={=u64} site=\"{=str}\"",
            site.name,
            n,
            n.saturating_sub(direct),
            site.path
        );
        report::emit(&Record::BenchEntry {
            strategy: Name::new(site.strategy()),
            insns: n,
        });
    }
    Ok(())
}

/// Publications whose effects are measured one at a time, and back to back.
const SPACED: u64 = 200;
const BACK_TO_BACK: u64 = 500;
/// Work per consumer iteration besides the call (keeps the loop realistic).
const WORK: u32 = 200;

/// The strategy consumers use now (an index into `sites::strategies()`; none before the first
/// setup).
static PHASE: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The newest version whose `publish` has returned.
static RETURNED: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static READY: Barrier = Barrier::new();
static DONE: Barrier = Barrier::new();

#[repr(align(128))]
struct Disturbance {
    baseline: AtomicU64,
    extra_max: AtomicU64,
    extra_sum: AtomicU64,
    disturbed: AtomicU64,
    /// The most calls to an older version after `publish` returned, for one publication.
    stale_max: AtomicU64,
}

static DISTURBANCE: [Disturbance; MAX_CORES] = [const {
    Disturbance {
        baseline: AtomicU64::new(u64::MAX),
        extra_max: AtomicU64::new(0),
        extra_sum: AtomicU64::new(0),
        disturbed: AtomicU64::new(0),
        stale_max: AtomicU64::new(0),
    }
}; MAX_CORES];

fn consumer(core: usize) {
    pmu::start_instructions();
    let svc = patch::service();
    let me = patcher::platform::CoreId(core as u8);
    svc.qsbr.online(me);
    let mut phase = usize::MAX;
    let mut y = 20.0f32;
    let mut irq_before = crate::irq::spent(core);
    // Calls to an older version since `returned` was published (`stale_for`).
    let (mut stale_for, mut stale) = (0, 0);
    while !STOP.load(Ordering::Acquire) {
        let p = PHASE.load(Ordering::Acquire);
        let Some(site) = sites::strategies().get(p) else {
            cpu::relax();
            continue;
        };
        // Under -icount the PMU counts every core's instructions (it is virtual time), so the
        // window stays between two yields, where no other core runs; the IRQ handlers this core
        // ran since the last iteration (a publication's IPI, a rendezvous) are charged to it.
        let returned = RETURNED.load(Ordering::Acquire);
        let start = pmu::instructions();
        // The step runs with IRQs masked, as a control loop's would (and as in the demo): a
        // publication's IPI lands between steps, and is charged to this iteration below.
        let saved = cpu::irq_save();
        let (u, _) = demo::step(site, core, y, 60.0);
        cpu::irq_restore(saved);
        let mut acc = u;
        for i in 0..WORK {
            acc = core::hint::black_box(acc + i as f32);
        }
        y = 20.0 + core::hint::black_box(acc) * 0.0 + u * 100.0;
        let irq_now = crate::irq::spent(core);
        let spent = pmu::instructions() - start + (irq_now - irq_before);
        irq_before = irq_now;
        svc.qsbr.quiescent(me);
        if demo::version_run(core) < returned {
            if stale_for != returned {
                (stale_for, stale) = (returned, 0);
            }
            stale += 1;
            DISTURBANCE[core]
                .stale_max
                .fetch_max(stale, Ordering::Relaxed);
        }
        if p == phase {
            let d = &DISTURBANCE[core];
            let base = d.baseline.load(Ordering::Relaxed);
            if spent < base {
                d.baseline.store(spent, Ordering::Relaxed);
            } else if spent > base {
                let extra = spent - base;
                d.disturbed.fetch_add(1, Ordering::Relaxed);
                d.extra_sum.fetch_add(extra, Ordering::Relaxed);
                d.extra_max.fetch_max(extra, Ordering::Relaxed);
            }
        } else {
            phase = p;
            DISTURBANCE[core].baseline.store(spent, Ordering::Relaxed);
        }
        // The iteration boundary: round-robin TCG runs the next core now.
        cpu::relax();
    }
    svc.qsbr.offline(me);
}

fn reset_disturbance() {
    for d in &DISTURBANCE {
        d.extra_max.store(0, Ordering::Relaxed);
        d.extra_sum.store(0, Ordering::Relaxed);
        d.disturbed.store(0, Ordering::Relaxed);
        d.stale_max.store(0, Ordering::Relaxed);
    }
}

fn ns(ticks: u64) -> u64 {
    ticks * 1_000_000_000 / cpu::tick_hz().max(1)
}

fn all_ran(version: u64, cores: usize) -> bool {
    (1..cores).all(|c| demo::version_run(c) >= version)
}

fn producer(ctx: &Ctx) -> TestResult {
    sites::announce();
    pmu::start_instructions();
    let mut version = 0;
    for (phase, site) in sites::strategies().iter().enumerate() {
        demo::setup(site, version).map_err(|_| Failed)?;
        PHASE.store(phase, Ordering::Release);
        // Let every consumer settle on the new site and learn its quiet iteration.
        let settle = cpu::ticks() + cpu::us_to_ticks(200);
        while cpu::ticks() < settle {
            cpu::relax();
        }
        reset_disturbance();
        let publish = |version: u64| {
            demo::publish(site, Kind::Pid, version).map_err(|_| Failed)?;
            RETURNED.store(version, Ordering::Release);
            Ok(())
        };
        let taken = || (1..ctx.cores).map(crate::irq::taken).sum::<u64>();
        let taken_before = taken();
        let mut producer = u64::MAX;
        // Spaced: one publication at a time, each waited for until every consumer ran it.
        let mut latency_sum = 0;
        for _ in 0..SPACED {
            version += 1;
            let t0 = cpu::ticks();
            let own = demo::publish_cost(site, Kind::Pid, version).map_err(|_| Failed)?;
            RETURNED.store(version, Ordering::Release);
            // The least is the publication's own cost: a vCPU switch inside it (QEMU's, not
            // a wait) would only add.
            producer = producer.min(own);
            let deadline = cpu::ticks() + cpu::us_to_ticks(100_000);
            while !all_ran(version, ctx.cores) {
                if cpu::ticks() > deadline {
                    defmt::error!(
                        "bench: {=str}: a consumer never ran version {=u64}",
                        site.name,
                        version
                    );
                    return Err(Failed);
                }
                cpu::relax();
            }
            latency_sum += cpu::ticks() - t0;
            // A quiet gap, so that each publication disturbs at most one iteration per core.
            let gap = cpu::ticks() + cpu::us_to_ticks(20);
            while cpu::ticks() < gap {
                cpu::relax();
            }
        }
        let exceptions = taken() - taken_before;
        let (mut max, mut sum) = (0, 0);
        for d in &DISTURBANCE[1..ctx.cores] {
            max = max.max(d.extra_max.load(Ordering::Relaxed));
            sum += d.extra_sum.load(Ordering::Relaxed);
        }
        if site.strategy() == sites::names::FTR_MULTI {
            version += 1;
            publish_cost(ctx, site, version)?;
        }
        // Back to back: as many publications as the strategy allows.
        let t0 = cpu::ticks();
        for _ in 0..BACK_TO_BACK {
            version += 1;
            publish(version)?;
        }
        let elapsed = (cpu::ticks() - t0).max(1);
        let per_s = BACK_TO_BACK * cpu::tick_hz() / elapsed;
        let stale = DISTURBANCE[1..ctx.cores]
            .iter()
            .map(|d| d.stale_max.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        defmt::info!(
            "bench-cost strategy={=str} cores={=usize} disturb_insns={=u64} (over {=u64} publications) disturb_max_insns={=u64} exception_entries={=u64} producer_insns={=u64} latency_iterations={=u64}",
            site.name,
            ctx.cores,
            sum,
            SPACED,
            max,
            exceptions,
            producer,
            stale
        );
        report::emit(&Record::BenchCost {
            strategy: Name::new(site.strategy()),
            cores: ctx.cores as u32,
            publications: SPACED as u32,
            disturb_insns: sum,
            disturb_max_insns: max,
            exception_entries: exceptions,
            producer_insns: producer,
            latency_iterations: stale,
        });
        report::emit(&Record::BenchResult {
            strategy: Name::new(site.strategy()),
            cores: ctx.cores as u32,
            latency_ns: ns(latency_sum / SPACED),
            throughput_per_s: per_s,
        });
    }
    Ok(())
}

/// The producer's own instructions for one flush-then-redirect publication to every consumer's
/// cell (no waiting): what each extra consumer costs the publisher.
fn publish_cost(ctx: &Ctx, site: &sites::Site, version: u64) -> TestResult {
    let params = demo::controller::Params {
        kp: 0.05,
        ki_dt: 0.0,
        k3: 0.0,
        umax: 1.0,
        version,
    };
    let (buf, len) = demo::controller::build(Kind::Pid, params);
    let spent = site
        .redirect_cost(&buf[..len], Duration::from_millis(50))
        .map_err(|e| {
            defmt::error!("bench: publication cost: {}", e);
            Failed
        })?;
    defmt::info!(
        "bench-publish strategy=ftr-multi consumers={=usize} insns={=u64}",
        ctx.cores - 1,
        spent
    );
    report::emit(&Record::BenchPublish {
        strategy: Name::new(site.strategy()),
        consumers: (ctx.cores - 1) as u32,
        insns: spent,
    });
    Ok(())
}

fn strategies(ctx: &Ctx) -> TestResult {
    READY.wait(ctx.cores, 60_000_000).map_err(|_| Failed)?;
    let result = if ctx.core == 0 {
        let r = producer(ctx);
        STOP.store(true, Ordering::Release);
        r
    } else {
        consumer(ctx.core);
        Ok(())
    };
    DONE.wait(ctx.cores, 60_000_000).map_err(|_| Failed)?;
    result
}
