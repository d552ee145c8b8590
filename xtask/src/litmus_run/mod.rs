//! `cargo xtask litmus`: herd7 AArch64 litmus tests run as bare-metal programs under QEMU.
//!
//! Each test is parsed ([`parser`]), turned into a program that runs thread `Pn` on core `n` for
//! many iterations ([`program`]), assembled with the Rust toolchain and run on QEMU `virt`
//! ([`run`]). The output follows litmus7's: a histogram of final states, `Positive`/`Negative`
//! counts and an `Observation` line. With `--sanitize` the run is under the coherence sanitizer
//! and each test gets a verdict against the catalogue's ([`verdict`]). What the runner cannot run
//! it names (`UNSUPPORTED: file:line: why`) and never runs.

pub mod judge;
pub mod parser;
pub mod program;
pub mod run;
#[cfg(test)]
mod tests;
pub mod verdict;

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `cargo xtask litmus` options.
#[derive(Args, Debug)]
pub struct LitmusArgs {
    /// Litmus files, or folders searched for `*.litmus` (default: $GRAFT_LITMUS_CATALOGUE).
    pub paths: Vec<PathBuf>,
    /// Iterations per test.
    #[arg(long, default_value_t = 1000)]
    pub iters: u32,
    /// Run under the coherence sanitizer and judge each test per iteration.
    #[arg(long)]
    pub sanitize: bool,
    /// The catalogue's verdicts (`NAME Allowed|Forbidden|Required` per line; default:
    /// $GRAFT_LITMUS_KINDS).
    #[arg(long)]
    pub kinds: Option<PathBuf>,
    /// herd7 (its `run` wrapper, or the binary), to get verdicts the kinds file lacks
    /// (default: $GRAFT_HERD7).
    #[arg(long)]
    pub herd7: Option<PathBuf>,
    /// Seconds the master waits for a core to finish an iteration (virtual counter).
    #[arg(long, default_value_t = 2)]
    pub timeout: u32,
    /// Mask of the random start delay in loop iterations (2^k - 1).
    #[arg(long, default_value_t = 0xff)]
    pub delay_mask: u32,
    /// Print only one line per test.
    #[arg(long)]
    pub quiet: bool,
    /// With `--sanitize`: print the final state and the reports of the first three iterations
    /// whose reports showed the outcome.
    #[arg(long)]
    pub explain: bool,
}

/// A verdict from the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The condition can hold.
    Allowed,
    /// The condition cannot hold.
    Forbidden,
    /// The condition always holds.
    Required,
}

/// Reads a kinds file: `NAME Kind` per line.
pub fn read_kinds(text: &str) -> Vec<(String, Kind)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let kind = match w.next()? {
                "Allowed" => Kind::Allowed,
                "Forbidden" => Kind::Forbidden,
                "Required" => Kind::Required,
                _ => return None,
            };
            Some((name.to_string(), kind))
        })
        .collect()
}

/// Every `*.litmus` file under the given paths, sorted, files given directly kept in order.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let mut found = vec![];
            walk(p, &mut found)?;
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{} is neither a file nor a folder", p.display());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = e?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "litmus") {
            out.push(path);
        }
    }
    Ok(())
}

fn env_path(flag: &Option<PathBuf>, var: &str) -> Option<PathBuf> {
    flag.clone()
        .or_else(|| std::env::var_os(var).map(PathBuf::from))
}

/// Runs `cargo xtask litmus`.
pub fn command(args: &LitmusArgs) -> Result<bool> {
    let paths = if args.paths.is_empty() {
        match std::env::var_os("GRAFT_LITMUS_CATALOGUE") {
            Some(p) => vec![PathBuf::from(p)],
            None => bail!(
                "no litmus files given and GRAFT_LITMUS_CATALOGUE is not set: pass FILE|DIR \
                 (herdtools7's catalogue/aarch64-ifetch/tests, for example)"
            ),
        }
    } else {
        args.paths.clone()
    };
    let files = collect_files(&paths)?;
    let kinds = match env_path(&args.kinds, "GRAFT_LITMUS_KINDS") {
        Some(k) => {
            let text = std::fs::read_to_string(&k)
                .with_context(|| format!("reading the kinds file {}", k.display()))?;
            read_kinds(&text)
        }
        None => {
            if args.sanitize {
                println!(
                    "note: no --kinds file (or GRAFT_LITMUS_KINDS): verdicts come from herd7 if given"
                );
            }
            vec![]
        }
    };
    let herd7 = env_path(&args.herd7, "GRAFT_HERD7");
    match &herd7 {
        Some(h) if !h.exists() => bail!("herd7 not found at {}", h.display()),
        Some(_) => {}
        None if args.sanitize && kinds.is_empty() => println!(
            "note: herd7 not given (--herd7 PATH or GRAFT_HERD7) and no kinds file: tests are \
             run but not judged"
        ),
        None => {}
    }
    let plugin = if args.sanitize {
        Some(crate::runner::sanitize::build_plugin()?)
    } else {
        None
    };
    let work = crate::runner::build::root().join("target/litmus");
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    let mut tally = verdict::Tally::default();
    for file in &files {
        let ctx = verdict::Context {
            kinds: &kinds,
            herd7: herd7.as_deref(),
            plugin: plugin.as_deref(),
            work: &work,
            args,
        };
        verdict::one(file, &ctx, &mut tally);
    }
    tally.print(args.sanitize, started.elapsed());
    Ok(tally.ok(args.sanitize))
}

/// Seconds to let QEMU run before killing it.
pub fn host_limit(args: &LitmusArgs, sanitized: bool) -> Duration {
    let base = 30 + u64::from(args.timeout) * 4 + u64::from(args.iters) / 50;
    Duration::from_secs(if sanitized { base * 3 } else { base })
}
