//! QEMU with its UART on a pseudo-terminal, for the sessions that talk to a running kernel
//! through the same `serialport` code a real adapter uses (the chainloader, live patching).

use super::qemu::{Run, Serial};
use anyhow::{Context, Result, anyhow, bail};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long QEMU may take to say which pty it opened.
const PTY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long QEMU may take to exit after the run's verdict.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// A QEMU process, killed however the session ends.
pub struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Qemu {
    /// Waits for QEMU to exit by itself; its status, or an error naming the wait.
    pub fn wait_exit(&mut self) -> Result<i32> {
        self.wait_exit_within(EXIT_TIMEOUT)
    }

    /// As [`Qemu::wait_exit`], with its own limit (`None`: no limit).
    pub fn wait_exit_within(&mut self, limit: impl Into<Option<Duration>>) -> Result<i32> {
        let limit = limit.into();
        let deadline = limit.map(|l| Instant::now() + l);
        loop {
            if let Some(status) = self.0.try_wait()? {
                return status
                    .code()
                    .ok_or_else(|| anyhow!("QEMU was killed by a signal"));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                bail!(
                    "QEMU did not exit within {} s after the run's verdict",
                    limit.unwrap_or_default().as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `run` with the PL011 on a pty (through the one QEMU command builder,
/// [`Run::command`]); returns QEMU and the pty's path.
pub fn start(run: &Run) -> Result<(Qemu, PathBuf)> {
    let mut child = run
        .command(Serial::Pty)
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
