//! `cargo xtask test`: host unit tests, then every kernel test on every board configuration.
//!
//! Ends with exactly one line `N passed, N failed` and fails when anything failed. A kernel test
//! that hangs is killed at its time limit and fails by name; the others still run.

use crate::runner::board::{self, BoardInfo};
use crate::runner::build::{self, Built, build_for, find_test, prerequisites};
use crate::runner::elf::KernelTest;
use crate::runner::logs::{self, Symbols};
use crate::runner::qemu::Run;
use crate::runner::verdict::{
    demo_verdict, describe_expectation, expected_sanitized, sanitized_verdict,
};
use crate::runner::{lint, live, loader_e2e, sanitize};
use anyhow::{Context, Result};
use clap::Args;
use protocol::Record;
use protocol::cmdline::keys;
use protocol::testinfo::{DEMO, EXIT_PASS, Sanitized};
use std::process::{Command, Stdio};
use std::time::Duration;

// Declared here rather than in main.rs: the catalogue mirrors' judgement is part of the test run.
#[path = "litmus.rs"]
mod litmus;

/// `cargo xtask test` options.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// Only these board configurations (default: all).
    #[arg(long = "board", value_enum)]
    pub boards: Vec<BoardInfo>,
    /// Only kernel tests with these names (default: all).
    #[arg(long = "test")]
    pub tests: Vec<String>,
    /// Skip the lints and host unit tests.
    #[arg(long)]
    pub no_host: bool,
    /// Skip the runs under the coherence sanitizer.
    #[arg(long)]
    pub no_sanitize: bool,
    /// List the kernel tests and exit.
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
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running cargo test")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    let (mut passed, mut failed) = (0, 0);
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += count(rest, " passed");
            failed += count(rest, " failed");
        }
    }
    if !out.status.success() && failed == 0 {
        // It did not even build: show why and count it as one failure.
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
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

fn kernel_tests(board: &BoardInfo, args: &TestArgs, tally: &mut Tally) -> Result<()> {
    println!("== kernel tests on {}", board.name);
    let built = build_for(board)?;
    let tests = &built.tests;
    for name in &args.tests {
        find_test(tests, name)?;
    }
    let symbols = Symbols::new(&built.bytes)?;
    let selected: Vec<&KernelTest> = tests
        .iter()
        .filter(|t| args.tests.is_empty() || args.tests.contains(&t.name))
        .collect();
    for test in &selected {
        // A catalogue mirror exists for its sanitized judgement, made on virt; its plain run
        // elsewhere would only repeat virt's (asked for by name, it runs anyway).
        let mirror = test
            .sanitized
            .iter()
            .any(|s| matches!(s, Sanitized::Allowed | Sanitized::Forbidden));
        if mirror && !board.sanitizer_modelled && args.tests.is_empty() {
            continue;
        }
        // `live` waits for a host on its UART: its session (`live_tests`) runs it.
        if test.name == live::TEST {
            continue;
        }
        one(&built, board, test, &symbols, None, tally)?;
    }
    if args.tests.is_empty() || args.tests.iter().any(|t| t == DEMO) {
        without_semihosting(board, tally)?;
    }
    // The sanitizer models a Cortex-A72's caches; its runs are made on the board it models.
    if !board.sanitizer_modelled || args.no_sanitize {
        return Ok(());
    }
    let sanitized: Vec<_> = selected
        .iter()
        .filter(|t| t.sanitized != [Sanitized::No; 2])
        .collect();
    if sanitized.is_empty() {
        return Ok(());
    }
    println!(
        "== kernel tests on {} under the coherence sanitizer (each test's TCG mode; runs that \
         must be flagged publish pubs={NEGATIVE_CONTROL_PUBS})",
        board.name
    );
    let plugin = sanitize::build_plugin()?;
    for test in sanitized {
        for ic_broadcast in [true, false] {
            let want = expected_sanitized(test, ic_broadcast);
            if want != Sanitized::No {
                let out = built
                    .elf
                    .with_file_name(format!("sanitizer-{}-{ic_broadcast}.txt", test.name));
                let _ = std::fs::remove_file(&out);
                let options = sanitize::Options {
                    ic_broadcast,
                    out,
                    idc: test.idc,
                    dic: test.dic,
                };
                one(
                    &built,
                    board,
                    test,
                    &symbols,
                    Some((&plugin, options, want)),
                    tally,
                )?;
            }
        }
    }
    Ok(())
}

/// The path a real board takes: no semihosting, so no command line (the demo runs) and no exit
/// status; the kernel must say so and halt rather than fault.
fn without_semihosting(board: &BoardInfo, tally: &mut Tally) -> Result<()> {
    let built = build_for(board)?;
    let symbols = Symbols::new(&built.bytes)?;
    let what = format!(
        "demo on {} without semihosting (the real-board path)",
        board.name
    );
    let run = Run {
        timeout: Duration::from_secs(120),
        semihosting: false,
        stop_when: Some(|r| matches!(r, Record::RunEnded { .. })),
        ..Run::new(&built.boot, *board, None)
    };
    let outcome = run.execute(&symbols)?;
    let records: Vec<&Record> = outcome.lines.iter().filter_map(|l| l.record()).collect();
    let demo_passed = records
        .iter()
        .any(|r| matches!(r, Record::TestVerdict { test, passed: true } if test.as_str() == DEMO));
    // `RunEnded` is sent only when semihosting is missing: the kernel found that out and halted.
    let halted_ok = records
        .iter()
        .any(|r| matches!(r, Record::RunEnded { status } if *status == EXIT_PASS));
    let damaged = logs::first_bad_record(&outcome.lines);
    if demo_passed && halted_ok && damaged.is_none() {
        println!("PASS {what} ({:.1} s)", outcome.elapsed.as_secs_f64());
        tally.passed += 1;
    } else {
        println!(
            "FAIL {what}: no records of the demo passing and the kernel halting with status 0{}",
            damaged.map(|d| format!(" ({d})")).unwrap_or_default()
        );
        for line in outcome.lines.iter().rev().take(25).rev() {
            println!("    {}", line.text);
        }
        tally.failed += 1;
        tally.failures.push(what);
    }
    Ok(())
}

/// Runs one kernel test, plain or sanitized, and counts it.
fn one(
    built: &Built,
    board: &BoardInfo,
    test: &KernelTest,
    symbols: &Symbols,
    sanitized: Option<(&std::path::PathBuf, sanitize::Options, Sanitized)>,
    tally: &mut Tally,
) -> Result<()> {
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
    let mut what = format!("{} on {} ({cores} cores)", test.name, board.name);
    if let Some((_, o, want)) = &sanitized {
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
    let outcome = run.execute(symbols)?;
    let mut verdict = outcome.verdict(test.expect, &what);
    if test.name == DEMO {
        verdict = verdict.and_then(|()| demo_verdict(&outcome.lines, &what));
    }
    let mut hazards = Vec::new();
    if let (Some((_, _, want)), Some(text)) = (&sanitized, &outcome.sanitizer_output) {
        let report = sanitize::parse(text, &sanitize::SymbolMap::new(&built.bytes)?);
        verdict = verdict.and(sanitized_verdict(&report, *want, &what));
        if matches!(want, Sanitized::Allowed | Sanitized::Forbidden) {
            let records = outcome.lines.iter().filter_map(|l| l.record());
            let judged = litmus::judge_run(records, text, *want);
            tally.litmus_total += 1;
            match &judged {
                Ok(counts) => {
                    tally.litmus_agree += 1;
                    println!("    litmus: agrees with the catalogue: {counts}");
                }
                Err(why) => println!("    litmus: disagrees with the catalogue: {why}"),
            }
            verdict = verdict.and(judged.map(drop).map_err(|why| format!("{what}: {why}")));
        }
        if let Some(first) = report.hazards.first() {
            println!(
                "    sanitizer: {} hazards, e.g. {first}",
                report.hazards.len()
            );
        }
        hazards = report.hazards;
    }
    match verdict {
        Ok(()) => {
            println!("PASS {what} ({:.1} s)", outcome.elapsed.as_secs_f64());
            tally.passed += 1;
        }
        Err(why) => {
            println!("FAIL {why}");
            for line in outcome.lines.iter().rev().take(25).rev() {
                println!("    {}", line.text);
            }
            for h in hazards.iter().take(5) {
                println!("    sanitizer: {h}");
            }
            if !outcome.stderr.trim().is_empty() {
                println!("    qemu: {}", outcome.stderr.trim());
            }
            tally.failed += 1;
            tally.failures.push(what);
        }
    }
    Ok(())
}

/// Live patching end to end (see `runner/live.rs`) on virt and, through the real board's path (no
/// semihosting), on rpi4: run with the kernel tests unless a `--test` filter leaves out `live`,
/// the kernel test it talks to.
fn live_tests(selected: &[BoardInfo], args: &TestArgs, tally: &mut Tally) {
    if !args.tests.is_empty() && !args.tests.iter().any(|t| t == live::TEST) {
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
    if !args.tests.is_empty() && !args.tests.iter().any(|t| t == "smp") {
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
    prerequisites()?;
    if args.list {
        for t in build_for(&selected[0])?.tests {
            println!(
                "{:<24} expect {:?}, timeout {} s, at least {} cores",
                t.name, t.expect, t.timeout_s, t.min_cores
            );
        }
        return Ok(true);
    }
    let mut tally = Tally::default();
    if !args.no_host {
        lints(&mut tally)?;
        host_tests(&mut tally)?;
    }
    for board in &selected {
        if let Err(e) = kernel_tests(board, args, &mut tally) {
            println!("FAIL kernel tests on {}: {e:#}", board.name);
            tally.failed += 1;
            tally
                .failures
                .push(format!("kernel tests on {}", board.name));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn reads_cargo_test_result_lines() {
        let l = "ok. 12 passed; 3 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count(l, " passed"), 12);
        assert_eq!(count(l, " failed"), 3);
    }
}
