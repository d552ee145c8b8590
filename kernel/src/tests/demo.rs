//! `demo` (the default run): live control loops patched with every strategy in turn.
//!
//! Passes when every loop met every deadline, none ran outdated code, and every strategy both
//! published and ran. Runs under deterministic virtual time (`-icount`), so deadlines are in
//! virtual time: QEMU cannot show cache-maintenance bugs (the sanitized stress tests do), and
//! virtual time says nothing about a real core's speed, only about instruction counts.

use super::{Ctx, TestResult, check, kernel_test};
use crate::demo;

kernel_test!(
    DEMO,
    "demo",
    Pass,
    timeout_s = 300,
    min_cores = 2,
    run,
    tcg = Icount,
    sanitized = [No, No]
);

/// Virtual seconds when `secs=` is not given.
const DEFAULT_SECS: u64 = 6;

fn run(ctx: &Ctx) -> TestResult {
    let secs = match ctx.cmdline.number("secs") {
        Some(Ok(n)) if n > 0 => n,
        _ => DEFAULT_SECS,
    };
    let Ok(summary) = demo::run(ctx.core, ctx.cores, secs) else {
        defmt::error!("demo: core {=usize} could not run", ctx.core);
        return Err(super::Failed);
    };
    if ctx.core != 0 {
        return Ok(());
    }
    check!(
        summary.misses == 0,
        "demo: {=u64} deadline misses",
        summary.misses
    );
    check!(
        summary.stale == 0,
        "demo: {=u64} iterations ran outdated code",
        summary.stale
    );
    check!(
        summary.idle == 0,
        "demo: {=u64} strategies never ran",
        summary.idle
    );
    defmt::info!("demo: every loop met every deadline across every strategy");
    Ok(())
}
