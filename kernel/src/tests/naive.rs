//! `naive-rewrite`: the negative control the sanitizer must flag.
//!
//! Core 0 rewrites a function in place (`MOVZ X0, #v; RET`, the `MOVZ` outside the CMODX set)
//! with no cache maintenance and no synchronization at all, while cores 1-3 keep calling it.
//! Any mix of old and new words is harmless here (each word is whole), so the plain run only
//! checks that it completes and that consumers saw some new version: QEMU keeps fetch coherent,
//! so the plain run cannot see the bug. Under `--sanitize` it must be reported as unpredictable,
//! naming `graft_naive_site` and the missing clean. The safe twin (rendezvous, full maintenance,
//! an ISB on every core) is `patch-stw`, which the sanitizer must not flag.

use super::{Ctx, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::patch::negative::NaiveSite;
use crate::sync::Barrier;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

kernel_test!(
    NAIVE,
    "naive-rewrite",
    Pass,
    timeout_s = 120,
    min_cores = 2,
    run,
    tcg = MultiThreaded,
    sanitized = [Hazard, No]
);

const ROUNDS: u64 = 2000;
static START: Barrier = Barrier::new();
static STOP: AtomicBool = AtomicBool::new(false);
static HIGHEST: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

fn run(ctx: &Ctx) -> TestResult {
    let exec = NaiveSite::exec();
    if ctx.core == 0 {
        // The first version is installed properly; only the rewrites below are naive.
        if NaiveSite::install(0).is_err() {
            return Err(super::Failed);
        }
    }
    if START.wait(ctx.cores, 60_000_000).is_err() {
        return Err(super::Failed);
    }
    if ctx.core == 0 {
        for v in 1..=ROUNDS {
            NaiveSite::rewrite_naively((v % 0x1_0000) as u16);
            // Let the consumers run the code between rewrites (bounded: 1 ms each).
            let seen = CALLS.load(Ordering::Relaxed);
            let until = cpu::ticks() + cpu::us_to_ticks(1000);
            while CALLS.load(Ordering::Relaxed) == seen && cpu::ticks() < until {
                cpu::relax();
            }
        }
        STOP.store(true, Ordering::Release);
        let highest = HIGHEST.load(Ordering::Relaxed);
        defmt::info!(
            "naive-rewrite: {=u64} in-place rewrites with no maintenance; consumers saw up to version {=u64}",
            ROUNDS,
            highest
        );
        return Ok(());
    }
    // SAFETY: the site holds MOVZ/RET words (any mix of which is a valid function); running it
    // unsynchronized is the bug this test exists to show.
    let f: extern "C" fn() -> u64 = unsafe { core::mem::transmute(exec) };
    let mut calls = 0u64;
    while !STOP.load(Ordering::Acquire) {
        let v = f();
        HIGHEST.fetch_max(v, Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        calls += 1;
        cpu::relax();
    }
    check!(calls > 0, "core {=usize} never called the site", ctx.core);
    Ok(())
}
