//! The code arena: fixed-size slots that patches are written into and run from.
//!
//! The arena is one memory region mapped twice (writable and never executable, executable and
//! read-only) and cut into equal slots. Each slot's state is one atomic word, so any core may
//! allocate, publish, retire and reclaim concurrently:
//!
//! ```text
//! Free --alloc--> Writing --publish--> Live --retire(e)--> Retired(e) --reclaim--> Free
//!                    \----abort / drop----> Free
//! ```
//!
//! Every transition is a compare-and-swap from the one state it is allowed from, so a slot is
//! never overwritten while live or while it may still be running: `alloc` on a full arena is
//! [`ArenaError::ArenaFull`]. Only a [`SlotWriter`], of which exactly one exists per `Writing`
//! slot, can write, and it writes only a [`Checked`] block that was checked for this slot's
//! execution address.

#[cfg(test)]
mod tests;

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::cache::{CodeSync, Maintenance};
use crate::check::{CheckError, Checked, Externals, Memo, Policy};
use crate::grace::Epoch;

/// Where an arena lives: the two aliases of its memory and how it is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Start of the writable, never-executable alias.
    pub write_base: usize,
    /// Start of the executable, read-only alias of the same memory.
    pub exec_base: usize,
    /// Bytes per slot: a non-zero multiple of 4 (a multiple of the cache line keeps slots off
    /// each other's lines).
    pub slot_size: usize,
    /// Number of slots.
    pub slot_count: usize,
}

/// A slot's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Unused; `alloc` may take it.
    Free,
    /// Owned by one [`SlotWriter`]; not reachable by any core.
    Writing,
    /// Published: cores may run it.
    Live,
    /// Unlinked at this epoch; cores may still be running it until the grace period ends.
    Retired(Epoch),
}

const TAG_FREE: u64 = 0;
const TAG_WRITING: u64 = 1;
const TAG_LIVE: u64 = 2;
const TAG_RETIRED: u64 = 3;

impl SlotState {
    const fn pack(self) -> u64 {
        match self {
            Self::Free => TAG_FREE,
            Self::Writing => TAG_WRITING,
            Self::Live => TAG_LIVE,
            Self::Retired(e) => (e.0 << 2) | TAG_RETIRED,
        }
    }

    const fn unpack(v: u64) -> Self {
        match v & 3 {
            TAG_FREE => Self::Free,
            TAG_WRITING => Self::Writing,
            TAG_LIVE => Self::Live,
            _ => Self::Retired(Epoch(v >> 2)),
        }
    }
}

/// The largest epoch a retired slot can record.
pub const MAX_EPOCH: u64 = u64::MAX >> 2;

/// Why an arena operation was refused. Nothing was written when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaError {
    /// No slot is free. Retire and reclaim, or wait for a grace period.
    ArenaFull,
    /// The region has more slots than this arena's capacity.
    TooManySlots {
        /// Slots in the region.
        count: usize,
        /// Slots the arena can track.
        capacity: usize,
    },
    /// Slot size zero or not a multiple of 4.
    BadSlotSize(usize),
    /// A base address not aligned to 4.
    MisalignedBase(usize),
    /// The region passes the top of the address space.
    RegionOverflow,
    /// The slot was not in the state the operation needs.
    BadState {
        /// The slot.
        slot: SlotId,
        /// The state it was in.
        found: SlotState,
    },
    /// The block was checked for another execution address than this slot's.
    WrongAddress {
        /// This slot's execution address.
        slot_addr: u64,
        /// The address the block was checked for.
        checked_for: u64,
    },
    /// The block is larger than a slot.
    TooLarge {
        /// Bytes in the block.
        len: usize,
        /// Bytes in a slot.
        slot_size: usize,
    },
    /// The slot index is not in this arena.
    NoSuchSlot(SlotId),
    /// The epoch is above [`MAX_EPOCH`].
    EpochTooLarge(Epoch),
    /// `publish` before anything was written.
    NotWritten,
}

/// A slot's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(pub usize);

/// A code arena of up to `N` slots over one [`Region`].
pub struct Arena<const N: usize> {
    region: Region,
    states: [AtomicU64; N],
    /// Each slot's last accepted block, so that republishing it is not interpreted again.
    memo: Memo<N>,
}

impl<const N: usize> Arena<N> {
    /// An arena over `region`, every slot free.
    ///
    /// # Safety
    ///
    /// For as long as the arena exists:
    /// 1. `region.write_base .. + slot_size * slot_count` is mapped as writable Normal memory
    ///    and no code other than this arena accesses it as data;
    /// 2. `region.exec_base ..` of the same length maps the same physical memory, so that cache
    ///    maintenance by address on it is valid.
    pub unsafe fn new(region: Region) -> Result<Self, ArenaError> {
        if region.slot_count > N {
            return Err(ArenaError::TooManySlots {
                count: region.slot_count,
                capacity: N,
            });
        }
        if region.slot_size == 0 || !region.slot_size.is_multiple_of(4) {
            return Err(ArenaError::BadSlotSize(region.slot_size));
        }
        for base in [region.write_base, region.exec_base] {
            if !base.is_multiple_of(4) {
                return Err(ArenaError::MisalignedBase(base));
            }
            let end = region
                .slot_size
                .checked_mul(region.slot_count)
                .and_then(|len| base.checked_add(len));
            if end.is_none() {
                return Err(ArenaError::RegionOverflow);
            }
        }
        Ok(Self {
            region,
            states: [const { AtomicU64::new(TAG_FREE) }; N],
            memo: Memo::new(),
        })
    }

    /// The region.
    pub const fn region(&self) -> Region {
        self.region
    }

    /// The verdicts kept per slot ([`SlotWriter::check`]).
    pub const fn memo(&self) -> &Memo<N> {
        &self.memo
    }

    fn cell(&self, slot: SlotId) -> Result<&AtomicU64, ArenaError> {
        if slot.0 < self.region.slot_count {
            Ok(&self.states[slot.0])
        } else {
            Err(ArenaError::NoSuchSlot(slot))
        }
    }

    /// A slot's state now.
    pub fn state(&self, slot: SlotId) -> Result<SlotState, ArenaError> {
        Ok(SlotState::unpack(self.cell(slot)?.load(Ordering::Acquire)))
    }

    /// The address a slot runs at (its executable alias).
    pub fn exec_addr(&self, slot: SlotId) -> Result<u64, ArenaError> {
        self.cell(slot)?;
        Ok((self.region.exec_base + slot.0 * self.region.slot_size) as u64)
    }

    fn write_addr(&self, slot: SlotId) -> usize {
        self.region.write_base + slot.0 * self.region.slot_size
    }

    /// Moves `slot` from `from` to `to`, or reports the state it was found in.
    fn transition(&self, slot: SlotId, from: SlotState, to: SlotState) -> Result<(), ArenaError> {
        self.cell(slot)?
            .compare_exchange(from.pack(), to.pack(), Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|v| ArenaError::BadState {
                slot,
                found: SlotState::unpack(v),
            })
    }

    /// Takes a free slot for writing; [`ArenaError::ArenaFull`] when there is none. Never
    /// touches a live or retired slot.
    pub fn alloc(&self) -> Result<SlotWriter<'_, N>, ArenaError> {
        for i in 0..self.region.slot_count {
            let slot = SlotId(i);
            if self
                .transition(slot, SlotState::Free, SlotState::Writing)
                .is_ok()
            {
                return Ok(SlotWriter {
                    arena: self,
                    slot,
                    len: 0,
                });
            }
        }
        Err(ArenaError::ArenaFull)
    }

    /// Marks a live slot unlinked at `epoch` (from [`Qsbr::unlink`](crate::grace::Qsbr::unlink),
    /// called after the pointer to it was replaced).
    pub fn retire(&self, slot: SlotId, epoch: Epoch) -> Result<(), ArenaError> {
        if epoch.0 > MAX_EPOCH {
            return Err(ArenaError::EpochTooLarge(epoch));
        }
        self.transition(slot, SlotState::Live, SlotState::Retired(epoch))
    }

    /// Frees every slot retired at or before `safe` (from
    /// [`Qsbr::safe_epoch`](crate::grace::Qsbr::safe_epoch)); returns how many.
    pub fn reclaim(&self, safe: Epoch) -> usize {
        let mut freed = 0;
        for i in 0..self.region.slot_count {
            let slot = SlotId(i);
            if let Ok(SlotState::Retired(e)) = self.state(slot)
                && e <= safe
                && self
                    .transition(slot, SlotState::Retired(e), SlotState::Free)
                    .is_ok()
            {
                freed += 1;
            }
        }
        freed
    }

    /// How many slots are in each state: `[free, writing, live, retired]`.
    pub fn census(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for s in &self.states[..self.region.slot_count] {
            n[(s.load(Ordering::Acquire) & 3) as usize] += 1;
        }
        n
    }
}

/// The one handle that may write a `Writing` slot. Dropping it without publishing frees the
/// slot again.
pub struct SlotWriter<'a, const N: usize> {
    arena: &'a Arena<N>,
    slot: SlotId,
    len: usize,
}

impl<'a, const N: usize> SlotWriter<'a, N> {
    /// The slot being written.
    pub const fn slot(&self) -> SlotId {
        self.slot
    }

    /// The address the slot runs at: the one to [`check`](crate::check::check_block) the block
    /// for.
    pub fn exec_addr(&self) -> u64 {
        (self.arena.region.exec_base + self.slot.0 * self.arena.region.slot_size) as u64
    }

    /// Bytes written so far (by the last [`write`](Self::write)).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks `code` to be written here ([`check_block`](crate::check::check_block) at this
    /// slot's address and size), answered from the last block accepted for this slot when the
    /// interpretation would read exactly the same inputs ([`Memo`]).
    pub fn check<'c>(
        &self,
        code: &'c [u8],
        ext: &Externals<'static>,
        policy: &Policy<'static>,
    ) -> Result<Checked<'c>, CheckError> {
        let size = self.arena.region.slot_size;
        self.arena
            .memo
            .check_block(self.slot.0, code, self.exec_addr(), size, ext, policy)
    }

    /// Copies a checked block into the slot through the write alias.
    pub fn write(&mut self, block: &Checked<'_>) -> Result<(), ArenaError> {
        let slot_size = self.arena.region.slot_size;
        if block.exec_addr() != self.exec_addr() {
            return Err(ArenaError::WrongAddress {
                slot_addr: self.exec_addr(),
                checked_for: block.exec_addr(),
            });
        }
        if block.len() > slot_size {
            return Err(ArenaError::TooLarge {
                len: block.len(),
                slot_size,
            });
        }
        let dst = self.arena.write_addr(self.slot) as *mut u32;
        // `dst` is the slot's start in the write alias (valid, 4-aligned by the arena's contract),
        // the block fits (checked above) and is a multiple of 4 long (checked block); the slot is
        // `Writing` and this writer its only handle.
        // SAFETY: a valid, aligned, exclusively held destination large enough for the block.
        unsafe { crate::code_write::copy_code(dst, block.code()) };
        self.len = block.len();
        Ok(())
    }

    /// Marks the slot live (reachable from now on) and gives up writing it. Returns the
    /// written block, which a [`strategy`](crate::strategy) makes visible and publishes.
    /// Refused with [`ArenaError::NotWritten`] (and the slot freed, as on drop) when nothing
    /// was written.
    pub fn publish(self) -> Result<CodeBlock<'a>, ArenaError> {
        if self.len == 0 {
            return Err(ArenaError::NotWritten);
        }
        let block = CodeBlock {
            slot: self.slot,
            write_va: self.arena.write_addr(self.slot),
            exec_va: self.exec_addr() as usize,
            len: self.len,
            _arena: PhantomData,
        };
        let arena = self.arena;
        core::mem::forget(self);
        arena.transition(block.slot, SlotState::Writing, SlotState::Live)?;
        Ok(block)
    }
}

impl<const N: usize> Drop for SlotWriter<'_, N> {
    fn drop(&mut self) {
        // An abandoned write: the slot was never reachable, so it is free at once. The state can
        // only be `Writing` here; if it were not, leaving it alone is the safe choice.
        let _ = self
            .arena
            .transition(self.slot, SlotState::Writing, SlotState::Free);
    }
}

/// Code written into a live slot: where it is through each alias, and how long. Only an arena
/// makes one, so its ranges are known to be mapped and its maintenance methods are safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeBlock<'a> {
    slot: SlotId,
    write_va: usize,
    exec_va: usize,
    len: usize,
    _arena: PhantomData<&'a ()>,
}

impl CodeBlock<'_> {
    /// The slot holding the block.
    pub const fn slot(&self) -> SlotId {
        self.slot
    }

    /// Where the block runs (the value a strategy publishes).
    pub const fn exec_addr(&self) -> u64 {
        self.exec_va as u64
    }

    /// Where the block was written.
    pub const fn write_addr(&self) -> usize {
        self.write_va
    }

    /// Bytes of code.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an arena publishes no empty block.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The data side: clean the block through the write alias, then `DSB ISH`.
    pub fn clean<M: Maintenance>(&self, sync: &CodeSync<M>) {
        // SAFETY: the range lies in a slot of an arena, whose construction contract guarantees
        // the write alias is mapped Normal memory for the arena's lifetime `'a`.
        unsafe { sync.clean_range(self.write_va, self.len) };
    }

    /// The instruction side: invalidate the block through the executable alias, then
    /// `DSB ISH`.
    pub fn invalidate<M: Maintenance>(&self, sync: &CodeSync<M>) {
        // SAFETY: as in `clean`, for the executable alias.
        unsafe { sync.invalidate_range(self.exec_va, self.len) };
    }

    /// Both sides, in order ([`CodeSync::sync_range`]).
    pub fn sync<M: Maintenance>(&self, sync: &CodeSync<M>) {
        self.clean(sync);
        self.invalidate(sync);
    }
}
