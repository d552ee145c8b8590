//! Patch stress tests: consumers call a site in a loop while core 0 publishes new versions.
//!
//! One scenario per strategy (`patch-ipi`, `patch-ipi-remote`, `patch-branch`, `patch-ftr`,
//! `patch-ftr-multi`, `patch-seq`, `patch-stw`). In each, cores 1-3 call the site (patch-ftr: core
//! 1 only, its single consumer) and check every answer: the block's own checksum of its code
//! words must match its template (a torn or half-old block fails it), and its version must not
//! be older than the last version whose publication had returned when the call began (a core
//! still running old code fails it). Core 0 publishes `pubs` versions (default 100,000) through
//! an arena of 8 slots, so slots are reused through QSBR grace periods; before it writes a slot
//! it checks that no consumer is inside it (each block marks itself on entry and exit).
//!
//! TCG mode: round-robin TCG (`thread=single`), plain and sanitized, where QEMU itself never
//! leaves a core on old translated code (docs/design.md section 4), so a stale version is our bug. QEMU
//! keeps instruction fetch coherent, so a plain pass says nothing about cache maintenance: that
//! is the sanitized runs' job (`--sanitize`; the sanitizer names cores by `TPIDR_EL1` there).

use super::{Ctx, Failed, TestResult, kernel_test};
use crate::arch::cpu;
use crate::patch::payload::{self, Answer};
use crate::patch::{self, Fixed, platform::KernelPlatform, sites};
use crate::sync::Barrier;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use patcher::arena::{CodeBlock, SlotId};
use patcher::cache::hw::Hw;
use patcher::platform::{CoreId, Platform};
use patcher::strategy::Strategy as _;
use patcher::strategy::{
    BranchFlip, FlipSite, FlushThenRedirect, InPlaceSite, IpiSync, IpiSyncRemote, RemoteInvalidate,
    Rendezvous, SeqCheck, StopTheWorld,
};

/// One stress test: 4 cores, up to 10 minutes, round-robin TCG, and its sanitized verdicts.
macro_rules! stress_test {
    ($static:ident, $name:literal, $run:path, [$s0:ident, $s1:ident]) => {
        kernel_test!(
            $static,
            $name,
            Pass,
            timeout_s = 600,
            min_cores = 4,
            $run,
            tcg = SingleThreaded,
            sanitized = [$s0, $s1]
        );
    };
}

// Sanitized: [with default switches, with ic-broadcast=off]. `patch-ipi` and `patch-branch` rely
// on broadcast invalidation and must be flagged without it; `patch-ipi-remote` and the
// flush-then-redirect consumers invalidate on each core and must pass either way.
// `patch-ftr-broken` is the negative control: the flush stub without its ISB.
stress_test!(PATCH_IPI, "patch-ipi", ipi, [Clean, Hazard]);
stress_test!(
    PATCH_IPI_REMOTE,
    "patch-ipi-remote",
    ipi_remote,
    [Clean, Clean]
);
stress_test!(PATCH_BRANCH, "patch-branch", branch, [Clean, Hazard]);
stress_test!(PATCH_FTR, "patch-ftr", ftr, [Clean, No]);
stress_test!(
    PATCH_FTR_MULTI,
    "patch-ftr-multi",
    ftr_multi,
    [Clean, Clean]
);
stress_test!(PATCH_SEQ, "patch-seq", seq, [Clean, No]);
stress_test!(PATCH_STW, "patch-stw", stw, [Clean, No]);
// Stop-the-world with consumers that keep IRQs enabled inside the site: the rendezvous must
// postpone every edit while a parked core would resume (or return) into the site.
stress_test!(PATCH_STW_IRQ, "patch-stw-irq", stw_irq, [Clean, No]);
stress_test!(
    PATCH_FTR_BROKEN,
    "patch-ftr-broken",
    ftr_broken,
    [Hazard, No]
);

const DEFAULT_PUBS: u64 = 100_000;
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ipi,
    IpiRemote,
    Branch,
    Ftr,
    FtrMulti,
    Seq,
    Stw,
    /// Stop-the-world whose consumers call the site with IRQs enabled.
    StwIrq,
    /// Flush-then-redirect through a stub with its `ISB` removed: the negative control.
    FtrBroken,
}

#[repr(align(128))]
struct PerCore {
    inside: AtomicU64,
    calls: AtomicU64,
}

static CORES: [PerCore; MAX_CORES] = [const {
    PerCore {
        inside: AtomicU64::new(0),
        calls: AtomicU64::new(0),
    }
}; MAX_CORES];
/// The newest version whose publication has returned.
static DONE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static START: Barrier = Barrier::new();
static END: Barrier = Barrier::new();
static SEQ: SeqCheck<MAX_CORES> = SeqCheck::new();
static REMOTE: spin::Once<RemoteInvalidate<Hw>> = spin::Once::new();
static RENDEZVOUS: spin::Once<Rendezvous<Hw, MAX_CORES>> = spin::Once::new();

fn consumers(kind: Kind, ctx: &Ctx) -> core::ops::Range<usize> {
    if kind == Kind::Ftr {
        1..2
    } else {
        1..ctx.cores
    }
}

fn ipi(ctx: &Ctx) -> TestResult {
    run(Kind::Ipi, ctx)
}
fn ipi_remote(ctx: &Ctx) -> TestResult {
    run(Kind::IpiRemote, ctx)
}
fn branch(ctx: &Ctx) -> TestResult {
    run(Kind::Branch, ctx)
}
fn ftr(ctx: &Ctx) -> TestResult {
    run(Kind::Ftr, ctx)
}
fn ftr_multi(ctx: &Ctx) -> TestResult {
    run(Kind::FtrMulti, ctx)
}
fn seq(ctx: &Ctx) -> TestResult {
    run(Kind::Seq, ctx)
}
fn stw(ctx: &Ctx) -> TestResult {
    run(Kind::Stw, ctx)
}
fn stw_irq(ctx: &Ctx) -> TestResult {
    run(Kind::StwIrq, ctx)
}
fn ftr_broken(ctx: &Ctx) -> TestResult {
    run(Kind::FtrBroken, ctx)
}

fn run(kind: Kind, ctx: &Ctx) -> TestResult {
    let pubs = match ctx.cmdline.number("pubs") {
        Some(Ok(n)) if n > 0 => n,
        _ => DEFAULT_PUBS,
    };
    if ctx.core == 0 {
        setup(kind)?;
    }
    wait(&START, ctx)?;
    let result = if ctx.core == 0 {
        producer(kind, ctx, pubs)
    } else if consumers(kind, ctx).contains(&ctx.core) {
        consumer(kind, ctx)
    } else {
        Ok(())
    };
    if ctx.core == 0 {
        // Also when the producer failed: the consumers must not wait for versions that never come.
        STOP.store(true, Ordering::Release);
    }
    wait(&END, ctx)?;
    result
}

fn wait(b: &Barrier, ctx: &Ctx) -> TestResult {
    b.wait(ctx.cores, 60_000_000).map_err(|arrived| {
        defmt::error!(
            "core {=usize}: barrier timed out, arrived {=u64:#b}",
            ctx.core,
            arrived
        );
        Failed
    })
}

/// Publishes version 0 so that every site leads to valid code before consumers start.
fn setup(kind: Kind) -> TestResult {
    let svc = patch::service();
    match kind {
        Kind::Stw | Kind::StwIrq => write_in_place(0)?,
        Kind::Branch => {
            let block = place(0)?;
            patch::install(
                &svc.sync,
                block.write_addr(),
                block.exec_addr() as usize,
                block.len(),
            )
            .map_err(|_| Failed)?;
            let (exec, write) = patch::arena_addr(Fixed::FLIP);
            let word =
                patcher::insn::b(block.exec_addr() as i64 - exec as i64).map_err(|_| Failed)?;
            // SAFETY: the fixed page's writable view; no consumer runs yet.
            unsafe { (write as *mut u32).write_volatile(word) };
            patch::install(&svc.sync, write, exec, 4).map_err(|_| Failed)?;
        }
        Kind::Ftr | Kind::FtrMulti | Kind::FtrBroken => {
            // Every core's first call goes through the stub, as every later one does.
            let block = place(0)?;
            let ftr = FlushThenRedirect::new(patch::stub_addr());
            if ftr
                .publish(&patch::env(TIMEOUT), &sites::PER_CORE, &block)
                .is_err()
            {
                return Err(Failed);
            }
        }
        Kind::Ipi | Kind::IpiRemote | Kind::Seq => {
            let block = place(0)?;
            let env = patch::env(TIMEOUT);
            let first = if kind == Kind::IpiRemote {
                IpiSyncRemote::new(remote()).publish(&env, &sites::INDIRECT, &block)
            } else {
                IpiSync.publish(&env, &sites::INDIRECT, &block)
            };
            if let Err(e) = first {
                defmt::error!(
                    "setup: first publication failed: {}",
                    defmt::Debug2Format(&e)
                );
                return Err(Failed);
            }
        }
    }
    // Every core synchronizes its context once the first code is in place.
    if KernelPlatform
        .ipi_sync(
            patch::env(TIMEOUT).others(),
            patcher::platform::SYNC_ONLY,
            TIMEOUT,
        )
        .is_err()
    {
        defmt::error!("setup: a core did not take the synchronizing IPI");
        return Err(Failed);
    }
    Ok(())
}

fn remote() -> &'static RemoteInvalidate<Hw> {
    REMOTE.call_once(|| RemoteInvalidate::new(patcher::cache::CodeSync::for_this_core(Hw)))
}

/// Allocates a slot (reclaiming through grace periods while the arena is full), checks that no
/// consumer is inside it, writes the block for `version` and returns it ready to publish.
fn place(version: u64) -> Result<CodeBlock<'static>, Failed> {
    let (buf, len) = payload::build(version);
    // Before the slot is written: no consumer may be inside it (each block marks itself).
    let nobody_inside = |exec: u64| {
        CORES.iter().enumerate().all(|(core, c)| {
            let inside = c.inside.load(Ordering::Acquire) == exec;
            if inside {
                defmt::error!(
                    "slot at {=u64:#x} reused while core {=usize} is inside it",
                    exec,
                    core
                );
            }
            !inside
        })
    };
    patch::place(&buf[..len], TIMEOUT, nobody_inside).map_err(|e| {
        defmt::error!("placing version {=u64}: {}", version, e);
        Failed
    })
}

fn write_in_place(version: u64) -> TestResult {
    let (buf, _) = payload::build(version);
    let (exec, write) = patch::arena_addr(Fixed::IN_PLACE);
    // SAFETY: the fixed page's in-place site; only called before consumers start.
    unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), write as *mut u8, Fixed::IN_PLACE_LEN) };
    patch::install(&patch::service().sync, write, exec, Fixed::IN_PLACE_LEN).map_err(|_| Failed)
}

fn words(version: u64) -> [u32; Fixed::IN_PLACE_LEN / 4] {
    let (buf, _) = payload::build(version);
    let mut w = [0u32; Fixed::IN_PLACE_LEN / 4];
    for (i, chunk) in buf[..Fixed::IN_PLACE_LEN].chunks(4).enumerate() {
        w[i] = u32::from_le_bytes(chunk.try_into().unwrap());
    }
    w
}

fn producer(kind: Kind, ctx: &Ctx, pubs: u64) -> TestResult {
    let env = patch::env(TIMEOUT);
    let ftr = FlushThenRedirect::new(if kind == Kind::FtrBroken {
        patch::broken_stub_addr()
    } else {
        patch::stub_addr()
    });
    let (flip_exec, flip_write) = patch::arena_addr(Fixed::FLIP);
    // SAFETY: (1) the flip word's two views are mapped; (2) only this producer writes it.
    let flip = unsafe { FlipSite::new(flip_write, flip_exec) }.map_err(|_| Failed)?;
    let (ip_exec, ip_write) = patch::arena_addr(Fixed::IN_PLACE);
    // SAFETY: as above, for the in-place site.
    let in_place = unsafe { InPlaceSite::new(ip_write, ip_exec, Fixed::IN_PLACE_LEN / 4) }
        .map_err(|_| Failed)?;
    let remote =
        REMOTE.call_once(|| RemoteInvalidate::new(patcher::cache::CodeSync::for_this_core(Hw)));
    let rendezvous =
        RENDEZVOUS.call_once(|| Rendezvous::new(patcher::cache::CodeSync::for_this_core(Hw)));
    let cells = &sites::PER_CORE[consumers(kind, ctx)];
    // Flush-then-redirect: every consumer first takes version 0 through the stub (setup), and a
    // cell is republished only once acknowledged.
    let stub = patch::stub_addr();
    let first_taken = || {
        cells
            .iter()
            .all(|c| c.target.load(Ordering::Acquire) != stub)
    };
    if matches!(kind, Kind::Ftr | Kind::FtrMulti | Kind::FtrBroken)
        && !KernelPlatform.wait_for(TIMEOUT, &mut || first_taken())
    {
        defmt::error!("a consumer never took the first block through the flush stub");
        return Err(Failed);
    }
    let mut previous: Option<SlotId> = None;
    let mut postponed = 0;
    let start = cpu::ticks();
    for version in 1..=pubs {
        let result = if matches!(kind, Kind::Stw | Kind::StwIrq) {
            patch::rewrite_in_place(
                &StopTheWorld::new(rendezvous),
                &env,
                &in_place,
                &words(version),
            )
            .map(|n| postponed += n)
        } else {
            let block = place(version)?;
            let r = match kind {
                Kind::Ipi => IpiSync.publish(&env, &sites::INDIRECT, &block),
                Kind::IpiRemote => {
                    IpiSyncRemote::new(remote).publish(&env, &sites::INDIRECT, &block)
                }
                Kind::Seq => SEQ.publish(&env, &sites::INDIRECT, &block),
                Kind::Branch => BranchFlip.publish(&env, &flip, &block),
                Kind::Ftr | Kind::FtrMulti | Kind::FtrBroken => ftr
                    .publish(&env, cells, &block)
                    .and_then(|()| ftr.wait_acknowledged(&env, cells, &block)),
                Kind::Stw | Kind::StwIrq => unreachable!(),
            };
            if r.is_ok()
                && let Some(old) = previous.replace(block.slot())
                && patch::retire(old).is_err()
            {
                defmt::error!("retiring slot {=usize} failed", old.0);
                return Err(Failed);
            }
            r
        };
        if let Err(e) = result {
            defmt::error!(
                "publishing version {=u64} failed: {}",
                version,
                defmt::Debug2Format(&e)
            );
            return Err(Failed);
        }
        DONE.store(version, Ordering::Release);
    }
    let elapsed = cpu::ticks() - start;
    STOP.store(true, Ordering::Release);
    let calls: u64 = consumers(kind, ctx)
        .map(|c| CORES[c].calls.load(Ordering::Relaxed))
        .sum();
    defmt::info!(
        "published {=u64} versions in {=u64} ms (counter time); consumers made {=u64} calls, all checked",
        pubs,
        elapsed * 1000 / cpu::tick_hz(),
        calls
    );
    if matches!(kind, Kind::Stw | Kind::StwIrq) {
        defmt::info!(
            "stop-the-world: {=u64} edits postponed while a core was stopped inside the site",
            postponed
        );
    }
    Ok(())
}

fn call(kind: Kind, inside: *mut u64) -> Answer {
    // SAFETY: every site leads to a published payload (setup published version 0 before the
    // consumers started) and `inside` is this core's own cell.
    unsafe {
        match kind {
            Kind::Ipi | Kind::IpiRemote | Kind::Seq => sites::call_indirect(inside),
            Kind::Ftr | Kind::FtrMulti | Kind::FtrBroken => sites::call_per_core(inside),
            Kind::Branch => sites::call_at(patch::arena_addr(Fixed::FLIP).0, inside),
            Kind::Stw | Kind::StwIrq => {
                sites::call_at(patch::arena_addr(Fixed::IN_PLACE).0, inside)
            }
        }
    }
}

fn consumer(kind: Kind, ctx: &Ctx) -> TestResult {
    let svc = patch::service();
    let me = CoreId(ctx.core as u8);
    let cell = &CORES[ctx.core];
    let expected = [payload::expected_checksum(0), payload::expected_checksum(1)];
    svc.qsbr.online(me);
    let mut last = 0;
    let mut result = Ok(());
    while !STOP.load(Ordering::Acquire) {
        if kind == Kind::Seq {
            SEQ.enter(me, &Hw);
        }
        let floor = DONE.load(Ordering::Acquire);
        // `patch-stw` masks IRQs around the call, as a control loop would, so the rendezvous IPI
        // lands between calls; `patch-stw-irq` leaves them enabled, and the rendezvous itself
        // must postpone the edit while a core is inside the site.
        let saved = (kind == Kind::Stw).then(cpu::irq_save);
        let a = call(kind, cell.inside.as_ptr());
        if let Some(saved) = saved {
            cpu::irq_restore(saved);
        }
        svc.qsbr.quiescent(me);
        let n = cell.calls.fetch_add(1, Ordering::Relaxed);
        if a.checksum != expected[(a.version % 2) as usize] {
            defmt::error!(
                "core {=usize}, call {=u64}: version {=u64} has checksum {=u64:#x}, expected {=u64:#x} (torn or mixed code)",
                ctx.core,
                n,
                a.version,
                a.checksum,
                expected[(a.version % 2) as usize]
            );
            result = Err(Failed);
            break;
        }
        if a.version < floor || a.version < last {
            defmt::error!(
                "core {=usize}, call {=u64}: ran version {=u64} after version {=u64} was published (and {=u64} seen)",
                ctx.core,
                n,
                a.version,
                floor,
                last
            );
            result = Err(Failed);
            break;
        }
        last = a.version;
        // An iteration boundary: lets round-robin TCG run the producer now.
        cpu::relax();
    }
    svc.qsbr.offline(me);
    result
}
