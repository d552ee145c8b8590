//! One test end to end (parse, generate, build, run), its litmus7-style output, and, under the
//! sanitizer, its verdict against the catalogue's.
//!
//! Comparing with the catalogue (DESIGN section 5): QEMU keeps fetch coherent, so the stale
//! outcome itself never shows in a run; the sanitizer's `stale`/`unpredictable` reports stand for
//! it, iteration by iteration ([`super::judge`]). An Allowed test agrees when some iteration
//! that met the condition's data atoms showed the outcome through its reports, or showed it
//! outright (an outcome coherent fetches reach, such as a fault handler's write); a Forbidden one
//! when at least [`FORBIDDEN_MIN`] iterations met them and none showed it either way.

use super::judge::{Judge, Seen};
use super::parser::{self, Litmus, Quant};
use super::program::{self, GenOptions};
use super::run::{self, Ending, QemuRun, State, Symbols};
use super::{Kind, LitmusArgs};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Iterations meeting the data atoms a Forbidden verdict needs.
pub const FORBIDDEN_MIN: u64 = 50;

/// What a sweep shares between tests.
pub struct Context<'a> {
    /// The catalogue's verdicts.
    pub kinds: &'a [(String, Kind)],
    /// herd7, for tests the kinds file does not list.
    pub herd7: Option<&'a Path>,
    /// The sanitizer plugin, if sanitized.
    pub plugin: Option<&'a Path>,
    /// Where programs are built.
    pub work: &'a Path,
    /// The command's options.
    pub args: &'a LitmusArgs,
}

/// Counts over a sweep.
#[derive(Debug, Default)]
pub struct Tally {
    /// Tests run.
    pub run: u64,
    /// Tests named unsupported.
    pub unsupported: u64,
    /// Runs that timed out, faulted in the harness, or lost QEMU.
    pub broken: u64,
    /// Plain runs that showed a Forbidden outcome (a harness bug).
    pub forbidden_seen: u64,
    /// Sanitized verdicts.
    pub agree: u64,
    /// Sanitized verdicts that differ from the catalogue's.
    pub disagree: u64,
    /// Sanitized runs with no verdict.
    pub undecided: u64,
    /// Names of disagreeing or broken tests.
    pub bad: Vec<String>,
    /// MIDR and CTR_EL0 seen.
    pub cpu: Option<(u64, u64)>,
}

impl Tally {
    /// Prints the summary lines.
    pub fn print(&self, sanitized: bool, elapsed: Duration) {
        if let Some((midr, ctr)) = self.cpu {
            println!("cpu: MIDR_EL1={midr:#x} CTR_EL0={ctr:#x}");
        }
        for b in &self.bad {
            println!("failed: {b}");
        }
        if sanitized {
            println!(
                "catalogue: {} run, {} agree, {} disagree, {} undecided, {} unsupported ({} broken runs, {:.1} s)",
                self.run,
                self.agree,
                self.disagree,
                self.undecided,
                self.unsupported,
                self.broken,
                elapsed.as_secs_f64()
            );
        } else {
            println!(
                "sweep: {} run, {} unsupported, {} broken runs, {} forbidden outcomes seen ({:.1} s)",
                self.run,
                self.unsupported,
                self.broken,
                self.forbidden_seen,
                elapsed.as_secs_f64()
            );
        }
    }

    /// Whether the sweep passed: no broken run, no Forbidden outcome, no disagreement.
    pub fn ok(&self, sanitized: bool) -> bool {
        self.broken == 0 && self.forbidden_seen == 0 && (!sanitized || self.disagree == 0)
    }
}

/// The catalogue's verdict for `name`: the kinds file, else herd7.
fn expected(t: &Litmus, path: &Path, ctx: &Context) -> Option<Kind> {
    if let Some((_, k)) = ctx.kinds.iter().find(|(n, _)| *n == t.name) {
        return Some(*k);
    }
    let h = ctx.herd7?;
    let out = std::process::Command::new(h).arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let obs = text.lines().find(|l| l.starts_with("Observation "))?;
    let word = obs.split_whitespace().nth(2)?;
    Some(match (t.cond.as_ref().map(|c| c.0), word) {
        (Some(Quant::Forall), "Always") => Kind::Required,
        (_, "Never") => Kind::Forbidden,
        _ => Kind::Allowed,
    })
}

/// A report: its core, address and line, and its number and the numbers it excludes.
type Reported = (u64, u64, String, u64, Vec<u64>);

/// Per-iteration stale reports of a sanitizer output: iteration -> reports, and the lines
/// outside any test code (the harness's own).
fn stale_reports(text: &str, code: (u64, u64)) -> (BTreeMap<u64, Vec<Reported>>, Vec<String>) {
    let mut per = BTreeMap::<u64, Vec<Reported>>::new();
    let mut harness = vec![];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("graft-sanitizer: ") else {
            continue;
        };
        if !(rest.starts_with("stale ") || rest.starts_with("hazard ")) {
            continue;
        }
        let field = |k: &str| {
            rest.split_whitespace()
                .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
        };
        let va = field("va")
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let iter = field("iter").and_then(|v| v.parse::<u64>().ok());
        let core = field("core")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let id = field("id").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let excludes = field("excludes")
            .map(|v| v.split(',').filter_map(|x| x.parse::<u64>().ok()).collect())
            .unwrap_or_default();
        match iter {
            Some(i) if (code.0..code.1).contains(&va) => {
                per.entry(i)
                    .or_default()
                    .push((core, va, rest.into(), id, excludes))
            }
            _ => harness.push(rest.to_string()),
        }
    }
    (per, harness)
}

/// Runs one file and prints its result.
pub fn one(path: &Path, ctx: &Context, tally: &mut Tally) {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            println!("UNSUPPORTED: {shown}:0: unreadable: {e}");
            tally.unsupported += 1;
            return;
        }
    };
    let t = match parser::parse(&text) {
        Ok(t) => t,
        Err(u) => {
            println!("UNSUPPORTED: {shown}:{u}");
            tally.unsupported += 1;
            return;
        }
    };
    let dir = ctx.work.join(t.name.replace(['/', '\\'], "_"));
    let results = dir.join("results.bin");
    let opts = GenOptions {
        iters: ctx.args.iters,
        out_path: results.display().to_string(),
        timeout_secs: ctx.args.timeout,
        delay_mask: ctx.args.delay_mask,
        iteration_marker: ctx.plugin.is_some(),
    };
    let prog = match program::generate(&t, &opts) {
        Ok(p) => p,
        Err(u) => {
            println!("UNSUPPORTED: {shown}:{u}");
            tally.unsupported += 1;
            return;
        }
    };
    let outcome = (|| -> anyhow::Result<_> {
        let elf = run::build(&prog, &dir)?;
        let bytes = std::fs::read(&elf)?;
        let syms = Symbols::read(&bytes, &prog)?;
        let code =
            syms.addr("litmus_code_end").unwrap_or(0) - syms.addr("litmus_code_start").unwrap_or(0);
        if code > program::PRISTINE_BYTES {
            anyhow::bail!("the code region ({code} bytes) is larger than its copy");
        }
        let san_out = dir.join("sanitizer.txt");
        let plugin = ctx.plugin.map(|p| {
            let mut a = format!("{},out={}", p.display(), san_out.display());
            if t.idc {
                a.push_str(",idc=1");
            }
            if t.dic {
                a.push_str(",dic=1");
            }
            a
        });
        let sanitized = plugin.is_some();
        let r = run::run(&QemuRun {
            elf: &elf,
            results: &results,
            cores: t.threads.len(),
            plugin,
            limit: super::host_limit(ctx.args, sanitized),
        })?;
        let san = if sanitized {
            Some(std::fs::read_to_string(&san_out).unwrap_or_default())
        } else {
            None
        };
        Ok((syms, r, san))
    })();
    let (syms, r, san) = match outcome {
        Ok(x) => x,
        Err(e) => {
            println!("BROKEN: {shown}: {e:#}");
            tally.broken += 1;
            tally.bad.push(format!("{} (build or run: {e})", t.name));
            return;
        }
    };
    tally.run += 1;
    if r.midr != 0 {
        tally.cpu = Some((r.midr, r.ctr));
    }
    // The histogram.
    let mut hist = BTreeMap::<String, (u64, bool)>::new();
    let mut pos = 0u64;
    let mut unresolved = false;
    let mut sat = vec![];
    for rec in &r.records {
        let st = State::new(&t, &prog, &syms, rec);
        let holds = match &t.cond {
            Some((_, p)) => st.eval(p).unwrap_or_else(|| {
                unresolved = true;
                false
            }),
            None => false,
        };
        sat.push(holds);
        pos += u64::from(holds);
        hist.entry(st.show()).or_insert((0, holds)).0 += 1;
    }
    let total = r.records.len() as u64;
    let neg = total - pos;
    let expect = expected(&t, path, ctx);
    let kind_word = match t.cond.as_ref().map(|c| c.0) {
        Some(Quant::Exists) => "Allowed",
        Some(Quant::NotExists) => "Forbidden",
        Some(Quant::Forall) => "Required",
        None => "Unknown",
    };
    let obs = if pos == 0 {
        "Never"
    } else if neg == 0 {
        "Always"
    } else {
        "Sometimes"
    };
    if !ctx.args.quiet {
        println!("Test {} {kind_word}", t.name);
        println!("Histogram ({} states)", hist.len());
        for (state, (n, holds)) in &hist {
            println!("{n:<8}{}> {state}", if *holds { '*' } else { ':' });
        }
        let validated = match t.cond.as_ref().map(|c| c.0) {
            Some(Quant::Exists) => pos > 0,
            Some(Quant::NotExists) => pos == 0,
            Some(Quant::Forall) => neg == 0,
            None => false,
        };
        println!("{}", if validated { "Ok" } else { "No" });
        println!("Witnesses\nPositive: {pos}, Negative: {neg}");
        if let Some((q, _)) = &t.cond {
            let cond = t.cond_text.trim_start_matches(&q.to_string()).trim();
            println!(
                "Condition {q} {cond} is {}validated",
                if validated { "" } else { "NOT " }
            );
        }
        println!("Cpu MIDR_EL1={:#x} CTR_EL0={:#x}", r.midr, r.ctr);
        println!("Observation {} {obs} {pos} {neg}", t.name);
        println!("Time {} {:.2}", t.name, r.elapsed.as_secs_f64());
    }
    if unresolved {
        println!("BROKEN: {shown}: a condition value could not be resolved");
        tally.broken += 1;
        tally.bad.push(format!("{} (unresolved value)", t.name));
    }
    match &r.ending {
        Ending::Complete => {}
        Ending::Timeout { core, iter } => {
            println!("TIMEOUT: {shown}: thread P{core} did not finish iteration {iter}");
            tally.broken += 1;
            tally
                .bad
                .push(format!("{} (timeout P{core} iteration {iter})", t.name));
        }
        Ending::HarnessFault { core, elr } => {
            println!("BROKEN: {shown}: harness fault on core {core} at {elr:#x}");
            tally.broken += 1;
            tally.bad.push(format!("{} (harness fault)", t.name));
        }
        Ending::Killed(why) => {
            println!("BROKEN: {shown}: {why}");
            tally.broken += 1;
            tally.bad.push(format!("{} ({why})", t.name));
        }
    }
    // A plain run: a Forbidden outcome is the harness's bug (QEMU keeps fetch coherent).
    let forbidden_seen = match (expect, t.cond.as_ref().map(|c| c.0)) {
        (Some(Kind::Forbidden), Some(Quant::Exists)) => pos > 0,
        (Some(Kind::Required), Some(Quant::Forall)) => neg > 0,
        _ => false,
    };
    if san.is_none() {
        if forbidden_seen {
            println!("FORBIDDEN OUTCOME SEEN: {shown}: {pos} of {total} iterations");
            tally.forbidden_seen += 1;
            tally
                .bad
                .push(format!("{} (forbidden outcome seen)", t.name));
        }
        if ctx.args.quiet {
            println!(
                "{} {obs} {pos} {neg} ({:.2} s)",
                t.name,
                r.elapsed.as_secs_f64()
            );
        }
        return;
    }
    // Sanitized: the per-iteration verdict.
    let code = (
        syms.addr("litmus_code_start").unwrap_or(0),
        syms.addr("litmus_code_end").unwrap_or(0),
    );
    let (per, harness) = stale_reports(san.as_deref().unwrap_or(""), code);
    for h in harness.iter().take(3) {
        println!("HARNESS REPORT: {shown}: {h}");
    }
    let judge = Judge::new(&t, &syms);
    let mut qualifying = 0u64;
    let mut reported = 0u64;
    let mut first = None;
    if let Ok(j) = &judge {
        for (k, rec) in r.records.iter().enumerate() {
            let st = State::new(&t, &prog, &syms, rec);
            let reports = per.get(&(k as u64 + 1)).map_or(&[][..], Vec::as_slice);
            let at: Vec<Seen> = reports
                .iter()
                .map(|(c, va, line, id, ex)| Seen {
                    core: *c,
                    va: *va,
                    id: *id,
                    excludes: ex.clone(),
                    old: line
                        .split_whitespace()
                        .find_map(|w| u32::from_str_radix(w.strip_prefix("old=0x")?, 16).ok()),
                })
                .collect();
            let a = j.assess(&st, &at);
            qualifying += u64::from(a.meets_data);
            if a.shows_outcome {
                if ctx.args.explain && reported < 3 {
                    println!("explain: iteration {}: {}", k + 1, st.show());
                    for r in reports {
                        println!("explain:   {}", r.2);
                    }
                }
                reported += 1;
                first.get_or_insert((k + 1, reports[0].2.clone()));
            }
        }
    }
    let verdict = if !harness.is_empty() {
        Err(format!("{} reports in the harness", harness.len()))
    } else if r.ending != Ending::Complete {
        Err("the run did not complete".into())
    } else if let Err(why) = &judge {
        Err(why.clone())
    } else {
        decide(
            expect,
            Counts {
                qualifying,
                reported,
                direct: pos,
            },
        )
    };
    let direct = if pos > 0 {
        format!(", {pos} showed it without reports")
    } else {
        String::new()
    };
    let detail = format!(
        "{qualifying} iterations met the data atoms, {reported} of them showed the outcome through reports{direct}{}",
        first
            .map(|(k, l)| format!(" (first: iteration {k}: {l})"))
            .unwrap_or_default()
    );
    let exp = expect.map_or("?".to_string(), |k| format!("{k:?}"));
    match verdict {
        Ok(true) => {
            tally.agree += 1;
            println!("agree: {} {exp}: {detail}", t.name);
        }
        Ok(false) => {
            tally.disagree += 1;
            tally.bad.push(format!("{} (disagrees: {exp})", t.name));
            println!("DISAGREE: {} {exp}: {detail}", t.name);
        }
        Err(why) => {
            tally.undecided += 1;
            println!("undecided: {} {exp}: {why}; {detail}", t.name);
        }
    }
}

/// What the iterations of a sanitized run showed.
#[derive(Clone, Copy, Debug)]
struct Counts {
    /// Iterations that met the condition's data atoms.
    qualifying: u64,
    /// Iterations whose reports showed the outcome.
    reported: u64,
    /// Iterations that showed the outcome outright.
    direct: u64,
}

/// The sanitized verdict: `Ok(true)` agrees with the catalogue, `Ok(false)` disagrees, `Err`
/// says why there is none.
fn decide(expect: Option<Kind>, n: Counts) -> Result<bool, String> {
    let shown = n.reported > 0 || n.direct > 0;
    match expect {
        None => Err("no catalogue verdict".into()),
        Some(Kind::Required) => Err("Required tests are not judged".into()),
        // An outcome that showed without reports ran on coherent fetches: nothing stale was
        // needed for it (SM-invalid-2: the fault handler's write shows it every time).
        Some(Kind::Allowed) if shown => Ok(true),
        Some(Kind::Allowed) if n.qualifying == 0 => Err("no iteration met the data atoms".into()),
        Some(Kind::Allowed) => Ok(false),
        Some(Kind::Forbidden) if shown => Ok(false),
        Some(Kind::Forbidden) if n.qualifying >= FORBIDDEN_MIN => Ok(true),
        Some(Kind::Forbidden) => Err(format!(
            "only {} iterations met the data atoms (need {FORBIDDEN_MIN})",
            n.qualifying
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_shown_outright_decides_like_one_shown_by_reports() {
        let n = |qualifying, reported, direct| Counts {
            qualifying,
            reported,
            direct,
        };
        // SM-invalid-2: Allowed, shown in every iteration by the fault handler, no report.
        assert_eq!(decide(Some(Kind::Allowed), n(300, 0, 300)), Ok(true));
        assert_eq!(decide(Some(Kind::Allowed), n(300, 0, 0)), Ok(false));
        assert_eq!(decide(Some(Kind::Allowed), n(300, 2, 0)), Ok(true));
        // A Forbidden outcome seen outright is a disagreement, whatever the reports say.
        assert_eq!(decide(Some(Kind::Forbidden), n(300, 0, 1)), Ok(false));
        assert_eq!(decide(Some(Kind::Forbidden), n(300, 0, 0)), Ok(true));
        assert!(decide(Some(Kind::Forbidden), n(10, 0, 0)).is_err());
    }

    #[test]
    fn reports_are_filed_by_iteration_and_harness_ones_kept_apart() {
        let text = "graft-sanitizer: stale kind=stale core=1 va=0x1004 pa=0x1004 iter=7 missing=clean\n\
            graft-sanitizer: hazard kind=unpredictable core=1 va=0x9000 pa=0x9000 iter=7 missing=clean\n\
            graft-sanitizer: outcome core=1 iter=3 value=1\n\
            graft-sanitizer: stale kind=stale core=2 va=0x1008 pa=0x1008 iter=- missing=clean\n";
        let (per, harness) = stale_reports(text, (0x1000, 0x2000));
        assert_eq!(per.keys().copied().collect::<Vec<_>>(), [7]);
        assert_eq!(
            harness.len(),
            2,
            "outside the code, or with no iteration: {harness:?}"
        );
    }
}
