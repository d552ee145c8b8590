//! `patch-fault` and `patch-hang`: a patch that faults or hangs is rolled back, and the control
//! loops calling it each lose at most one iteration per bad patch.
//!
//! Cores 1-3 run control loops at 10 kHz (their own timer ticks), each calling the `indirect`
//! site (IPI sync) once per tick through `patch::contain::call`, with a budget of half a period.
//! Core 0 publishes two good versions, then, through the verifier's test-only door
//! (`Site::publish_unverified_for_tests`), the bad blocks: for `patch-fault` a load from an
//! unmapped address (a data abort) and a `UDF`; for `patch-hang` a `B .`. After each it waits
//! until the site was rolled back (its publication count grew by two: the bad block and the
//! rollback), then lets the loops run on for 30 ms.
//!
//! Checked: every bad block was rolled back, by one rollback (one `Record::PatchFault`, which
//! xtask prints); each loop's failed steps plus skipped ticks are at most the number of bad
//! blocks (one iteration each); every answer a loop got is a good version with a right checksum
//! and, once the first good version after it was published, never older; each loop ends running
//! the last good version; and the loops ran (at least 500 iterations each).
//!
//! Can catch: a fault that ends the run or halts a core, a handler that resumes into the patch
//! (the fault repeats: more failed steps) or loses the loop's registers (wrong answers or a
//! crash), a hang never found (the wait for the rollback times out), a rollback to the wrong code
//! (version or checksum), a rollback that stalls the loops (skipped ticks). Cannot catch: a
//! fault outside the arena (an exported helper's), a hang with IRQs masked, anything the
//! sanitizer sees (these runs are not sanitized).

use super::{Ctx, Failed, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::patch::contain::{self, Rollback};
use crate::patch::payload;
use crate::patch::sites::{self, Site};
use crate::sync::Barrier;
use crate::timer;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use patcher::platform::CoreId;

kernel_test!(
    PATCH_FAULT,
    "patch-fault",
    Pass,
    timeout_s = 120,
    min_cores = 4,
    run_fault,
    tcg = Icount,
    sanitized = [No, No]
);

kernel_test!(
    PATCH_HANG,
    "patch-hang",
    Pass,
    timeout_s = 120,
    min_cores = 4,
    run_hang,
    tcg = Icount,
    sanitized = [No, No]
);

const SITE: &str = "indirect";
const LOOP_HZ: u64 = 10_000;
/// Half a period: a patch still running then is hung.
const BUDGET: Duration = Duration::from_micros(50);
const TIMEOUT: Duration = Duration::from_millis(50);
const SETTLE_MS: u64 = 30;
const BARRIER_TIMEOUT_US: u64 = 60_000_000;

/// `MOVZ X9, #0x7f, LSL #32; LDR X0, [X9]; RET`: a load from 0x7f_0000_0000, mapped nowhere.
const DATA_ABORT: [u32; 3] = [0xd2c0_0fe9, 0xf940_0120, 0xd65f_03c0];
/// `UDF #0; RET`.
const UNDEFINED: [u32; 2] = [0x0000_0000, 0xd65f_03c0];
/// `B .; RET`.
const HANG: [u32; 2] = [0x1400_0000, 0xd65f_03c0];

static START: Barrier = Barrier::new();
static END: Barrier = Barrier::new();
static STOP: AtomicBool = AtomicBool::new(false);
/// The newest good version published: answers older than it are stale.
static FLOOR: AtomicU64 = AtomicU64::new(0);
static INSIDE: [[AtomicU64; 2]; MAX_CORES] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_CORES];
/// Rollbacks done, by all loops.
static ROLLBACKS: AtomicU64 = AtomicU64::new(0);

fn run_fault(ctx: &Ctx) -> TestResult {
    run(ctx, &[&DATA_ABORT, &UNDEFINED])
}

fn run_hang(ctx: &Ctx) -> TestResult {
    run(ctx, &[&HANG])
}

fn run(ctx: &Ctx, bad: &[&[u32]]) -> TestResult {
    let site = sites::site(SITE).map_err(|_| Failed)?;
    if ctx.core == 0 {
        publish(site, 1)?;
    }
    wait(&START, ctx)?;
    let result = if ctx.core == 0 {
        let r = producer(site, bad);
        STOP.store(true, Ordering::Release);
        r
    } else {
        control_loop(site, ctx.core, bad.len() as u64)
    };
    wait(&END, ctx)?;
    if ctx.core == 0 {
        let done = ROLLBACKS.load(Ordering::Acquire);
        check!(
            done == bad.len() as u64,
            "contain: {=u64} rollbacks for {=usize} bad blocks",
            done,
            bad.len()
        );
    }
    result
}

fn wait(b: &Barrier, ctx: &Ctx) -> TestResult {
    super::wait_all(b, ctx, BARRIER_TIMEOUT_US)
}

fn publish(site: &Site, version: u64) -> TestResult {
    let (block, len) = payload::build(version);
    site.publish(&block[..len], TIMEOUT).map_err(|e| {
        defmt::error!("contain: version {=u64} was refused: {}", version, e);
        Failed
    })?;
    FLOOR.store(version, Ordering::Release);
    Ok(())
}

fn sleep_ms(ms: u64) {
    let until = cpu::ticks() + cpu::us_to_ticks(ms * 1000);
    while cpu::ticks() < until {
        cpu::relax();
    }
}

fn producer(site: &Site, bad: &[&[u32]]) -> TestResult {
    sleep_ms(SETTLE_MS);
    publish(site, 2)?;
    sleep_ms(SETTLE_MS);
    for (i, words) in bad.iter().enumerate() {
        let mut code = [0u8; 16];
        for (dst, w) in code.chunks_exact_mut(4).zip(words.iter()) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        let before = site.version();
        site.publish_unverified_for_tests(&code[..words.len() * 4], TIMEOUT)
            .map_err(|e| {
                defmt::error!("contain: bad block {=usize} was refused: {}", i, e);
                Failed
            })?;
        // Rolled back when the loops' first call to it faulted: its publication and the rollback.
        let until = cpu::ticks() + cpu::us_to_ticks(200_000);
        while site.version() < before + 2 && cpu::ticks() < until {
            cpu::relax();
        }
        check!(
            site.version() >= before + 2,
            "contain: bad block {=usize} was not rolled back within 200 ms",
            i
        );
        defmt::info!("contain: bad block {=usize} rolled back", i);
        sleep_ms(SETTLE_MS);
    }
    Ok(())
}

fn control_loop(site: &Site, core: usize, bad: u64) -> TestResult {
    let qsbr = &crate::patch::service().qsbr;
    let me = CoreId(core as u8);
    qsbr.online(me);
    timer::start(LOOP_HZ);
    let mut last = timer::ticks(core);
    let (mut iterations, mut failed, mut skipped, mut version) = (0u64, 0u64, 0u64, 0u64);
    let mut result = Ok(());
    while let Some(passed) = timer::wait_tick(core, &mut last, &STOP) {
        // The first tick after the start counts from whenever the loop began.
        if iterations > 0 {
            skipped += passed - 1;
        }
        iterations += 1;
        let floor = FLOOR.load(Ordering::Acquire);
        // SAFETY: every code the site leads to is a payload or one of the test's bad blocks
        // (which touch nothing but an unmapped address), and the cell is this core's own.
        match unsafe { contain::call(site, INSIDE[core][0].as_ptr(), BUDGET) } {
            Ok(a) => {
                if a.checksum != payload::expected_checksum(a.version) || a.version < floor {
                    defmt::error!(
                        "contain: core {=usize} got version {=u64} (checksum {=u64:#x}) after {=u64} was published",
                        core,
                        a.version,
                        a.checksum,
                        floor
                    );
                    result = Err(Failed);
                    break;
                }
                version = a.version;
            }
            Err(c) => {
                failed += 1;
                match c.rollback {
                    Rollback::Done => {
                        ROLLBACKS.fetch_add(1, Ordering::AcqRel);
                    }
                    Rollback::Already => {}
                    Rollback::Failed => {
                        result = Err(Failed);
                        break;
                    }
                }
            }
        }
        qsbr.quiescent(me);
    }
    timer::stop();
    qsbr.offline(me);
    result?;
    defmt::info!(
        "contain: core {=usize}: {=u64} iterations, {=u64} failed steps, {=u64} skipped ticks, ends at version {=u64}",
        core,
        iterations,
        failed,
        skipped,
        version
    );
    check!(
        failed + skipped <= bad,
        "contain: core {=usize} missed {=u64} iterations for {=u64} bad blocks",
        core,
        failed + skipped,
        bad
    );
    check!(
        version == 2,
        "contain: core {=usize} ends at version {=u64}, not 2",
        core,
        version
    );
    check!(
        iterations >= 500,
        "contain: core {=usize} ran only {=u64} iterations",
        core,
        iterations
    );
    Ok(())
}
