//! Benchmarks, as kernel runs under `-icount shift=0,sleep=off` (one instruction = one virtual
//! nanosecond): `cargo xtask bench` runs them and gathers their `Bench*` records.
//!
//! - `bench-entry`: instructions per call through each kind of site, counted exactly with the
//!   PMU's retired-instruction counter (not timed), beside a direct call.
//! - `bench-strategy`: per strategy, with cores 1..N calling a site back to back: the extra
//!   instructions one publication adds to one consumer iteration (disturbance), the virtual time
//!   from `publish` until every consumer ran the new version (latency), and publications per
//!   virtual second back to back (throughput).
//!
//! These are figures, not checks: the runs fail only if something breaks (a publication error,
//! a consumer that never runs the new code).

use super::{Ctx, Failed, TestResult, kernel_test};
use crate::arch::{cpu, pmu};
use crate::demo::{self, Strategy, controller::Kind};
use crate::patch::{self, Fixed, sites};
use crate::report;
use crate::sync::Barrier;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use patcher::strategy::{FlushThenRedirect, IpiSync, Strategy as _};
use protocol::Record;

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

/// A `ret`-only block, placed and made fresh everywhere.
fn ret_block() -> Result<patcher::arena::CodeBlock<'static>, Failed> {
    let code = 0xd65f_03c0u32.to_le_bytes(); // RET, as the encoder would give it (checked below)
    if patcher::insn::ret(patcher::insn::Reg::x(30)).ok() != Some(0xd65f_03c0) {
        return Err(Failed);
    }
    let block =
        patch::place(&code, core::time::Duration::from_secs(1), |_| true).map_err(|_| Failed)?;
    patch::install(
        &patch::service().sync,
        block.write_addr(),
        block.exec_addr() as usize,
        4,
    )
    .map_err(|_| Failed)?;
    Ok(block)
}

extern "C" fn seq_checked_call() {
    crate::demo::seq_enter_for_bench();
    // SAFETY: the indirect site leads to the `ret` block (set up in `entry`).
    unsafe { core::mem::transmute::<usize, extern "C" fn()>(sites::indirect_addr())() }
}

fn entry(ctx: &Ctx) -> TestResult {
    if ctx.core != 0 {
        return Ok(());
    }
    pmu::start_instructions();
    let svc = patch::service();
    let ret = ret_block()?;
    let block = ret.exec_addr();
    // Point every kind of site at the `ret` block.
    let (flip_exec, flip_write) = patch::arena_addr(Fixed::FLIP);
    let b = patcher::insn::b(block as i64 - flip_exec as i64).map_err(|_| Failed)?;
    // SAFETY: the fixed page's flip word; nothing else runs it during this test.
    unsafe { (flip_write as *mut u32).write_volatile(b) };
    patch::install(&svc.sync, flip_write, flip_exec, 4).map_err(|_| Failed)?;
    let (ip_exec, ip_write) = patch::arena_addr(Fixed::IN_PLACE);
    // SAFETY: the in-place site; nothing else runs it during this test.
    unsafe { (ip_write as *mut u32).write_volatile(0xd65f_03c0) };
    patch::install(&svc.sync, ip_write, ip_exec, 4).map_err(|_| Failed)?;
    sites::PER_CORE[0].target.store(block, Ordering::Release);
    IpiSync
        .publish(
            &patch::env(core::time::Duration::from_secs(1)),
            &sites::INDIRECT,
            &ret,
        )
        .map_err(|_| Failed)?;
    let direct = per_call(graft_bench_ret as *const () as usize);
    let kinds: [(Strategy, &str, usize); 6] = [
        (Strategy::BranchFlip, "BL site; B block", flip_exec),
        (Strategy::IpiSync, "ADRP, LDR, BR", sites::indirect_addr()),
        (
            Strategy::FlushThenRedirect,
            "MRS, LDR, BR",
            sites::per_core_addr(),
        ),
        (Strategy::FtrMulti, "MRS, LDR, BR", sites::per_core_addr()),
        (
            Strategy::SeqCheck,
            "entry check in Rust, then ADRP, LDR, BR",
            seq_checked_call as *const () as usize,
        ),
        (
            Strategy::StopTheWorld,
            "code patched in place: a direct call",
            ip_exec,
        ),
    ];
    defmt::info!("bench-direct insns={=u64}", direct);
    report::emit(&Record::BenchDirect { insns: direct });
    for (strategy, how, target) in kinds {
        let n = per_call(target);
        defmt::info!(
            "bench-entry strategy={=str} insns={=u64} extra={=u64} site=\"{=str}\"",
            strategy.name(),
            n,
            n - direct,
            how
        );
        report::emit(&Record::BenchEntry {
            strategy: report::strategy(strategy),
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

/// The strategy consumers use now (an index into `Strategy::ALL`; none before the first setup).
static PHASE: AtomicUsize = AtomicUsize::new(usize::MAX);
static STOP: AtomicBool = AtomicBool::new(false);
static READY: Barrier = Barrier::new();
static DONE: Barrier = Barrier::new();

#[repr(align(128))]
struct Disturbance {
    baseline: AtomicU64,
    extra_max: AtomicU64,
    extra_sum: AtomicU64,
    disturbed: AtomicU64,
}

static DISTURBANCE: [Disturbance; MAX_CORES] = [const {
    Disturbance {
        baseline: AtomicU64::new(u64::MAX),
        extra_max: AtomicU64::new(0),
        extra_sum: AtomicU64::new(0),
        disturbed: AtomicU64::new(0),
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
    while !STOP.load(Ordering::Acquire) {
        let p = PHASE.load(Ordering::Acquire);
        let Some(&strategy) = Strategy::ALL.get(p) else {
            cpu::relax();
            continue;
        };
        // Under -icount the PMU counts every core's instructions (it is virtual time), so the
        // window stays between two yields, where no other core runs; the IRQ handlers this core
        // ran since the last iteration (a publication's IPI, a rendezvous) are charged to it.
        let start = pmu::instructions();
        // Stop-the-world edits code in place, so the call runs with IRQs masked and the
        // rendezvous lands between calls (as in the demo); the other strategies need no mask.
        let saved = (strategy == Strategy::StopTheWorld).then(cpu::irq_save);
        let (u, _) = demo::step(strategy, core, y, 60.0);
        if let Some(saved) = saved {
            cpu::irq_restore(saved);
        }
        let mut acc = u;
        for i in 0..WORK {
            acc = core::hint::black_box(acc + i as f32);
        }
        y = 20.0 + core::hint::black_box(acc) * 0.0 + u * 100.0;
        let irq_now = crate::irq::spent(core);
        let spent = pmu::instructions() - start + (irq_now - irq_before);
        irq_before = irq_now;
        svc.qsbr.quiescent(me);
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
    }
}

fn ns(ticks: u64) -> u64 {
    ticks * 1_000_000_000 / cpu::tick_hz().max(1)
}

fn all_ran(version: u64, cores: usize) -> bool {
    (1..cores).all(|c| demo::version_run(c) >= version)
}

fn producer(ctx: &Ctx) -> TestResult {
    pmu::start_instructions();
    let rv = demo::rendezvous();
    let mut version = 0;
    let mut live = None;
    for (phase, &strategy) in Strategy::ALL.iter().enumerate() {
        live = demo::setup(strategy, version, live).map_err(|_| Failed)?;
        PHASE.store(phase, Ordering::Release);
        // Let every consumer settle on the new site and learn its quiet iteration.
        let settle = cpu::ticks() + cpu::us_to_ticks(200);
        while cpu::ticks() < settle {
            cpu::relax();
        }
        reset_disturbance();
        let publish = |version: u64, live: &mut Option<patcher::arena::SlotId>| -> TestResult {
            let now = demo::publish(strategy, Kind::Pid, version, rv).map_err(|_| Failed)?;
            if let Some(new) = now
                && let Some(old) = live.replace(new)
            {
                patch::retire(old).map_err(|_| Failed)?;
            }
            Ok(())
        };
        // Spaced: one publication at a time, each waited for until every consumer ran it.
        let mut latency_sum = 0;
        for _ in 0..SPACED {
            version += 1;
            let t0 = cpu::ticks();
            publish(version, &mut live)?;
            let deadline = cpu::ticks() + cpu::us_to_ticks(100_000);
            while !all_ran(version, ctx.cores) {
                if cpu::ticks() > deadline {
                    defmt::error!(
                        "bench: {=str}: a consumer never ran version {=u64}",
                        strategy.name(),
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
        let (mut max, mut sum, mut n) = (0, 0, 0);
        for d in &DISTURBANCE[1..ctx.cores] {
            max = max.max(d.extra_max.load(Ordering::Relaxed));
            sum += d.extra_sum.load(Ordering::Relaxed);
            n += d.disturbed.load(Ordering::Relaxed);
        }
        if strategy == Strategy::FtrMulti {
            version += 1;
            publish_cost(ctx, version, &mut live)?;
        }
        // Back to back: as many publications as the strategy allows.
        let t0 = cpu::ticks();
        for _ in 0..BACK_TO_BACK {
            version += 1;
            publish(version, &mut live)?;
        }
        let elapsed = (cpu::ticks() - t0).max(1);
        let per_s = BACK_TO_BACK * cpu::tick_hz() / elapsed;
        defmt::info!(
            "bench-result strategy={=str} cores={=usize} disturb_max_ns={=u64} disturb_mean_ns={=u64} latency_ns={=u64} throughput_per_s={=u64}",
            strategy.name(),
            ctx.cores,
            max,
            sum / n.max(1),
            ns(latency_sum / SPACED),
            per_s
        );
        report::emit(&Record::BenchResult {
            strategy: report::strategy(strategy),
            cores: ctx.cores as u32,
            disturb_max_ns: max,
            disturb_mean_ns: sum / n.max(1),
            latency_ns: ns(latency_sum / SPACED),
            throughput_per_s: per_s,
        });
    }
    Ok(())
}

/// The producer's own instructions for one flush-then-redirect publication to every consumer's
/// cell (no waiting): what each extra consumer costs the publisher.
fn publish_cost(ctx: &Ctx, version: u64, live: &mut Option<patcher::arena::SlotId>) -> TestResult {
    let fail = |what: &str| {
        defmt::error!("bench: publication cost: {=str}", what);
        Failed
    };
    let params = demo::controller::Params {
        kp: 0.05,
        ki_dt: 0.0,
        k3: 0.0,
        umax: 1.0,
        version,
    };
    let (buf, len) = demo::controller::build(Kind::Pid, params);
    let block = patch::place(&buf[..len], core::time::Duration::from_millis(50), |_| true)
        .map_err(|_| fail("place"))?;
    let env = patch::env(core::time::Duration::from_millis(50));
    let ftr = FlushThenRedirect::new(patch::stub_addr());
    let cells = &sites::PER_CORE[1..ctx.cores];
    let before = pmu::instructions();
    ftr.publish(&env, cells, &block)
        .map_err(|_| fail("publish"))?;
    let spent = pmu::instructions() - before;
    ftr.wait_acknowledged(&env, cells, &block)
        .map_err(|_| fail("acknowledgement"))?;
    if let Some(old) = live.replace(block.slot()) {
        patch::retire(old).map_err(|_| Failed)?;
    }
    defmt::info!(
        "bench-publish strategy=ftr-multi consumers={=usize} insns={=u64}",
        ctx.cores - 1,
        spent
    );
    report::emit(&Record::BenchPublish {
        strategy: protocol::Strategy::FtrMulti,
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
