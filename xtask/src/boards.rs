//! The board configurations xtask can build and run, and how QEMU emulates each.

use anyhow::{Result, bail};

/// One way to run Graft: a kernel build (cargo feature) and a QEMU machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardConfig {
    /// The name given to `--board`.
    pub name: &'static str,
    /// The kernel's cargo feature (one build may serve several configurations).
    pub feature: &'static str,
    /// QEMU's `-M` value.
    pub machine: &'static str,
    /// QEMU's `-cpu` value (None: the machine's own).
    pub cpu: Option<&'static str>,
    /// Cores when `--smp` is not given.
    pub default_cores: u32,
    /// The most cores the machine supports.
    pub max_cores: u32,
    /// Memory size for `-m`.
    pub memory: &'static str,
    /// Give QEMU the raw image (`kernel8.img`), as the Pi firmware loads it, instead of the ELF.
    pub raw_image: bool,
}

/// Every configuration, in the order `cargo xtask test` runs them.
pub const ALL: &[BoardConfig] = &[
    BoardConfig {
        name: "virt",
        feature: "virt",
        machine: "virt",
        cpu: Some("cortex-a72"),
        default_cores: 4,
        max_cores: 8,
        memory: "128M",
        raw_image: false,
    },
    BoardConfig {
        name: "virt-gicv3",
        feature: "virt",
        machine: "virt,gic-version=3",
        cpu: Some("cortex-a72"),
        default_cores: 4,
        max_cores: 32,
        memory: "128M",
        raw_image: false,
    },
    BoardConfig {
        name: "virt-el2",
        feature: "virt",
        machine: "virt,virtualization=on",
        cpu: Some("cortex-a72"),
        default_cores: 4,
        max_cores: 8,
        memory: "128M",
        raw_image: false,
    },
    BoardConfig {
        name: "rpi3",
        feature: "rpi3",
        machine: "raspi3b",
        cpu: None,
        default_cores: 4,
        max_cores: 4,
        memory: "1G",
        raw_image: true,
    },
    BoardConfig {
        name: "rpi4",
        feature: "rpi4",
        machine: "raspi4b",
        cpu: None,
        default_cores: 4,
        max_cores: 4,
        memory: "2G",
        raw_image: true,
    },
];

/// The names, for error messages.
pub fn names() -> String {
    ALL.iter().map(|b| b.name).collect::<Vec<_>>().join(", ")
}

/// Looks a board up by name.
pub fn find(name: &str) -> Result<BoardConfig> {
    match ALL.iter().find(|b| b.name == name) {
        Some(b) => Ok(*b),
        None => bail!("unknown board '{name}'; the boards are: {}", names()),
    }
}

impl BoardConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_board_lists_the_valid_ones() {
        let e = find("pdp11").unwrap_err().to_string();
        assert!(e.contains("virt, virt-gicv3, virt-el2, rpi3, rpi4"), "{e}");
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
