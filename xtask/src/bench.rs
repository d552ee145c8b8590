//! `cargo xtask bench`: what each strategy costs the running loops, side by side, in one run.
//!
//! The figures are properties of Graft, counted in instructions and iterations by the kernel
//! itself under `-icount shift=0,sleep=off` (the PMU's retired-instruction counter, and the
//! consumers' own call counts): entry instructions, the extra instructions and IRQ exceptions a
//! publication costs each consumer, the producer's own instructions per publication (its waits
//! excluded) and per extra core, and how many calls a consumer can still make to the old version
//! after `publish` returns. Beside them, informative only: virtual-time latency and throughput,
//! which under round-robin `-icount` mostly measure when QEMU switches vCPUs, and the
//! sanitizer's wall-clock slowdown.

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

/// Edits the edit-to-running figure is the median of.
const EDIT_RUNS: u32 = 3;

/// The edit-to-running run with the median total, as a line for people and its JSON: the parts
/// are that run's own, so they add up to its total (with the host's own time between them).
fn edit_figure(runs: &[crate::runner::live::EditToRunning]) -> Option<(String, Value)> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|r| r.total);
    let m = *sorted.get(sorted.len() / 2)?;
    let p = m.phases;
    let s = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    let parts = [
        ("compile", p.compile),
        ("link", p.link),
        ("stage", p.stage),
        ("transfer", p.transfer),
        ("verify", p.verify),
        ("publish", p.publish),
        ("running", m.running),
    ];
    let mut line = format!(
        "edit to running (wall time on this host, host-dependent; virt under QEMU -icount; \
         patches/pi-antiwindup with a new version each run, so one recompile): {:.3} s, the \
         median of {} =",
        s(m.total),
        runs.len()
    );
    let mut json = Map::new();
    for (i, (name, d)) in parts.iter().enumerate() {
        line += &format!("{} {name} {:.3}", if i == 0 { "" } else { " +" }, s(*d));
        json.insert(name.to_string(), json!(s(*d)));
    }
    json.insert("total".into(), json!(s(m.total)));
    json.insert("runs".into(), json!(runs.len()));
    json.insert(
        "mode".into(),
        json!("wall time, host-dependent: cargo xtask patch send's steps on virt under QEMU -icount; running = from the kernel's answer until every loop reported the new law"),
    );
    Some((line, Value::Object(json)))
}

/// Publications of the sanitizer-slowdown run (each of its two runs takes seconds).
const SLOWDOWN_PUBS: u64 = 20_000;

/// `cargo xtask bench` options.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a plot (entry cost, disturbance per strategy, producer cost against cores) as SVG
    /// here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Core counts for the scaling runs on virt-gicv3.
    #[arg(long, value_delimiter = ',', default_values_t = vec![2u32, 4, 8, 16, 32])]
    pub scaling: Vec<u32>,
    /// Measure only the edit-to-running figure (patch send to every loop running the patch).
    #[arg(long)]
    pub edit_only: bool,
}

/// One strategy's figures at one core count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scale {
    /// The producer's own instructions per publication.
    pub producer_insns: u64,
    /// Virtual nanoseconds until every consumer ran the publication (informative).
    pub latency_ns: u64,
}

/// `x / y` to one decimal.
fn ratio(x: u64, y: u64) -> f64 {
    (x as f64 / y.max(1) as f64 * 10.0).round() / 10.0
}

/// The least-squares slope of `points` (instructions per extra core), if two core counts differ.
fn slope(points: &BTreeMap<u32, Scale>) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (&c, s)| {
        (sx + f64::from(c), sy + s.producer_insns as f64)
    });
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (&c, s)| {
        let dx = f64::from(c) - mx;
        (num + dx * (s.producer_insns as f64 - my), den + dx * dx)
    });
    (den > 0.0).then(|| (num / den * 10.0).round() / 10.0)
}

/// The figures of `strategy` at `cores` in `scaling`, made if new.
fn at(
    scaling: &mut BTreeMap<String, BTreeMap<u32, Scale>>,
    strategy: protocol::record::Name,
    cores: u32,
) -> &mut Scale {
    scaling
        .entry(strategy.to_string())
        .or_default()
        .entry(cores)
        .or_default()
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
    // The edit-to-running figure signs its patches with the suite's own key.
    crate::keys::embed(crate::keys::Embedded {
        public: Some(crate::keys::test_pair()?.public),
        development: false,
    })?;
    if args.edit_only {
        let edits = crate::runner::live::edit_to_running(&board::info(Board::Virt), EDIT_RUNS)?;
        let edit = edit_figure(&edits).context("no edit-to-running run")?;
        println!("{}", edit.0);
        if let Some(path) = &args.json {
            let report = json!({ "edit_to_running_s": edit.1 });
            std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(true);
    }
    let virt = board::info(Board::Virt);
    let gicv3 = board::info(Board::VirtGicv3);
    for &n in &args.scaling {
        gicv3.cores(Some(n))?;
    }
    let built = build_for(&virt)?;
    let symbols = Symbols::new(&built.bytes)?;
    println!(
        "QEMU -icount shift=0,sleep=off, Cortex-A72 model: instructions and iterations are counted by the kernel; *_ns figures are virtual time (informative)."
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
    let mut informative: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in records(&lines) {
        match *r {
            Record::BenchCost {
                strategy,
                cores,
                publications,
                disturb_insns,
                disturb_max_insns,
                exception_entries,
                producer_insns,
                latency_iterations,
            } => {
                // Per publication and per consumer.
                let per = u64::from(publications) * u64::from(cores.saturating_sub(1));
                strategies.insert(
                    strategy.to_string(),
                    json!({
                        "entry_insns": entry.get(strategy.as_str()).copied().unwrap_or(0),
                        "disturb_insns": {
                            "total": ratio(disturb_insns, per),
                            // Not counted yet: the PMU under QEMU has no barrier or
                            // maintenance events (null, never a made-up figure).
                            "barriers": Value::Null,
                            "maintenance": Value::Null,
                            "exception_entries": ratio(exception_entries, per),
                        },
                        "disturb_max_insns": disturb_max_insns,
                        "producer_insns": producer_insns,
                        "latency_iterations": latency_iterations,
                    }),
                );
            }
            Record::BenchResult {
                strategy,
                latency_ns,
                throughput_per_s,
                ..
            } => {
                informative.insert(strategy.to_string(), (latency_ns, throughput_per_s));
            }
            _ => {}
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
    let mut scaling: BTreeMap<String, BTreeMap<u32, Scale>> = BTreeMap::new();
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
                Record::BenchCost {
                    strategy,
                    producer_insns,
                    ..
                } => at(&mut scaling, strategy, n).producer_insns = producer_insns,
                Record::BenchResult {
                    strategy,
                    latency_ns,
                    ..
                } => at(&mut scaling, strategy, n).latency_ns = latency_ns,
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

    for (name, figures) in strategies.iter_mut() {
        let per_core = scaling.get(name).and_then(slope);
        figures["producer_insns_per_extra_core"] = json!(per_core);
        if let Some((latency_ns, throughput_per_s)) = informative.get(name) {
            figures["informative"] = json!({
                "latency_ns": latency_ns,
                "throughput_per_s": throughput_per_s,
            });
        }
    }
    print_table(
        direct,
        &order,
        &strategies,
        &scaling,
        &args.scaling,
        (slowdown, plain, sanitized),
    );
    let per_consumer = match (
        publish_cost.first_key_value(),
        publish_cost.last_key_value(),
    ) {
        (Some((&c0, &i0)), Some((&c1, &i1))) if c1 > c0 => {
            Some((i1.saturating_sub(i0)) as f64 / (c1 - c0) as f64)
        }
        _ => None,
    };
    if let Some(per_consumer) = per_consumer {
        println!(
            "ftr-multi redirect cost: {per_consumer:.1} instructions per extra consumer ({publish_cost:?} by consumers)"
        );
    }
    let json_scaling: Map<String, Value> = scaling
        .iter()
        .map(|(name, rows)| {
            let per: Map<String, Value> = rows
                .iter()
                .map(|(n, s)| {
                    (
                        n.to_string(),
                        json!({"producer_insns": s.producer_insns, "latency_ns": s.latency_ns}),
                    )
                })
                .collect();
            (name.clone(), Value::Object(per))
        })
        .collect();
    let edits = crate::runner::live::edit_to_running(&virt, EDIT_RUNS)?;
    let edit = edit_figure(&edits).context("no edit-to-running run")?;
    println!("{}", edit.0);
    let report = json!({
        "edit_to_running_s": edit.1,
        "strategies": strategies,
        "scaling": json_scaling,
        "direct_call_insns": direct,
        "ftr_multi_publish_insns_per_consumer": per_consumer.map(|v| (v * 10.0).round() / 10.0),
        "ftr_multi_publish_insns": publish_cost.iter().map(|(c, i)| (c.to_string(), json!(i))).collect::<Map<String, Value>>(),
        "sanitizer_slowdown": (slowdown * 100.0).round() / 100.0,
        "mode": "QEMU -icount shift=0,sleep=off, Cortex-A72 model: *_insns and *_iterations counted by the kernel (PMU retired instructions, consumer calls); informative.*_ns are virtual time; sanitizer_slowdown is wall time, round-robin TCG",
        "units": {
            "disturb_insns": "mean extra instructions per publication per consumer (IRQ handlers included); exception_entries: IRQ exceptions per publication per consumer",
            "producer_insns": "fewest instructions the producer ran for one publication at 4 cores, its waits for other cores excluded",
            "producer_insns_per_extra_core": "least-squares slope of producer_insns over the scaling runs' core counts (virt-gicv3)",
            "latency_iterations": "most calls one consumer made to an older version after publish returned",
        },
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
    scaling: &BTreeMap<String, BTreeMap<u32, Scale>>,
    counts: &[u32],
    (slowdown, plain, sanitized): (f64, Duration, Duration),
) {
    println!();
    println!(
        "{:<20} {:>6} {:>14} {:>10} {:>9} {:>12} {:>8}   {:>11} {:>11}",
        "strategy",
        "entry",
        "disturb_insns",
        "exceptions",
        "producer",
        "per_ext_core",
        "lat_iter",
        "latency_ns*",
        "per_s*"
    );
    for name in order {
        let Some(s) = strategies.get(name) else {
            continue;
        };
        let num = |v: &Value| match v {
            Value::Null => "-".to_string(),
            v => v.to_string(),
        };
        let at = |path: &[&str]| {
            let mut v = s;
            for k in path {
                v = v.get(*k).unwrap_or(&Value::Null);
            }
            num(v)
        };
        println!(
            "{:<20} {:>6} {:>14} {:>10} {:>9} {:>12} {:>8}   {:>11} {:>11}",
            name,
            at(&["entry_insns"]),
            at(&["disturb_insns", "total"]),
            at(&["disturb_insns", "exception_entries"]),
            at(&["producer_insns"]),
            at(&["producer_insns_per_extra_core"]),
            at(&["latency_iterations"]),
            at(&["informative", "latency_ns"]),
            at(&["informative", "throughput_per_s"]),
        );
    }
    println!("{:<20} {:>6}", "direct call", direct);
    println!(
        "(entry, disturb_insns, producer: instructions; exceptions: IRQ entries per publication per consumer; lat_iter: calls to an old version after publish returned; * virtual time, host-dependent)"
    );
    println!();
    print!("{:<20}", "producer_insns by cores");
    for n in counts {
        print!(" {n:>7}");
    }
    println!();
    for name in order {
        print!("{name:<20}");
        for n in counts {
            match scaling.get(name).and_then(|r| r.get(n)) {
                Some(s) => print!(" {:>7}", s.producer_insns),
                None => print!(" {:>7}", "-"),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_extra_core_is_the_least_squares_slope() {
        let at = |pairs: &[(u32, u64)]| -> BTreeMap<u32, Scale> {
            pairs
                .iter()
                .map(|&(c, p)| {
                    (
                        c,
                        Scale {
                            producer_insns: p,
                            latency_ns: 0,
                        },
                    )
                })
                .collect()
        };
        assert_eq!(
            slope(&at(&[(2, 150), (4, 170), (8, 210), (32, 450)])),
            Some(10.0)
        );
        // Noise around a line: the fit, not the end points.
        assert_eq!(slope(&at(&[(2, 100), (4, 130), (8, 140)])), Some(6.1));
        assert_eq!(slope(&at(&[(4, 170)])), None, "one core count: no slope");
        assert_eq!(ratio(61_800, 600), 103.0);
        assert_eq!(ratio(5, 0), 5.0, "no consumers: no division by zero");
    }
}
