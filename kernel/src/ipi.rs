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
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum IpiError {
    /// These cores did not acknowledge in time.
    Timeout {
        /// The cores that had not answered, as a bit mask.
        pending: u64,
    },
    /// These cores are not online.
    Offline {
        /// The offline targets, as a bit mask.
        cores: u64,
    },
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

/// [`send`] for any [`Request`].
pub fn send_request(
    targets: CoreMask,
    request: Request,
    timeout_us: u64,
) -> Result<Ticket, IpiError> {
    let me = cpu::core_id();
    let offline = targets.minus(smp::online());
    if !offline.is_empty() {
        return Err(IpiError::Offline {
            cores: offline.bits(),
        });
    }
    let remote = targets.without(me);
    let mut ticket = Ticket {
        targets: remote,
        seqs: [0; MAX_CORES],
    };
    let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
    for t in remote.iter() {
        let mb = &MAILBOXES[me][t];
        let seq = mb.seq.load(Ordering::Relaxed);
        while mb.ack.load(Ordering::Acquire) != seq {
            if cpu::ticks() > deadline {
                return Err(IpiError::Timeout {
                    pending: CoreMask::single(t).bits(),
                });
            }
            cpu::relax();
        }
        // SAFETY: `ack == seq` (acquire, above): the target has finished with the previous
        // request and will not read this one before the release store of `seq + 1` below.
        unsafe { *mb.request.get() = Some(request) };
        mb.seq.store(seq + 1, Ordering::Release);
        ticket.seqs[t] = seq + 1;
    }
    if !remote.is_empty() {
        // The mailbox stores must be visible before the interrupt can be taken; a DMB does not
        // order them against a GICv3 system-register write, a DSB does.
        aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
        Current::send_ipi(remote);
    }
    if targets.contains(me) {
        let saved = cpu::irq_save();
        request.run(me, me);
        cpu::irq_restore(saved);
    }
    Ok(ticket)
}

/// Waits until every target of `ticket` acknowledged, at most `timeout_us` microseconds.
///
/// Keep IRQs unmasked while waiting (the normal case) so that this core answers calls made to it
/// meanwhile; otherwise two cores calling each other would both time out.
pub fn wait(ticket: &Ticket, timeout_us: u64) -> Result<(), IpiError> {
    let me = cpu::core_id();
    let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
    loop {
        let pending = ticket
            .targets
            .iter()
            .filter(|&t| MAILBOXES[me][t].ack.load(Ordering::Acquire) != ticket.seqs[t])
            .fold(CoreMask::EMPTY, CoreMask::with);
        if pending.is_empty() {
            return Ok(());
        }
        if cpu::ticks() > deadline {
            return Err(IpiError::Timeout {
                pending: pending.bits(),
            });
        }
        cpu::relax();
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

/// Raises the IPI on `targets` with no request: wakes cores sleeping in `WFI`.
pub fn kick(targets: CoreMask) {
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
pub fn handle() {
    let me = cpu::core_id();
    HANDLED[me].fetch_add(1, Ordering::Relaxed);
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
        mb.ack.store(seq, Ordering::Release);
    }
}
