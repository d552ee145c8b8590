//! `live`: a running system that takes patches from the host over the UART.
//!
//! Cores 1.. each run a control loop at 10 kHz from their own timer tick, as the demo's do: step a
//! simulated thermal plant, call the `law` site (a control law, `graft_patch::Law`, on the loop's
//! own state) with IRQs masked, and check the deadline (the step must end before the next tick is
//! due). Each iteration also calls the `indirect` named site, whose payload returns its version
//! and a checksum of its own code words. A loop says whenever the version it runs or the law
//! records changes, and a list frame reports every loop's iterations, deadline misses and
//! tracking error (`Record::LoopStats`). Core 0
//! reads frames ([`protocol::live`]) from the UART and hands each one to the named-site
//! service: `cargo xtask patch` sends them, and `cargo xtask test` drives a scripted session
//! (`xtask/src/runner/live.rs`). Every frame gets one `live-patch` line and one record; a refused one leaves the
//! site and the code the cores run exactly as they were. The host's `GEND` frame ends the run.
//!
//! Two-phase patching (a block built for the address it will run at): a stage frame reserves a
//! slot and answers its address and a fresh nonce; data frames carry the block in order; the
//! seal frame carries its Ed25519 signature over image, site, address, nonce and bytes
//! (`protocol::signing`), which is verified, and the block is checked at its slot (with the
//! image's exports); the activate frame publishes it with the site's strategy, and a cancel
//! frame frees the slot. One staging is open at a time; a frame naming another nonce (a replay,
//! a cancelled or activated staging) is refused. Which patches are admitted at all is fixed
//! when the image is built ([`patch::ADMISSION`], announced as `Record::PatchKey`): an image
//! with a key activates only sealed stagings; single-frame patches (`GPAT`, unsigned) and
//! unsealed stagings of an image without a key need the development switch.
//!
//! Interactive: it waits for a host, so `cargo xtask test` runs it only through that session.
//! Deterministic virtual time (`-icount`), like the demo, so deadlines are in virtual time (one
//! nanosecond per instruction), and round-robin: QEMU never leaves a core on old code there, so
//! a core that keeps reporting the old version after `applied` is our bug. Cannot catch: cache
//! maintenance mistakes (the sanitized stress tests do, through the same service), or a real
//! core's timing.

use super::{Ctx, TestResult, kernel_test};
use crate::arch::cpu;
use crate::patch::PlaceError;
use crate::patch::payload::{self, Answer};
use crate::patch::{self, PatchError, sites};
use crate::{report, timer};
use boards::{Board, Current, MAX_CORES};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use patcher::check::CheckError;
use patcher::platform::CoreId;
use patcher::platform::IpiError;
use patcher::strategy::PublishError;
use protocol::Record;
use protocol::live::{Event, IMAGE_BYTES, Receiver, Refusal};
use protocol::record::Name;

kernel_test!(
    LIVE,
    "live",
    Pass,
    timeout_s = 3600,
    min_cores = 2,
    run,
    tcg = Icount,
    sanitized = [No, No]
);

/// The control loops' rate.
const LOOP_HZ: u64 = 10_000;
/// The loops' set-point, degrees C.
const SETPOINT: f32 = 60.0;

/// One loop's figures, for list frames.
struct LoopFigures {
    iterations: AtomicU64,
    misses: AtomicU64,
    /// `f32` bits of the last iteration's `|temperature - set-point|`.
    error: AtomicU32,
}

static LOOPS: [LoopFigures; MAX_CORES] = [const {
    LoopFigures {
        iterations: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        error: AtomicU32::new(0),
    }
}; MAX_CORES];

/// The site a live session patches before the host sends anything.
const SITE: &str = "indirect";
/// The control-law site the host patches with blocks built from Rust source.
const LAW_SITE: &str = "law";
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
        // Wake the loops from their wait for the next tick, so that they see STOP.
        crate::ipi::kick(crate::smp::online().without(0));
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
    // The law site's version 0: the demo's PID template.
    let (law, law_len) = crate::demo::controller::build(
        crate::demo::controller::Kind::Pid,
        crate::demo::controller::Params {
            kp: 0.05,
            ki_dt: 4.0e-4,
            k3: 0.2,
            umax: 1.0,
            version: 0,
        },
    );
    let law_site = sites::site(LAW_SITE).map_err(|_| super::Failed)?;
    if let Err(e) = law_site.publish(&law[..law_len], TIMEOUT) {
        defmt::error!("live: the first law was refused: {}", e);
        return Err(super::Failed);
    }
    announce_admission();
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
    let mut staging: Option<Staging> = None;
    let mut nonces = 0u64;
    // The line is read at every tick of this core's own timer, and the core sleeps between: a
    // core that polled without pause would be where all of QEMU's virtual time went (under
    // `-icount`, virtual time moves with instructions, and skips ahead only when every core
    // sleeps). The UART's FIFO and QEMU's flow control keep every byte until it is read.
    timer::start(LOOP_HZ);
    let mut tick = timer::ticks(0);
    loop {
        let Some(byte) = Current::console_read() else {
            expire(&mut staging);
            // STOP is set only once `serve` has returned, so this wait ends at the next tick.
            let _ = timer::wait_tick(0, &mut tick, &STOP);
            continue;
        };
        let event = rx.push(byte);
        match event {
            None => {}
            Some(Event::End) => break,
            Some(Event::Who) => {
                // What it admits, then which image it is (the host waits for the latter).
                report::emit(&admission_record());
                report::emit(&Record::Image {
                    build_id: crate::arch::build_id::get(),
                });
            }
            Some(ref e) if image_of(e).is_some_and(|i| *i != crate::arch::build_id::get()) => {
                let site = site_of(e);
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
            Some(Event::Stage {
                site,
                len,
                expiry_s,
                ..
            }) => {
                if let Err(reason) = stage(&mut staging, &mut nonces, site, len, expiry_s) {
                    refused += 1;
                    refuse(site, reason);
                }
            }
            Some(Event::Data {
                site,
                nonce,
                offset,
                bytes,
                ..
            }) => {
                if let Err(reason) = take(&mut staging, site, nonce, offset, bytes) {
                    refused += 1;
                    refuse(site, reason);
                }
            }
            Some(Event::Activate { site, nonce, .. }) => {
                match activate(&mut staging, site, nonce) {
                    Ok(()) => applied += 1,
                    Err(reason) => {
                        refused += 1;
                        refuse(site, reason);
                    }
                }
            }
            Some(Event::Cancel { site, nonce, .. }) => match open(&mut staging, site, nonce) {
                Ok(()) => {
                    staging = None;
                    defmt::info!("live-patch cancelled site={=str}", site);
                    report::emit(&Record::LiveCancelled {
                        site: Name::new(site),
                        nonce,
                    });
                }
                Err(reason) => {
                    refused += 1;
                    refuse(site, reason);
                }
            },
            Some(Event::Patch { site, .. }) if patch::ADMISSION.single_frame().is_err() => {
                refused += 1;
                refuse(site, Refusal::Unsigned);
            }
            Some(Event::List { .. }) => list(&staging),
            Some(Event::Rollback { site, .. }) => match roll_back(site) {
                Ok(()) => applied += 1,
                Err(reason) => {
                    refused += 1;
                    refuse(site, reason);
                }
            },
            Some(Event::Seal {
                site,
                nonce,
                signature,
                ..
            }) => {
                if let Err(reason) = seal(&mut staging, site, nonce, signature) {
                    refused += 1;
                    refuse(site, reason);
                }
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
    timer::stop();
    defmt::info!(
        "live-patch session ended: {=u32} applied, {=u32} refused",
        applied,
        refused
    );
    report::emit(&Record::LiveEnded { applied, refused });
    Ok(())
}

/// The build id a frame is bound to (frames that carry one).
fn image_of<'a>(e: &Event<'a>) -> Option<&'a [u8; IMAGE_BYTES]> {
    match *e {
        Event::Patch { image, .. }
        | Event::Stage { image, .. }
        | Event::Data { image, .. }
        | Event::Seal { image, .. }
        | Event::List { image }
        | Event::Rollback { image, .. }
        | Event::Activate { image, .. }
        | Event::Cancel { image, .. } => Some(image),
        Event::End | Event::Who | Event::Bad(_) => None,
    }
}

/// The site a frame names ("" for frames that name none).
fn site_of<'a>(e: &Event<'a>) -> &'a str {
    match *e {
        Event::Patch { site, .. }
        | Event::Stage { site, .. }
        | Event::Data { site, .. }
        | Event::Seal { site, .. }
        | Event::Rollback { site, .. }
        | Event::Activate { site, .. }
        | Event::Cancel { site, .. } => site,
        Event::End | Event::Who | Event::Bad(_) | Event::List { .. } => "",
    }
}

/// Logs and reports a refusal.
fn refuse(site: &str, reason: Refusal) {
    // The record carries the reason; xtask prints it decoded.
    defmt::warn!("live-patch refused site={=str}", site);
    report::emit(&Record::LiveRefused {
        site: Name::new(site),
        reason,
    });
}

/// The open staging: a reserved slot, and the bytes received for it so far.
struct Staging {
    site: &'static sites::Site,
    nonce: u64,
    reservation: sites::Reservation,
    block: [u8; patch::SLOT_SIZE],
    len: usize,
    received: usize,
    /// Its signature verified and it passed the checks at its slot.
    sealed: bool,
    /// Counter ticks without a frame for it after which it is freed.
    expiry: u64,
    /// When the last frame for it came (counter ticks).
    last: u64,
}

/// The longest expiry a stage frame may ask for, seconds.
const MAX_EXPIRY_S: u16 = 3600;

/// Frees the open staging if no frame for it came within its expiry: its host went away.
fn expire(staging: &mut Option<Staging>) {
    let Some(s) = staging.as_ref() else { return };
    if cpu::ticks().saturating_sub(s.last) <= s.expiry {
        return;
    }
    defmt::warn!(
        "live-patch staging expired site={=str}: no frame came in time; its slot is free",
        s.site.name
    );
    report::emit(&Record::LiveExpired {
        site: Name::new(s.site.name),
        nonce: s.nonce,
    });
    *staging = None;
}

/// Says which patches this image admits, in the log for people and as a record.
fn announce_admission() {
    let a = patch::ADMISSION;
    match a.key {
        Some(key) => defmt::info!(
            "live-patch: staged patches must be signed with key {=[u8]:02x}",
            key
        ),
        None if a.development => {}
        None => defmt::warn!(
            "live-patch: this image embeds no patch key, so it admits no patches (build with \
             `cargo xtask keygen` done first, or with the development switch)"
        ),
    }
    if a.development {
        defmt::warn!(
            "live-patch: DEVELOPMENT BUILD (GRAFT_UNSIGNED_PATCHES=1): unsigned patches are \
             admitted"
        );
    }
    report::emit(&admission_record());
}

/// [`patch::ADMISSION`] as a record.
fn admission_record() -> Record {
    let a = patch::ADMISSION;
    Record::PatchKey {
        key: a.key.unwrap_or([0; 32]),
        signed: a.key.is_some(),
        development: a.development,
    }
}

/// A stage frame: reserve a slot at `site` for `len` bytes under a fresh nonce.
fn stage(
    staging: &mut Option<Staging>,
    nonces: &mut u64,
    site: &str,
    len: u32,
    expiry_s: u16,
) -> Result<(), Refusal> {
    patch::ADMISSION.staging()?;
    if staging.is_some() {
        return Err(Refusal::StageOpen);
    }
    let s = sites::site(site).map_err(|e| refusal(&e))?;
    let len = len as usize;
    if len == 0 {
        return Err(Refusal::Empty);
    }
    if len > patch::SLOT_SIZE {
        return Err(Refusal::TooLarge {
            len: len as u32,
            max: patch::SLOT_SIZE as u32,
        });
    }
    // Never issued before in this boot (strictly increasing), and not guessable from the
    // frames before it (the counter's value).
    let nonce =
        protocol::signing::next_nonce(*nonces, cpu::ticks()).ok_or(Refusal::PublishFailed)?;
    let reservation = s.reserve(TIMEOUT).map_err(|e| refusal(&e))?;
    *nonces = nonce;
    let addr = reservation.addr();
    defmt::info!(
        "live-patch staged site={=str} bytes={=usize} addr={=u64:#x}",
        site,
        len,
        addr
    );
    report::emit(&Record::LiveStaged {
        site: Name::new(site),
        nonce,
        addr,
        len: len as u32,
    });
    *staging = Some(Staging {
        site: s,
        nonce,
        reservation,
        block: [0; patch::SLOT_SIZE],
        len,
        received: 0,
        sealed: false,
        expiry: cpu::us_to_ticks(u64::from(expiry_s.clamp(1, MAX_EXPIRY_S)) * 1_000_000),
        last: cpu::ticks(),
    });
    Ok(())
}

/// Whether `nonce` at `site` names the open staging (a frame that does keeps it from expiring).
fn open(staging: &mut Option<Staging>, site: &str, nonce: u64) -> Result<(), Refusal> {
    match staging {
        Some(s) if s.nonce == nonce && s.site.name == site => {
            s.last = cpu::ticks();
            Ok(())
        }
        _ => Err(Refusal::NotStaged),
    }
}

/// A data frame: the next bytes of the open staging's block.
fn take(
    staging: &mut Option<Staging>,
    site: &str,
    nonce: u64,
    offset: u32,
    bytes: &[u8],
) -> Result<(), Refusal> {
    open(staging, site, nonce)?;
    let s = staging.as_mut().ok_or(Refusal::NotStaged)?;
    if offset as usize != s.received {
        return Err(Refusal::OutOfOrder {
            offset,
            expected: s.received as u32,
        });
    }
    let end = s.received + bytes.len();
    if end > s.len {
        return Err(Refusal::Incomplete {
            received: end as u32,
            len: s.len as u32,
        });
    }
    s.block[s.received..end].copy_from_slice(bytes);
    s.received = end;
    report::emit(&Record::LiveReceived {
        nonce,
        received: end as u32,
    });
    Ok(())
}

/// A seal frame: verify the complete staged block's signature, then check it at its slot. A bad
/// signature or a refused block ends the staging (its slot is freed); missing bytes do not.
fn seal(
    staging: &mut Option<Staging>,
    site: &str,
    nonce: u64,
    signature: &[u8; protocol::signing::SIGNATURE_BYTES],
) -> Result<(), Refusal> {
    open(staging, site, nonce)?;
    let s = staging.as_mut().ok_or(Refusal::NotStaged)?;
    if s.received < s.len {
        return Err(Refusal::Incomplete {
            received: s.received as u32,
            len: s.len as u32,
        });
    }
    let image = crate::arch::build_id::get();
    let binding = protocol::signing::Binding {
        image: &image,
        site: s.site.name,
        addr: s.reservation.addr(),
        nonce,
    };
    let externals = patch::exports::externals().ok_or(Refusal::PublishFailed);
    let verdict = patch::ADMISSION
        .seal(&binding, &s.block[..s.len], signature)
        .and_then(|()| {
            s.reservation
                .check(&s.block[..s.len], externals?)
                .map_err(|e| refusal(&e))
        });
    if let Err(reason) = verdict {
        *staging = None;
        return Err(reason);
    }
    s.sealed = true;
    defmt::info!(
        "live-patch sealed site={=str}: signature verified, block checked",
        site
    );
    report::emit(&Record::LiveSealed {
        site: Name::new(site),
        nonce,
    });
    Ok(())
}

/// An activate frame: publish the staged block at its slot with the site's strategy (checked
/// again there). The staging ends either way, except when bytes or the signature are missing.
fn activate(staging: &mut Option<Staging>, site: &str, nonce: u64) -> Result<(), Refusal> {
    open(staging, site, nonce)?;
    if let Some(s) = staging.as_ref() {
        if s.received < s.len {
            return Err(Refusal::Incomplete {
                received: s.received as u32,
                len: s.len as u32,
            });
        }
        patch::ADMISSION.activation(s.sealed)?;
    }
    let s = staging.take().ok_or(Refusal::NotStaged)?;
    let externals = patch::exports::externals().ok_or(Refusal::PublishFailed)?;
    let code = &s.block[..s.len];
    s.site
        .publish_reserved(s.reservation, code, externals, TIMEOUT)
        .map_err(|e| refusal(&e))?;
    let target = s.site.running().0;
    defmt::info!(
        "live-patch applied site={=str} bytes={=usize} slot={=u64:#x}",
        site,
        s.len,
        target
    );
    report::emit(&Record::LiveApplied {
        site: Name::new(site),
        bytes: s.len as u32,
        slot: target,
    });
    Ok(())
}

/// A list frame: every site's state, then the arena's free space.
fn list(staging: &Option<Staging>) {
    let all = sites::all();
    for s in all {
        let state = s.state();
        let (previous_version, previous_hash) = state.previous.unwrap_or((0, 0));
        report::emit(&Record::SiteState {
            site: Name::new(s.name),
            strategy: Name::new(s.strategy()),
            version: state.version,
            hash: state.hash,
            previous_version,
            previous_hash,
            rollback: state.kept_in_slot,
            staged: staging
                .as_ref()
                .filter(|st| st.site.name == s.name)
                .map_or(0, |st| st.len as u32),
        });
    }
    let online = crate::smp::online();
    for (core, f) in LOOPS.iter().enumerate().skip(1) {
        if !online.contains(core) {
            continue;
        }
        report::emit(&Record::LoopStats {
            core: core as u8,
            iterations: f.iterations.load(Ordering::Acquire),
            misses: f.misses.load(Ordering::Acquire),
            error_c: f32::from_bits(f.error.load(Ordering::Acquire)),
        });
    }
    let free = patch::service().arena().census()[0];
    report::emit(&Record::ListEnd {
        sites: all.len() as u8,
        free_slots: free as u8,
        free_bytes: (free * patch::SLOT_SIZE) as u32,
    });
}

/// A rollback frame: lead `site` back to the code it kept, with one publication.
fn roll_back(site: &str) -> Result<(), Refusal> {
    let s = sites::site(site).map_err(|e| refusal(&e))?;
    let (version, restored) = s.restore(TIMEOUT).map_err(|e| refusal(&e))?;
    defmt::info!(
        "live-patch rolled back site={=str}: version {=u64} runs the code of version {=u64}",
        site,
        version,
        restored
    );
    report::emit(&Record::LiveRolledBack {
        site: Name::new(site),
        version,
        restored,
    });
    Ok(())
}

/// The host's name for why the service refused a block.
fn refusal(e: &PatchError) -> Refusal {
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match e {
        PatchError::UnknownSite => Refusal::UnknownSite,
        PatchError::NothingKept => Refusal::NothingKept,
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
    let law_entry = sites::site(LAW_SITE).map_err(|_| super::Failed)?.entry();
    // SAFETY: the law site's trampoline has the law's signature (it passes every argument
    // register through), and it leads to a law from before READY on.
    let law: graft_patch::Law =
        unsafe { core::mem::transmute::<usize, graft_patch::Law>(law_entry) };
    let mut state = graft_patch::LoopState::default();
    let mut last_law = u64::MAX;
    let qsbr = &patch::service().qsbr;
    let me = CoreId(core as u8);
    qsbr.online(me);
    let mut last = u64::MAX;
    let figures = &LOOPS[core];
    let mut plant = crate::demo::plant::Thermal::new();
    let dt = 1.0 / LOOP_HZ as f32;
    let mut u = 0.0f32;
    timer::start(LOOP_HZ);
    let period = timer::period();
    let mut tick = timer::ticks(core);
    while let Some(passed) = timer::wait_tick(core, &mut tick, &STOP) {
        let due = timer::last_due(core);
        plant.step(u, dt);
        // The step runs with IRQs masked, as a control loop's would: a publication's IPI lands
        // between steps.
        let saved = cpu::irq_save();
        // SAFETY: the site leads to a published payload (version 0 before READY) and the cell is
        // this core's own.
        let a: Answer = unsafe { sites::call_payload(entry, INSIDE[core][0].as_ptr()) };
        // SAFETY: `state` is this core's own, valid for the call (the site's argument).
        u = unsafe { law(&mut state, plant.temperature, SETPOINT) };
        cpu::irq_restore(saved);
        let end = cpu::ticks();
        qsbr.quiescent(me);
        let late = u64::from(end > due + period);
        figures
            .misses
            .fetch_add(late + passed - 1, Ordering::Release);
        figures.iterations.fetch_add(1, Ordering::Release);
        figures.error.store(
            (plant.temperature - SETPOINT).abs().to_bits(),
            Ordering::Release,
        );
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
        if state.version != last_law {
            defmt::info!(
                "live: core {=usize}'s loop runs law version {=u64}",
                core,
                state.version
            );
            report::emit(&Record::LiveLawRuns {
                core: core as u8,
                version: state.version,
            });
            last_law = state.version;
        }
    }
    timer::stop();
    qsbr.offline(me);
    Ok(())
}
