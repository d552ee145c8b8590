//! Names both sides spell: board configurations.
//!
//! A board is an enum with `name()` and `from_name()`, so that the kernel, the loader and xtask
//! never compare free-form strings: a renamed variant is a compile error on every side, and an
//! unknown name is an error naming what was expected.
//!
//! Publication strategies are not listed here: they are the kernel's data. Its site table
//! names each one, and the kernel announces them in [`Record::Strategy`](crate::Record) records
//! before it reports on them, so that a new strategy is a change to the kernel alone.

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
            .ok_or(UnknownName)
    }
}

/// A board name that is not one of the known ones; the message lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownName;

impl core::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown board name; expected one of: ")?;
        for (i, n) in BOARD_NAMES.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

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
        for b in Board::ALL {
            assert_eq!(Board::from_name(b.name()), Ok(b));
        }
    }

    #[test]
    fn unknown_names_say_what_was_expected() {
        let e = Board::from_name("rpi5").unwrap_err();
        assert!(
            e.to_string()
                .contains("virt, virt-gicv3, virt-el2, rpi3, rpi4"),
            "{e}"
        );
    }
}
