//! `live`: a running system that takes patches from the host over the UART.
//!
//! Cores 1.. call the `indirect` named site in a loop, as a control loop would, and say whenever
//! the version they run changes (checking the block's checksum of its own code words). Core 0
//! reads frames ([`protocol::live`]) from the UART and hands each one to the named-site
//! service: `cargo xtask patch` sends them, and `cargo xtask test` drives a scripted session
//! (`xtask/src/runner/live.rs`). Every frame gets one `live-patch` line and one record; a refused one leaves the
//! site and the code the cores run exactly as they were. The host's `GEND` frame ends the run.
//!
//! Interactive: it waits for a host, so `cargo xtask test` runs it only through that session.
//! Round-robin TCG, like the stress tests: QEMU never leaves a core on old code there, so a core
//! that keeps reporting the old version after `applied` is our bug. Cannot catch: cache
//! maintenance mistakes (the sanitized stress tests do, through the same service).

use super::{Ctx, TestResult, kernel_test};
use crate::arch::cpu;
use crate::patch::PlaceError;
use crate::patch::payload::{self, Answer};
use crate::patch::{self, PatchError, sites};
use crate::report;
use boards::{Board, Current, MAX_CORES};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use patcher::check::CheckError;
use patcher::platform::CoreId;
use patcher::platform::IpiError;
use patcher::strategy::PublishError;
use protocol::Record;
use protocol::live::{Event, Receiver, Refusal};
use protocol::record::Name;

kernel_test!(
    LIVE,
    "live",
    Pass,
    timeout_s = 3600,
    min_cores = 2,
    run,
    tcg = SingleThreaded,
    sanitized = [No, No]
);

/// The site a live session patches before the host sends anything.
const SITE: &str = "indirect";
/// How long every core has to acknowledge a publication.
const TIMEOUT: Duration = Duration::from_secs(2);

static STOP: AtomicBool = AtomicBool::new(false);
static READY: AtomicBool = AtomicBool::new(false);
/// Each core's `inside` cell, with the spare word that makes it the 16 bytes a host patch may
/// write (`patcher::check::Policy::KERNEL_SITES`).
static INSIDE: [[AtomicU64; 2]; MAX_CORES] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_CORES];

fn run(ctx: &Ctx) -> TestResult {
    if ctx.core == 0 {
        let r = serve();
        STOP.store(true, Ordering::Release);
        r
    } else {
        consume(ctx.core)
    }
}

/// How long a consumer waits for the first block before it gives up.
const READY_TIMEOUT_US: u64 = 60_000_000;

/// Publishes version 0, then serves frames until the host ends the session.
fn serve() -> TestResult {
    let (block, len) = payload::build(0);
    let site = sites::site(SITE).map_err(|_| super::Failed)?;
    if let Err(e) = site.publish(&block[..len], TIMEOUT) {
        defmt::error!("live: the first block was refused: {}", e);
        return Err(super::Failed);
    }
    READY.store(true, Ordering::Release);
    defmt::info!(
        "live-patch ready: send frames (cargo xtask patch); site {=str}",
        SITE
    );
    report::emit(&Record::LiveReady {
        site: Name::new(SITE),
    });
    let (mut applied, mut refused) = (0u32, 0u32);
    let mut rx = Receiver::new();
    loop {
        let Some(byte) = Current::console_read() else {
            // Let the consumers run while the line is idle (round-robin TCG).
            cpu::relax();
            continue;
        };
        match rx.push(byte) {
            None => {}
            Some(Event::End) => break,
            Some(Event::Who) => report::emit(&Record::Image {
                build_id: crate::arch::build_id::get(),
            }),
            Some(Event::Patch { image, site, .. }) if *image != crate::arch::build_id::get() => {
                refused += 1;
                defmt::warn!(
                    "live-patch refused site={=str}: the frame was built for another image",
                    site
                );
                report::emit(&Record::LiveRefused {
                    site: Name::new(site),
                    reason: Refusal::WrongImage,
                });
            }
            Some(Event::Bad(e)) => {
                refused += 1;
                defmt::warn!("live-patch bad frame: {}", e);
                report::emit(&Record::LiveBadFrame { error: e });
            }
            Some(Event::Patch { site, block, .. }) => {
                let result = sites::site(site).and_then(|s| {
                    s.publish(block, TIMEOUT)?;
                    Ok(s.running().0)
                });
                match result {
                    Ok(target) => {
                        applied += 1;
                        defmt::info!(
                            "live-patch applied site={=str} bytes={=usize} slot={=u64:#x}",
                            site,
                            block.len(),
                            target
                        );
                        report::emit(&Record::LiveApplied {
                            site: Name::new(site),
                            bytes: block.len() as u32,
                            slot: target,
                        });
                    }
                    Err(e) => {
                        refused += 1;
                        defmt::warn!("live-patch refused site={=str}: {}", site, e);
                        report::emit(&Record::LiveRefused {
                            site: Name::new(site),
                            reason: refusal(&e),
                        });
                    }
                }
            }
        }
    }
    defmt::info!(
        "live-patch session ended: {=u32} applied, {=u32} refused",
        applied,
        refused
    );
    report::emit(&Record::LiveEnded { applied, refused });
    Ok(())
}

/// The host's name for why the service refused a block.
fn refusal(e: &PatchError) -> Refusal {
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match e {
        PatchError::UnknownSite => Refusal::UnknownSite,
        PatchError::Busy => Refusal::Busy,
        PatchError::Place(PlaceError::ArenaFull { lagging }) => Refusal::ArenaFull {
            lagging: lagging.bits(),
        },
        PatchError::Place(PlaceError::Check(c)) => match *c {
            CheckError::Empty => Refusal::Empty,
            CheckError::TooLarge { len, max } => Refusal::TooLarge {
                len: small(len),
                max: small(max),
            },
            CheckError::MisalignedAddress { addr } => Refusal::MisalignedAddress { addr },
            CheckError::MisalignedLength { len } => Refusal::MisalignedLength { len: small(len) },
            CheckError::AddressOverflow => Refusal::AddressOverflow,
            CheckError::Escapes { offset, target, .. } => Refusal::Escapes {
                offset: small(offset),
                target,
            },
            CheckError::BranchIntoData { offset, .. } => Refusal::BranchIntoData {
                offset: small(offset),
            },
            CheckError::FallsIntoData { offset } => Refusal::FallsIntoData {
                offset: small(offset),
            },
            CheckError::FallsThrough { word } => Refusal::FallsThrough { word },
            // The verifier's refusals: the host decodes the word and says why.
            other => match other.instruction() {
                Some((offset, word)) => Refusal::Unsafe {
                    offset: small(offset),
                    word,
                },
                None => Refusal::PublishFailed,
            },
        },
        PatchError::Place(PlaceError::Vetoed { .. }) => Refusal::Vetoed,
        PatchError::Place(PlaceError::Arena(_)) | PatchError::Arena(_) => Refusal::Arena,
        PatchError::Publish(PublishError::Timeout { missing })
        | PatchError::Publish(PublishError::Ipi(IpiError::Timeout { missing })) => {
            Refusal::Timeout {
                missing: missing.bits(),
            }
        }
        PatchError::Publish(PublishError::Ipi(IpiError::Offline { cores })) => Refusal::Offline {
            cores: cores.bits(),
        },
        PatchError::Publish(PublishError::Busy) => Refusal::Busy,
        PatchError::Publish(PublishError::Unsynchronized { missing }) => Refusal::Unsynchronized {
            missing: missing.bits(),
        },
        PatchError::Publish(PublishError::InsideSite { core, .. }) => {
            Refusal::InsideSite { core: core.0 }
        }
        PatchError::Publish(PublishError::PositionUnknown { core }) => {
            Refusal::PositionUnknown { core: core.0 }
        }
        PatchError::Publish(_) => Refusal::PublishFailed,
    }
}

/// Calls the site until the session ends, saying whenever the version it runs changes. Gives
/// up at once if the server stopped before the first block was in place (it was refused), and
/// after [`READY_TIMEOUT_US`] if it never said either.
fn consume(core: usize) -> TestResult {
    let deadline = cpu::ticks() + cpu::us_to_ticks(READY_TIMEOUT_US);
    while !READY.load(Ordering::Acquire) {
        if STOP.load(Ordering::Acquire) {
            return Ok(());
        }
        if cpu::ticks() > deadline {
            defmt::error!(
                "live: core {=usize}: the site had no first block after {=u64} s",
                core,
                READY_TIMEOUT_US / 1_000_000
            );
            return Err(super::Failed);
        }
        cpu::relax();
    }
    // Grace periods: a replaced block's slot is reused only after this core passed a call
    // boundary since it was unlinked.
    let entry = sites::site(SITE).map_err(|_| super::Failed)?.entry();
    let qsbr = &patch::service().qsbr;
    let me = CoreId(core as u8);
    qsbr.online(me);
    let mut last = u64::MAX;
    while !STOP.load(Ordering::Acquire) {
        // SAFETY: the site leads to a published payload (version 0 before READY) and the cell is
        // this core's own.
        let a: Answer = unsafe { sites::call_payload(entry, INSIDE[core][0].as_ptr()) };
        qsbr.quiescent(me);
        if a.version != last {
            let ok = a.checksum == payload::expected_checksum(a.version);
            defmt::info!(
                "live: core {=usize} runs version {=u64} (checksum {=str})",
                core,
                a.version,
                if ok { "ok" } else { "MISMATCH" }
            );
            report::emit(&Record::LiveRuns {
                core: core as u8,
                version: a.version,
                checksum_ok: ok,
            });
            last = a.version;
        }
        cpu::relax();
    }
    qsbr.offline(me);
    Ok(())
}
