//! Names both sides spell: publication strategies and board configurations.
//!
//! Each is an enum with `name()` and `from_name()`, so that the kernel, the loader and xtask
//! never compare free-form strings: a renamed variant is a compile error on every side, and an
//! unknown name is an error naming what was expected.

/// A publication strategy, as the demo and the benchmarks report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Strategy {
    /// One `B` flipped in place (CMODX), IPIs to synchronize.
    BranchFlip = 0,
    /// An indirect site; full maintenance, IPI and acknowledgement, then the pointer.
    IpiSync = 1,
    /// The same, each core invalidating in its own IPI handler (no broadcast `IC IVAU` needed).
    IpiSyncRemote = 2,
    /// Each consumer synchronizes itself through the flush stub, one cell at a time.
    FlushThenRedirect = 3,
    /// The same with one publication for every consumer's cell.
    FtrMulti = 4,
    /// Consumers synchronize at an entry check when a global sequence moved.
    SeqCheck = 5,
    /// Every core parked in a rendezvous while the code is rewritten in place.
    StopTheWorld = 6,
}

impl Strategy {
    /// Every strategy, in report order.
    pub const ALL: [Strategy; 7] = [
        Self::BranchFlip,
        Self::IpiSync,
        Self::IpiSyncRemote,
        Self::FlushThenRedirect,
        Self::FtrMulti,
        Self::SeqCheck,
        Self::StopTheWorld,
    ];

    /// Every name, in the order of [`Strategy::ALL`].
    pub const NAMES: [&'static str; Strategy::ALL.len()] = STRATEGY_NAMES;

    /// The name reports use (`branch-flip`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::BranchFlip => "branch-flip",
            Self::IpiSync => "ipi-sync",
            Self::IpiSyncRemote => "ipi-sync-remote",
            Self::FlushThenRedirect => "flush-then-redirect",
            Self::FtrMulti => "ftr-multi",
            Self::SeqCheck => "seq-check",
            Self::StopTheWorld => "stop-the-world",
        }
    }

    /// The strategy called `name`.
    pub fn from_name(name: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or(UnknownName::Strategy)
    }

    /// The strategy with this number (its place in [`Strategy::ALL`]).
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n)).copied()
    }
}

/// A board configuration: a kernel build and the machine it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Board {
    /// QEMU `virt` with a GICv2.
    Virt = 0,
    /// QEMU `virt` with a GICv3 (up to 32 cores).
    VirtGicv3 = 1,
    /// QEMU `virt` entered at EL2.
    VirtEl2 = 2,
    /// Raspberry Pi 3 Model B.
    Rpi3 = 3,
    /// Raspberry Pi 4 Model B.
    Rpi4 = 4,
}

impl Board {
    /// Every configuration, in the order `cargo xtask test` runs them.
    pub const ALL: [Board; 5] = [
        Self::Virt,
        Self::VirtGicv3,
        Self::VirtEl2,
        Self::Rpi3,
        Self::Rpi4,
    ];

    /// The name `--board` takes and the loader announces.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Virt => "virt",
            Self::VirtGicv3 => "virt-gicv3",
            Self::VirtEl2 => "virt-el2",
            Self::Rpi3 => "rpi3",
            Self::Rpi4 => "rpi4",
        }
    }

    /// The configuration called `name`.
    pub fn from_name(name: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or(UnknownName::Board)
    }
}

/// A name that is not one of the known ones; says which kind was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownName {
    /// Not a strategy name.
    Strategy,
    /// Not a board name.
    Board,
}

impl core::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (what, all): (&str, &[&str]) = match self {
            Self::Strategy => ("strategy", &STRATEGY_NAMES),
            Self::Board => ("board", &BOARD_NAMES),
        };
        write!(f, "unknown {what} name; expected one of: ")?;
        for (i, n) in all.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

const STRATEGY_NAMES: [&str; Strategy::ALL.len()] = {
    let mut out = [""; Strategy::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = Strategy::ALL[i].name();
        i += 1;
    }
    out
};

const BOARD_NAMES: [&str; 5] = {
    let mut out = [""; 5];
    let mut i = 0;
    while i < 5 {
        out[i] = Board::ALL[i].name();
        i += 1;
    }
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::from_name(s.name()), Ok(s));
            assert_eq!(Strategy::from_u8(s as u8), Some(s));
        }
        for b in Board::ALL {
            assert_eq!(Board::from_name(b.name()), Ok(b));
        }
    }

    #[test]
    fn unknown_names_say_what_was_expected() {
        let e = Strategy::from_name("fast").unwrap_err();
        assert_eq!(e, UnknownName::Strategy);
        assert!(
            e.to_string()
                .contains("ipi-sync, ipi-sync-remote, flush-then-redirect"),
            "{e}"
        );
        let e = Board::from_name("rpi5").unwrap_err();
        assert!(
            e.to_string()
                .contains("virt, virt-gicv3, virt-el2, rpi3, rpi4"),
            "{e}"
        );
        assert_eq!(Strategy::from_u8(7), None);
    }
}
