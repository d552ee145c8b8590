//! `ipi-recovery`: a core that was deaf for a while must not wedge the IPI layer for the others.
//!
//! The last core masks its IRQs. Core 0 publishes twice through the `indirect` site while it
//! is deaf: both publications must fail, naming exactly that core, and leave the site leading to
//! the code it led to before. Then the core unmasks, and core 0 publishes 1,000 versions: every
//! one must succeed, and the cores in between (which never stopped answering) call the site
//! throughout and must see every version arrive in order.
//!
//! Can catch: a failed send that leaves requests in healthy cores' mailboxes with no interrupt
//! (every later publication then times out naming a healthy core), a timeout that blames the
//! wrong core or hangs, a wait that never raises the interrupt again. Cannot catch: cache
//! maintenance mistakes (the sanitized stress tests do).

use super::{Ctx, Failed, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::patch::payload::{self, Answer};
use crate::patch::{PatchError, sites};
use crate::sync::Barrier;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use patcher::platform::{CoreId, CoreSet, IpiError};
use patcher::strategy::PublishError;

kernel_test!(
    IPI_RECOVERY,
    "ipi-recovery",
    Pass,
    timeout_s = 120,
    min_cores = 4,
    run,
    tcg = SingleThreaded,
    sanitized = [No, No]
);

const SITE: &str = "indirect";
/// The bound on the publications the deaf core cannot answer.
const SHORT: Duration = Duration::from_millis(100);
/// The bound on every other publication.
const LONG: Duration = Duration::from_secs(5);
const PUBLICATIONS: u64 = 1_000;
const BARRIER_TIMEOUT_US: u64 = 60_000_000;

static START: Barrier = Barrier::new();
static END: Barrier = Barrier::new();
/// Set by the deaf core once its IRQs are masked.
static DEAF: AtomicBool = AtomicBool::new(false);
/// Set by core 0 once both publications failed: the deaf core may unmask.
static RELEASE: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
/// The newest version whose publication returned.
static DONE: AtomicU64 = AtomicU64::new(0);
/// Each core's `inside` cell, with the spare word that makes it the 16 bytes a patch may write
/// (`patcher::check::Policy::KERNEL_SITES`).
static INSIDE: [[AtomicU64; 2]; MAX_CORES] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_CORES];

fn run(ctx: &Ctx) -> TestResult {
    let deaf = ctx.cores - 1;
    if ctx.core == 0 {
        publish(0, LONG).map_err(|e| {
            defmt::error!("ipi-recovery: the first block was refused: {}", e);
            Failed
        })?;
    }
    wait(&START, ctx)?;
    let result = if ctx.core == 0 {
        let r = producer(deaf);
        STOP.store(true, Ordering::Release);
        RELEASE.store(true, Ordering::Release);
        r
    } else if ctx.core == deaf {
        stay_deaf();
        Ok(())
    } else {
        consumer(ctx.core)
    };
    wait(&END, ctx)?;
    result
}

fn wait(b: &Barrier, ctx: &Ctx) -> TestResult {
    super::wait_all(b, ctx, BARRIER_TIMEOUT_US)
}

fn publish(version: u64, timeout: Duration) -> Result<(), PatchError> {
    let (block, len) = payload::build(version);
    sites::site(SITE)?.publish(&block[..len], timeout)
}

/// IRQs masked until core 0 releases it (at most 20 s), then unmasked.
fn stay_deaf() {
    let saved = cpu::irq_save();
    DEAF.store(true, Ordering::Release);
    let until = cpu::ticks() + cpu::us_to_ticks(20_000_000);
    while !RELEASE.load(Ordering::Acquire) && cpu::ticks() < until {
        cpu::relax();
    }
    cpu::irq_restore(saved);
}

fn producer(deaf: usize) -> TestResult {
    while !DEAF.load(Ordering::Acquire) {
        cpu::relax();
    }
    let site = sites::site(SITE).map_err(|_| Failed)?;
    let before = site.running().0;
    let only_deaf = CoreSet::EMPTY.with(CoreId(deaf as u8));
    for attempt in 1..=2 {
        let r = publish(attempt, SHORT);
        let named = matches!(
            r,
            Err(PatchError::Publish(PublishError::Ipi(IpiError::Timeout { missing }))) if missing == only_deaf
        );
        check!(
            named,
            "publication {=u64} while core {=usize} is deaf: expected a timeout naming exactly that core, got {}",
            attempt,
            deaf,
            r.err()
        );
        check!(
            site.running().0 == before,
            "a failed publication moved the site from {=u64:#x} to {=u64:#x}",
            before,
            site.running().0
        );
    }
    defmt::info!(
        "ipi-recovery: two publications timed out naming core {=usize} only",
        deaf
    );
    RELEASE.store(true, Ordering::Release);
    for version in 3..3 + PUBLICATIONS {
        if let Err(e) = publish(version, LONG) {
            defmt::error!(
                "ipi-recovery: publication of version {=u64} after core {=usize} recovered failed: {}",
                version,
                deaf,
                e
            );
            return Err(Failed);
        }
        DONE.store(version, Ordering::Release);
    }
    defmt::info!(
        "ipi-recovery: {=u64} publications after the recovery, all acknowledged by every core",
        PUBLICATIONS
    );
    Ok(())
}

fn consumer(core: usize) -> TestResult {
    let entry = sites::site(SITE).map_err(|_| Failed)?.entry();
    let qsbr = &crate::patch::service().qsbr;
    let me = CoreId(core as u8);
    qsbr.online(me);
    let mut last = 0;
    let mut result = Ok(());
    while !STOP.load(Ordering::Acquire) {
        let floor = DONE.load(Ordering::Acquire);
        // SAFETY: the site leads to a published payload (version 0 before START) and the cell
        // is this core's own.
        let a: Answer = unsafe { sites::call_payload(entry, INSIDE[core][0].as_ptr()) };
        qsbr.quiescent(me);
        if a.checksum != payload::expected_checksum(a.version) || a.version < floor.max(last) {
            defmt::error!(
                "ipi-recovery: core {=usize} ran version {=u64} (checksum {=u64:#x}) after {=u64} was published",
                core,
                a.version,
                a.checksum,
                floor
            );
            result = Err(Failed);
            break;
        }
        last = a.version;
        cpu::relax();
    }
    qsbr.offline(me);
    result
}
