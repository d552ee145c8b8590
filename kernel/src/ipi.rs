//! Inter-core calls: run a handler on other cores and, if asked, wait for each to acknowledge.
//!
//! Every (sender, target) pair has its own mailbox on its own cache line, so any number of cores
//! can call any others at once without a lock. A sender fills the mailbox, bumps its sequence
//! number with release, and raises the board's IPI; the target's IRQ handler scans the mailboxes
//! addressed to it, runs each new request, and acknowledges it by storing the sequence number
//! with release. Coalesced interrupts lose nothing: the scan finds every new request. Waits are
//! bounded: a timeout is an error that names the cores that did not answer.

use crate::arch::cpu;
use crate::smp;
use boards::{Board, CoreMask, Current, MAX_CORES};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use patcher::platform::{CoreId, IpiWork};

/// A function run on the target core, in its IRQ handler, with the sender's index and an argument.
pub type Handler = fn(sender: usize, arg: usize);

/// What a target runs: a function and argument, or a patcher work item (run with the target's
/// own index).
#[derive(Clone, Copy)]
pub enum Request {
    /// `handler(sender, arg)`.
    Call(Handler, usize),
    /// `work.run(target)`.
    Work(&'static dyn IpiWork),
}

impl Request {
    fn run(self, sender: usize, me: usize) {
        match self {
            Request::Call(handler, arg) => handler(sender, arg),
            Request::Work(work) => work.run(CoreId(me as u8)),
        }
    }
}

/// Why an inter-core call did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiError {
    /// These cores did not acknowledge in time (or had not finished this core's previous
    /// request, so nothing was sent to anyone).
    Timeout {
        /// The cores that had not answered.
        pending: CoreMask,
    },
    /// These cores are not online.
    Offline {
        /// The offline targets.
        cores: CoreMask,
    },
}

impl defmt::Format for IpiError {
    fn format(&self, f: defmt::Formatter<'_>) {
        let (what, set) = match self {
            Self::Timeout { pending } => ("no acknowledgement in time from core", pending),
            Self::Offline { cores } => ("offline: core", cores),
        };
        defmt::write!(f, "{=str}", what);
        if set.len() > 1 {
            defmt::write!(f, "s");
        }
        for (i, c) in set.iter().enumerate() {
            defmt::write!(f, "{=str}{=usize}", if i == 0 { " " } else { ", " }, c);
        }
    }
}

#[repr(C, align(64))]
struct Mailbox {
    seq: AtomicU64,
    ack: AtomicU64,
    request: UnsafeCell<Option<Request>>,
}

// SAFETY: `request` is written only by the sender, while `ack == seq` (the target is done with
// the previous request), before it publishes `seq + 1` with release; it is read only by the
// target after an acquire load of `seq` shows a new request, and before it acknowledges with
// release. The two accesses are therefore ordered, never concurrent.
unsafe impl Sync for Mailbox {}

const _: () = assert!(core::mem::size_of::<Mailbox>() == 64);

/// `MAILBOXES[sender][target]`.
static MAILBOXES: [[Mailbox; MAX_CORES]; MAX_CORES] = [const {
    [const {
        Mailbox {
            seq: AtomicU64::new(0),
            ack: AtomicU64::new(0),
            request: UnsafeCell::new(None),
        }
    }; MAX_CORES]
}; MAX_CORES];

/// A sent request: which cores, and the sequence number each must acknowledge.
pub struct Ticket {
    targets: CoreMask,
    seqs: [u64; MAX_CORES],
}

/// Runs `handler(me, arg)` on every core in `targets` (on this core too, inline, if included) and
/// returns without waiting. Use [`wait`] on the ticket to collect the acknowledgements.
///
/// A previous request from this core to a target must be acknowledged before a new one replaces
/// it; that wait is bounded by `timeout_us` as well.
pub fn send(
    targets: CoreMask,
    handler: Handler,
    arg: usize,
    timeout_us: u64,
) -> Result<Ticket, IpiError> {
    send_request(targets, Request::Call(handler, arg), timeout_us)
}

/// How often a wait raises the IPI again on targets that have not answered: an interrupt
/// that was lost, or a request filled while its target was busy, is picked up within this.
const REKICK_US: u64 = 1_000;

/// The targets in `set` that have not yet acknowledged this core's latest request to them.
fn unanswered(me: usize, set: CoreMask) -> CoreMask {
    set.iter()
        .filter(|&t| {
            let mb = &MAILBOXES[me][t];
            mb.ack.load(Ordering::Acquire) != mb.seq.load(Ordering::Relaxed)
        })
        .fold(CoreMask::EMPTY, CoreMask::with)
}

/// Spins until `pending(set)` is empty or `deadline` passes, raising the IPI again on what is
/// still pending every [`REKICK_US`]; returns what was still pending.
fn wait_until(
    deadline: u64,
    mut pending: CoreMask,
    check: impl Fn(CoreMask) -> CoreMask,
) -> CoreMask {
    let interval = cpu::us_to_ticks(REKICK_US);
    let mut next_kick = cpu::ticks() + interval;
    pending = check(pending);
    if pending.is_empty() {
        return pending;
    }
    let _waiting = crate::wait::Waiting::begin();
    loop {
        pending = check(pending);
        if pending.is_empty() {
            return pending;
        }
        let now = cpu::ticks();
        if now > deadline {
            return check(pending);
        }
        if now > next_kick {
            kick(pending);
            next_kick = now + interval;
        }
        cpu::relax();
    }
}

/// [`send`] for any [`Request`].
///
/// All or nothing: every remote target must first have finished this core's previous request
/// to it (bounded by `timeout_us`). If one has not, no mailbox is written and the error names
/// exactly the targets still busy, so a request never sits in a mailbox without its interrupt.
pub fn send_request(
    targets: CoreMask,
    request: Request,
    timeout_us: u64,
) -> Result<Ticket, IpiError> {
    let me = cpu::core_id();
    let offline = targets.minus(smp::online());
    if !offline.is_empty() {
        return Err(IpiError::Offline { cores: offline });
    }
    let remote = targets.without(me);
    let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
    let busy = wait_until(deadline, remote, |set| unanswered(me, set));
    if !busy.is_empty() {
        return Err(IpiError::Timeout { pending: busy });
    }
    let mut ticket = Ticket {
        targets: remote,
        seqs: [0; MAX_CORES],
    };
    for t in remote.iter() {
        let mb = &MAILBOXES[me][t];
        let seq = mb.seq.load(Ordering::Relaxed);
        // SAFETY: `ack == seq` (acquire, in `unanswered`): the target has finished with the
        // previous request and will not read this one before the release store of `seq + 1`.
        unsafe { *mb.request.get() = Some(request) };
        mb.seq.store(seq + 1, Ordering::Release);
        ticket.seqs[t] = seq + 1;
    }
    if !remote.is_empty() {
        kick(remote);
    }
    if targets.contains(me) {
        let saved = cpu::irq_save();
        request.run(me, me);
        cpu::irq_restore(saved);
    }
    Ok(ticket)
}

/// Waits until every target of `ticket` acknowledged, at most `timeout_us` microseconds,
/// raising the IPI again on a target that has not answered within [`REKICK_US`].
///
/// Keep IRQs unmasked while waiting (the normal case) so that this core answers calls made to it
/// meanwhile; otherwise two cores calling each other would both time out.
pub fn wait(ticket: &Ticket, timeout_us: u64) -> Result<(), IpiError> {
    let me = cpu::core_id();
    let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
    let acked = |set: CoreMask| {
        set.iter()
            .filter(|&t| MAILBOXES[me][t].ack.load(Ordering::Acquire) != ticket.seqs[t])
            .fold(CoreMask::EMPTY, CoreMask::with)
    };
    let pending = wait_until(deadline, ticket.targets, acked);
    if pending.is_empty() {
        Ok(())
    } else {
        Err(IpiError::Timeout { pending })
    }
}

/// [`send`] then [`wait`]: returns once every target has run `handler`.
pub fn call(
    targets: CoreMask,
    handler: Handler,
    arg: usize,
    timeout_us: u64,
) -> Result<(), IpiError> {
    let ticket = send(targets, handler, arg, timeout_us)?;
    wait(&ticket, timeout_us)
}

/// Calls every other online core.
pub fn call_others(handler: Handler, arg: usize, timeout_us: u64) -> Result<(), IpiError> {
    call(
        smp::online().without(cpu::core_id()),
        handler,
        arg,
        timeout_us,
    )
}

/// Raises the IPI on `targets` (wakes cores sleeping in `WFI`; they scan their mailboxes).
pub fn kick(targets: CoreMask) {
    // The mailbox stores must be visible before the interrupt can be taken; a DMB does not
    // order them against a GICv3 system-register write, a DSB does.
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    Current::send_ipi(targets);
}

/// IPI requests each core has run (the demo counts them as disturbances).
static HANDLED: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// How many requests `core` has run so far.
pub fn handled(core: usize) -> u64 {
    HANDLED[core].load(Ordering::Relaxed)
}

/// The IPI handler: runs every new request addressed to this core, then acknowledges it.
///
/// Called right after the interrupt controller's acknowledge read (GIC `IAR`, the BCM2836
/// mailbox): a `DMB ISHLD` orders the mailbox loads after that read, as Linux's `smp_rmb()`
/// does, or a request published just before the interrupt could be missed. Each request is
/// followed by an `ISB` before its acknowledgement: the sender may take the acknowledgement as
/// this core's context synchronization (the exception return comes later, and patchable code
/// could run in IRQ context before it).
pub fn handle() {
    let me = cpu::core_id();
    HANDLED[me].fetch_add(1, Ordering::Relaxed);
    aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::ISHLD);
    for sender in smp::online().iter() {
        let mb = &MAILBOXES[sender][me];
        let seq = mb.seq.load(Ordering::Acquire);
        if seq == mb.ack.load(Ordering::Relaxed) {
            continue;
        }
        // SAFETY: the acquire load of `seq` shows a new request, which the sender stored before
        // publishing `seq`; the sender will not touch it again until the release below.
        let request = unsafe { *mb.request.get() };
        if let Some(request) = request {
            request.run(sender, me);
        }
        aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        mb.ack.store(seq, Ordering::Release);
    }
}
