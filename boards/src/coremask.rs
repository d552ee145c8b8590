//! A set of cores as a bit mask: small, copyable, and the same on every board.

/// The most cores any Graft board brings up (QEMU `virt` with GICv3 at 32).
pub const MAX_CORES: usize = 32;

/// A set of linear core indices below [`MAX_CORES`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CoreMask(u64);

impl CoreMask {
    /// No core.
    pub const EMPTY: Self = Self(0);

    /// The set `{core}`.
    pub const fn single(core: usize) -> Self {
        assert!(core < MAX_CORES);
        Self(1 << core)
    }

    /// Cores `0..count`.
    pub const fn first(count: usize) -> Self {
        assert!(count <= MAX_CORES);
        if count == 64 {
            Self(u64::MAX)
        } else {
            Self((1 << count) - 1)
        }
    }

    /// The raw bits, bit `n` for core `n`.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// A mask from raw bits; bits at or above [`MAX_CORES`] are dropped.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits & Self::first(MAX_CORES).0)
    }

    /// Whether `core` is in the set.
    pub const fn contains(self, core: usize) -> bool {
        core < MAX_CORES && self.0 & (1 << core) != 0
    }

    /// The set with `core` added.
    #[must_use]
    pub const fn with(self, core: usize) -> Self {
        Self(self.0 | Self::single(core).0)
    }

    /// The set with `core` removed.
    #[must_use]
    pub const fn without(self, core: usize) -> Self {
        Self(self.0 & !Self::single(core).0)
    }

    /// Cores in both sets.
    #[must_use]
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Cores in `self` but not in `other`.
    #[must_use]
    pub const fn minus(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many cores are in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The cores in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let core = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(core)
        })
    }
}

impl core::fmt::Debug for CoreMask {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let m = CoreMask::first(4).without(2);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(m.len(), 3);
        assert!(m.contains(3) && !m.contains(2) && !m.contains(40));
        assert_eq!(m.and(CoreMask::single(1)), CoreMask::single(1));
        assert_eq!(m.minus(CoreMask::first(2)), CoreMask::single(3));
        assert!(CoreMask::EMPTY.is_empty());
        assert_eq!(CoreMask::first(MAX_CORES).len(), MAX_CORES);
    }

    #[test]
    fn from_bits_drops_cores_beyond_the_maximum() {
        assert_eq!(CoreMask::from_bits(u64::MAX).len(), MAX_CORES);
    }

    #[test]
    #[should_panic]
    fn single_rejects_out_of_range() {
        let _ = CoreMask::single(MAX_CORES);
    }
}
