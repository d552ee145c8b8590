//! `cargo xtask test`: host unit tests, then every kernel test on every board configuration.
//!
//! Every board's kernel is built once, then every QEMU run is planned as a [`Job`] and the jobs
//! run side by side as far as the host's cores allow: a round-robin or `-icount` run takes one
//! host thread, a multi-threaded TCG run takes all of them, and each run's lines are printed
//! together when it ends, as `[k/N] PASS name (time; elapsed, ETA)`.
//!
//! Ends with exactly one line `N passed, N failed` and fails when anything failed. A kernel test
//! that hangs is killed at its time limit and fails by name; the others still run.

use crate::runner::board::{self, BoardInfo};
use crate::runner::build::{self, Built, build_for, prerequisites};
use crate::runner::elf::KernelTest;
use crate::runner::logs::{self, Symbols};
use crate::runner::qemu::Run;
use crate::runner::verdict::{
    demo_verdict, describe_expectation, expected_sanitized, sanitized_verdict,
};
use crate::runner::{herd7, lint, live, loader_e2e, prereq, sanitize};
use anyhow::{Context, Result, bail};
use clap::Args;
use protocol::Record;
use protocol::cmdline::keys;
use protocol::testinfo::{DEMO, EXIT_PASS, Sanitized, Tcg};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// Declared here rather than in main.rs: the catalogue mirrors' judgement is part of the test run.
#[path = "litmus.rs"]
mod litmus;

/// `cargo xtask test` options.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Only these board configurations (default: all).
    #[arg(long = "board", value_enum)]
    pub boards: Vec<BoardInfo>,
    /// Only kernel tests whose names contain this, or match it as a glob (`*`, `?`); repeatable
    /// (default: all).
    #[arg(long = "test")]
    pub tests: Vec<String>,
    /// Leave out kernel tests whose names contain this, or match it as a glob; repeatable.
    #[arg(long)]
    pub skip: Vec<String>,
    /// QEMU runs at once (default: the host's cores). A multi-threaded TCG run takes them all.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Skip the lints and host unit tests.
    #[arg(long)]
    pub no_host: bool,
    /// Skip the runs under the coherence sanitizer.
    #[arg(long)]
    pub no_sanitize: bool,
    /// List the kernel tests the filters select and exit (builds the kernel; needs no QEMU).
    #[arg(long)]
    pub list: bool,
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    failures: Vec<String>,
    /// Catalogue mirrors run under the sanitizer, and how many agreed with the catalogue.
    litmus_total: u64,
    litmus_agree: u64,
}

impl Tally {
    /// Counts one check and prints its `PASS`/`FAIL` line.
    fn record(&mut self, what: String, result: Result<String, String>) {
        match result {
            Ok(line) => {
                println!("PASS {what}: {line}");
                self.passed += 1;
            }
            Err(line) => {
                println!("FAIL {what}: {line}");
                self.failed += 1;
                self.failures.push(what);
            }
        }
    }
}

fn lints(tally: &mut Tally) -> Result<()> {
    println!("== lints");
    for check in lint::CHECKS {
        match check.run()? {
            None => {
                println!("PASS {}", check.name);
                tally.passed += 1;
            }
            Some(output) => {
                println!(
                    "FAIL {}
{output}",
                    check.name
                );
                tally.failed += 1;
                tally.failures.push(check.name.to_string());
            }
        }
    }
    Ok(())
}

/// Host crates whose unit tests run here.
const HOST_CRATES: &[&str] = &[
    "xtask",
    "graft-protocol",
    "graft-boards",
    "graft-patcher",
    "graft-sanitizer",
    "graft-loader",
];

fn host_tests(tally: &mut Tally) -> Result<()> {
    println!("== host unit tests ({})", HOST_CRATES.join(", "));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(build::root()).arg("test");
    for c in HOST_CRATES {
        cmd.args(["--package", c]);
    }
    // Streamed as it comes: cargo's own progress (stderr) and each test's line (stdout).
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo test")?;
    let stdout = child.stdout.take().context("cargo test's output")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test's output")?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count(rest, " passed");
            failed += count(rest, " failed");
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() && failed == 0 {
        // It did not even build (cargo said why above): count it as one failure.
        failed = 1;
        tally
            .failures
            .push("host unit tests did not build or run".into());
    } else if failed > 0 {
        tally.failures.push(format!("{failed} host unit tests"));
    }
    tally.passed += passed;
    tally.failed += failed;
    Ok(())
}

/// Cases per target of the fuzz step (`cargo xtask fuzz` runs a million by default).
const FUZZ_CASES: u64 = 20_000;

/// The parsers of outside bytes under seeded random and mutated input (`crate::fuzz`).
fn fuzz(tally: &mut Tally) {
    println!("== fuzz: {FUZZ_CASES} cases per target (cargo xtask fuzz runs more)");
    for target in crate::fuzz::ALL {
        let seed = 0x6772_6166_7400_0001;
        let o = crate::fuzz::run(target, FUZZ_CASES, seed);
        let what = format!("fuzz {target:?}");
        let result = match o.failure {
            None => Ok(format!("{} cases ({:.0} cases/s)", o.cases, o.rate)),
            Some((case, why)) => Err(format!("case {case} of seed {seed:#x}: {why}")),
        };
        tally.record(what, result);
    }
}

/// Every patch crate under `patches/`, and what `cargo xtask patch build` must make of it: built
/// and accepted by the verifier, or refused for this reason (`patch_build::Refusal::kind`).
const PATCHES: [(&str, Option<&str>); 7] = [
    ("pid-gains", None),
    ("pi-antiwindup", None),
    ("pid-kernel-helper", None),
    ("calibrated-pid", None),
    ("refused/unexported", Some("unexported")),
    ("refused/panics", Some("can-panic")),
    ("refused/writable-static", Some("writable")),
];

/// The patch crates in `patches/` (and `patches/refused/`), by their path under `patches/`.
fn patch_crates() -> Result<Vec<String>> {
    let root = build::root().join("patches");
    let mut found = Vec::new();
    for dir in [root.clone(), root.join("refused")] {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.join("Cargo.toml").exists() {
                let rel = p.strip_prefix(&root)?.to_string_lossy().into_owned();
                found.push(rel);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Builds every example patch from its Rust source against `b`'s image (at its first slot) and
/// checks the verdict in [`PATCHES`]: the examples pass the board's verifier, each refused one is
/// refused for its own reason.
fn patches(b: &BoardBuild, tally: &mut Tally) -> Result<()> {
    println!(
        "== patches from Rust source: built and linked against the {} image's exports, checked as \
         the board checks them",
        b.board.name
    );
    let mut listed: Vec<String> = PATCHES.iter().map(|p| p.0.to_string()).collect();
    listed.sort();
    let found = patch_crates()?;
    if found != listed {
        println!("FAIL patches/: holds {found:?}, the test lists {listed:?}");
        tally.failed += 1;
        tally.failures.push("patches/ listing".into());
    }
    let at = crate::runner::patch_build::first_slot(&b.built.bytes)?;
    for (dir, want) in PATCHES {
        let what = format!("patch build patches/{dir}");
        let path = build::root().join("patches").join(dir);
        let got = crate::runner::patch_build::build(
            &path,
            &b.built.bytes,
            at,
            protocol::exports::SLOT_BYTES,
            1,
        );
        let verdict = match (got, want) {
            (Err(e), _) => Err(format!("{e:#}")),
            (Ok(o), None) => match (o.verdict, o.linked) {
                (Ok(insns), Some(l)) => Ok(format!(
                    "{} bytes, at most {insns} instructions",
                    l.code.len()
                )),
                (Err(r), _) => Err(format!("refused: {r}")),
                (Ok(_), None) => Err("passed with no block".into()),
            },
            (Ok(o), Some(kind)) => match o.verdict {
                Err(r) if r.kind() == kind => Ok(format!("refused as it must be: {r}")),
                Err(r) => Err(format!("refused, but not as {kind}: {r}")),
                Ok(_) => Err(format!("accepted; it must be refused as {kind}")),
            },
        };
        tally.record(what, verdict);
    }
    Ok(())
}

/// herd7's time limit per project litmus file.
const HERD7_TIMEOUT: Duration = Duration::from_secs(120);

/// Every file in `tests/litmus/` gets the verdict its header states (`Expected: ...`) from herd7,
/// when herd7 is here (two files at a time); without it, the step says so and counts nothing.
fn litmus_files(tally: &mut Tally) -> Result<()> {
    let dir = build::root().join("tests/litmus");
    println!(
        "== the project's litmus files under herd7 ({})",
        dir.display()
    );
    let Some(herd7) = herd7::find() else {
        println!(
            "SKIPPED: herd7 not found (set GRAFT_HERD7 to herd7, or a wrapper passing its model \
             library such as herdtools7's ../shared/tools/herd7/run); nothing counted"
        );
        return Ok(());
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "litmus"))
        .collect();
    files.sort();
    let judge = |file: &PathBuf| -> (String, Result<String, String>) {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        let what = format!("herd7: tests/litmus/{name}");
        let start = Instant::now();
        let result = match std::fs::read_to_string(file) {
            Err(e) => Err(format!("reading it: {e}")),
            Ok(text) => match herd7::expected(&text) {
                None => {
                    Err("its header states no verdict (`Expected: Forbidden` or `Allowed`)".into())
                }
                Some(want) => herd7::run(&herd7, file, HERD7_TIMEOUT).and_then(|got| {
                    if got == want {
                        Ok(format!("{got:?} ({:.1} s)", start.elapsed().as_secs_f64()))
                    } else {
                        Err(format!("herd7 says {got:?}, the file expects {want:?}"))
                    }
                }),
            },
        };
        (what, result)
    };
    // Two at a time: herd7 is single-threaded and the bigger shapes take half a minute.
    let (even, odd): (Vec<&PathBuf>, Vec<&PathBuf>) = {
        let (e, o): (Vec<_>, Vec<_>) = files.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        (
            e.into_iter().map(|(_, f)| f).collect(),
            o.into_iter().map(|(_, f)| f).collect(),
        )
    };
    let judge = &judge;
    let results: Vec<(String, Result<String, String>)> = std::thread::scope(|scope| {
        let other = scope.spawn(move || odd.into_iter().map(judge).collect::<Vec<_>>());
        let mut all: Vec<_> = even.into_iter().map(judge).collect();
        all.extend(other.join().unwrap_or_default());
        all
    });
    let mut results = results;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (what, result) in results {
        tally.record(what, result);
    }
    Ok(())
}

/// The number before `what` in a `cargo test` result line.
fn count(result_line: &str, what: &str) -> u64 {
    result_line
        .split(';')
        .find(|part| part.trim_end().ends_with(what.trim()))
        .and_then(|part| part.split_whitespace().rev().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Publications of a negative control under the sanitizer: it must be flagged, which the first
/// few publications already are; runs expected clean publish the full 100,000.
const NEGATIVE_CONTROL_PUBS: u64 = 2000;
/// Virtual seconds of the demo in the test run.
const DEMO_SECS: u64 = 2;

/// Whether a `--test`/`--skip` pattern selects `name`: a glob (`*` any run, `?` one character)
/// over the whole name when it holds either, otherwise a substring.
fn matches(pattern: &str, name: &str) -> bool {
    if pattern.contains(['*', '?']) {
        glob(pattern.as_bytes(), name.as_bytes())
    } else {
        name.contains(pattern)
    }
}

fn glob(p: &[u8], n: &[u8]) -> bool {
    match (p.first(), n.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], n) || (!n.is_empty() && glob(p, &n[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &n[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &n[1..]),
        _ => false,
    }
}

impl TestArgs {
    /// Whether the name filters select the kernel test `name`.
    fn selects(&self, name: &str) -> bool {
        (self.tests.is_empty() || self.tests.iter().any(|p| matches(p, name)))
            && !self.skip.iter().any(|p| matches(p, name))
    }

    /// Whether `--test` narrowed the run (tests left out by default then run when named).
    fn named(&self) -> bool {
        !self.tests.is_empty()
    }
}

/// One board's kernel, built once for every run on it.
struct BoardBuild {
    board: BoardInfo,
    built: Built,
    symbols: Symbols,
}

/// One QEMU run of the suite.
enum Job {
    /// A kernel test, plain or under the sanitizer (its switches and what it must show).
    Kernel {
        board: usize,
        test: KernelTest,
        sanitized: Option<(sanitize::Options, Sanitized)>,
    },
    /// The demo without semihosting: the path real boards take.
    WithoutSemihosting { board: usize },
}

impl Job {
    /// Host threads the run keeps busy: one for round-robin and `-icount` TCG, all of them for
    /// multi-threaded TCG.
    fn threads(&self, slots: usize) -> usize {
        match self {
            Job::Kernel { test, .. } if test.tcg == Tcg::MultiThreaded => slots,
            _ => 1,
        }
    }
}

/// A finished run: its verdict and what to print under it.
struct Done {
    what: String,
    verdict: Result<(), String>,
    elapsed: Duration,
    details: String,
    /// For a catalogue mirror: whether it agreed with the catalogue.
    litmus: Option<bool>,
}

/// Every run on `b`: its tests plainly, the demo without semihosting, and (on the board the
/// sanitizer models) the sanitized runs.
fn plan(index: usize, b: &BoardBuild, args: &TestArgs) -> Vec<Job> {
    let board = &b.board;
    let selected: Vec<&KernelTest> = b
        .built
        .tests
        .iter()
        .filter(|t| args.selects(&t.name))
        .collect();
    let mut jobs = Vec::new();
    for &test in &selected {
        // A catalogue mirror exists for its sanitized judgement, made on virt; its plain run
        // elsewhere would only repeat virt's (asked for by name, it runs anyway).
        let mirror = test
            .sanitized
            .iter()
            .any(|s| matches!(s, Sanitized::Allowed | Sanitized::Forbidden));
        if mirror && !board.sanitizer_modelled && !args.named() {
            continue;
        }
        // `live` waits for a host on its UART: its session (`live_tests`) runs it.
        if test.name == live::TEST {
            continue;
        }
        jobs.push(Job::Kernel {
            board: index,
            test: test.clone(),
            sanitized: None,
        });
    }
    if args.selects(DEMO) {
        jobs.push(Job::WithoutSemihosting { board: index });
    }
    // The sanitizer models a Cortex-A72's caches; its runs are made on the board it models.
    if !board.sanitizer_modelled || args.no_sanitize {
        return jobs;
    }
    for &test in selected
        .iter()
        .filter(|t| t.sanitized != [Sanitized::No; 2])
    {
        for ic_broadcast in [true, false] {
            let want = expected_sanitized(test, ic_broadcast);
            if want == Sanitized::No {
                continue;
            }
            let out = b
                .built
                .elf
                .with_file_name(format!("sanitizer-{}-{ic_broadcast}.txt", test.name));
            let options = sanitize::Options {
                ic_broadcast,
                out,
                idc: test.idc,
                dic: test.dic,
            };
            jobs.push(Job::Kernel {
                board: index,
                test: test.clone(),
                sanitized: Some((options, want)),
            });
        }
    }
    jobs
}

/// Runs one job to its verdict; an error starting it is its failure.
fn execute(job: &Job, boards: &[BoardBuild], plugin: Option<&PathBuf>) -> Done {
    let start = Instant::now();
    let (what, result) = match job {
        Job::Kernel {
            board,
            test,
            sanitized,
        } => {
            let b = &boards[*board];
            let what = describe(&b.board, test, sanitized.as_ref());
            let result = match (sanitized, plugin) {
                (Some(_), None) => Err(anyhow::anyhow!("the sanitizer plugin was not built")),
                (Some((o, want)), Some(p)) => one(b, test, Some((p, o.clone(), *want)), &what),
                (None, _) => one(b, test, None, &what),
            };
            (what, result)
        }
        Job::WithoutSemihosting { board } => {
            let b = &boards[*board];
            let what = format!(
                "demo on {} without semihosting (the real-board path)",
                b.board.name
            );
            let result = without_semihosting(b, &what);
            (what, result)
        }
    };
    match result {
        Ok(mut done) => {
            done.what = what;
            done
        }
        Err(e) => Done {
            verdict: Err(format!("{what}: {e:#}")),
            what,
            elapsed: start.elapsed(),
            details: String::new(),
            litmus: None,
        },
    }
}

/// The run's name in the report.
fn describe(
    board: &BoardInfo,
    test: &KernelTest,
    sanitized: Option<&(sanitize::Options, Sanitized)>,
) -> String {
    let mut what = format!(
        "{} on {} ({} cores)",
        test.name, board.name, board.default_cores
    );
    if let Some((o, want)) = sanitized {
        what.push_str(&format!(
            ", sanitized with ic-broadcast={}, expecting {}",
            if o.ic_broadcast { "on" } else { "off" },
            describe_expectation(*want)
        ));
        if o.idc || o.dic {
            what.push_str(&format!(
                ", idc={} dic={}",
                u8::from(o.idc),
                u8::from(o.dic)
            ));
        }
    }
    what
}

/// The path a real board takes: no semihosting, so no command line (the demo runs) and no exit
/// status; the kernel must say so and halt rather than fault.
fn without_semihosting(b: &BoardBuild, what: &str) -> Result<Done> {
    let run = Run {
        timeout: Duration::from_secs(120),
        semihosting: false,
        stop_when: Some(|r| matches!(r, Record::RunEnded { .. })),
        ..Run::new(&b.built.boot, b.board, None)
    };
    let outcome = run.execute(&b.symbols)?;
    let records: Vec<&Record> = outcome.lines.iter().filter_map(|l| l.record()).collect();
    let demo_passed = records
        .iter()
        .any(|r| matches!(r, Record::TestVerdict { test, passed: true } if test.as_str() == DEMO));
    // `RunEnded` is sent only when semihosting is missing: the kernel found that out and halted.
    let halted_ok = records
        .iter()
        .any(|r| matches!(r, Record::RunEnded { status } if *status == EXIT_PASS));
    let damaged = logs::first_bad_record(&outcome.lines);
    let mut details = String::new();
    let verdict = if demo_passed && halted_ok && damaged.is_none() {
        Ok(())
    } else {
        for line in outcome.lines.iter().rev().take(25).rev() {
            let _ = writeln!(details, "    {}", line.text);
        }
        Err(format!(
            "{what}: no records of the demo passing and the kernel halting with status 0{}",
            damaged.map(|d| format!(" ({d})")).unwrap_or_default()
        ))
    };
    Ok(Done {
        what: String::new(),
        verdict,
        elapsed: outcome.elapsed,
        details,
        litmus: None,
    })
}

/// Runs one kernel test, plain or sanitized, to its verdict.
fn one(
    b: &BoardBuild,
    test: &KernelTest,
    sanitized: Option<(&PathBuf, sanitize::Options, Sanitized)>,
    what: &str,
) -> Result<Done> {
    let (built, board) = (&b.built, &b.board);
    let cores = board.default_cores;
    let mut extra = match &sanitized {
        Some((_, _, Sanitized::Hazard)) => {
            vec![format!("{}={NEGATIVE_CONTROL_PUBS}", keys::PUBS)]
        }
        _ => vec![],
    };
    if test.name == DEMO {
        // The demo's full run is `cargo xtask qemu`; here a shorter one (every strategy still runs).
        extra.push(format!("{}={DEMO_SECS}", keys::SECS));
    }
    if let Some((_, o, _)) = &sanitized {
        let _ = std::fs::remove_file(&o.out);
    }
    let run = Run {
        elf: &built.boot,
        board: *board,
        cores,
        test: Some(test),
        extra: &extra,
        timeout: Duration::from_secs(u64::from(test.timeout_s)),
        live: false,
        gdb: false,
        sanitize: sanitized
            .as_ref()
            .map(|(p, o, _)| ((*p).clone(), o.clone())),
        semihosting: true,
        stop_when: None,
    };
    let outcome = run.execute(&b.symbols)?;
    let mut verdict = outcome.verdict(test.expect, what);
    if test.name == DEMO {
        verdict = verdict.and_then(|()| demo_verdict(&outcome.lines, what));
    }
    let mut details = String::new();
    let mut litmus = None;
    let mut hazards = Vec::new();
    if let (Some((_, _, want)), Some(text)) = (&sanitized, &outcome.sanitizer_output) {
        let report = sanitize::parse(text, &sanitize::SymbolMap::new(&built.bytes)?);
        verdict = verdict.and(sanitized_verdict(&report, *want, what));
        if matches!(want, Sanitized::Allowed | Sanitized::Forbidden) {
            let records = outcome.lines.iter().filter_map(|l| l.record());
            let judged = litmus::judge_run(records, text, *want);
            litmus = Some(judged.is_ok());
            match &judged {
                Ok(counts) => {
                    let _ = writeln!(details, "    litmus: agrees with the catalogue: {counts}");
                }
                Err(why) => {
                    let _ = writeln!(details, "    litmus: disagrees with the catalogue: {why}");
                }
            }
            verdict = verdict.and(judged.map(drop).map_err(|why| format!("{what}: {why}")));
        }
        if let Some(first) = report.hazards.first() {
            let _ = writeln!(
                details,
                "    sanitizer: {} hazards, e.g. {first}",
                report.hazards.len()
            );
        }
        hazards = report.hazards;
    }
    if verdict.is_err() {
        for line in outcome.lines.iter().rev().take(25).rev() {
            let _ = writeln!(details, "    {}", line.text);
        }
        for h in hazards.iter().take(5) {
            let _ = writeln!(details, "    sanitizer: {h}");
        }
        if !outcome.stderr.trim().is_empty() {
            let _ = writeln!(details, "    qemu: {}", outcome.stderr.trim());
        }
    }
    Ok(Done {
        what: String::new(),
        verdict,
        elapsed: outcome.elapsed,
        details,
        litmus,
    })
}

/// Progress: plain lines (CI, a pipe), or the same lines above a bar on a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    done: usize,
    start: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let terminal = std::io::stdout().is_terminal() && std::env::var_os("CI").is_none();
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} QEMU runs, {elapsed} elapsed, ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            start: Instant::now(),
        }
    }

    fn println(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text.trim_end()),
            None => println!("{}", text.trim_end()),
        }
    }

    /// Reports a finished run: `[k/N] PASS name (its time; elapsed, ETA)` and its details.
    fn finished(&mut self, done: &Done) {
        self.done += 1;
        let elapsed = self.start.elapsed();
        let left = self.total - self.done;
        let eta = elapsed.mul_f64(left as f64 / self.done as f64);
        let status = match &done.verdict {
            Ok(()) => format!("PASS {}", done.what),
            Err(why) => format!("FAIL {why}"),
        };
        self.println(&format!(
            "[{}/{}] {status} ({:.1} s; {} elapsed, ETA {})",
            self.done,
            self.total,
            done.elapsed.as_secs_f64(),
            clock(elapsed),
            clock(eta)
        ));
        if !done.details.is_empty() {
            self.println(&done.details);
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `m:ss`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// Runs `jobs` with at most `slots` host threads busy, the multi-threaded ones alone, and counts
/// each as it finishes.
fn run_jobs(
    jobs: Vec<Job>,
    boards: &[BoardBuild],
    plugin: Option<&PathBuf>,
    slots: usize,
    tally: &mut Tally,
) {
    let mut queue = jobs;
    // The runs that need every thread first, alone; then the rest side by side.
    queue.sort_by_key(|j| std::cmp::Reverse(j.threads(slots)));
    let mut queue: std::collections::VecDeque<Job> = queue.into();
    let mut progress = Progress::new(queue.len());
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Done)>();
        let (mut free, mut running) = (slots, 0usize);
        loop {
            while let Some(job) = queue.front() {
                let need = job.threads(slots).min(slots);
                if need > free {
                    break;
                }
                let job = queue.pop_front().expect("the queue has a front");
                free -= need;
                running += 1;
                let tx = tx.clone();
                scope.spawn(move || {
                    let done = execute(&job, boards, plugin);
                    let _ = tx.send((need, done));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((need, done)) = rx.recv() else {
                break;
            };
            free += need;
            running -= 1;
            progress.finished(&done);
            if let Some(agreed) = done.litmus {
                tally.litmus_total += 1;
                tally.litmus_agree += u64::from(agreed);
            }
            match done.verdict {
                Ok(()) => tally.passed += 1,
                Err(_) => {
                    tally.failed += 1;
                    tally.failures.push(done.what);
                }
            }
        }
    });
}

/// Live patching end to end (see `runner/live.rs`) on virt and, through the real board's path (no
/// semihosting), on rpi4: run with the kernel tests unless a `--test` filter leaves out `live`,
/// the kernel test it talks to.
fn live_tests(selected: &[BoardInfo], args: &TestArgs, tally: &mut Tally) {
    if !args.selects(live::TEST) {
        return;
    }
    for board in selected.iter().filter(|b| b.takes_live) {
        println!("== live patching over the UART on {}", board.name);
        record(live::e2e(board), tally);
    }
}

/// Counts and prints named results.
fn record(results: Vec<(String, Result<(), String>)>, tally: &mut Tally) {
    for (what, result) in results {
        match result {
            Ok(()) => {
                println!("PASS {what}");
                tally.passed += 1;
            }
            Err(why) => {
                println!("FAIL {what}: {why}");
                tally.failed += 1;
                tally.failures.push(what);
            }
        }
    }
}

/// The serial chainloader end to end on each selected Pi (see `runner/loader_e2e.rs`): run with the
/// kernel tests unless a `--test` filter leaves out `smp`, the test it chainloads.
fn chainload_tests(selected: &[BoardInfo], args: &TestArgs, tally: &mut Tally) {
    if !args.selects("smp") {
        return;
    }
    for board in selected.iter().filter(|b| b.serial_loader) {
        println!("== serial chainloader on {}", board.name);
        record(loader_e2e::run(board), tally);
    }
}

/// `cargo xtask test`.
pub fn command(args: &TestArgs) -> Result<bool> {
    let selected: Vec<BoardInfo> = if args.boards.is_empty() {
        board::ALL.to_vec()
    } else {
        args.boards.clone()
    };
    if args.list {
        // Building needs the Rust target, not QEMU.
        prereq::rust_target()?;
        let built = build_for(&selected[0])?;
        check_filters(args, &built.tests)?;
        for t in built.tests.iter().filter(|t| args.selects(&t.name)) {
            println!(
                "{:<24} expect {:?}, timeout {} s, at least {} cores, {:?} TCG",
                t.name, t.expect, t.timeout_s, t.min_cores, t.tcg
            );
        }
        return Ok(true);
    }
    prerequisites()?;
    // Test kernels embed the suite's own key and the development switch (`keys`).
    let pair = crate::keys::test_pair()?;
    crate::keys::embed(crate::keys::Embedded {
        public: Some(pair.public),
        development: true,
    })?;
    let mut tally = Tally::default();
    if !args.no_host {
        lints(&mut tally)?;
        host_tests(&mut tally)?;
        fuzz(&mut tally);
        litmus_files(&mut tally)?;
    }
    println!("== building the kernel for each board (cargo build --release, once per board)");
    let mut boards = Vec::new();
    for board in &selected {
        let t0 = Instant::now();
        println!("building the kernel for {} ...", board.name);
        match build_for(board).and_then(|built| {
            let symbols = Symbols::new(&built.bytes)?;
            Ok(BoardBuild {
                board: *board,
                built,
                symbols,
            })
        }) {
            Ok(b) => {
                println!(
                    "built the kernel for {} ({:.1} s)",
                    board.name,
                    t0.elapsed().as_secs_f64()
                );
                boards.push(b);
            }
            Err(e) => {
                println!("FAIL kernel tests on {}: {e:#}", board.name);
                tally.failed += 1;
                tally
                    .failures
                    .push(format!("kernel tests on {}", board.name));
            }
        }
    }
    if let Some(b) = boards.first() {
        check_filters(args, &b.built.tests)?;
        if !args.no_host {
            patches(b, &mut tally)?;
        }
    }
    let jobs: Vec<Job> = boards
        .iter()
        .enumerate()
        .flat_map(|(i, b)| plan(i, b, args))
        .collect();
    let needs_plugin = jobs.iter().any(|j| {
        matches!(
            j,
            Job::Kernel {
                sanitized: Some(_),
                ..
            }
        )
    });
    let plugin = if needs_plugin {
        println!("building the sanitizer plugin (cargo build --release) ...");
        match sanitize::build_plugin() {
            Ok(p) => Some(p),
            Err(e) => {
                println!("FAIL the sanitizer plugin: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let slots = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    println!(
        "== {} QEMU runs on {}, up to {slots} at once (a multi-threaded TCG run alone); \
         sanitized runs that must be flagged publish pubs={NEGATIVE_CONTROL_PUBS}",
        jobs.len(),
        boards
            .iter()
            .map(|b| b.board.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    run_jobs(jobs, &boards, plugin.as_ref(), slots, &mut tally);
    chainload_tests(&selected, args, &mut tally);
    live_tests(&selected, args, &mut tally);
    if tally.litmus_total > 0 {
        println!(
            "litmus mirrors: {} of {} agree with the catalogue",
            tally.litmus_agree, tally.litmus_total
        );
    }
    if !tally.failures.is_empty() {
        println!("failed: {}", tally.failures.join("; "));
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(tally.failed == 0)
}

/// Every `--test` pattern must select a test: a typo is an error listing the tests, not an
/// empty run that passes.
fn check_filters(args: &TestArgs, tests: &[KernelTest]) -> Result<()> {
    for p in &args.tests {
        if !tests.iter().any(|t| matches(p, &t.name)) {
            let names: Vec<_> = tests.iter().map(|t| t.name.as_str()).collect();
            bail!(
                "no kernel test matches '{p}'; the kernel tests are: {}",
                names.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{count, matches};

    #[test]
    fn filters_take_a_substring_or_a_glob() {
        assert!(matches("ftr", "patch-ftr-multi"));
        assert!(matches("patch-ftr", "patch-ftr"));
        assert!(!matches("ftr-x", "patch-ftr-multi"));
        assert!(matches("patch-*-multi", "patch-ftr-multi"));
        assert!(!matches("patch-*", "litmus-mp"));
        assert!(matches("litmus-??", "litmus-mp"));
        assert!(!matches("litmus-?", "litmus-mp"));
        assert!(matches("*", "smp"));
    }

    #[test]
    fn reads_cargo_test_result_lines() {
        let l = "ok. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count(l, " passed"), 12);
        assert_eq!(count(l, " failed"), 3);
    }
}
