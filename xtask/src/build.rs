//! Building the kernel for a board.

use crate::boards::BoardConfig;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the kernel ELF for `board` (release profile) and returns its path. `run` (a kernel
/// test) is what the kernel runs when no command line names one (a board without semihosting
/// has none); without it, the demo. Such a kernel is built in its own target folder, so the
/// ordinary build stays as it is.
pub fn kernel(board: &BoardConfig, run: Option<&str>) -> Result<PathBuf> {
    let folder = match run {
        Some(run) => format!("{}-{run}", board.feature),
        None => board.feature.to_string(),
    };
    let target_dir = root().join("target").join("kernel").join(folder);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    match run {
        Some(run) => cmd.env("GRAFT_RUN", run),
        None => cmd.env_remove("GRAFT_RUN"),
    };
    let status = cmd
        .current_dir(root())
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "graft-kernel",
            "--target",
            "aarch64-unknown-none",
        ])
        .args(["--features", board.feature])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("running cargo build for the kernel")?;
    if !status.success() {
        bail!("the kernel did not build for board {}", board.name);
    }
    Ok(target_dir.join("aarch64-unknown-none/release/graft-kernel"))
}
