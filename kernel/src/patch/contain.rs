//! Fault containment: a patch that faults or hangs is rolled back; its call fails, its loop goes on.
//!
//! A loop calls a site through [`call`], which keeps what the call must return with (the
//! callee-saved registers, `SP` and the link register, saved by `graft_guarded_call`). When a
//! synchronous exception is taken with its `ELR` in the arena while that call runs
//! ([`on_exception`]), or the loop's own timer tick finds the call still in the arena past its
//! budget ([`on_tick`]), the handler notes what happened and returns, not into the patch, but to
//! `graft_guarded_resume`, which restores that state and returns from `graft_guarded_call`: the
//! call ends as a failed step, and the loop goes on at its next iteration.
//!
//! Where the rollback runs: not in the handler. A publication waits for other cores (their IPI
//! answers), and a core in an exception handler, IRQs masked, would hold up exactly the cores it
//! waits for. The handler only records the fault; the rollback runs right after, in the loop's
//! own context, when the contained call returns: one publication of the site's previous code
//! through the site's own strategy ([`Site::roll_back`], on `Site::publish`'s path), then one
//! [`Record::PatchFault`]. Doing it there, not at a producer's later point, is what bounds the
//! damage to one iteration: the loop's next call already runs the previous code, and the other
//! loops' faulting calls find the site rolled back and publish nothing. The cost: a rollback
//! from a consumer can only use strategies whose publication needs IPI answers alone (branch
//! flip, call site, the IPI strategies, stop-the-world); flush-then-redirect, ftr-multi and
//! seq-check wait for every consumer to call the site, the faulting core included, so their
//! rollback times out and is reported as failed.
//!
//! A call made with IRQs masked cannot be found hanging: only an IRQ taken inside the patch
//! lets the tick see it.

use super::payload::Answer;
use super::sites::{self, SITES, Site};
use crate::arch::cpu;
use crate::arch::exceptions::Frame;
use boards::MAX_CORES;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, compiler_fence};
use core::time::Duration;
use protocol::record::{FaultCause, Name, Record};

/// What `graft_guarded_call` saves and `graft_guarded_resume` restores: the AAPCS64
/// callee-saved state of the call (`X19`-`X30`, `SP`, `D8`-`D15`).
#[repr(C)]
struct Saved {
    x19_x30: [u64; 12],
    sp: u64,
    d8_d15: [u64; 8],
}

const _: () = {
    assert!(core::mem::offset_of!(Saved, x19_x30) == 0);
    assert!(core::mem::offset_of!(Saved, sp) == 96);
    assert!(core::mem::offset_of!(Saved, d8_d15) == 104);
};

core::arch::global_asm!(
    ".section .text.graft_contain, \"ax\"",
    ".balign 4",
    // x0 = entry, x1 = inside, x2 = Saved: saves the caller's state, calls entry(inside).
    ".global graft_guarded_call",
    "graft_guarded_call:",
    "    stp  x19, x20, [x2, #0]",
    "    stp  x21, x22, [x2, #16]",
    "    stp  x23, x24, [x2, #32]",
    "    stp  x25, x26, [x2, #48]",
    "    stp  x27, x28, [x2, #64]",
    "    stp  x29, x30, [x2, #80]",
    "    mov  x9, sp",
    "    str  x9, [x2, #{sp}]",
    "    stp  d8, d9, [x2, #{d8}]",
    "    stp  d10, d11, [x2, #{d8} + 16]",
    "    stp  d12, d13, [x2, #{d8} + 32]",
    "    stp  d14, d15, [x2, #{d8} + 48]",
    "    stp  x29, x30, [sp, #-16]!",
    "    mov  x29, sp",
    "    mov  x9, x0",
    "    mov  x0, x1",
    "    blr  x9",
    "    ldp  x29, x30, [sp], #16",
    "    ret",
    // x0 = Saved (the exception handler put it there): returns from graft_guarded_call with
    // the state it was called with, and 0 in x0 and x1.
    ".global graft_guarded_resume",
    "graft_guarded_resume:",
    "    ldp  x19, x20, [x0, #0]",
    "    ldp  x21, x22, [x0, #16]",
    "    ldp  x23, x24, [x0, #32]",
    "    ldp  x25, x26, [x0, #48]",
    "    ldp  x27, x28, [x0, #64]",
    "    ldp  x29, x30, [x0, #80]",
    "    ldr  x9, [x0, #{sp}]",
    "    mov  sp, x9",
    "    ldp  d8, d9, [x0, #{d8}]",
    "    ldp  d10, d11, [x0, #{d8} + 16]",
    "    ldp  d12, d13, [x0, #{d8} + 32]",
    "    ldp  d14, d15, [x0, #{d8} + 48]",
    "    mov  x0, #0",
    "    mov  x1, #0",
    "    ret",
    sp = const core::mem::offset_of!(Saved, sp),
    d8 = const core::mem::offset_of!(Saved, d8_d15),
);

unsafe extern "C" {
    /// Saves the caller's state in `saved`, then calls `entry(inside)`.
    fn graft_guarded_call(entry: usize, inside: *mut u64, saved: *mut Saved) -> Answer;
    /// Where a contained call resumes (never called: an exception returns there).
    fn graft_guarded_resume();
}

const NONE: u8 = 0;

/// One core's guarded call, and what its handler saw.
#[repr(C, align(64))]
struct Guard {
    saved: UnsafeCell<Saved>,
    /// The site called (its index in `SITES` plus one), 0 when no guarded call runs.
    site: AtomicUsize,
    /// When the call's budget runs out, in counter ticks.
    deadline: AtomicU64,
    /// The cause (plus one) if this call was contained, else [`NONE`].
    caught: AtomicU8,
    /// What the handler saw (read by this core once the call returned).
    esr: AtomicU64,
    elr: AtomicU64,
    far: AtomicU64,
}

// SAFETY: `saved` is written only by its own core (in `graft_guarded_call`) and read only by
// that core's `graft_guarded_resume`; everything else is atomic.
unsafe impl Sync for Guard {}

static GUARDS: [Guard; MAX_CORES] = [const {
    Guard {
        saved: UnsafeCell::new(Saved {
            x19_x30: [0; 12],
            sp: 0,
            d8_d15: [0; 8],
        }),
        site: AtomicUsize::new(0),
        deadline: AtomicU64::new(0),
        caught: AtomicU8::new(NONE),
        esr: AtomicU64::new(0),
        elr: AtomicU64::new(0),
        far: AtomicU64::new(0),
    }
}; MAX_CORES];

/// A call that was contained: it returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contained {
    /// What happened.
    pub cause: FaultCause,
    /// What this core's rollback did.
    pub rollback: Rollback,
}

/// What the faulting core's rollback did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// This core rolled the site back (and reported it).
    Done,
    /// The site no longer led to the faulting block: another core rolled it back first.
    Already,
    /// The rollback failed (logged): the site still leads to the faulting block.
    Failed,
}

/// How long a rollback may take, its wait for a concurrent one included.
const ROLLBACK_TIMEOUT: Duration = Duration::from_millis(20);

/// Calls the payload at `site` with `inside`, guarded: a fault in the site's code, or a call
/// still running after `budget`, ends the call with [`Contained`] instead of ending the run,
/// once this core rolled the site back (see the module documentation).
///
/// # Safety
///
/// As [`sites::call_payload`]: `site`'s code must be a payload and `inside` a valid, writable
/// cell of 16 bytes.
pub unsafe fn call(site: &Site, inside: *mut u64, budget: Duration) -> Result<Answer, Contained> {
    let index = SITES
        .iter()
        .position(|s| core::ptr::eq(s, site))
        .expect("a site of SITES");
    let guard = &GUARDS[cpu::core_id()];
    let ticks = budget.as_nanos() as u64 * cpu::tick_hz() / 1_000_000_000;
    guard.caught.store(NONE, Ordering::Relaxed);
    guard
        .deadline
        .store(cpu::ticks() + ticks.max(1), Ordering::Relaxed);
    guard.site.store(index + 1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the caller's contract covers the payload and `inside`; `saved` is this core's own,
    // and only this core's handler redirects to `graft_guarded_resume`, which returns from this
    // call with the callee-saved state this call had (so the compiler's assumptions hold).
    let answer = unsafe { graft_guarded_call(site.entry(), inside, guard.saved.get()) };
    compiler_fence(Ordering::SeqCst);
    guard.site.store(0, Ordering::Relaxed);
    match guard.caught.load(Ordering::Relaxed) {
        NONE => Ok(answer),
        c => {
            let cause = FaultCause::from_u8(c - 1).unwrap_or(FaultCause::Exception);
            let rollback = roll_back(site, guard, cause);
            Err(Contained { cause, rollback })
        }
    }
}

/// Rolls `site` back after this core's contained call, waiting while another producer (another
/// faulting core) holds the site; reports a rollback it did.
fn roll_back(site: &Site, guard: &Guard, cause: FaultCause) -> Rollback {
    let core = cpu::core_id();
    let (esr, elr, far) = (
        guard.esr.load(Ordering::Relaxed),
        guard.elr.load(Ordering::Relaxed),
        guard.far.load(Ordering::Relaxed),
    );
    let until = cpu::ticks() + cpu::us_to_ticks(ROLLBACK_TIMEOUT.as_micros() as u64);
    let result = loop {
        match site.roll_back(elr, ROLLBACK_TIMEOUT) {
            Err(sites::RollBack::Publish(super::PatchError::Busy)) if cpu::ticks() < until => {
                cpu::relax()
            }
            other => break other,
        }
    };
    match result {
        Ok(Some((version, restored))) => {
            defmt::warn!(
                "contained: {=str} version {=u64} on core {=usize}, rolled back to {=u64} (ESR={=u64:#x} ELR={=u64:#x} FAR={=u64:#x})",
                site.name,
                version,
                core,
                restored,
                esr,
                elr,
                far
            );
            crate::report::emit(&Record::PatchFault {
                site: Name::new(site.name),
                core: core as u8,
                cause,
                version,
                restored,
                esr,
                elr,
                far,
            });
            Rollback::Done
        }
        Ok(None) => Rollback::Already,
        Err(sites::RollBack::NothingKept) => {
            defmt::error!(
                "contained: {=str} faulted on core {=usize} but keeps no previous code",
                site.name,
                core
            );
            Rollback::Failed
        }
        Err(sites::RollBack::Publish(e)) => {
            defmt::error!("contained: rolling back {=str} failed: {}", site.name, e);
            Rollback::Failed
        }
    }
}

/// Whether `pc` lies in patch code (the arena).
fn in_patch(pc: u64) -> bool {
    let arena = crate::arch::mmu::arena();
    (arena.start as u64..arena.end as u64).contains(&pc)
}

/// Records the fault and sends `frame` back to the guarded call's caller.
fn contain(frame: &mut Frame, guard: &Guard, cause: FaultCause, esr: u64, far: u64) {
    guard.site.store(0, Ordering::Relaxed);
    guard.esr.store(esr, Ordering::Relaxed);
    guard.elr.store(frame.elr, Ordering::Relaxed);
    guard.far.store(far, Ordering::Relaxed);
    guard.caught.store(cause as u8 + 1, Ordering::Relaxed);
    frame.elr = graft_guarded_resume as *const () as u64;
    frame.x[0] = guard.saved.get() as u64;
}

/// A synchronous exception from thread code: contained (and `frame` redirected) when this core
/// runs a guarded call and `ELR` lies in patch code.
pub fn on_exception(frame: &mut Frame, esr: u64, far: u64) -> bool {
    let guard = &GUARDS[cpu::core_id()];
    if guard.site.load(Ordering::Relaxed) == 0 || !in_patch(frame.elr) {
        return false;
    }
    // FAR_EL1 holds an address only for aborts (and alignment faults); otherwise it is stale.
    let far_valid = matches!(
        protocol::esr::class(esr),
        protocol::esr::ec::DATA_ABORT_SAME_EL | protocol::esr::ec::INSTRUCTION_ABORT_SAME_EL
    );
    contain(
        frame,
        guard,
        FaultCause::Exception,
        esr,
        if far_valid { far } else { 0 },
    );
    true
}

/// An IRQ from thread code (the loop's timer tick among them), after it was handled: a guarded
/// call still in patch code past its deadline is contained as a hang.
pub fn on_tick(frame: &mut Frame) -> bool {
    let guard = &GUARDS[cpu::core_id()];
    if guard.site.load(Ordering::Relaxed) == 0
        || !in_patch(frame.elr)
        || cpu::ticks() < guard.deadline.load(Ordering::Relaxed)
    {
        return false;
    }
    contain(frame, guard, FaultCause::Hang, 0, 0);
    true
}
