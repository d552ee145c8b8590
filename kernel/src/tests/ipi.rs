//! `ipi`: every core calls every other core, with acknowledgement, and nothing is lost.
//!
//! Each core sends `rounds` (default 1000) acknowledged IPIs to each other core; receivers count
//! per sender and check each call's sequence number. Then each core broadcasts to all others,
//! and finally a call to a core with IRQs masked must time out, naming that core, and complete
//! once it unmasks. Can catch: lost, duplicated or reordered IPIs, wrong SGI targeting across
//! GIC clusters, acknowledgement races, a timeout that hangs or blames the wrong core.

use super::{Ctx, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::ipi::{self, IpiError};
use crate::sync::Barrier;
use boards::{CoreMask, MAX_CORES};
use core::sync::atomic::{AtomicU64, Ordering};

kernel_test!(IPI, "ipi", Pass, timeout_s = 120, min_cores = 2, run);

const CALL_TIMEOUT_US: u64 = 2_000_000;
const BARRIER_TIMEOUT_US: u64 = 60_000_000;
const BROADCASTS: u64 = 100;

/// `RECEIVED[sender][target]`.
static RECEIVED: [[AtomicU64; MAX_CORES]; MAX_CORES] =
    [const { [const { AtomicU64::new(0) }; MAX_CORES] }; MAX_CORES];
static OUT_OF_ORDER: AtomicU64 = AtomicU64::new(0);
static BROADCAST_SEEN: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static PHASE: Barrier = Barrier::new();
/// Set by the silent core once its IRQs are masked; set by core 0 once it saw the timeout.
static DEAF: AtomicU64 = AtomicU64::new(0);
static RELEASE: AtomicU64 = AtomicU64::new(0);

fn ping(sender: usize, expected: usize) {
    let n = RECEIVED[sender][cpu::core_id()].fetch_add(1, Ordering::Relaxed);
    if n != expected as u64 {
        OUT_OF_ORDER.fetch_add(1, Ordering::Relaxed);
    }
}

fn broadcast(_sender: usize, _arg: usize) {
    BROADCAST_SEEN[cpu::core_id()].fetch_add(1, Ordering::Relaxed);
}

fn sync(ctx: &Ctx) -> TestResult {
    if let Err(arrived) = PHASE.wait(ctx.cores, BARRIER_TIMEOUT_US) {
        defmt::error!(
            "core {=usize}: barrier timed out, arrived {=u64:#b}",
            ctx.core,
            arrived
        );
        return Err(super::Failed);
    }
    Ok(())
}

/// Default entry: 1000 rounds unless `rounds=N` is given.
pub fn run(ctx: &Ctx) -> TestResult {
    let rounds = match ctx.cmdline.number("rounds") {
        Some(Ok(n)) => n,
        _ => 1000,
    };
    all_to_all(ctx, rounds)?;
    broadcasts(ctx)?;
    timeout_names_the_silent_core(ctx)
}

/// Phase 1: every core calls every other core `rounds` times, one acknowledged call at a time.
pub fn all_to_all(ctx: &Ctx, rounds: u64) -> TestResult {
    sync(ctx)?;
    let start = cpu::ticks();
    for round in 0..rounds {
        for target in (0..ctx.cores).filter(|&t| t != ctx.core) {
            if let Err(e) = ipi::call(
                CoreMask::single(target),
                ping,
                round as usize,
                CALL_TIMEOUT_US,
            ) {
                defmt::error!(
                    "core {=usize} -> {=usize}, round {=u64}: {}",
                    ctx.core,
                    target,
                    round,
                    e
                );
                return Err(super::Failed);
            }
        }
    }
    let elapsed = cpu::ticks() - start;
    sync(ctx)?;
    if ctx.core == 0 {
        let mut total = 0;
        for (s, row) in RECEIVED.iter().enumerate().take(ctx.cores) {
            for (t, cell) in row
                .iter()
                .enumerate()
                .take(ctx.cores)
                .filter(|&(t, _)| t != s)
            {
                let got = cell.load(Ordering::Relaxed);
                check!(
                    got == rounds,
                    "core {=usize} received {=u64} of {=u64} IPIs from core {=usize}",
                    t,
                    got,
                    rounds,
                    s
                );
                total += got;
            }
        }
        let misordered = OUT_OF_ORDER.load(Ordering::Relaxed);
        check!(
            misordered == 0,
            "{=u64} IPIs arrived out of order or twice",
            misordered
        );
        let calls = rounds * (ctx.cores as u64 - 1);
        defmt::info!(
            "ipi: {=usize} cores x {=u64} rounds: {=u64} acknowledged, 0 lost, 0 out of order; core 0 mean round trip {=u64} ns",
            ctx.cores,
            rounds,
            total,
            elapsed * 1_000_000_000 / cpu::tick_hz() / calls.max(1)
        );
    }
    Ok(())
}

fn broadcasts(ctx: &Ctx) -> TestResult {
    for _ in 0..BROADCASTS {
        if let Err(e) = ipi::call_others(broadcast, 0, CALL_TIMEOUT_US) {
            defmt::error!("core {=usize}: broadcast failed: {}", ctx.core, e);
            return Err(super::Failed);
        }
    }
    sync(ctx)?;
    let seen = BROADCAST_SEEN[ctx.core].load(Ordering::Relaxed);
    let expected = BROADCASTS * (ctx.cores as u64 - 1);
    check!(
        seen == expected,
        "core {=usize} saw {=u64} broadcasts, expected {=u64}",
        ctx.core,
        seen,
        expected
    );
    Ok(())
}

fn timeout_names_the_silent_core(ctx: &Ctx) -> TestResult {
    let silent = ctx.cores - 1;
    sync(ctx)?;
    if ctx.core == silent {
        // Deaf until core 0 has seen its call time out (at most 10 s), then answer.
        let saved = cpu::irq_save();
        DEAF.store(1, Ordering::Release);
        let until = cpu::ticks() + cpu::us_to_ticks(10_000_000);
        while RELEASE.load(Ordering::Acquire) == 0 && cpu::ticks() < until {
            cpu::relax();
        }
        cpu::irq_restore(saved);
    } else if ctx.core == 0 {
        while DEAF.load(Ordering::Acquire) == 0 {
            cpu::relax();
        }
        let sent = ipi::send(CoreMask::single(silent), broadcast, 0, CALL_TIMEOUT_US);
        let first = sent.as_ref().map(|t| ipi::wait(t, 20_000));
        RELEASE.store(1, Ordering::Release);
        let Ok(first) = first else {
            defmt::error!("send to the silent core failed early");
            return Err(super::Failed);
        };
        let expected = IpiError::Timeout {
            pending: CoreMask::single(silent),
        };
        check!(
            first == Err(expected),
            "a call to a core with IRQs masked returned {}",
            first
        );
        let late = ipi::wait(sent.as_ref().unwrap(), CALL_TIMEOUT_US);
        check!(
            late.is_ok(),
            "the silent core never answered after unmasking: {}",
            late
        );
        defmt::info!(
            "ipi: a masked core times out by name (core {=usize}) and answers later",
            silent
        );
    }
    sync(ctx)
}
