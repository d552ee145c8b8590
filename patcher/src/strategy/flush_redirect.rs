//! Flush-then-redirect: the producer cleans, each consumer invalidates for itself.
//!
//! The producer writes the block, cleans the data side (`DC CVAU`, `DSB ISH`), writes the
//! block's address and the lines to invalidate once, in the site's shared [`Publication`], then
//! for each consumer points its cell at that record and store-releases its target := the flush
//! stub: two stores per consumer. The stub is fixed code, never rewritten, so never stale; it
//! runs on the consumer: `DMB ISH` (orders its loads of the record after the load of the target
//! that led to it: a branch dependency does not order a later load), `IC IVAU` over the block,
//! `DSB ISH`, `ISB`, store target := block, branch to the block. No interrupt reaches the
//! consumer. Each consumer has its own [`ConsumerCell`], and its own store of the block address
//! is its acknowledgement.
//!
//! The record is rewritten only once every consumer the previous publication sent to the stub
//! has acknowledged it (a consumer in the stub reads it in two steps around its `ISB`). The
//! producer remembers having seen that (at the end of a publication that waited for every
//! acknowledgement), so a publication after a complete one need not look at the cells again.
//!
//! [`FLUSH_STUB`] is the stub's machine code, to be placed once in executable memory (the
//! kernel's text or an arena slot) and never changed. It is entered by `BR` with `X16` holding
//! the address of the consumer's [`ConsumerCell`], as the site sequence
//! `ADRP X16, cell; ADD X16, X16, :lo12:cell; LDR X17, [X16]; BR X17` leaves it; it clobbers
//! only `X9`-`X12`, `X16` and `X17` (caller-saved under AAPCS64, so a site that is a function
//! call may lose them) and keeps `X0`-`X8` and `LR` for the block.
//! [`FlushThenRedirect::stub_model`] is the same sequence in Rust, and a host test runs the
//! machine code in a small interpreter to check the two agree.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::{Claim, Env, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::Maintenance;
use crate::insn::{self, Barrier, Cond, IcOp, Reg, Width};
use crate::platform::{CoreId, CoreSet, Platform};

#[cfg(test)]
#[path = "tests/flush_stub.rs"]
mod tests;

/// One consumer's cell, alone on a cache line pair. The consumer branches through `target`.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct ConsumerCell {
    /// Where the consumer branches: the current block, or the flush stub while one is pending.
    pub target: AtomicU64,
    /// Address of the [`Publication`] the stub reads (written before each redirect).
    pub publication: AtomicU64,
}

/// What a publication asks of every consumer's stub: one record per site, shared by its
/// consumers, alone on its cache line pair.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct Publication {
    /// Address of the block the stub must make fresh and branch to.
    pub block: AtomicU64,
    /// First instruction-cache line to invalidate (aligned down to the line size).
    pub inval_start: AtomicU64,
    /// End of the block (exclusive).
    pub inval_end: AtomicU64,
    /// Instruction-cache line size to step by; 0 when `DIC` makes invalidation unnecessary.
    pub stride: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<ConsumerCell>() == 128);
const _: () = assert!(core::mem::size_of::<Publication>() == 128);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, target) == CELL_TARGET as usize);
const _: () = assert!(core::mem::offset_of!(ConsumerCell, publication) == CELL_PUB as usize);
const _: () = assert!(core::mem::offset_of!(Publication, block) == PUB_BLOCK as usize);
const _: () = assert!(core::mem::offset_of!(Publication, inval_start) == PUB_START as usize);
const _: () = assert!(core::mem::offset_of!(Publication, inval_end) == PUB_END as usize);
const _: () = assert!(core::mem::offset_of!(Publication, stride) == PUB_STRIDE as usize);

const CELL_TARGET: i64 = 0;
const CELL_PUB: i64 = 8;
const PUB_BLOCK: i64 = 0;
const PUB_START: i64 = 8;
const PUB_END: i64 = 16;
const PUB_STRIDE: i64 = 24;

/// Words in [`FLUSH_STUB`].
pub const FLUSH_STUB_WORDS: usize = 15;

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
const RECORD: Reg = Reg::x(12);

/// The flush stub's machine code (see the module documentation for its entry convention).
pub const FLUSH_STUB: [u32; FLUSH_STUB_WORDS] = [
    // Order the loads below after the load of the target that led here.
    insn::dmb(Barrier::Ish),
    ok(insn::ldr_imm(RECORD, CELL, CELL_PUB)),
    ok(insn::ldr_imm(ADDR, RECORD, PUB_START)),
    ok(insn::ldr_imm(END, RECORD, PUB_END)),
    ok(insn::ldr_imm(STEP, RECORD, PUB_STRIDE)),
    // Stride 0 (DIC): skip the invalidation and its DSB, to the ISB.
    ok(insn::cbz(Width::X, STEP, 6 * 4, false)),
    insn::ic(IcOp::Ivau, ADDR),
    insn::add_reg(ADDR, ADDR, STEP),
    insn::cmp_reg(ADDR, END),
    ok(insn::b_cond(Cond::Cc, -3 * 4)),
    insn::dsb(Barrier::Ish),
    insn::ISB,
    ok(insn::ldr_imm(BLOCK, RECORD, PUB_BLOCK)),
    // The acknowledgement: from now on this consumer branches straight to the block.
    insn::stlr(BLOCK, CELL),
    ok(insn::br(BLOCK)),
];

impl ConsumerCell {
    /// A cell whose consumer initially branches to `initial`.
    pub const fn new(initial: u64) -> Self {
        Self {
            target: AtomicU64::new(initial),
            publication: AtomicU64::new(0),
        }
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }
}

impl Publication {
    const fn new() -> Self {
        Self {
            block: AtomicU64::new(0),
            inval_start: AtomicU64::new(0),
            inval_end: AtomicU64::new(0),
            stride: AtomicU64::new(0),
        }
    }

    fn addr(&self) -> u64 {
        self as *const Self as u64
    }
}

/// One flush-then-redirect site: its shared [`Publication`], which of its cells consume it
/// now, and the producer's memory of the last redirect. `C` is the cells (`[ConsumerCell; N]`
/// in a static, `[ConsumerCell]` behind a reference: the strategy's [`Strategy::Site`]).
///
/// Consumers are named by their index in the cells (the kernel gives core `c` cell `c`).
#[derive(Debug)]
pub struct ConsumerCells<C: ?Sized = [ConsumerCell]> {
    publication: Publication,
    /// Held by the producer publishing to this site (a second one gets `Busy`).
    producer: AtomicBool,
    /// The cells that consume it now: `first..end`.
    first: AtomicUsize,
    end: AtomicUsize,
    /// The cells the last redirect sent to the stub, and whether the producer has since seen
    /// every one of them acknowledge (they stay so until the next redirect: only the producer
    /// sends a cell to the stub). Written only under the claim.
    outstanding: (AtomicUsize, AtomicUsize),
    confirmed: AtomicBool,
    cells: C,
}

impl<const N: usize> ConsumerCells<[ConsumerCell; N]> {
    /// `N` cells, every one leading to `initial` and consuming the site.
    pub const fn new(initial: u64) -> Self {
        let mut cells = [const { ConsumerCell::new(0) }; N];
        let mut i = 0;
        while i < N {
            cells[i] = ConsumerCell::new(initial);
            i += 1;
        }
        Self {
            publication: Publication::new(),
            producer: AtomicBool::new(false),
            first: AtomicUsize::new(0),
            end: AtomicUsize::new(N),
            outstanding: (AtomicUsize::new(0), AtomicUsize::new(0)),
            confirmed: AtomicBool::new(true),
            cells,
        }
    }
}

/// A site of `N` cells is one of some cells, as an array is a slice.
impl<const N: usize> core::ops::Deref for ConsumerCells<[ConsumerCell; N]> {
    type Target = ConsumerCells;

    fn deref(&self) -> &ConsumerCells {
        self
    }
}

impl ConsumerCells {
    /// Every cell (consuming or not).
    pub fn cells(&self) -> &[ConsumerCell] {
        &self.cells
    }

    /// The shared publication record.
    pub fn publication(&self) -> &Publication {
        &self.publication
    }

    /// Only cells `first..end` consume the site from the next publication on (clamped to the
    /// cells there are).
    pub fn set_consumers(&self, first: usize, end: usize) {
        let end = end.min(self.cells.len());
        self.first.store(first.min(end), Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
    }

    /// The indices of the cells that consume the site now.
    pub fn consumers(&self) -> Range<usize> {
        self.first.load(Ordering::Relaxed)..self.end.load(Ordering::Relaxed)
    }

    /// This site for one producer, or [`PublishError::Busy`].
    pub(crate) fn claim(&self) -> Result<Claim<'_>, PublishError> {
        Claim::take(&self.producer)
    }

    /// The cells in `range` for which `pick` holds of their target, by index.
    fn cells_where(&self, range: Range<usize>, pick: impl Fn(u64) -> bool) -> CoreSet {
        let mut set = CoreSet::EMPTY;
        for i in range {
            if pick(self.cells[i].target.load(Ordering::Acquire)) {
                set = set.with(CoreId(i as u8));
            }
        }
        set
    }

    /// Whether any cell in `range` leads to `stub` (early out: the common answer is no).
    fn any_on(&self, range: Range<usize>, stub: u64) -> bool {
        self.cells[range]
            .iter()
            .any(|c| c.target.load(Ordering::Acquire) == stub)
    }

    fn outstanding(&self) -> Range<usize> {
        self.outstanding.0.load(Ordering::Relaxed)..self.outstanding.1.load(Ordering::Relaxed)
    }
}

/// The flush-then-redirect strategy, for one consumer or many.
///
/// # Example
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::strategy::{ConsumerCells, FlushThenRedirect};
///
/// let w = ExampleWorld::new(3);
/// const STUB: u64 = 0x9000_0000;
/// let site = ConsumerCells::<[_; 2]>::new(0x1000);
/// let ftr = FlushThenRedirect::new(STUB);
/// ftr.redirect(&w.env(), &site, &w.block).unwrap();
/// // Each consumer now branches to the stub, which makes the block fresh on it and redirects.
/// for cell in site.cells() {
///     // SAFETY: the pending range is the world's block (the fake cache never touches it).
///     assert_eq!(unsafe { FlushThenRedirect::stub_model(cell, w.sync.backend()) }, w.block.exec_addr());
/// }
/// ftr.wait_acknowledged(&w.env(), &site, &w.block).unwrap();
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

    /// Waits, bounded by the environment's timeout, until every consumer of `site` has run the
    /// stub for `block` (its target is the block). On timeout names the consumers that have
    /// not. (Only [`publish`](Strategy::publish), which holds the site throughout, remembers
    /// the answer for the next publication.)
    pub fn wait_acknowledged<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &ConsumerCells,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        Self::wait_taken(env, site, site.consumers(), block)
    }

    fn wait_taken<P: Platform + ?Sized, M: Maintenance>(
        env: &Env<'_, P, M>,
        site: &ConsumerCells,
        range: Range<usize>,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let to = block.exec_addr();
        let pending = || site.cells_where(range.clone(), |t| t != to);
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
    /// `cell` leads to a [`Publication`] (it was redirected) that describes code mapped at the
    /// executable alias.
    #[cfg(any(test, feature = "fake"))]
    pub unsafe fn stub_model<M: Maintenance>(cell: &ConsumerCell, backend: &M) -> u64 {
        backend.dmb_ish();
        let record = cell.publication.load(Ordering::Relaxed) as *const Publication;
        // SAFETY: the caller guarantees the cell leads to a live record.
        let record = unsafe { &*record };
        let mut addr = record.inval_start.load(Ordering::Relaxed);
        let end = record.inval_end.load(Ordering::Relaxed);
        let stride = record.stride.load(Ordering::Relaxed);
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
        let block = record.block.load(Ordering::Relaxed);
        cell.target.store(block, Ordering::Release);
        backend.observe_store(cell.addr(), block);
        block
    }
}

impl Strategy for FlushThenRedirect {
    type Site = ConsumerCells;

    /// Holds the site throughout; waits (within the timeout) until no consumer is still on the
    /// stub for the previous block, redirects the consumers' cells to the stub and waits until
    /// each consumer took the block: when it returns `Ok`, no consumer can reach the previous
    /// block any more. One consumer at a time, or all at once, as the strategy was made.
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &ConsumerCells,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = site.claim()?;
        // The previous publication (or the installation) may not be acknowledged yet by a
        // consumer that has not called since: wait for it, within the timeout, rather than
        // refuse at once.
        if !site.confirmed.load(Ordering::Relaxed) {
            let stub = self.stub;
            env.platform.wait_for(env.timeout, &mut || {
                !site.any_on(site.outstanding(), stub)
            });
        }
        let range = site.consumers();
        let step = if self.one_at_a_time {
            1
        } else {
            range.len().max(1)
        };
        let mut first = range.start;
        while first < range.end {
            let group = first..(first + step).min(range.end);
            self.redirect_taken(env, site, group.clone(), block)?;
            Self::wait_taken(env, site, group, block)?;
            // Every cell the redirect sent to the stub took the block, and stays there until
            // the next redirect, which therefore need not look again.
            site.confirmed.store(true, Ordering::Relaxed);
            first += step;
        }
        Ok(())
    }

    /// Redirects every cell to the stub without waiting: each consumer takes the block through
    /// the stub on its first call, as on every later one.
    fn install<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &ConsumerCells,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        self.redirect(env, site, block)
    }
}

impl FlushThenRedirect {
    /// Cleans the block, then redirects every consumer to the stub; refused, with nothing
    /// written, while a consumer has not acknowledged the previous block. Returns without
    /// waiting (the first half of [`Strategy::publish`], for callers that measure the
    /// publisher's own cost).
    pub fn redirect<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &ConsumerCells,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = site.claim()?;
        self.redirect_taken(env, site, site.consumers(), block)
    }

    /// [`redirect`](Self::redirect) of the cells in `range`, by the producer holding the site.
    fn redirect_taken<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &ConsumerCells,
        range: Range<usize>,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        // A consumer still in (or bound for) the stub reads the record in two steps around its
        // ISB; rewriting it under it could send it to a block it never invalidated. Only the
        // cells the last redirect sent there can be, and only until they acknowledge.
        if !site.confirmed.load(Ordering::Relaxed) {
            let stub = self.stub;
            let pending = site.cells_where(site.outstanding(), |t| t == stub);
            if !pending.is_empty() {
                return Err(PublishError::Pending { consumers: pending });
            }
        }
        block.clean(env.sync);
        let policy = env.sync.policy();
        let iline = policy.iline as u64;
        let record = &site.publication;
        record.block.store(block.exec_addr(), Ordering::Relaxed);
        record
            .inval_start
            .store(block.exec_addr() & !(iline - 1), Ordering::Relaxed);
        record
            .inval_end
            .store(block.exec_addr() + block.len() as u64, Ordering::Relaxed);
        let stride = if policy.invalidate { iline } else { 0 };
        record.stride.store(stride, Ordering::Relaxed);
        site.outstanding.0.store(range.start, Ordering::Relaxed);
        site.outstanding.1.store(range.end, Ordering::Relaxed);
        site.confirmed.store(false, Ordering::Relaxed);
        // Per consumer, only its own cell: which record, then (release: after the record) the
        // stub. Its stub's `DMB ISH` keeps its own loads of them in order.
        let (at, stub) = (record.addr(), self.stub);
        for cell in &site.cells[range] {
            cell.publication.store(at, Ordering::Relaxed);
            cell.target.store(stub, Ordering::Release);
            env.sync.backend().observe_store(cell.addr(), stub);
        }
        Ok(())
    }
}
