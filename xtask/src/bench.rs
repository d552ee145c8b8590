//! `cargo xtask bench`: what each strategy costs the running loops, side by side, in one run.
//!
//! Every figure comes from kernel runs under `-icount shift=0,sleep=off`, where one instruction
//! is one virtual nanosecond: the numbers are virtual time, deterministic, and comparable only
//! with each other (as ratios), not with a real core. The sanitizer's slowdown is the one
//! wall-clock figure, plain and sanitized runs of the same test in the same mode, back to back.

use crate::runner::board::{self, BoardInfo};
use crate::runner::build::{Built, build_for, find_test, prerequisites};
use crate::runner::logs::{Line, Symbols};
use crate::runner::qemu::Run;
use crate::runner::{sanitize, verdict};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use protocol::cmdline::keys;
use protocol::{Board, Record};

mod svg;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Publications of the sanitizer-slowdown run (each of its two runs takes seconds).
const SLOWDOWN_PUBS: u64 = 20_000;

/// `cargo xtask bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a plot (disturbance per strategy, latency against cores) as SVG here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Core counts for the scaling runs on virt-gicv3.
    #[arg(long, value_delimiter = ',', default_values_t = vec![2u32, 4, 8, 16, 32])]
    pub scaling: Vec<u32>,
}

/// The records a run sent (its verdict already failed on a damaged one).
fn records(lines: &[Line]) -> impl Iterator<Item = &Record> {
    lines.iter().filter_map(Line::record)
}

fn run(
    built: &Built,
    board: BoardInfo,
    cores: u32,
    test: &str,
    symbols: &Symbols,
    sanitize: Option<(PathBuf, sanitize::Options)>,
    extra: &[String],
) -> Result<(Vec<Line>, Duration)> {
    let test = find_test(&built.tests, test)?;
    let run = Run {
        elf: &built.boot,
        board,
        cores,
        test: Some(test),
        extra,
        timeout: Duration::from_secs(u64::from(test.timeout_s)),
        live: false,
        gdb: false,
        sanitize,
        semihosting: true,
        stop_when: None,
    };
    let what = format!("{} on {} ({cores} cores)", test.name, board.name);
    let outcome = run.execute(symbols)?;
    if let Err(why) = outcome.verdict(test.expect, &what) {
        for l in outcome.lines.iter().rev().take(20).rev() {
            eprintln!("    {}", l.text);
        }
        bail!("{why}");
    }
    Ok((outcome.lines, outcome.elapsed))
}

/// `cargo xtask bench`.
pub fn command(args: &BenchArgs) -> Result<bool> {
    prerequisites()?;
    let virt = board::info(Board::Virt);
    let gicv3 = board::info(Board::VirtGicv3);
    for &n in &args.scaling {
        gicv3.cores(Some(n))?;
    }
    let built = build_for(&virt)?;
    let symbols = Symbols::new(&built.bytes)?;
    println!(
        "All times are virtual nanoseconds: QEMU -icount shift=0,sleep=off (1 instruction = 1 ns), Cortex-A72 model."
    );

    let (lines, _) = run(&built, virt, 4, "bench-entry", &symbols, None, &[])?;
    let direct = records(&lines)
        .find_map(|r| match *r {
            Record::BenchDirect { insns } => Some(insns),
            _ => None,
        })
        .context("bench-entry sent no direct-call figure")?;
    let entry: BTreeMap<String, u64> = records(&lines)
        .filter_map(|r| match *r {
            Record::BenchEntry { strategy, insns } => Some((strategy.to_string(), insns)),
            _ => None,
        })
        .collect();

    let (lines, _) = run(&built, virt, 4, "bench-strategy", &symbols, None, &[])?;
    // The kernel names its strategies; every one must report below.
    let order = verdict::announced_strategies(&lines, "bench-strategy").map_err(|e| anyhow!(e))?;
    let mut strategies = Map::new();
    for r in records(&lines) {
        if let Record::BenchResult {
            strategy,
            disturb_max_ns,
            disturb_mean_ns,
            latency_ns,
            throughput_per_s,
            ..
        } = *r
        {
            strategies.insert(
                strategy.to_string(),
                json!({
                    "entry_insns": entry.get(strategy.as_str()).copied().unwrap_or(0),
                    "disturb_max_ns": disturb_max_ns,
                    "disturb_mean_ns": disturb_mean_ns,
                    "latency_ns": latency_ns,
                    "throughput_per_s": throughput_per_s,
                }),
            );
        }
    }
    if let Some(missing) = order.iter().find(|s| !strategies.contains_key(s.as_str())) {
        bail!("bench-strategy sent no figures for {missing}");
    }
    if let Some(missing) = order.iter().find(|s| !entry.contains_key(s.as_str())) {
        bail!("bench-entry sent no entry figure for {missing}");
    }

    let gic_built = build_for(&gicv3)?;
    let gic_symbols = Symbols::new(&gic_built.bytes)?;
    let mut scaling: BTreeMap<String, BTreeMap<u32, (u64, u64, u64)>> = BTreeMap::new();
    // Instructions the publisher spends on one ftr-multi publication, by consumer count.
    let mut publish_cost: BTreeMap<u64, u64> = BTreeMap::new();
    for &n in &args.scaling {
        println!("scaling: {n} cores on virt-gicv3 ...");
        let (lines, _) = run(
            &gic_built,
            gicv3,
            n,
            "bench-strategy",
            &gic_symbols,
            None,
            &[],
        )?;
        for r in records(&lines) {
            match *r {
                Record::BenchPublish {
                    consumers, insns, ..
                } => {
                    publish_cost.insert(u64::from(consumers), insns);
                }
                Record::BenchResult {
                    strategy,
                    latency_ns,
                    disturb_max_ns,
                    throughput_per_s,
                    ..
                } => {
                    let row = (latency_ns, disturb_max_ns, throughput_per_s);
                    scaling
                        .entry(strategy.to_string())
                        .or_default()
                        .insert(n, row);
                }
                _ => {}
            }
        }
    }

    // The sanitizer's cost: the same stress test, plain and sanitized, both in the test's own
    // round-robin TCG mode (as `cargo xtask test` runs them).
    let plugin = sanitize::build_plugin()?;
    let pubs = vec![format!("{}={SLOWDOWN_PUBS}", keys::PUBS)];
    let plain_test = find_test(&built.tests, "patch-ipi")?;
    let plain = {
        let run = Run {
            elf: &built.boot,
            board: virt,
            cores: 4,
            test: Some(plain_test),
            extra: &pubs,
            timeout: Duration::from_secs(600),
            live: false,
            gdb: false,
            sanitize: None,
            semihosting: true,
            stop_when: None,
        };
        run.execute(&symbols)?.elapsed
    };
    let out = built.elf.with_file_name("sanitizer-bench.txt");
    let options = sanitize::Options {
        ic_broadcast: true,
        out,
        idc: false,
        dic: false,
    };
    let (_, sanitized) = run(
        &built,
        virt,
        4,
        "patch-ipi",
        &symbols,
        Some((plugin, options)),
        &pubs,
    )?;
    let slowdown = sanitized.as_secs_f64() / plain.as_secs_f64().max(1e-9);

    print_table(
        direct,
        &order,
        &strategies,
        &scaling,
        &args.scaling,
        (slowdown, plain, sanitized),
    );
    let per_core = match (
        publish_cost.first_key_value(),
        publish_cost.last_key_value(),
    ) {
        (Some((&c0, &i0)), Some((&c1, &i1))) if c1 > c0 => {
            Some((i1.saturating_sub(i0)) as f64 / (c1 - c0) as f64)
        }
        _ => None,
    };
    if let Some(per_core) = per_core {
        println!(
            "ftr-multi publication cost: {per_core:.1} instructions per extra consumer ({publish_cost:?} by consumers)"
        );
    }
    let json_scaling: Map<String, Value> = scaling
        .iter()
        .map(|(name, rows)| {
            let per: Map<String, Value> = rows
                .iter()
                .map(|(n, (lat, dist, _))| {
                    (
                        n.to_string(),
                        json!({"latency_ns": lat, "disturb_max_ns": dist}),
                    )
                })
                .collect();
            (name.clone(), Value::Object(per))
        })
        .collect();
    let report = json!({
        "strategies": strategies,
        "scaling": json_scaling,
        "direct_call_insns": direct,
        "ftr_multi_publish_insns_per_consumer": per_core.map(|v| (v * 10.0).round() / 10.0),
        "ftr_multi_publish_insns": publish_cost.iter().map(|(c, i)| (c.to_string(), json!(i))).collect::<Map<String, Value>>(),
        "sanitizer_slowdown": (slowdown * 100.0).round() / 100.0,
        "mode": "QEMU -icount shift=0,sleep=off: virtual nanoseconds (sanitizer_slowdown: wall time, round-robin TCG)",
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg::render(&order, &strategies, direct, &scaling))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(true)
}

fn print_table(
    direct: u64,
    order: &[String],
    strategies: &Map<String, Value>,
    scaling: &BTreeMap<String, BTreeMap<u32, (u64, u64, u64)>>,
    counts: &[u32],
    (slowdown, plain, sanitized): (f64, Duration, Duration),
) {
    println!();
    println!(
        "{:<20} {:>11} {:>15} {:>16} {:>11} {:>17}",
        "strategy",
        "entry_insns",
        "disturb_max_ns",
        "disturb_mean_ns",
        "latency_ns",
        "throughput_per_s"
    );
    for name in order {
        let Some(s) = strategies.get(name) else {
            continue;
        };
        let g = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        println!(
            "{:<20} {:>11} {:>15} {:>16} {:>11} {:>17}",
            name,
            g("entry_insns"),
            g("disturb_max_ns"),
            g("disturb_mean_ns"),
            g("latency_ns"),
            g("throughput_per_s")
        );
    }
    println!("{:<20} {:>11}", "direct call", direct);
    println!();
    print!("{:<20}", "latency_ns by cores");
    for n in counts {
        print!(" {n:>9}");
    }
    println!();
    for name in order {
        print!("{name:<20}");
        for n in counts {
            let v = scaling.get(name).and_then(|r| r.get(n)).map_or(0, |r| r.0);
            print!(" {v:>9}");
        }
        println!();
    }
    println!();
    println!(
        "sanitizer slowdown: {slowdown:.2}x wall time (patch-ipi, {SLOWDOWN_PUBS} publications, round-robin TCG: {:.1} s plain, {:.1} s sanitized)",
        plain.as_secs_f64(),
        sanitized.as_secs_f64()
    );
}
