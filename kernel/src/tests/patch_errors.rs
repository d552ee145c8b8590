//! `patch-errors`: bad input is refused with a clear error and the running code stays as it was.
//!
//! Through the `indirect` site's publication path, core 0 tries: an unknown site; a block larger
//! than a slot; a block whose length is not a multiple of 4; a block with a branch leaving it; a
//! publication while another producer holds the site; and a publication that core 1 (IRQs
//! masked) never acknowledges, which must time out naming core 1. After each refusal the site
//! must still lead to the last good version, and core 1 must still run it. Can catch: a check
//! that writes before refusing, a pointer moved before the acknowledgements, a timeout that hangs
//! or blames the wrong core. Cannot catch: cache-maintenance mistakes (the sanitized stress tests
//! do).

use super::{Ctx, Failed, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::patch::payload::{self, Answer};
use crate::patch::{PatchError, PlaceError, sites};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use patcher::check::CheckError;
use patcher::platform::IpiError;
use patcher::strategy::PublishError;

kernel_test!(
    PATCH_ERRORS,
    "patch-errors",
    Pass,
    timeout_s = 60,
    min_cores = 2,
    run,
    tcg = SingleThreaded,
    sanitized = [No, No]
);

/// What core 1 is asked to do next (0: nothing, 1: hold IRQs masked until released, 2: done).
static ASK: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicU64 = AtomicU64::new(0);
const T: Duration = Duration::from_millis(20);

fn call() -> Answer {
    // 16 bytes: what the sites' policy lets a patch write (`Policy::KERNEL_SITES`).
    let mut inside = [0u64; 2];
    let entry = sites::site("indirect")
        .expect("the indirect site is in the table")
        .entry();
    // SAFETY: the indirect site leads to a published payload (version 1 is published before any
    // core calls it), and `inside` is a local cell.
    unsafe { sites::call_payload(entry, inside.as_mut_ptr()) }
}

fn unchanged(target: u64, what: &str) -> TestResult {
    let site = sites::site("indirect").map_err(|_| Failed)?;
    check!(
        site.running().0 == target,
        "{=str}: the site moved although the patch was refused",
        what
    );
    let a = call();
    check!(
        a.version == 1,
        "{=str}: version {=u64} runs instead of 1",
        what,
        a.version
    );
    Ok(())
}

fn run(ctx: &Ctx) -> TestResult {
    if ctx.core == 0 {
        let r = producer();
        ASK.store(2, Ordering::Release);
        return r;
    }
    if ctx.core == 1 {
        // Core 1 answers requests until core 0 is done.
        loop {
            match ASK.load(Ordering::Acquire) {
                1 => {
                    let saved = cpu::irq_save();
                    ASK.store(0, Ordering::Release);
                    while RELEASED.load(Ordering::Acquire) == 0 {
                        cpu::relax();
                    }
                    cpu::irq_restore(saved);
                }
                2 => break,
                _ => cpu::relax(),
            }
        }
    }
    Ok(())
}

fn producer() -> TestResult {
    let (good, len) = payload::build(1);
    check!(
        matches!(sites::site("nope"), Err(PatchError::UnknownSite)),
        "an unknown site was accepted"
    );
    let site = sites::site("indirect").map_err(|_| Failed)?;
    if let Err(e) = site.publish(&good[..len], T) {
        defmt::error!("the first, valid patch failed: {}", e);
        return Err(Failed);
    }
    let target = site.running().0;
    check!(
        call().version == 1,
        "version 1 does not run after its publication"
    );

    let big = [0u8; crate::patch::SLOT_SIZE + 8];
    let r = site.publish(&big, T);
    check!(
        matches!(
            r,
            Err(PatchError::Place(PlaceError::Check(
                CheckError::TooLarge { .. }
            )))
        ),
        "a block larger than a slot was not refused as too large"
    );
    unchanged(target, "too large")?;

    let r = site.publish(&good[..6], T);
    check!(
        matches!(
            r,
            Err(PatchError::Place(PlaceError::Check(
                CheckError::MisalignedLength { .. }
            )))
        ),
        "a 6-byte block was not refused as misaligned"
    );
    unchanged(target, "misaligned")?;

    let mut escaping = good;
    let far = patcher::insn::b(0x10_0000).map_err(|_| Failed)?;
    escaping[..4].copy_from_slice(&far.to_le_bytes());
    let r = site.publish(&escaping[..len], T);
    check!(
        matches!(
            r,
            Err(PatchError::Place(PlaceError::Check(
                CheckError::Escapes { .. }
            )))
        ),
        "a branch leaving the block was not refused"
    );
    unchanged(target, "escaping branch")?;

    {
        let _held = site.hold().ok_or(Failed)?;
        let r = site.publish(&good[..len], T);
        check!(
            matches!(r, Err(PatchError::Busy)),
            "a second producer was not refused while the first held the site"
        );
    }
    unchanged(target, "concurrent producer")?;

    // Core 1 stops taking interrupts; the publication must time out naming it.
    ASK.store(1, Ordering::Release);
    while ASK.load(Ordering::Acquire) == 1 {
        cpu::relax();
    }
    let (v2, len2) = payload::build(2);
    let r = site.publish(&v2[..len2], T);
    RELEASED.store(1, Ordering::Release);
    let named = matches!(r, Err(PatchError::Publish(PublishError::Ipi(IpiError::Timeout { missing }))) if missing.bits() & 0b10 != 0);
    check!(
        named,
        "a publication core 1 never acknowledged did not time out naming core 1"
    );
    unchanged(target, "acknowledgement timeout")?;
    defmt::info!("patch-errors: every bad patch refused by name, the running code untouched");
    Ok(())
}
