//! `stack-overflow`: one core overflows its stack into its guard page; it is reported and
//! stopped, and the other cores keep running.
//!
//! The last core recurses without end (each frame 512 bytes it writes). Core 0 waits until that
//! core has stopped on a stack overflow (`arch::exceptions`, after its `Record::StackOverflow`),
//! checks the fault was in that core's own stack's guard page, then checks every other core's
//! counter still advances after it (within 2 s).
//!
//! Can catch: an exception entry that needs the overflowed stack (the report never comes: the
//! core faults forever), a missing guard page (the recursion runs into the next core's memory
//! and corrupts it, or never faults within the timeout), an overflow that ends the whole run or
//! stops other cores. Cannot catch: an overflow of the exception stack itself (its guard page
//! faults again on the same stack; that is not contained), or a frame larger than a page that
//! jumps over the guard page.

use super::{Ctx, TestResult, check, kernel_test};
use crate::arch::{cpu, exceptions};
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

kernel_test!(
    STACK_OVERFLOW,
    "stack-overflow",
    Pass,
    timeout_s = 60,
    min_cores = 2,
    run,
    tcg = MultiThreaded,
    sanitized = [No, No]
);

static COUNTS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static STOP: AtomicBool = AtomicBool::new(false);
/// The core that overflows, fixed by the first core to start: a core that starts after the
/// overflow sees one core fewer online.
static VICTIM: AtomicUsize = AtomicUsize::new(usize::MAX);

fn run(ctx: &Ctx) -> TestResult {
    let victim = match VICTIM.compare_exchange(
        usize::MAX,
        ctx.cores - 1,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => ctx.cores - 1,
        Err(set) => set,
    };
    if ctx.core == victim {
        exceptions::expect_overflow();
        let depth = recurse(0);
        defmt::error!("stack-overflow: recursion returned at depth {=u64}", depth);
        return Err(super::Failed);
    }
    if ctx.core != 0 {
        while !STOP.load(Ordering::Acquire) {
            COUNTS[ctx.core].fetch_add(1, Ordering::Relaxed);
            cpu::relax();
        }
        return Ok(());
    }
    let until = cpu::ticks() + cpu::us_to_ticks(10_000_000);
    while exceptions::overflowed(victim).is_none() && cpu::ticks() < until {
        cpu::relax();
    }
    let own = exceptions::overflowed(victim);
    let before: [u64; MAX_CORES] = core::array::from_fn(|c| COUNTS[c].load(Ordering::Relaxed));
    // Each other core must count on after the overflow; 2 s bounds the wait (a loaded host may
    // not schedule a vCPU for milliseconds).
    let advanced = || (1..victim).all(|c| COUNTS[c].load(Ordering::Relaxed) > before[c]);
    let settle = cpu::ticks() + cpu::us_to_ticks(2_000_000);
    while !advanced() && cpu::ticks() < settle {
        cpu::relax();
    }
    STOP.store(true, Ordering::Release);
    check!(
        own == Some(true),
        "stack-overflow: core {=usize} did not stop in its own stack's guard page",
        victim
    );
    for c in 1..victim {
        let now = COUNTS[c].load(Ordering::Relaxed);
        check!(
            now > before[c],
            "stack-overflow: core {=usize} stopped running after the overflow (count {=u64}, then {=u64})",
            c,
            before[c],
            now
        );
    }
    defmt::info!(
        "stack-overflow: core {=usize} overflowed into its guard page; the others kept running",
        victim
    );
    Ok(())
}

/// Recurses until the stack runs out; every frame writes its 512 bytes.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A bound the compiler cannot see through, never reached: the guard page ends it.
    if core::hint::black_box(depth) == u64::MAX {
        return depth;
    }
    let mut frame = [depth; 64];
    core::hint::black_box(&mut frame);
    let below = recurse(depth + 1);
    below + frame[(depth % 64) as usize]
}
