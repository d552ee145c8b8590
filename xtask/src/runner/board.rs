//! The board configurations xtask can build and run: how QEMU emulates each, and what each can
//! do, as data (never a comparison of names).
//!
//! `--board` takes a [`BoardInfo`] directly (it is a clap `ValueEnum` whose values are
//! `protocol::Board`'s names), so an unknown name is refused by clap with the list of known ones.

use anyhow::{Result, bail};
use clap::ValueEnum;
use clap::builder::PossibleValue;
use protocol::Board;

/// A Raspberry Pi: what its SD card needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pi {
    /// The model number, as in "Raspberry Pi 4".
    pub model: &'static str,
    /// The firmware files its boot ROM (or EEPROM) loads from the card.
    pub firmware: &'static [&'static str],
    /// Whether the firmware wants the board's device tree blob beside them.
    pub wants_dtb: bool,
}

/// One way to run Graft: a kernel build (cargo feature), a QEMU machine, and its capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardInfo {
    /// Which configuration this is.
    pub board: Board,
    /// The name given to `--board` (`board.name()`).
    pub name: &'static str,
    /// The kernel's cargo feature (one build may serve several configurations).
    pub feature: &'static str,
    /// QEMU's `-M` value.
    pub machine: &'static str,
    /// QEMU's `-cpu` value (None: the machine's own).
    pub cpu: Option<&'static str>,
    /// Cores when `--smp` is not given.
    pub default_cores: u32,
    /// The most cores the machine supports (the range is 1 to this, or exactly this when it
    /// equals `default_cores`).
    pub max_cores: u32,
    /// Memory size for `-m`.
    pub memory: &'static str,
    /// Give QEMU the raw image (`kernel8.img`), as the Pi firmware loads it, instead of the ELF.
    pub raw_image: bool,
    /// The coherence sanitizer models this machine's core (Cortex-A72 caches): sanitized runs
    /// and the catalogue mirrors' judgement are made here.
    pub sanitizer_modelled: bool,
    /// Interrupts go through a GIC (rather than the BCM2836 local controller).
    pub has_gic: bool,
    /// A run without semihosting ends with PSCI `SYSTEM_OFF`, so QEMU exits (a Pi halts).
    pub powers_off: bool,
    /// `cargo xtask test` runs the scripted live-patching session here.
    pub takes_live: bool,
    /// The serial chainloader (`loader/`) is built for this board.
    pub serial_loader: bool,
    /// A Raspberry Pi, and what its card needs.
    pub pi: Option<Pi>,
}

const VIRT: BoardInfo = BoardInfo {
    board: Board::Virt,
    name: Board::Virt.name(),
    feature: "virt",
    machine: "virt",
    cpu: Some("cortex-a72"),
    default_cores: 4,
    max_cores: 8,
    memory: "128M",
    raw_image: false,
    sanitizer_modelled: true,
    has_gic: true,
    powers_off: true,
    takes_live: true,
    serial_loader: false,
    pi: None,
};

/// Every configuration, in the order `cargo xtask test` runs them.
pub const ALL: &[BoardInfo] = &[
    VIRT,
    BoardInfo {
        board: Board::VirtGicv3,
        name: Board::VirtGicv3.name(),
        machine: "virt,gic-version=3",
        max_cores: 32,
        sanitizer_modelled: false,
        takes_live: false,
        ..VIRT
    },
    BoardInfo {
        board: Board::VirtEl2,
        name: Board::VirtEl2.name(),
        machine: "virt,virtualization=on",
        sanitizer_modelled: false,
        takes_live: false,
        ..VIRT
    },
    BoardInfo {
        board: Board::Rpi3,
        name: Board::Rpi3.name(),
        feature: "rpi3",
        machine: "raspi3b",
        cpu: None,
        default_cores: 4,
        max_cores: 4,
        memory: "1G",
        raw_image: true,
        sanitizer_modelled: false,
        has_gic: false,
        powers_off: false,
        takes_live: false,
        serial_loader: true,
        pi: Some(Pi {
            model: "3",
            firmware: &["bootcode.bin", "start.elf", "fixup.dat"],
            wants_dtb: false,
        }),
    },
    BoardInfo {
        board: Board::Rpi4,
        name: Board::Rpi4.name(),
        feature: "rpi4",
        machine: "raspi4b",
        cpu: None,
        default_cores: 4,
        max_cores: 4,
        memory: "2G",
        raw_image: true,
        sanitizer_modelled: false,
        has_gic: true,
        powers_off: false,
        takes_live: true,
        serial_loader: true,
        // The Pi 4 boots from its SPI EEPROM: no bootcode.bin.
        pi: Some(Pi {
            model: "4",
            firmware: &["start4.elf", "fixup4.dat"],
            wants_dtb: true,
        }),
    },
];

/// The names, for error messages.
pub fn names() -> String {
    ALL.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
}

/// The configuration of `board`.
pub fn info(board: Board) -> BoardInfo {
    *ALL.iter()
        .find(|b| b.board == board)
        .expect("every protocol::Board has a row in ALL (checked by a test)")
}

/// Looks a board up by name (as a loader announces it).
pub fn find(name: &str) -> Result<BoardInfo> {
    match Board::from_name(name) {
        Ok(b) => Ok(info(b)),
        Err(_) => bail!("unknown board '{name}'; the boards are: {}", names()),
    }
}

impl ValueEnum for BoardInfo {
    fn value_variants<'a>() -> &'a [Self] {
        ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name))
    }
}

impl BoardInfo {
    /// Checks a requested core count against the machine.
    pub fn cores(&self, requested: Option<u32>) -> Result<u32> {
        let n = requested.unwrap_or(self.default_cores);
        if self.max_cores == self.default_cores && n != self.max_cores {
            bail!(
                "board {} always has {} cores, not {n}",
                self.name,
                self.max_cores
            );
        }
        if n == 0 || n > self.max_cores {
            bail!(
                "board {} runs 1 to {} cores, not {n}",
                self.name,
                self.max_cores
            );
        }
        Ok(n)
    }
}

/// An on/off switch on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl Switch {
    /// Whether it is on.
    pub fn on(self) -> bool {
        self == Self::On
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_board_lists_the_valid_ones() {
        let e = find("pdp11").unwrap_err().to_string();
        assert!(e.contains("virt, virt-gicv3, virt-el2, rpi3, rpi4"), "{e}");
    }

    #[test]
    fn every_board_has_one_row_named_after_it() {
        for b in Board::ALL {
            let rows: Vec<_> = ALL.iter().filter(|i| i.board == b).collect();
            assert_eq!(rows.len(), 1, "{b:?}");
            assert_eq!(rows[0].name, b.name());
            assert_eq!(info(b).board, b);
        }
        assert_eq!(ALL.len(), Board::ALL.len());
    }

    #[test]
    fn clap_takes_board_names() {
        let b = BoardInfo::from_str("virt-gicv3", false).unwrap();
        assert_eq!(b.max_cores, 32);
        assert!(BoardInfo::from_str("rpi5", false).is_err());
        assert!(Switch::from_str("off", false).is_ok_and(|s| !s.on()));
    }

    #[test]
    fn capabilities_are_consistent() {
        for b in ALL {
            // A Pi boots a raw image and has the chainloader; nothing else does.
            assert_eq!(b.pi.is_some(), b.raw_image, "{}", b.name);
            assert_eq!(b.pi.is_some(), b.serial_loader, "{}", b.name);
        }
        let modelled: Vec<_> = ALL.iter().filter(|b| b.sanitizer_modelled).collect();
        assert_eq!(
            modelled.len(),
            1,
            "the sanitized runs are made on one board"
        );
    }

    #[test]
    fn core_counts_are_checked() {
        let b = find("virt").unwrap();
        assert_eq!(b.cores(None).unwrap(), 4);
        assert!(b.cores(Some(9)).is_err());
        assert!(b.cores(Some(0)).is_err());
        assert_eq!(find("virt-gicv3").unwrap().cores(Some(32)).unwrap(), 32);
        assert!(find("rpi3").unwrap().cores(Some(2)).is_err());
    }
}
