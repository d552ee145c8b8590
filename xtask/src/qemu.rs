//! Running a kernel under QEMU: the command line, a bounded run, decoded logs, and the verdict.

use crate::boards::{self, BoardConfig};
use crate::elf::{self, KernelTest};
use crate::logs::{Line, Symbols};
use crate::{build, image, prereq, sanitize};
use anyhow::{Context, Result, bail};
use clap::Args;
use protocol::Record;
use protocol::testinfo::{EXIT_FAULT, EXIT_PASS, Expect, Sanitized, Tcg};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `cargo xtask qemu` options.
#[derive(Args, Debug)]
pub struct QemuArgs {
    /// Board configuration: virt, virt-gicv3, virt-el2, rpi3 or rpi4.
    #[arg(long, default_value = "virt")]
    pub board: String,
    /// Number of cores (default: the board's usual count).
    #[arg(long)]
    pub smp: Option<u32>,
    /// Kernel test to run instead of the demo (see `cargo xtask test --list`).
    #[arg(long)]
    pub test: Option<String>,
    /// Run the `live` test with the UART on a pty, for `cargo xtask patch --port PTY`.
    #[arg(long, conflicts_with_all = ["test", "sanitize", "gdb"])]
    pub serve: bool,
    /// Start halted and wait for a debugger on localhost:1234.
    #[arg(long)]
    pub gdb: bool,
    /// How many virtual seconds the demo runs (it shares them among the strategies).
    #[arg(long)]
    pub secs: Option<u64>,
    /// Run under the coherence sanitizer (in the test's own TCG mode); any hazard fails the run.
    #[arg(long)]
    pub sanitize: bool,
    /// With --sanitize: whether IC IVAU reaches every core (on) or only the issuing one (off).
    #[arg(long, value_parser = ["on", "off"], default_value = "on")]
    pub ic_broadcast: String,
    /// Extra `key=value` words for the kernel's command line (e.g. `--arg rounds=10`).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
}

/// One kernel run to make.
pub struct Run<'a> {
    /// The kernel ELF.
    pub elf: &'a Path,
    /// The board configuration.
    pub board: BoardConfig,
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
}

impl Run<'_> {
    fn cmdline(&self) -> String {
        let mut words = vec!["graft".to_string(), format!("cores={}", self.cores)];
        if let Some(t) = self.test {
            words.push(format!("test={}", t.name));
        }
        words.extend(self.extra.iter().cloned());
        words.join(" ")
    }

    /// The TCG mode: the test's, or for the demo (no test) deterministic virtual time.
    fn tcg(&self) -> Tcg {
        self.test.map_or(Tcg::Icount, |t| t.tcg)
    }

    /// The QEMU command for this run.
    pub fn command(&self) -> Command {
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
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
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
            .command()
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
            sanitizer_output,
            exit: if timed_out { None } else { status.code() },
            timed_out,
            lines,
            stderr,
            elapsed: start.elapsed(),
        })
    }
}

impl Outcome {
    /// Whether the run shows what `expect` asks for; `Err` says why not.
    pub fn verdict(&self, expect: Expect, what: &str) -> Result<(), String> {
        if self.timed_out {
            return Err(format!(
                "{what} timed out after {:.0} s",
                self.elapsed.as_secs_f64()
            ));
        }
        if let Some(why) = crate::logs::first_bad_record(&self.lines) {
            return Err(format!("{what}: {why}"));
        }
        let exit = self.exit.map(|c| c as u32);
        match expect {
            Expect::Pass if exit == Some(EXIT_PASS) => Ok(()),
            Expect::Pass => Err(format!("{what} exited with status {}", describe(self.exit))),
            Expect::Fault => self.fault_verdict(exit, what),
        }
    }

    /// A fault run passes when it exits with the fault status and the report names the ELR and
    /// class the test announced.
    fn fault_verdict(&self, exit: Option<u32>, what: &str) -> Result<(), String> {
        if exit != Some(EXIT_FAULT) {
            return Err(format!(
                "{what} exited with status {}, not the fault status {EXIT_FAULT}",
                describe(self.exit)
            ));
        }
        let records = || self.lines.iter().filter_map(Line::record);
        let (ec, elr) = records()
            .find_map(|r| match *r {
                Record::ExpectFault { ec, elr } => Some((ec, elr)),
                _ => None,
            })
            .ok_or_else(|| format!("{what} never announced the fault it expects"))?;
        let report = records()
            .find(|r| matches!(r, Record::Exception { .. }))
            .ok_or_else(|| {
                format!("{what} exited with the fault status but reported no exception")
            })?;
        match *report {
            Record::Exception {
                ec: got_ec,
                elr: got_elr,
                ..
            } if got_ec == ec && got_elr == elr => Ok(()),
            _ => Err(format!(
                "{what}: the report does not name EC {ec:#04x} and ELR {elr:#x}: {report}"
            )),
        }
    }
}

fn describe(code: Option<i32>) -> String {
    match code {
        Some(c) => c.to_string(),
        None => "none (killed by a signal)".into(),
    }
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
pub fn build_for(board: &BoardConfig) -> Result<Built> {
    build_running(board, None)
}

/// As [`build_for`], for a kernel that runs `run` when no command line names a test (see
/// [`build::kernel`]).
pub fn build_running(board: &BoardConfig, run: Option<&str>) -> Result<Built> {
    let elf = build::kernel(board, run)?;
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

/// `cargo xtask qemu`.
pub fn command(args: &QemuArgs) -> Result<bool> {
    let board = boards::find(&args.board)?;
    let cores = board.cores(args.smp)?;
    prerequisites()?;
    if args.serve {
        return crate::live::serve(&board);
    }
    if args.test.as_deref() == Some(crate::live::TEST) {
        bail!("`live` waits for patches on its UART: run it with `cargo xtask qemu --serve`");
    }
    let built = build_for(&board)?;
    let test = match &args.test {
        Some(name) => Some(find_test(&built.tests, name)?),
        None => None,
    };
    if let Some(t) = test
        && cores < t.min_cores
    {
        bail!(
            "test {} needs at least {} cores; --smp {cores} was given",
            t.name,
            t.min_cores
        );
    }
    let symbols = Symbols::new(&built.bytes)?;
    let expect = test.map_or(Expect::Pass, |t| t.expect);
    let timeout = Duration::from_secs(test.map_or(180, |t| u64::from(t.timeout_s)));
    let sanitizer = if args.sanitize {
        let options = sanitize::Options {
            ic_broadcast: args.ic_broadcast == "on",
            out: built.elf.with_file_name("sanitizer.txt"),
            idc: test.is_some_and(|t| t.idc),
            dic: test.is_some_and(|t| t.dic),
        };
        let _ = std::fs::remove_file(&options.out);
        Some((sanitize::build_plugin()?, options))
    } else {
        None
    };
    let mut extra = args.args.clone();
    if let Some(secs) = args.secs {
        if secs == 0 {
            bail!("--secs must be at least 1");
        }
        extra.push(format!("secs={secs}"));
    }
    if args.sanitize {
        extra.push("sanitized=1".into());
    }
    let run = Run {
        elf: &built.boot,
        board,
        cores,
        test,
        extra: &extra,
        timeout,
        live: true,
        gdb: args.gdb,
        sanitize: sanitizer,
        semihosting: true,
        stop_when: None,
    };
    if args.gdb {
        println!("QEMU waits for a debugger. Attach with:");
        println!(
            "  gdb-multiarch {} -ex 'target remote localhost:1234'",
            built.elf.display()
        );
    }
    let what = format!(
        "{} on {} ({cores} cores)",
        test.map_or("demo", |t| t.name.as_str()),
        board.name
    );
    let outcome = run.execute(&symbols)?;
    if !outcome.stderr.trim().is_empty() {
        eprintln!("{}", outcome.stderr.trim_end());
    }
    let mut verdict = outcome.verdict(expect, &what);
    if let Some(text) = &outcome.sanitizer_output {
        let report = sanitize::parse(text, &sanitize::SymbolMap::new(&built.bytes)?);
        for h in &report.hazards {
            println!("sanitizer: {h}");
        }
        println!(
            "sanitizer: {}",
            report
                .summary
                .as_deref()
                .unwrap_or("no summary (did the plugin load?)")
        );
        verdict = verdict.and(sanitized_verdict(&report, Sanitized::Clean, &what));
    }
    match verdict {
        Ok(()) => {
            println!("xtask: {what}: ok ({:.1} s)", outcome.elapsed.as_secs_f64());
            Ok(true)
        }
        Err(why) => {
            println!("xtask: FAILED: {why}");
            Ok(false)
        }
    }
}

/// Whether a sanitizer report shows what `want` asks for.
pub fn sanitized_verdict(
    report: &sanitize::Report,
    want: Sanitized,
    what: &str,
) -> Result<(), String> {
    if report.summary.is_none() {
        return Err(format!("{what}: the sanitizer wrote no summary"));
    }
    if report.attribution_errors > 0 {
        return Err(format!(
            "{what}: the sanitizer could not attribute {} events to a core",
            report.attribution_errors
        ));
    }
    match want {
        // Catalogue mirrors must show no hazard either; their stale reports are judged per
        // iteration by `litmus::judge`.
        Sanitized::Clean | Sanitized::Allowed | Sanitized::Forbidden
            if report.hazards.is_empty() =>
        {
            Ok(())
        }
        Sanitized::Clean | Sanitized::Allowed | Sanitized::Forbidden => Err(format!(
            "{what}: {} sanitizer hazards, the first: {}",
            report.hazards.len(),
            report.hazards[0]
        )),
        Sanitized::Hazard if !report.hazards.is_empty() => Ok(()),
        Sanitized::Hazard => Err(format!(
            "{what}: the negative control was not flagged by the sanitizer"
        )),
        Sanitized::No => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Line;

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

    fn line(record: Record) -> Line {
        Line {
            level: "info".into(),
            text: record.to_string(),
            message: record.to_string(),
            record: Some(Ok(record)),
        }
    }

    fn exception(elr: u64) -> Record {
        Record::Exception {
            core: 0,
            ec: 0,
            esr: 0x200_0000,
            elr,
            far: 0,
        }
    }

    fn outcome(exit: Option<i32>, timed_out: bool, lines: Vec<Line>) -> Outcome {
        Outcome {
            exit,
            timed_out,
            lines,
            stderr: String::new(),
            elapsed: Duration::from_secs(3),
            sanitizer_output: None,
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

    #[test]
    fn a_timeout_fails_by_name() {
        let e = outcome(None, true, vec![])
            .verdict(Expect::Pass, "ipi on virt")
            .unwrap_err();
        assert!(e.contains("ipi on virt timed out"), "{e}");
    }

    #[test]
    fn pass_needs_exit_status_zero() {
        assert!(
            outcome(Some(0), false, vec![])
                .verdict(Expect::Pass, "t")
                .is_ok()
        );
        assert!(
            outcome(Some(1), false, vec![])
                .verdict(Expect::Pass, "t")
                .is_err()
        );
        assert!(
            outcome(Some(3), false, vec![])
                .verdict(Expect::Pass, "t")
                .is_err()
        );
    }

    #[test]
    fn fault_needs_the_announced_report() {
        let good = vec![
            line(Record::ExpectFault {
                ec: 0,
                elr: 0x4020_1040,
            }),
            line(exception(0x4020_1040)),
        ];
        assert!(
            outcome(Some(3), false, good.clone())
                .verdict(Expect::Fault, "t")
                .is_ok()
        );
        // Success status is not a fault.
        assert!(
            outcome(Some(0), false, good.clone())
                .verdict(Expect::Fault, "t")
                .is_err()
        );
        // A report at another address does not count.
        let wrong = vec![good[0].clone(), line(exception(0x4020_1044))];
        assert!(
            outcome(Some(3), false, wrong)
                .verdict(Expect::Fault, "t")
                .is_err()
        );
        // No report at all.
        assert!(
            outcome(Some(3), false, vec![good[0].clone()])
                .verdict(Expect::Fault, "t")
                .is_err()
        );
        // Another class at the right address does not count either.
        let other_class = vec![
            good[0].clone(),
            line(Record::Exception {
                core: 0,
                ec: 0x25,
                esr: 0x9600_004f,
                elr: 0x4020_1040,
                far: 0,
            }),
        ];
        assert!(
            outcome(Some(3), false, other_class)
                .verdict(Expect::Fault, "t")
                .is_err()
        );
    }

    #[test]
    fn a_damaged_record_fails_the_run_by_name() {
        let mut lines = vec![line(Record::TestVerdict {
            test: protocol::record::Name::new("t"),
            passed: true,
        })];
        lines[0].record = Some(Err(crate::logs::RecordError::Decode(
            protocol::DecodeError::BadTag(77),
        )));
        let e = outcome(Some(0), false, lines)
            .verdict(Expect::Pass, "t on virt")
            .unwrap_err();
        assert!(
            e.contains("t on virt: a damaged record") && e.contains("tag 77"),
            "{e}"
        );
    }
}
