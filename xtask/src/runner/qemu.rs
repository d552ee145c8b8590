//! Running a kernel under QEMU: the one QEMU command line, a bounded run, its decoded frames.
//!
//! [`Run::command`] is the only place a QEMU command is built, for runs whose UART is QEMU's
//! stdio ([`Run::execute`]) and for sessions that talk to the kernel through a pty
//! ([`super::pty::start`]). The verdicts on an [`Outcome`] are in [`super::verdict`].

use super::board::BoardInfo;
use super::elf::KernelTest;
use super::logs::{Line, Symbols};
use super::sanitize;
use anyhow::{Context, Result};
use protocol::Record;
use protocol::cmdline::keys;
use protocol::testinfo::Tcg;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One kernel run to make.
pub struct Run<'a> {
    /// The kernel ELF.
    pub elf: &'a Path,
    /// The board configuration.
    pub board: BoardInfo,
    /// Cores.
    pub cores: u32,
    /// The test (None: the demo).
    pub test: Option<&'a KernelTest>,
    /// Extra command-line words.
    pub extra: &'a [String],
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Print lines as they arrive.
    pub live: bool,
    /// Wait for gdb.
    pub gdb: bool,
    /// Load the sanitizer plugin (its library and switches).
    pub sanitize: Option<(PathBuf, sanitize::Options)>,
    /// Offer semihosting (always, but for the check of the path real boards take).
    pub semihosting: bool,
    /// End the run as soon as the kernel sends a record this accepts.
    pub stop_when: Option<fn(&Record) -> bool>,
}

/// What a run did.
pub struct Outcome {
    /// QEMU's exit status, None if it was killed.
    pub exit: Option<i32>,
    /// The run hit its time limit.
    pub timed_out: bool,
    /// Every decoded line.
    pub lines: Vec<Line>,
    /// QEMU's own error output.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
    /// The sanitizer's raw output, when it ran.
    pub sanitizer_output: Option<String>,
    /// Whether the kernel that ran is the ELF the run was decoded with (its boot record's build
    /// id), or why not.
    pub same_image: Result<(), String>,
}

/// Where the kernel's UART goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serial {
    /// QEMU's stdout: the run's frames are read from there.
    Stdio,
    /// A pseudo-terminal QEMU names on stdout, for a session through `serialport`.
    Pty,
}

impl<'a> Run<'a> {
    /// A run of `test` (None: the demo) on `board` with its usual cores, the test's time limit
    /// (180 s for the demo), semihosting, no sanitizer, nothing printed.
    pub fn new(elf: &'a Path, board: BoardInfo, test: Option<&'a KernelTest>) -> Self {
        Self {
            elf,
            board,
            cores: board.default_cores,
            test,
            extra: &[],
            timeout: Duration::from_secs(test.map_or(180, |t| u64::from(t.timeout_s))),
            live: false,
            gdb: false,
            sanitize: None,
            semihosting: true,
            stop_when: None,
        }
    }

    /// The kernel's command line.
    pub fn cmdline(&self) -> String {
        let mut words = vec![
            "graft".to_string(),
            format!("{}={}", keys::CORES, self.cores),
        ];
        if let Some(t) = self.test {
            words.push(format!("{}={}", keys::TEST, t.name));
        }
        words.extend(self.extra.iter().cloned());
        words.join(" ")
    }

    /// The TCG mode: the test's, or for the demo (no test) deterministic virtual time.
    fn tcg(&self) -> Tcg {
        self.test.map_or(Tcg::Icount, |t| t.tcg)
    }

    /// The QEMU command for this run, with the UART on `serial`.
    pub fn command(&self, serial: Serial) -> Command {
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-M", self.board.machine, "-m", self.board.memory]);
        if let Some(cpu) = self.board.cpu {
            cmd.args(["-cpu", cpu]);
        }
        if self.semihosting {
            cmd.arg("-semihosting");
        }
        match self.tcg() {
            Tcg::SingleThreaded => {
                cmd.args(["-accel", "tcg,thread=single"]);
            }
            Tcg::Icount => {
                cmd.args(["-icount", "shift=0,sleep=off"]);
            }
            Tcg::MultiThreaded => {}
        }
        if let Some((plugin, options)) = &self.sanitize {
            let mut arg = options.qemu_arg(plugin);
            // Round-robin TCG hands plugins the translating vCPU's index (QEMU 10.0), so the
            // sanitizer names cores by TPIDR_EL1, which boot.s sets to the core's index first.
            if self.tcg() != Tcg::MultiThreaded {
                arg.push_str(",core-reg=tpidr_el1");
            }
            cmd.arg("-plugin").arg(arg);
        }
        cmd.args(["-smp", &self.cores.to_string()])
            .args(["-display", "none", "-monitor", "none", "-serial"])
            .arg(match serial {
                Serial::Stdio => "stdio",
                Serial::Pty => "pty",
            })
            .arg("-kernel")
            .arg(self.elf)
            .args(["-append", &self.cmdline()]);
        if self.gdb {
            cmd.args(["-S", "-gdb", "tcp::1234"]);
        }
        cmd
    }

    /// Runs QEMU to its end or to the time limit.
    pub fn execute(&self, symbols: &Symbols) -> Result<Outcome> {
        let start = Instant::now();
        let mut child = self
            .command(Serial::Stdio)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-aarch64")?;
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut decoder = symbols.decoder();
        let mut lines = Vec::new();
        let deadline = start + self.timeout;
        let mut timed_out = false;
        loop {
            let now = Instant::now();
            if now >= deadline && !self.gdb {
                timed_out = true;
                let _ = child.kill();
                break;
            }
            match rx.recv_timeout(
                deadline
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(200)),
            ) {
                Ok(bytes) => {
                    let mut stop = false;
                    for line in decoder.feed(&bytes) {
                        if self.live && line.for_people() {
                            println!("{}", line.text);
                        }
                        stop |= self
                            .stop_when
                            .zip(line.record())
                            .is_some_and(|(accept, r)| accept(r));
                        lines.push(line);
                    }
                    if stop {
                        let _ = child.kill();
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait()?;
        let _ = reader.join();
        let stderr = err_reader.join().unwrap_or_default();
        let sanitizer_output = self
            .sanitize
            .as_ref()
            .map(|(_, o)| std::fs::read_to_string(&o.out).unwrap_or_default());
        Ok(Outcome {
            same_image: symbols.same_image(&lines),
            sanitizer_output,
            exit: if timed_out { None } else { status.code() },
            timed_out,
            lines,
            stderr,
            elapsed: start.elapsed(),
        })
    }
}
