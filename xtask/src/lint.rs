//! `cargo xtask lint`: formatting and clippy (warnings are errors) for host and target crates.
//!
//! `cargo xtask test` runs the same checks and counts each as a test.

use crate::build::root;
use anyhow::{Context, Result};
use std::process::{Command, Stdio};

/// One check: a name and the cargo arguments that run it.
pub struct Check {
    /// What `cargo xtask test` prints.
    pub name: &'static str,
    args: &'static [&'static str],
}

/// Every lint check.
pub const CHECKS: &[Check] = &[
    Check {
        name: "rustfmt",
        args: &["fmt", "--all", "--", "--check"],
    },
    Check {
        name: "clippy (host)",
        args: &[
            "clippy",
            "--quiet",
            "--package",
            "xtask",
            "--package",
            "graft-kernel",
            "--package",
            "graft-boards",
            "--package",
            "graft-patcher",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    },
    Check {
        name: "clippy (aarch64, virt)",
        args: &[
            "clippy",
            "--quiet",
            "--package",
            "graft-kernel",
            "--features",
            "virt",
            "--target",
            "aarch64-unknown-none",
            "--target-dir",
            "target/kernel/virt",
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
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
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

/// `cargo xtask lint`.
pub fn command() -> Result<bool> {
    let mut ok = true;
    for check in CHECKS {
        match check.run()? {
            None => println!("ok   {}", check.name),
            Some(output) => {
                println!("FAIL {}\n{output}", check.name);
                ok = false;
            }
        }
    }
    Ok(ok)
}
