//! Grace periods: when is it safe to reuse the slot an old version of the code lived in?
//!
//! Quiescent-state-based reclamation, in the manner of liburcu's `urcu-qsbr`. A global counter
//! (the epoch) advances each time code is unlinked. Each core keeps its own counter, on its own
//! cache line, and copies the global into it at points where it runs no patchable code (a
//! control-loop boundary); a core that is offline or idle holds 0 and is never waited for. A slot
//! unlinked at epoch `e` may be reused once every online core's counter is at least `e`: each of
//! them has passed a quiescent point after the unlink, so none can still be inside the old code
//! or about to enter it through the old pointer.
//!
//! The read side costs one load-acquire and one store-release per report and never waits.

#![forbid(unsafe_code)]

#[cfg(test)]
mod tests;

use core::sync::atomic::{AtomicU64, Ordering, fence};
use core::time::Duration;

use crate::platform::{CoreId, CoreSet, MAX_CORES, Platform};

/// A value of the global grace-period counter. Epoch 0 means "offline" and is never current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u64);

/// Bytes each counter occupies: two 64-byte lines, because some cores (Neoverse, Apple) fetch
/// lines in adjacent pairs, which would make neighbours share falsely.
pub const COUNTER_STRIDE: usize = 128;

/// One counter alone on its cache line pair.
#[repr(C, align(128))]
struct Counter(AtomicU64);

const _: () = assert!(core::mem::size_of::<Counter>() == COUNTER_STRIDE);
const _: () = assert!(core::mem::align_of::<Counter>() == COUNTER_STRIDE);

impl Counter {
    const fn new(v: u64) -> Self {
        Self(AtomicU64::new(v))
    }
}

/// Grace-period state for up to `N` cores (at most [`MAX_CORES`]).
#[repr(C)]
pub struct Qsbr<const N: usize> {
    global: Counter,
    cores: [Counter; N],
}

const _: () = assert!(core::mem::offset_of!(Qsbr<4>, cores) == COUNTER_STRIDE);
const _: () = assert!(core::mem::size_of::<Qsbr<4>>() == 5 * COUNTER_STRIDE);

/// A grace period did not complete in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraceTimeout {
    /// The epoch waited for.
    pub epoch: Epoch,
    /// Online cores that had not reported a quiescent state since it began.
    pub lagging: CoreSet,
}

impl<const N: usize> Default for Qsbr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Qsbr<N> {
    /// All cores offline, epoch 1.
    ///
    /// # Panics
    ///
    /// When `N` exceeds [`MAX_CORES`] (at compile time when used in a `static`).
    pub const fn new() -> Self {
        assert!(N <= MAX_CORES, "Qsbr: more cores than a CoreSet can name");
        Self {
            global: Counter::new(1),
            cores: [const { Counter::new(0) }; N],
        }
    }

    fn cell(&self, core: CoreId) -> &AtomicU64 {
        &self.cores[core.index()].0
    }

    /// The current epoch.
    pub fn current(&self) -> Epoch {
        Epoch(self.global.0.load(Ordering::Acquire))
    }

    /// Reports that `core` runs no patchable code at this point. Called from the core itself.
    ///
    /// # Panics
    ///
    /// When `core` is not below `N`.
    #[inline]
    pub fn quiescent(&self, core: CoreId) {
        // Acquire: code pointers this core loads after the report are at least as new as the
        // epoch it copies. Release: everything it did before (including running old code) is
        // ordered before the report the producer reads.
        let g = self.global.0.load(Ordering::Acquire);
        self.cell(core).store(g, Ordering::Release);
    }

    /// Marks `core` online, from the core itself, before it next runs patchable code.
    ///
    /// # Panics
    ///
    /// When `core` is not below `N`.
    pub fn online(&self, core: CoreId) {
        let g = self.global.0.load(Ordering::SeqCst);
        self.cell(core).store(g, Ordering::SeqCst);
        // Pairs with the fences in `unlink`: either the producer sees this core online, or this
        // core's next pointer loads see what the producer published before unlinking.
        fence(Ordering::SeqCst);
    }

    /// Marks `core` offline, from the core itself, after it last ran patchable code. An
    /// offline core is quiescent until it goes online again.
    ///
    /// # Panics
    ///
    /// When `core` is not below `N`.
    pub fn offline(&self, core: CoreId) {
        fence(Ordering::SeqCst);
        self.cell(core).store(0, Ordering::Release);
    }

    /// Runs `f` (an idle wait such as `WFI`) with `core` offline, so that idling counts as a
    /// quiescent state.
    pub fn idle<R>(&self, core: CoreId, f: impl FnOnce() -> R) -> R {
        self.offline(core);
        let r = f();
        self.online(core);
        r
    }

    /// Whether `core` is online.
    pub fn is_online(&self, core: CoreId) -> bool {
        self.cell(core).load(Ordering::Acquire) != 0
    }

    /// Starts a grace period, after the caller has stored (with release) the pointer that no
    /// longer leads to the old code. Returns the epoch every online core must reach before the
    /// old code's slot may be reused.
    pub fn unlink(&self) -> Epoch {
        // Orders the caller's unpublishing store before the new epoch and before the counter
        // reads that will follow.
        fence(Ordering::SeqCst);
        let e = self.global.0.fetch_add(1, Ordering::SeqCst) + 1;
        fence(Ordering::SeqCst);
        Epoch(e)
    }

    /// Online cores that have not reported a quiescent state at or after `epoch`.
    pub fn lagging(&self, epoch: Epoch) -> CoreSet {
        let mut set = CoreSet::EMPTY;
        for (i, c) in self.cores.iter().enumerate() {
            let v = c.0.load(Ordering::Acquire);
            if v != 0 && v < epoch.0 {
                set = set.with(CoreId(i as u8));
            }
        }
        set
    }

    /// Whether the grace period for `epoch` has completed.
    pub fn is_complete(&self, epoch: Epoch) -> bool {
        self.lagging(epoch).is_empty()
    }

    /// Every slot retired at an epoch at or below this one may be reused now: the smallest
    /// counter of any online core, or the current epoch when none is online.
    pub fn safe_epoch(&self) -> Epoch {
        let now = self.global.0.load(Ordering::Acquire);
        let min = self
            .cores
            .iter()
            .map(|c| c.0.load(Ordering::Acquire))
            .filter(|&v| v != 0)
            .min()
            .unwrap_or(now);
        Epoch(min)
    }

    /// Waits, bounded by `timeout` through `platform`, until the grace period for `epoch` has
    /// completed; on timeout names the cores still lagging.
    pub fn wait<P: Platform + ?Sized>(
        &self,
        epoch: Epoch,
        platform: &P,
        timeout: Duration,
    ) -> Result<(), GraceTimeout> {
        if platform.wait_for(timeout, &mut || self.is_complete(epoch)) {
            Ok(())
        } else {
            Err(GraceTimeout {
                epoch,
                lagging: self.lagging(epoch),
            })
        }
    }
}
