//! The chainloader end to end: the loader under QEMU on a pty, `cargo xtask flash`'s code on
//! the host side, a kernel test at the end.
//!
//! QEMU boots `loader8.img` as the Pi firmware would boot it from the card, with its PL011 on a
//! pseudo-terminal; the host opens that pty with the same `serialport` code as a real adapter.
//! First an oversize image is offered (the loader must refuse it and keep waiting), then the
//! kernel is sent with one chunk corrupted on its first copy (it must be sent again), and the
//! kernel's `smp` test, selected by QEMU's semihosting command line, must PASS and end QEMU
//! with status 0.

use crate::boards::BoardConfig;
use crate::flash::{self, Faults, FlashError, HANDSHAKE_TIMEOUT, LogEnd, Session};
use crate::logs::Symbols;
use crate::qemu;
use anyhow::{Context, Result, anyhow, bail};
use graft_loader::protocol::Refusal;
use indicatif::ProgressBar;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The kernel test the loaded kernel runs.
const TEST: &str = "smp";
/// How long QEMU may take to say which pty it opened.
const PTY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long QEMU may take to exit after the test's verdict.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// Kills QEMU however the test ends.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts QEMU on `loader` with the PL011 on a pty; returns it and the pty's path.
fn start(board: &BoardConfig, loader: &Path) -> Result<(Qemu, PathBuf)> {
    let mut child = Command::new("qemu-system-aarch64")
        .args(["-M", board.machine, "-m", board.memory])
        .args(["-smp", &board.default_cores.to_string()])
        .args(["-display", "none", "-monitor", "none", "-serial", "pty"])
        .arg("-semihosting")
        .arg("-kernel")
        .arg(loader)
        .args([
            "-append",
            &format!("graft cores={} test={TEST}", board.default_cores),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-aarch64")?;
    // QEMU names the pty on stdout; its errors come on stderr. Read both.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let qemu = Qemu(child);
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    let deadline = Instant::now() + PTY_TIMEOUT;
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(path) = pty_path(&line) {
                    return Ok((qemu, path));
                }
                said.push(line);
            }
            Err(_) => bail!(
                "QEMU named no pty within {} s (it said: {})",
                PTY_TIMEOUT.as_secs(),
                said.join(" | ")
            ),
        }
    }
}

/// The path in QEMU's (stdout) "char device redirected to /dev/pts/N (label serial0)".
fn pty_path(line: &str) -> Option<PathBuf> {
    let rest = line.split("redirected to ").nth(1)?;
    Some(PathBuf::from(rest.split_whitespace().next()?))
}

/// Waits for QEMU to exit by itself; its status, or an error naming the wait.
fn wait_exit(qemu: &mut Qemu) -> Result<i32> {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        if let Some(status) = qemu.0.try_wait()? {
            return status
                .code()
                .ok_or_else(|| anyhow!("QEMU was killed by a signal"));
        }
        if Instant::now() >= deadline {
            bail!(
                "QEMU did not exit within {} s after the test's verdict",
                EXIT_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the whole scenario on `board`; one named result per check, in order.
pub fn run(board: &BoardConfig) -> Vec<(String, Result<(), String>)> {
    let mut results = Vec::new();
    if let Err(e) = scenario(board, &mut results) {
        results.push((
            format!("chainload {TEST} on {} through the loader", board.name),
            Err(format!("{e:#}")),
        ));
    }
    results
}

fn scenario(board: &BoardConfig, results: &mut Vec<(String, Result<(), String>)>) -> Result<()> {
    let loader = flash::build_loader(board)?;
    let built = qemu::build_for(board)?;
    qemu::find_test(&built.tests, TEST)?;
    let image = std::fs::read(&built.boot)?;
    let symbols = Symbols::new(&built.bytes)?;
    let (mut qemu, pty) = start(board, &loader)?;
    let mut session = Session::new(flash::open_port(&pty)?);
    let announce = session
        .handshake(HANDSHAKE_TIMEOUT)
        .with_context(|| format!("loader on {} (noise: {:?})", board.name, session.noise))?;

    // An image one byte too large: refused by name, and the loader keeps waiting.
    let oversize = match session.offer(announce.max + 1, 0) {
        Err(FlashError::Refused(Refusal::TooLarge { size, max }))
            if size == announce.max + 1 && max == announce.max =>
        {
            session
                .handshake(Duration::from_secs(5))
                .map(|_| ())
                .map_err(|e| format!("after refusing, the loader did not announce again: {e}"))
        }
        Err(e) => Err(format!("expected a too-large refusal, got: {e}")),
        Ok(()) => Err("the loader accepted an image larger than its room".into()),
    };
    results.push((
        format!(
            "loader on {} refuses an oversize image and keeps waiting",
            board.name
        ),
        oversize,
    ));

    // The kernel, with chunk 1 corrupted once: the sender must resend it and the kernel boot.
    let faults = Faults {
        corrupt_once: Some(1),
        ..Faults::default()
    };
    let start = Instant::now();
    let sent = session.transfer(&image, faults, &ProgressBar::hidden());
    results.push((
        format!(
            "loader on {} takes the kernel with a corrupted chunk resent",
            board.name
        ),
        sent.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    ));
    sent.map_err(|e| anyhow!("{e}"))?;
    let rate = image.len() as f64 / 1024.0 / start.elapsed().as_secs_f64();
    let limit = built
        .tests
        .iter()
        .find(|t| t.name == TEST)
        .map_or(60, |t| u64::from(t.timeout_s));
    let end = flash::follow(
        &mut session,
        &symbols,
        Some(TEST),
        Some(Duration::from_secs(limit)),
        false,
    );
    let verdict = match end {
        LogEnd::Pass => match wait_exit(&mut qemu)? {
            0 => Ok(()),
            code => Err(format!(
                "the kernel logged PASS but QEMU exited with {code}"
            )),
        },
        other => Err(format!("the chainloaded kernel's log ended with {other:?}")),
    };
    if verdict.is_ok() {
        println!(
            "     ({} KiB kernel at {rate:.0} KiB/s over QEMU's pty)",
            image.len() / 1024
        );
    }
    results.push((
        format!(
            "chainloaded {TEST} on {} passes and QEMU exits 0",
            board.name
        ),
        verdict,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pty_path;
    use std::path::PathBuf;

    #[test]
    fn reads_qemus_pty_line() {
        assert_eq!(
            pty_path("char device redirected to /dev/pts/7 (label serial0)"),
            Some(PathBuf::from("/dev/pts/7"))
        );
        assert_eq!(pty_path("qemu-system-aarch64: warning: x"), None);
    }
}
