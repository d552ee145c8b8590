//! EL1 exceptions: the vector table (`vectors.s`), IRQ dispatch, and faults.
//!
//! An unexpected exception is reported (core, class, ESR, ELR, FAR) and ends the run with
//! [`EXIT_FAULT`]: a test never hangs on a fault. A test may arm a [`FaultTrap`] on its own core to
//! catch one expected abort and resume. A fault or a hang in a patch that a loop called through
//! `patch::contain::call` is contained instead (see there); a stack overflow into a guard page
//! stops only the core it happened on. Every entry runs on the core's exception stack
//! (`SP_EL1`), so none of this needs the interrupted stack.

use crate::arch::{boot, cpu, semihosting};
use crate::patch::contain;
use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable};
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering, compiler_fence};
use protocol::esr;
use protocol::testinfo::EXIT_FAULT;

/// The interrupted context, as `vectors.s` saves it.
#[repr(C)]
pub struct Frame {
    /// General-purpose registers x0 to x30.
    pub x: [u64; 31],
    /// Where to return (`ELR_EL1`).
    pub elr: u64,
    /// Saved processor state (`SPSR_EL1`).
    pub spsr: u64,
    _pad: u64,
}

const _: () = {
    assert!(core::mem::size_of::<Frame>() == 272);
    assert!(core::mem::offset_of!(Frame, elr) == 248);
    assert!(core::mem::offset_of!(Frame, spsr) == 256);
};

core::arch::global_asm!(
    include_str!("vectors.s"),
    frame_size = const core::mem::size_of::<Frame>(),
    elr_offset = const core::mem::offset_of!(Frame, elr),
    spsr_offset = const core::mem::offset_of!(Frame, spsr),
    handler = sym handle_exception,
);

/// Vector-table entries. The kernel runs on `SP_EL0`, so an exception from its code arrives at
/// a "current EL with SP_EL0" entry; one from a handler (already on `SP_EL1`, the exception
/// stack) at a "current EL with SP_ELx" entry.
const CURRENT_SP0_SYNC: u64 = 0;
const CURRENT_SP0_IRQ: u64 = 1;
const CURRENT_SPX_SYNC: u64 = 4;
const CURRENT_SPX_IRQ: u64 = 5;

const KIND_NAMES: [&str; 16] = [
    "sync (SP_EL0)",
    "IRQ (SP_EL0)",
    "FIQ (SP_EL0)",
    "SError (SP_EL0)",
    "sync",
    "IRQ",
    "FIQ",
    "SError",
    "sync from lower EL (AArch64)",
    "IRQ from lower EL (AArch64)",
    "FIQ from lower EL (AArch64)",
    "SError from lower EL (AArch64)",
    "sync from lower EL (AArch32)",
    "IRQ from lower EL (AArch32)",
    "FIQ from lower EL (AArch32)",
    "SError from lower EL (AArch32)",
];

/// How to resume after a caught fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Resume {
    /// Continue after the faulting instruction (a data access).
    Skip = 1,
    /// Return to the link register, as if the faulting function had returned (a branch into
    /// memory that cannot be executed).
    ReturnToCaller = 2,
}

/// What a caught fault looked like.
#[derive(Clone, Copy, Debug)]
pub struct CaughtFault {
    /// `ESR_EL1`.
    pub esr: u64,
    /// `FAR_EL1`.
    pub far: u64,
    /// `ELR_EL1` at the fault.
    pub elr: u64,
}

/// One core's trap for one expected fault.
#[repr(align(64))]
struct Trap {
    /// The exception class awaited, or 0xff when disarmed.
    class: AtomicU8,
    resume: AtomicU8,
    esr: AtomicU64,
    far: AtomicU64,
    elr: AtomicU64,
}

static TRAPS: [Trap; boards::MAX_CORES] = [const {
    Trap {
        class: AtomicU8::new(DISARMED),
        resume: AtomicU8::new(0),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
        elr: AtomicU64::new(0),
    }
}; boards::MAX_CORES];

const DISARMED: u8 = 0xff;
const CAUGHT: u8 = 0xfe;

/// Catches one exception of class `class` on this core while `f` runs.
pub struct FaultTrap;

impl FaultTrap {
    /// Runs `f`; returns the fault if one of class `class` was taken (and resumed as `resume`).
    pub fn catch(class: u8, resume: Resume, f: impl FnOnce()) -> Option<CaughtFault> {
        let trap = &TRAPS[cpu::core_id()];
        trap.resume.store(resume as u8, Ordering::Relaxed);
        trap.class.store(class, Ordering::SeqCst);
        compiler_fence(Ordering::SeqCst);
        f();
        compiler_fence(Ordering::SeqCst);
        let caught = trap.class.swap(DISARMED, Ordering::SeqCst) == CAUGHT;
        caught.then(|| CaughtFault {
            esr: trap.esr.load(Ordering::Relaxed),
            far: trap.far.load(Ordering::Relaxed),
            elr: trap.elr.load(Ordering::Relaxed),
        })
    }
}

/// Tries the armed trap of this core; true when the fault was expected and `frame` is fixed up.
fn try_trap(frame: &mut Frame, esr_val: u64, far: u64) -> bool {
    let trap = &TRAPS[cpu::core_id()];
    if trap.class.load(Ordering::SeqCst) != esr::class(esr_val) {
        return false;
    }
    trap.esr.store(esr_val, Ordering::Relaxed);
    trap.far.store(far, Ordering::Relaxed);
    trap.elr.store(frame.elr, Ordering::Relaxed);
    frame.elr = if trap.resume.load(Ordering::Relaxed) == Resume::Skip as u8 {
        frame.elr + 4
    } else {
        frame.x[30]
    };
    trap.class.store(CAUGHT, Ordering::SeqCst);
    true
}

/// Where each core was when its current IRQ interrupted it (`ELR`, `X30`), for a rendezvous
/// that must not rewrite code a parked core resumes or returns into.
#[repr(align(64))]
struct InterruptedAt {
    pc: AtomicU64,
    lr: AtomicU64,
}

static INTERRUPTED: [InterruptedAt; boards::MAX_CORES] = [const {
    InterruptedAt {
        pc: AtomicU64::new(0),
        lr: AtomicU64::new(0),
    }
}; boards::MAX_CORES];

/// Where `core` was interrupted by the IRQ it is handling now. Meaningful only while that core
/// is inside the handler, read after an acquire of something it stored with release there.
pub fn interrupted_at(core: usize) -> (u64, u64) {
    let at = &INTERRUPTED[core];
    (at.pc.load(Ordering::Relaxed), at.lr.load(Ordering::Relaxed))
}

extern "C" fn handle_exception(frame: &mut Frame, kind: u64) {
    match kind {
        CURRENT_SP0_IRQ | CURRENT_SPX_IRQ => {
            let at = &INTERRUPTED[cpu::core_id()];
            at.pc.store(frame.elr, Ordering::Relaxed);
            at.lr.store(frame.x[30], Ordering::Relaxed);
            crate::irq::handle();
            // A loop's tick that finds its guarded call still in a patch past its budget.
            if kind == CURRENT_SP0_IRQ {
                contain::on_tick(frame);
            }
        }
        CURRENT_SP0_SYNC | CURRENT_SPX_SYNC => {
            let esr_val = ESR_EL1.get();
            let far = FAR_EL1.get();
            if try_trap(frame, esr_val, far)
                || (kind == CURRENT_SP0_SYNC && contain::on_exception(frame, esr_val, far))
            {
                return;
            }
            if esr::class(esr_val) == esr::ec::DATA_ABORT_SAME_EL
                && let Some((owner, which)) = boot::guard_page_of(far)
            {
                stack_overflow(frame, owner, which, far);
            }
            fatal(frame, kind, esr_val, far);
        }
        _ => fatal(frame, kind, ESR_EL1.get(), FAR_EL1.get()),
    }
}

/// A stack ran into its guard page: report it, take this core out of the online set and stop it
/// here, so the other cores keep running (a test passes or fails on them).
fn stack_overflow(frame: &Frame, owner: usize, which: boot::Guarded, far: u64) -> ! {
    let core = cpu::core_id();
    let exception_stack = which == boot::Guarded::Exception;
    defmt::error!(
        "stack overflow on core {=usize}: FAR={=u64:#x} is in the guard page of core {=usize}'s {=str} (ELR={=u64:#x})",
        core,
        far,
        owner,
        if exception_stack {
            "exception stack"
        } else {
            "stack"
        },
        frame.elr
    );
    crate::report::emit(&protocol::Record::StackOverflow {
        core: core as u8,
        owner: owner as u8,
        exception_stack,
        elr: frame.elr,
        far,
    });
    OWN_STACK.fetch_or(
        u64::from(owner == core && !exception_stack) << core,
        Ordering::Relaxed,
    );
    OVERFLOWED.fetch_or(1 << core, Ordering::Release);
    crate::smp::mark_stopped(core);
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Cores stopped by a stack overflow (a bit each).
static OVERFLOWED: AtomicU64 = AtomicU64::new(0);

/// Cores whose overflow was into their own stack's guard page (a bit each).
static OWN_STACK: AtomicU64 = AtomicU64::new(0);
/// Cores a test expects to overflow (a bit each): `smp::run_everywhere` counts them as passed.
static EXPECTED: AtomicU64 = AtomicU64::new(0);

/// Whether `core` stopped on a stack overflow, and whether into its own stack's guard page.
pub fn overflowed(core: usize) -> Option<bool> {
    (OVERFLOWED.load(Ordering::Acquire) & (1 << core) != 0)
        .then(|| OWN_STACK.load(Ordering::Relaxed) & (1 << core) != 0)
}

/// The running test expects this core to overflow its stack.
pub fn expect_overflow() {
    EXPECTED.fetch_or(1 << cpu::core_id(), Ordering::Release);
}

/// Whether `core` stopped on an overflow its test expected.
pub fn overflow_expected(core: usize) -> bool {
    overflowed(core) == Some(true) && EXPECTED.load(Ordering::Acquire) & (1 << core) != 0
}

fn fatal(frame: &Frame, kind: u64, esr_val: u64, far: u64) -> ! {
    let ec = esr::class(esr_val);
    defmt::error!(
        "unexpected exception on core {=usize}: {=str}, {=str} (EC {=u8:#04x}), ESR={=u64:#x} ELR={=u64:#x} FAR={=u64:#x}",
        cpu::core_id(),
        KIND_NAMES[kind as usize & 15],
        esr::class_name(ec),
        ec,
        esr_val,
        frame.elr,
        far
    );
    crate::report::emit(&protocol::Record::Exception {
        core: cpu::core_id() as u8,
        ec,
        esr: esr_val,
        elr: frame.elr,
        far,
    });
    defmt::error!(
        "  x0={=u64:#x} x1={=u64:#x} x29={=u64:#x} x30={=u64:#x} SPSR={=u64:#x}",
        frame.x[0],
        frame.x[1],
        frame.x[29],
        frame.x[30],
        frame.spsr
    );
    semihosting::exit(EXIT_FAULT)
}
