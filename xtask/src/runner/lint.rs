//! The lint checks: formatting and clippy (warnings are errors) for host and target crates.
//!
//! `cargo xtask lint` runs them; `cargo xtask test` runs the same checks and counts each as a
//! test.

use super::build::root;
use anyhow::{Context, Result};
use std::process::{Command, Stdio};

/// One check: a name and the cargo arguments that run it.
pub struct Check {
    /// What `cargo xtask test` prints.
    pub name: &'static str,
    args: &'static [&'static str],
}

/// Clippy for one bare-metal crate and board feature, in that board's own target dir.
macro_rules! target_clippy {
    ($name:literal, $package:literal, $feature:literal) => {
        Check {
            name: $name,
            args: &[
                "clippy",
                "--quiet",
                "--package",
                $package,
                "--features",
                $feature,
                "--target",
                "aarch64-unknown-none",
                "--target-dir",
                concat!("target/kernel/", $feature),
                "--release",
                "--",
                "-D",
                "warnings",
            ],
        }
    };
}

/// Every lint check.
pub const CHECKS: &[Check] = &[
    Check {
        name: "rustfmt",
        args: &["fmt", "--all", "--", "--check"],
    },
    Check {
        name: "rustfmt (patches)",
        args: &[
            "fmt",
            "--manifest-path",
            "patches/Cargo.toml",
            "--all",
            "--",
            "--check",
        ],
    },
    Check {
        name: "clippy (host)",
        args: &[
            "clippy",
            "--quiet",
            "--package",
            "xtask",
            "--package",
            "graft-protocol",
            "--package",
            "graft-boards",
            "--package",
            "graft-patcher",
            "--package",
            "graft-sanitizer",
            "--package",
            "graft-loader",
            "--package",
            "graft-patch",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    },
    target_clippy!("clippy (aarch64, kernel virt)", "graft-kernel", "virt"),
    target_clippy!("clippy (aarch64, kernel rpi3)", "graft-kernel", "rpi3"),
    target_clippy!("clippy (aarch64, kernel rpi4)", "graft-kernel", "rpi4"),
    target_clippy!("clippy (aarch64, loader rpi3)", "graft-loader", "rpi3"),
    target_clippy!("clippy (aarch64, loader rpi4)", "graft-loader", "rpi4"),
    // The seam as the kernel builds it: no_std, with its defmt formatting.
    target_clippy!("clippy (aarch64, protocol)", "graft-protocol", "defmt"),
    // The example patches: their own workspace, built for the target only.
    Check {
        name: "clippy (aarch64, patches)",
        args: &[
            "clippy",
            "--quiet",
            "--manifest-path",
            "patches/Cargo.toml",
            "--workspace",
            "--target",
            "aarch64-unknown-none",
            "--target-dir",
            "target/patches",
            "--release",
            "--",
            "-D",
            "warnings",
        ],
    },
];

impl Check {
    /// Runs the check; `Ok(None)` when it passed, `Ok(Some(output))` when it did not.
    pub fn run(&self) -> Result<Option<String>> {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The kernel's build script reads these: the same values as the builds keep it fresh.
        crate::keys::apply(&mut cmd);
        let out = cmd
            .current_dir(root())
            .args(self.args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running cargo {}", self.args.join(" ")))?;
        if out.status.success() {
            Ok(None)
        } else {
            Ok(Some(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}
