//! Flush-then-redirect: the producer cleans, each consumer invalidates for itself.
//!
//! The producer writes the block, cleans the data side (`DC CVAU`, `DSB ISH`), stores the
//! block's address and the lines to invalidate in the consumer's pending fields, then
//! store-releases the consumer's target := the flush stub. The stub is fixed code, never rewritten, so never
//! stale; it runs on the consumer: `DMB ISH` (orders its loads of the pending fields after the
//! load of the target that led to it: a branch dependency does not order a later load),
//! `IC IVAU` over the block, `DSB ISH`, `ISB`, store target := block, branch to the block. No
//! interrupt reaches the consumer. Each consumer has its own [`ConsumerCell`], and its own
//! store of the block address is its acknowledgement.
//!
//! [`FLUSH_STUB`] is the stub's machine code, to be placed once in executable memory (the
//! kernel's text or an arena slot) and never changed. It is entered by `BR` with `X16` holding
//! the address of the consumer's [`ConsumerCell`], as the site sequence
//! `ADRP X16, cell; ADD X16, X16, :lo12:cell; LDR X17, [X16]; BR X17` leaves it; it clobbers
//! only `X9`-`X11`, `X16` and `X17` (caller-saved under AAPCS64, so a site that is a function
//! call may lose them) and keeps `X0`-`X8` and `LR` for the block.
//! [`FlushThenRedirect::stub_model`] is the same sequence in Rust, and a host test runs the
//! machine code in a small interpreter to check the two agree.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Claim, Env, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::Maintenance;
use crate::insn::{self, Barrier, Cond, IcOp, Reg, Width};
use crate::platform::{CoreId, CoreSet, Platform};

#[cfg(test)]
#[path = "flush_stub_tests.rs"]
mod tests;

/// One consumer's cells, alone on a cache line pair. The consumer branches through `target`.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct ConsumerCell {
    /// Where the consumer branches: the current block, or the flush stub while one is pending.
    pub target: AtomicU64,
    /// Address of the block the stub must make fresh and branch to.
    pub pending: AtomicU64,
    /// First instruction-cache line to invalidate (aligned down to the line size).
    pub inval_start: AtomicU64,
    /// End of the block (exclusive).
    pub inval_end: AtomicU64,
    /// Instruction-cache line size to step by; 0 when `DIC` makes invalidation unnecessary.
    pub stride: AtomicU64,
    /// Held by the producer publishing to this cell (a second one gets `Busy`).
    pub(crate) producer: AtomicBool,
}

const _: () = assert!(core::mem::size_of::<ConsumerCell>() == 128);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, target) == CELL_TARGET as usize);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, pending) == CELL_PENDING as usize);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, inval_start) == CELL_START as usize);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, inval_end) == CELL_END as usize);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, stride) == CELL_STRIDE as usize);

const CELL_TARGET: i64 = 0;
const CELL_PENDING: i64 = 8;
const CELL_START: i64 = 16;
const CELL_END: i64 = 24;
const CELL_STRIDE: i64 = 32;

/// Words in [`FLUSH_STUB`].
pub const FLUSH_STUB_WORDS: usize = 14;

/// An encoding that cannot fail (fixed registers and small offsets): a failure is a compile
/// error, since [`FLUSH_STUB`] is a constant.
const fn ok(r: Result<u32, insn::EncodeError>) -> u32 {
    match r {
        Ok(w) => w,
        Err(_) => panic!("flush stub: unencodable instruction"),
    }
}

const CELL: Reg = Reg::x(16);
const BLOCK: Reg = Reg::x(17);
const ADDR: Reg = Reg::x(9);
const END: Reg = Reg::x(10);
const STEP: Reg = Reg::x(11);

/// The flush stub's machine code (see the module documentation for its entry convention).
pub const FLUSH_STUB: [u32; FLUSH_STUB_WORDS] = [
    // Order the loads below after the load of the target that led here.
    insn::dmb(Barrier::Ish),
    ok(insn::ldr_imm(ADDR, CELL, CELL_START)),
    ok(insn::ldr_imm(END, CELL, CELL_END)),
    ok(insn::ldr_imm(STEP, CELL, CELL_STRIDE)),
    // Stride 0 (DIC): skip the invalidation and its DSB, to the ISB.
    ok(insn::cbz(Width::X, STEP, 6 * 4, false)),
    insn::ic(IcOp::Ivau, ADDR),
    insn::add_reg(ADDR, ADDR, STEP),
    insn::cmp_reg(ADDR, END),
    ok(insn::b_cond(Cond::Cc, -3 * 4)),
    insn::dsb(Barrier::Ish),
    insn::ISB,
    ok(insn::ldr_imm(BLOCK, CELL, CELL_PENDING)),
    // The acknowledgement: from now on this consumer branches straight to the block.
    insn::stlr(BLOCK, CELL),
    ok(insn::br(BLOCK)),
];

impl ConsumerCell {
    /// A cell whose consumer initially branches to `initial`.
    pub const fn new(initial: u64) -> Self {
        Self {
            target: AtomicU64::new(initial),
            pending: AtomicU64::new(0),
            inval_start: AtomicU64::new(0),
            inval_end: AtomicU64::new(0),
            stride: AtomicU64::new(0),
            producer: AtomicBool::new(false),
        }
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }
}

/// The flush-then-redirect strategy, for one consumer (a one-element slice) or many.
///
/// # Example
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::strategy::{ConsumerCell, FlushThenRedirect};
///
/// let w = ExampleWorld::new(3);
/// const STUB: u64 = 0x9000_0000;
/// let cells = [ConsumerCell::new(0x1000), ConsumerCell::new(0x1000)];
/// let ftr = FlushThenRedirect::new(STUB);
/// ftr.redirect(&w.env(), &cells, &w.block).unwrap();
/// // Each consumer now branches to the stub, which makes the block fresh on it and redirects.
/// for cell in &cells {
///     // SAFETY: the pending range is the world's block (the fake cache never touches it).
///     assert_eq!(unsafe { FlushThenRedirect::stub_model(cell, w.sync.backend()) }, w.block.exec_addr());
/// }
/// ftr.wait_acknowledged(&w.env(), &cells, &w.block).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FlushThenRedirect {
    stub: u64,
    one_at_a_time: bool,
}

impl FlushThenRedirect {
    /// The strategy, with the executable address of the fixed flush stub: every consumer's cell
    /// is redirected, then every acknowledgement awaited.
    pub const fn new(stub: u64) -> Self {
        Self {
            stub,
            one_at_a_time: false,
        }
    }

    /// The same, one consumer at a time: redirect a cell, wait for its acknowledgement, then the
    /// next (a consumer is disturbed only once the previous one has moved on).
    pub const fn one_at_a_time(stub: u64) -> Self {
        Self {
            stub,
            one_at_a_time: true,
        }
    }

    /// The flush stub this strategy redirects to.
    pub const fn stub(&self) -> u64 {
        self.stub
    }

    /// Waits, bounded by the environment's timeout, until every consumer in `cells` has run
    /// the stub for `block` (its target is the block). On timeout names, by position in
    /// `cells`, the consumers that have not.
    pub fn wait_acknowledged<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        cells: &[ConsumerCell],
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let pending = || {
            let mut set = CoreSet::EMPTY;
            for (i, c) in cells.iter().enumerate() {
                if c.target.load(Ordering::Acquire) != block.exec_addr() {
                    set = set.with(CoreId(i as u8));
                }
            }
            set
        };
        if env
            .platform
            .wait_for(env.timeout, &mut || pending().is_empty())
        {
            Ok(())
        } else {
            // The cells lead to the stub, and through it to the block: it is reachable.
            Err(PublishError::Unsynchronized { missing: pending() })
        }
    }

    /// [`FLUSH_STUB`]'s sequence in Rust, as run by a consumer that branched to the stub
    /// through `cell`, for host tests. Returns the block the stub branches to.
    ///
    /// # Safety
    ///
    /// The pending fields of `cell` describe code mapped at the executable alias.
    #[cfg(any(test, feature = "fake"))]
    pub unsafe fn stub_model<M: Maintenance>(cell: &ConsumerCell, backend: &M) -> u64 {
        backend.dmb_ish();
        let mut addr = cell.inval_start.load(Ordering::Relaxed);
        let end = cell.inval_end.load(Ordering::Relaxed);
        let stride = cell.stride.load(Ordering::Relaxed);
        if stride != 0 {
            loop {
                // SAFETY: the caller guarantees the pending range is mapped.
                unsafe { backend.ic_ivau(addr as usize) };
                addr += stride;
                if addr >= end {
                    break;
                }
            }
            backend.dsb_ish();
        }
        backend.isb();
        let block = cell.pending.load(Ordering::Relaxed);
        cell.target.store(block, Ordering::Release);
        backend.observe_store(cell.addr(), block);
        block
    }
}

impl Strategy for FlushThenRedirect {
    type Site = [ConsumerCell];

    /// Waits (within the timeout) until no consumer is still on the stub for the previous
    /// block, redirects the consumers' cells to the stub ([`redirect`](Self::redirect)) and
    /// waits until each consumer took the block ([`wait_acknowledged`](Self::wait_acknowledged)):
    /// when it returns `Ok`, no consumer can reach the previous block any more. One consumer at
    /// a time, or all at once, as the strategy was made.
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        cells: &[ConsumerCell],
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        // The previous publication (or the installation) may not be acknowledged yet by a
        // consumer that has not called since: wait for it, within the timeout, rather than
        // refuse at once.
        let on_stub = || {
            cells
                .iter()
                .any(|c| c.target.load(Ordering::Acquire) == self.stub)
        };
        env.platform.wait_for(env.timeout, &mut || !on_stub());
        let step = if self.one_at_a_time {
            1
        } else {
            cells.len().max(1)
        };
        for (k, group) in cells.chunks(step).enumerate() {
            self.redirect(env, group, block)
                .and_then(|()| self.wait_acknowledged(env, group, block))
                .map_err(|e| by_position_in(e, k * step))?;
        }
        Ok(())
    }

    /// Redirects every cell to the stub without waiting: each consumer takes the block through
    /// the stub on its first call, as on every later one.
    fn install<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        cells: &[ConsumerCell],
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        self.redirect(env, cells, block)
    }
}

impl FlushThenRedirect {
    /// Cleans the block, then redirects every consumer to the stub; refused, with nothing
    /// written, while any consumer has not acknowledged the previous block. Returns without
    /// waiting (the first half of [`Strategy::publish`], for callers that measure the
    /// publisher's own cost).
    pub fn redirect<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        cells: &[ConsumerCell],
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        // One producer at a time on these cells: the pending check below and the writes after
        // it must not interleave with another producer's. A slice of cells is one site, and its
        // first cell's claim stands for all of them (one claim, not one per consumer: the
        // publisher's cost per extra consumer stays a few stores).
        let Some(first) = cells.first() else {
            return Ok(());
        };
        let _claim = Claim::take(&first.producer)?;
        self.publish_claimed(env, cells, block)
    }
}

/// `e`, whose consumers are named by position in a group of cells, named by position in the
/// whole slice (the group starting at `first`).
fn by_position_in(e: PublishError, first: usize) -> PublishError {
    let shift = |set: CoreSet| {
        set.iter().fold(CoreSet::EMPTY, |s, c| {
            s.with(CoreId((c.index() + first) as u8))
        })
    };
    match e {
        PublishError::Pending { consumers } => PublishError::Pending {
            consumers: shift(consumers),
        },
        PublishError::Unsynchronized { missing } => PublishError::Unsynchronized {
            missing: shift(missing),
        },
        e => e,
    }
}

impl FlushThenRedirect {
    fn publish_claimed<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        cells: &[ConsumerCell],
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        // A consumer still in (or bound for) the stub reads the pending fields in two steps
        // around its ISB; rewriting them under it could send it to a block it never
        // invalidated. So a cell is republished only once it acknowledged.
        let mut pending = CoreSet::EMPTY;
        for (i, cell) in cells.iter().enumerate() {
            if cell.target.load(Ordering::Acquire) == self.stub {
                pending = pending.with(CoreId(i as u8));
            }
        }
        if !pending.is_empty() {
            return Err(PublishError::Pending { consumers: pending });
        }
        block.clean(env.sync);
        let policy = env.sync.policy();
        let iline = policy.iline as u64;
        let start = block.exec_addr() & !(iline - 1);
        let end = block.exec_addr() + block.len() as u64;
        let stride = if policy.invalidate { iline } else { 0 };
        for cell in cells {
            cell.pending.store(block.exec_addr(), Ordering::Relaxed);
            cell.inval_start.store(start, Ordering::Relaxed);
            cell.inval_end.store(end, Ordering::Relaxed);
            cell.stride.store(stride, Ordering::Relaxed);
            // Release: the consumer that loads the stub address also sees the pending fields
            // (its stub's `DMB ISH` keeps its own loads of them in order).
            cell.target.store(self.stub, Ordering::Release);
            env.sync.backend().observe_store(cell.addr(), self.stub);
        }
        Ok(())
    }
}
