//! Judging catalogue mirrors (`lit-*`, `li1-*`, `ld1-*` kernel tests) per iteration.
//!
//! A mirror's consumer marks each iteration (`ITERATION`) and says whether the catalogue test's
//! `exists` clause held apart from the stale fetch itself (`OUTCOME`, value 1: the iteration
//! qualifies); the kernel says (a `LitmusWatch` record) which word is rewritten and which core
//! runs it. A verdict speaks only of qualifying iterations (docs/design.md section 5), so only
//! stale reports of that word, by that core, in those iterations count:
//!
//! - `Allowed`: at least one qualifying iteration was reported stale;
//! - `Forbidden`: at least [`MIN_QUALIFYING`] iterations qualified and none was reported.
//!
//! Too few qualifying iterations fails either way: it shows nothing.

use crate::runner::sanitize::{PREFIX, field, number};
use protocol::Record;
use protocol::testinfo::Sanitized;
use std::collections::BTreeSet;

/// The fewest qualifying iterations a `Forbidden` mirror needs to show anything.
pub const MIN_QUALIFYING: usize = 50;

/// What the kernel said the mirror rewrites: the word's executable address and the core that
/// runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The rewritten word's virtual address (executable view).
    pub va: u64,
    /// The core that runs it (the consumer).
    pub core: u64,
}

/// Finds the kernel's `LitmusWatch` record: the rewritten word and the core that runs it.
pub fn watch<'a>(records: impl IntoIterator<Item = &'a Record>) -> Option<Watch> {
    records.into_iter().find_map(|r| match *r {
        Record::LitmusWatch { va, core } => Some(Watch {
            va,
            core: u64::from(core),
        }),
        _ => None,
    })
}

/// One run's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Iterations the consumer marked qualifying.
    pub qualifying: usize,
    /// Iterations with any outcome line from the consumer.
    pub iterations: usize,
    /// Qualifying iterations in which the rewritten word was reported stale.
    pub stale_qualifying: usize,
    /// Stale reports of the word in iterations that did not qualify (allowed by any verdict).
    pub stale_other: usize,
}

/// Counts the plugin's `outcome` and `stale` lines for `watch`.
pub fn tally(plugin_output: &str, watch: Watch) -> Tally {
    let (mut seen, mut qualifying, mut stale) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for line in plugin_output.lines() {
        let Some(rest) = line.strip_prefix(PREFIX) else {
            continue;
        };
        let core = field(rest, "core").and_then(number);
        let iter = field(rest, "iter").and_then(number);
        let (Some(core), Some(iter)) = (core, iter) else {
            continue;
        };
        if core != watch.core {
            continue;
        }
        if rest.starts_with("outcome ") {
            seen.insert(iter);
            if field(rest, "value").and_then(number) == Some(1) {
                qualifying.insert(iter);
            }
        } else if rest.starts_with("stale ") && field(rest, "va").and_then(number) == Some(watch.va)
        {
            stale.insert(iter);
        }
    }
    let stale_qualifying = stale.intersection(&qualifying).count();
    Tally {
        qualifying: qualifying.len(),
        iterations: seen.len(),
        stale_qualifying,
        stale_other: stale.len() - stale_qualifying,
    }
}

/// Whether `t` agrees with the catalogue's verdict `want` (`Allowed` or `Forbidden`).
pub fn judge(t: &Tally, want: Sanitized) -> Result<(), String> {
    let counts = format!(
        "{} of {} iterations qualified, {} of those reported stale ({} other stale)",
        t.qualifying, t.iterations, t.stale_qualifying, t.stale_other
    );
    match want {
        Sanitized::Allowed if t.stale_qualifying > 0 => Ok(()),
        Sanitized::Allowed if t.qualifying == 0 => {
            Err(format!("no qualifying iteration, nothing shown ({counts})"))
        }
        Sanitized::Allowed => Err(format!(
            "Allowed, but no qualifying iteration was reported stale ({counts})"
        )),
        Sanitized::Forbidden if t.qualifying < MIN_QUALIFYING => Err(format!(
            "too few qualifying iterations for a Forbidden verdict, {MIN_QUALIFYING} needed ({counts})"
        )),
        Sanitized::Forbidden if t.stale_qualifying > 0 => Err(format!(
            "Forbidden, but qualifying iterations were reported stale ({counts})"
        )),
        Sanitized::Forbidden => Ok(()),
        other => Err(format!("{other:?} is no catalogue verdict")),
    }
}

/// Judges one sanitized run of a mirror from its records and the plugin's output; `Ok` carries
/// the counts for the log.
pub fn judge_run<'a>(
    records: impl IntoIterator<Item = &'a Record>,
    plugin_output: &str,
    want: Sanitized,
) -> Result<String, String> {
    let w = watch(records).ok_or("the kernel sent no LitmusWatch record (the rewritten word)")?;
    let t = tally(plugin_output, w);
    judge(&t, want)?;
    Ok(format!(
        "{} of {} iterations qualified, {} reported stale",
        t.qualifying, t.iterations, t.stale_qualifying
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Watch = Watch {
        va: 0x4060_1040,
        core: 1,
    };

    fn outcome(iter: u64, value: u64) -> String {
        format!("graft-sanitizer: outcome core=1 iter={iter} value={value}\n")
    }

    fn stale(core: u64, va: u64, iter: u64) -> String {
        format!(
            "graft-sanitizer: stale kind=stale core={core} va={va:#x} pa={va:#x} writer-core=0 writer-pc=0x40200000 missing=clean iter={iter} old=0x14000002 new=0xd503201f published=no\n"
        )
    }

    fn run(qualifying: u64, other: u64, stale_in: &[u64]) -> String {
        let mut text = String::from("noise\n");
        for i in 0..qualifying + other {
            if stale_in.contains(&i) {
                text.push_str(&stale(1, W.va, i));
            }
            text.push_str(&outcome(i, u64::from(i < qualifying)));
        }
        text.push_str("graft-sanitizer: summary stale=1 unpredictable=0 hazards=0\n");
        text
    }

    #[test]
    fn the_watch_record_is_found() {
        let records = [
            Record::RunEnded { status: 0 },
            Record::LitmusWatch {
                va: 0x4060_1040,
                core: 1,
            },
        ];
        assert_eq!(watch(&records), Some(W));
        assert_eq!(watch(&records[..1]), None);
    }

    #[test]
    fn allowed_needs_a_stale_qualifying_iteration() {
        let t = tally(&run(10, 5, &[3]), W);
        assert_eq!(
            (t.qualifying, t.iterations, t.stale_qualifying),
            (10, 15, 1)
        );
        assert!(judge(&t, Sanitized::Allowed).is_ok());
        // Stale only where the clause did not hold: shows nothing.
        let t = tally(&run(10, 5, &[12]), W);
        assert_eq!((t.stale_qualifying, t.stale_other), (0, 1));
        assert!(judge(&t, Sanitized::Allowed).is_err());
        // No qualifying iteration at all.
        assert!(judge(&tally(&run(0, 5, &[1]), W), Sanitized::Allowed).is_err());
    }

    #[test]
    fn forbidden_needs_enough_clean_qualifying_iterations() {
        assert!(judge(&tally(&run(60, 20, &[65, 70]), W), Sanitized::Forbidden).is_ok());
        let reported = judge(&tally(&run(60, 20, &[7]), W), Sanitized::Forbidden);
        assert!(reported.unwrap_err().contains("reported stale"));
    }

    #[test]
    fn too_few_qualifying_iterations_fail() {
        let few = judge(&tally(&run(49, 200, &[]), W), Sanitized::Forbidden);
        assert!(few.unwrap_err().contains("too few"));
        assert!(judge(&tally(&run(50, 0, &[]), W), Sanitized::Forbidden).is_ok());
    }

    #[test]
    fn other_cores_and_words_do_not_count() {
        let mut text = run(60, 0, &[]);
        text.push_str(&stale(2, W.va, 5));
        text.push_str(&stale(1, W.va + 4, 5));
        text.push_str("graft-sanitizer: outcome core=2 iter=99 value=1\n");
        let t = tally(&text, W);
        assert_eq!(
            (t.qualifying, t.stale_qualifying, t.stale_other),
            (60, 0, 0)
        );
        assert!(judge(&t, Sanitized::Forbidden).is_ok());
    }

    #[test]
    fn non_catalogue_expectations_are_refused() {
        assert!(judge(&Tally::default(), Sanitized::Clean).is_err());
    }
}
