//! What the patcher needs from the kernel: who am I, who is online, interrupt the others.
//!
//! Strategies are written against the [`Platform`] trait so they can be host-tested with the
//! recording fake in `fake`, and so the patcher never learns how a board sends an IPI. Every
//! cross-core wait is bounded and a failure names the cores that did not answer.

#![forbid(unsafe_code)]

#[cfg(any(test, feature = "fake"))]
pub mod fake;

use core::time::Duration;

/// The most cores a [`CoreSet`] can name.
pub const MAX_CORES: usize = 64;

/// A core's index, dense from 0 (not its `MPIDR_EL1` affinity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreId(pub u8);

impl CoreId {
    /// The index as a `usize`, for indexing per-core arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of cores, as a bit mask (bit `n` is core `n`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CoreSet(u64);

/// Core numbers as a person reads them: `cores {1, 3}`.
impl core::fmt::Debug for CoreSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("cores ")?;
        f.debug_set().entries(self.iter().map(|c| c.0)).finish()
    }
}

impl CoreSet {
    /// No core.
    pub const EMPTY: Self = Self(0);

    /// The set whose bit mask is `bits`.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// Cores `0..count` (`count` at most [`MAX_CORES`]; larger counts saturate).
    pub const fn first(count: usize) -> Self {
        if count >= MAX_CORES {
            Self(u64::MAX)
        } else {
            Self((1u64 << count) - 1)
        }
    }

    /// The bit mask.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set with `core` added.
    pub const fn with(self, core: CoreId) -> Self {
        Self(self.0 | bit(core))
    }

    /// The set with `core` removed.
    pub const fn without(self, core: CoreId) -> Self {
        Self(self.0 & !bit(core))
    }

    /// Whether `core` is in the set.
    pub const fn contains(self, core: CoreId) -> bool {
        self.0 & bit(core) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many cores the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The cores in both sets.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The cores in `self` but not in `other`.
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The cores in either set.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The cores, lowest index first.
    pub fn iter(self) -> impl Iterator<Item = CoreId> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let n = rest.trailing_zeros();
            rest &= rest - 1;
            Some(CoreId(n as u8))
        })
    }
}

const fn bit(core: CoreId) -> u64 {
    // Out-of-range indices name no core rather than aliasing a real one.
    if (core.0 as usize) < MAX_CORES {
        1u64 << core.0
    } else {
        0
    }
}

/// Work an IPI runs on each target core, in that core's interrupt handler.
///
/// Handed over as `&'static dyn IpiWork`: a core that missed the deadline may still run it
/// after [`Platform::ipi_sync`] has returned, so nothing it touches may be borrowed from the
/// caller's stack.
pub trait IpiWork: Sync {
    /// Runs on `core`, in its interrupt handler.
    fn run(&self, core: CoreId);
}

/// Work that does nothing: the interrupt itself (exception entry and return) is the point, as a
/// context synchronization event on every target.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOnly;

impl IpiWork for SyncOnly {
    fn run(&self, _core: CoreId) {}
}

/// A `'static` [`SyncOnly`], for `ipi_sync(targets, SYNC_ONLY, ..)`.
pub static SYNC_ONLY: &SyncOnly = &SyncOnly;

/// Where a core was when an IPI interrupted it: the code it returns to, and its link register
/// (the code the interrupted function returns to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted {
    /// `ELR`: where the core resumes.
    pub pc: u64,
    /// `X30`: where the interrupted function returns.
    pub lr: u64,
}

impl Interrupted {
    /// Whether the core would resume, or return, into `[start, start + len)`.
    pub const fn within(&self, start: u64, len: u64) -> bool {
        self.pc.wrapping_sub(start) < len || self.lr.wrapping_sub(start) < len
    }
}

/// Why a cross-core operation did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiError {
    /// These cores did not acknowledge before the timeout.
    Timeout {
        /// The targets that never acknowledged.
        missing: CoreSet,
    },
    /// These targets are not online, so no IPI was sent to any core.
    Offline {
        /// The targets that are offline.
        cores: CoreSet,
    },
}

/// The kernel's side of cross-core patching.
///
/// Implementations must guarantee, for [`ipi_sync`](Platform::ipi_sync), that each target core
/// takes the interrupt (an exception entry, which is a context synchronization event) after the
/// caller's earlier memory accesses and completed maintenance (the send is ordered after a
/// `DSB`), runs the work, and acknowledges only after the work has returned, with release
/// ordering, so that the caller's `Ok` happens after every handler.
pub trait Platform {
    /// The calling core.
    fn current_core(&self) -> CoreId;

    /// The cores that are online now (running, or idle but able to take an IPI).
    fn online_cores(&self) -> CoreSet;

    /// Runs `work` on every core in `targets` except the caller, and waits until each has
    /// acknowledged or `timeout` has passed.
    ///
    /// The calling core is never interrupted: a strategy synchronizes it with its own `ISB`.
    /// Returns [`IpiError::Offline`] without sending anything when a target is offline, and
    /// [`IpiError::Timeout`] naming the cores that did not acknowledge in time.
    fn ipi_sync(
        &self,
        targets: CoreSet,
        work: &'static dyn IpiWork,
        timeout: Duration,
    ) -> Result<(), IpiError>;

    /// Sends `work` to every core in `targets` except the caller and returns at once, without
    /// waiting for any of them; for rendezvous that wait on their own terms. Returns
    /// [`IpiError::Offline`] without sending anything when a target is offline.
    fn ipi_send(&self, targets: CoreSet, work: &'static dyn IpiWork) -> Result<(), IpiError>;

    /// Polls `done` until it returns `true` (then returns `true`) or `timeout` has passed (then
    /// returns `false`). The bound every other cross-core wait in the patcher uses.
    fn wait_for(&self, timeout: Duration, done: &mut dyn FnMut() -> bool) -> bool;

    /// Where `core` was interrupted by the IPI whose work it runs now, or `None` when the
    /// platform cannot tell. Read only while that core is held inside the work (a rendezvous),
    /// after the core signalled so with release ordering.
    fn interrupted_at(&self, core: CoreId) -> Option<Interrupted>;
}

#[cfg(test)]
mod tests {
    use super::{CoreId, CoreSet, IpiError};
    use std::format;

    #[test]
    fn core_sets_print_as_core_numbers() {
        let set = CoreSet::EMPTY.with(CoreId(1)).with(CoreId(3));
        assert_eq!(format!("{set:?}"), "cores {1, 3}");
        let e = IpiError::Timeout { missing: set };
        assert_eq!(format!("{e:?}"), "Timeout { missing: cores {1, 3} }");
    }
}
