//! Vector clocks: which events of each core are ordered before a point.
//!
//! Every event the model tracks on core `c` gets a timestamp from `c`'s own counter. A clock
//! maps each core to the latest timestamp of that core's events known to be *ordered before*
//! some point; the set is prefix-closed (every earlier event of that core is ordered too),
//! which holds because each way an order arises (a barrier, a release, an acquire) covers all
//! of a core's earlier events of the kinds it orders, and the model keeps one clock per kind.

/// The most cores the model tracks. QEMU `virt` runs up to 512; Graft's targets have 2 to 32.
pub const MAX_CORES: usize = 32;

/// A vector clock over [`MAX_CORES`] cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock(pub [u32; MAX_CORES]);

impl Default for Clock {
    fn default() -> Self {
        Self([0; MAX_CORES])
    }
}

impl Clock {
    /// Joins `other` into `self` (component-wise maximum).
    pub fn join(&mut self, other: &Clock) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// Joins `other` into `self` except for core `own`'s component.
    pub fn join_remote(&mut self, other: &Clock, own: usize) {
        let keep = self.0[own];
        self.join(other);
        self.0[own] = keep;
    }

    /// Raises core `core`'s component to at least `ts`.
    pub fn raise(&mut self, core: usize, ts: u32) {
        self.0[core] = self.0[core].max(ts);
    }

    /// True if event `ts` of core `core` is ordered before this point.
    pub fn covers(&self, core: usize, ts: u32) -> bool {
        self.0[core] >= ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_cover() {
        let mut a = Clock::default();
        let mut b = Clock::default();
        a.raise(0, 5);
        b.raise(1, 7);
        b.raise(0, 2);
        a.join(&b);
        assert!(a.covers(0, 5) && a.covers(1, 7) && !a.covers(1, 8));
        let mut c = Clock::default();
        c.raise(0, 1);
        c.join_remote(&a, 0);
        assert!(!c.covers(0, 2) && c.covers(1, 7));
    }
}
