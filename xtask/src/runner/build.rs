//! Building the kernel for a board, and what a build holds (its tests, its boot image).

use super::board::BoardInfo;
use super::elf::{self, KernelTest};
use super::{image, prereq};
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
pub fn kernel(board: &BoardInfo, run: Option<&str>) -> Result<PathBuf> {
    let target_dir = target_dir(board, run);
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    match run {
        Some(run) => cmd.env("GRAFT_RUN", run),
        None => cmd.env_remove("GRAFT_RUN"),
    };
    crate::keys::apply(&mut cmd);
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
    Ok(kernel_path(board, run))
}

/// The target folder of [`kernel`]'s build.
fn target_dir(board: &BoardInfo, run: Option<&str>) -> PathBuf {
    let folder = match run {
        Some(run) => format!("{}-{run}", board.feature),
        None => board.feature.to_string(),
    };
    root().join("target").join("kernel").join(folder)
}

/// Where [`kernel`] leaves the ELF (whether or not it was built yet).
pub fn kernel_path(board: &BoardInfo, run: Option<&str>) -> PathBuf {
    target_dir(board, run).join("aarch64-unknown-none/release/graft-kernel")
}

/// The prerequisites of every QEMU run.
pub fn prerequisites() -> Result<()> {
    prereq::rust_target()?;
    prereq::qemu()
}

/// A kernel built for one board.
pub struct Built {
    /// The ELF (symbols, logs table, tests).
    pub elf: PathBuf,
    /// What QEMU loads: the ELF, or the raw image for boards booted that way.
    pub boot: PathBuf,
    /// The ELF's bytes.
    pub bytes: Vec<u8>,
    /// The kernel tests it contains.
    pub tests: Vec<KernelTest>,
}

/// Builds for `board`: the ELF and, where the board boots one, the raw image beside it.
pub fn build_for(board: &BoardInfo) -> Result<Built> {
    build_running(board, None)
}

/// As [`build_for`], for a kernel that runs `run` when no command line names a test (see
/// [`kernel`]).
pub fn build_running(board: &BoardInfo, run: Option<&str>) -> Result<Built> {
    let elf = kernel(board, run)?;
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    let tests = elf::tests(&bytes)?;
    let boot = if board.raw_image {
        let path = elf.with_file_name("kernel8.img");
        std::fs::write(&path, image::raw_from_elf(&bytes)?)
            .with_context(|| format!("writing {}", path.display()))?;
        path
    } else {
        elf.clone()
    };
    Ok(Built {
        elf,
        boot,
        bytes,
        tests,
    })
}

/// Finds a test by name, or explains which exist.
pub fn find_test<'a>(tests: &'a [KernelTest], name: &str) -> Result<&'a KernelTest> {
    tests.iter().find(|t| t.name == name).with_context(|| {
        let names: Vec<_> = tests.iter().map(|t| t.name.as_str()).collect();
        format!(
            "unknown test '{name}'; the kernel tests are: {}",
            names.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::testinfo::{Expect, Sanitized, Tcg};

    fn test(name: &str) -> KernelTest {
        KernelTest {
            name: name.into(),
            expect: Expect::Pass,
            timeout_s: 1,
            min_cores: 1,
            tcg: Tcg::MultiThreaded,
            sanitized: [Sanitized::No; 2],
            idc: false,
            dic: false,
        }
    }

    #[test]
    fn unknown_test_lists_the_valid_ones() {
        let tests = [test("smp"), test("ipi")];
        let e = find_test(&tests, "nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown test 'nope'") && e.contains("smp, ipi"),
            "{e}"
        );
        assert_eq!(find_test(&tests, "ipi").unwrap().name, "ipi");
    }
}
