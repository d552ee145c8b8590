//! `call-site-entry`: a call through a call site costs exactly what a direct call costs.
//!
//! Under `-icount` (where the PMU counts retired instructions exactly), core 0 installs a `RET`
//! block in the `call-site` site, checks that every call site of its key is now `BL block`, then
//! counts the instructions of a loop of calls through a call site (`patch::call_sites::calls`)
//! and of the same loop with a direct `BL` to a `RET` (`direct_calls`): the two must be equal
//! to within less than one instruction per call (the counter is off by about one per loop at
//! translated-block boundaries).
//! Can catch: a call site that is not the caller's own `BL` (a trampoline or an indirect branch
//! between), a word not rewritten. Cannot catch: anything about caches (QEMU keeps fetch
//! coherent; `patch-call-site` under the sanitizer is for that).

use super::{Ctx, Failed, TestResult, check, kernel_test};
use crate::arch::pmu;
use crate::patch::call_sites;
use crate::patch::sites::{self, names};
use core::time::Duration;

kernel_test!(
    CALL_SITE_ENTRY,
    "call-site-entry",
    Pass,
    timeout_s = 60,
    min_cores = 1,
    run,
    tcg = Icount,
    sanitized = [No, No]
);

const CALLS: u64 = 1000;

fn run(ctx: &Ctx) -> TestResult {
    if ctx.core != 0 {
        return Ok(());
    }
    let site = sites::site(names::CALL_SITE).map_err(|_| Failed)?;
    let ret = patcher::insn::ret(patcher::insn::Reg::x(30)).map_err(|_| Failed)?;
    site.install(&ret.to_le_bytes(), Duration::from_secs(1))
        .map_err(|e| {
            defmt::error!("installing a RET block: {}", e);
            Failed
        })?;
    let (block, _) = site.running();
    let key = call_sites::key();
    check!(
        key.count() >= 3,
        "the key has {=usize} call sites, expected 3",
        key.count()
    );
    for ((exec, _), word) in key.words().zip(key.current()) {
        let want = patcher::insn::bl(block as i64 - exec as i64).map_err(|_| Failed)?;
        check!(
            word == want,
            "call site at {=usize:#x} holds {=u32:#010x}, expected BL block {=u32:#010x}",
            exec,
            word,
            want
        );
    }
    pmu::start_instructions();
    let a = pmu::instructions();
    call_sites::direct_calls(CALLS);
    let b = pmu::instructions();
    // SAFETY: the site leads to the RET block installed above.
    unsafe { call_sites::calls(CALLS) };
    let c = pmu::instructions();
    let (direct, through) = (b - a, c - b);
    defmt::info!(
        "call-site-entry: {=u64} calls: direct loop {=u64} instructions, through the call site {=u64}",
        CALLS,
        direct,
        through
    );
    check!(
        direct > 0,
        "the PMU counted nothing (is the run under -icount?)"
    );
    // The PMU under -icount is off by an instruction or so at translated-block boundaries
    // (README, Benchmarks), once per loop, not per call: one extra instruction per call would
    // add CALLS.
    let extra = through.abs_diff(direct);
    check!(
        extra < CALLS / 2,
        "a call through a call site costs {=i64} instructions more than a direct call over {=u64} calls",
        through as i64 - direct as i64,
        CALLS
    );
    defmt::info!(
        "call-site-entry: per call, direct {=u64} and through the call site {=u64} instructions (the loop's SUBS and B.NE included)",
        (direct + CALLS / 2) / CALLS,
        (through + CALLS / 2) / CALLS
    );
    Ok(())
}
