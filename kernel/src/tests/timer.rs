//! `timer`: every core takes its own timer interrupts at the asked rate.
//!
//! Each core ticks at `hz` (default 1000) for a 200 ms window of counter time and must count
//! within 10% of the expected number. Can catch: a timer interrupt not routed to a core, not
//! re-armed, or delivered to the wrong core. The tolerance absorbs host scheduling of QEMU's
//! threads; the handler re-arms from the previous deadline, so late ticks are not lost.

use super::{Ctx, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::timer;

kernel_test!(TIMER, "timer", Pass, timeout_s = 60, min_cores = 1, run);

const WINDOW_US: u64 = 200_000;
const TOLERANCE_PERCENT: u64 = 10;

fn run(ctx: &Ctx) -> TestResult {
    let hz = match ctx.cmdline.number("hz") {
        Some(Ok(n)) if n > 0 => n,
        _ => 1000,
    };
    timer::start(hz);
    // One period to settle, then count over the window.
    let settle = cpu::ticks() + cpu::tick_hz() / hz;
    while cpu::ticks() < settle {
        cpu::relax();
    }
    let (t0, c0) = (cpu::ticks(), timer::ticks(ctx.core));
    while cpu::ticks() - t0 < cpu::us_to_ticks(WINDOW_US) {
        cpu::relax();
    }
    let (t1, c1) = (cpu::ticks(), timer::ticks(ctx.core));
    timer::stop();
    let expected = hz * (t1 - t0) / cpu::tick_hz();
    let got = c1 - c0;
    let slack = (expected * TOLERANCE_PERCENT / 100).max(1);
    defmt::info!(
        "timer: core {=usize} took {=u64} ticks, expected {=u64} +/- {=u64} at {=u64} Hz",
        ctx.core,
        got,
        expected,
        slack,
        hz
    );
    check!(
        got.abs_diff(expected) <= slack,
        "core {=usize}: {=u64} timer ticks, expected {=u64} +/- {=u64}",
        ctx.core,
        got,
        expected,
        slack
    );
    Ok(())
}
