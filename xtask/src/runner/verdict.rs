//! Verdicts: whether a run's [`Outcome`] shows what its test expects, plainly and under the
//! sanitizer.
//!
//! What a sanitized run must show comes from the test's record in the ELF
//! ([`expected_sanitized`]): `Sanitized::Hazard` marks a negative control (for some tests only
//! with `ic-broadcast=off`), which passes only when the sanitizer flags it.

use super::elf::KernelTest;
use super::logs::{Line, first_bad_record};
use super::qemu::Outcome;
use super::sanitize;
use protocol::Record;
use protocol::testinfo::{EXIT_FAULT, EXIT_PASS, Expect, Sanitized};

/// What a sanitized run of `test` must show, with `IC IVAU` broadcast or not.
pub fn expected_sanitized(test: &KernelTest, ic_broadcast: bool) -> Sanitized {
    test.sanitized[usize::from(!ic_broadcast)]
}

/// The strategies the kernel announced in `Record::Strategy` records, in report order.
///
/// Each index of the count it gave must arrive, once or with the same name each time, so a
/// kernel that announced some strategies, none, or two different lists is an error rather than
/// a shorter list of results to check.
pub fn announced_strategies(lines: &[Line], what: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<Option<String>> = Vec::new();
    for r in lines.iter().filter_map(Line::record) {
        let Record::Strategy { index, count, name } = *r else {
            continue;
        };
        if names.is_empty() {
            names = vec![None; usize::from(count)];
        }
        if usize::from(count) != names.len() || index >= count {
            return Err(format!(
                "{what}: the kernel announced strategy {index} of {count} after announcing {} strategies",
                names.len()
            ));
        }
        let slot = &mut names[usize::from(index)];
        match slot {
            Some(known) if known != name.as_str() => {
                return Err(format!(
                    "{what}: the kernel announced strategy {index} as both {known} and {name}"
                ));
            }
            _ => *slot = Some(name.to_string()),
        }
    }
    if names.is_empty() {
        return Err(format!("{what}: the kernel announced no strategies"));
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| n.ok_or_else(|| format!("{what}: the kernel never announced strategy {i}")))
        .collect()
}

/// The demo's own results: every strategy the kernel announced sent a `DemoResult` with
/// publications, loop iterations and no deadline miss (the kernel's exit status says the same;
/// this checks that the figures behind it arrived, and names the strategy that fell short).
pub fn demo_verdict(lines: &[Line], what: &str) -> Result<(), String> {
    for strategy in announced_strategies(lines, what)? {
        let result = lines
            .iter()
            .filter_map(Line::record)
            .find_map(|r| match *r {
                Record::DemoResult {
                    strategy: s,
                    patches,
                    iterations,
                    misses,
                    ..
                } if s.as_str() == strategy => Some((patches, iterations, misses)),
                _ => None,
            });
        match result {
            None => {
                return Err(format!("{what}: no demo result for {strategy}"));
            }
            Some((patches, iterations, misses))
                if patches == 0 || iterations == 0 || misses > 0 =>
            {
                return Err(format!(
                    "{what}: {strategy}: {patches} patches, {iterations} iterations, {misses} deadline misses"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// How a [`Sanitized`] expectation reads in a run's name.
pub fn describe_expectation(want: Sanitized) -> &'static str {
    match want {
        Sanitized::Hazard => "hazards",
        Sanitized::Allowed => "the catalogue's Allowed",
        Sanitized::Forbidden => "the catalogue's Forbidden",
        Sanitized::No | Sanitized::Clean => "none",
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
        if let Some(why) = first_bad_record(&self.lines) {
            return Err(format!("{what}: {why}"));
        }
        if let Err(why) = &self.same_image {
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
    use crate::runner::logs::RecordError;
    use protocol::record::Name;
    use protocol::testinfo::Tcg;
    use std::time::Duration;

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
            same_image: Ok(()),
        }
    }

    #[test]
    fn a_run_of_another_image_fails() {
        let mut o = outcome(Some(EXIT_PASS as i32), false, vec![]);
        assert!(o.verdict(Expect::Pass, "smp on virt").is_ok());
        o.same_image =
            Err("the kernel that ran is build 00, not the ELF it was decoded with (01)".into());
        let e = o.verdict(Expect::Pass, "smp on virt").unwrap_err();
        assert!(
            e.contains("smp on virt: the kernel that ran is build 00"),
            "{e}"
        );
    }

    #[test]
    fn negative_controls_are_read_from_the_test_record() {
        let mut t = KernelTest {
            name: "patch-ipi".into(),
            expect: Expect::Pass,
            timeout_s: 1,
            min_cores: 1,
            tcg: Tcg::SingleThreaded,
            sanitized: [Sanitized::Clean, Sanitized::Hazard],
            idc: false,
            dic: false,
        };
        assert_eq!(expected_sanitized(&t, true), Sanitized::Clean);
        assert_eq!(expected_sanitized(&t, false), Sanitized::Hazard);
        t.sanitized = [Sanitized::Hazard; 2];
        assert_eq!(expected_sanitized(&t, true), Sanitized::Hazard);
    }

    const STRATEGIES: [&str; 3] = ["ipi-sync", "ftr-multi", "seq-check"];

    fn announced(count: u8) -> Vec<Line> {
        STRATEGIES
            .iter()
            .take(usize::from(count))
            .enumerate()
            .map(|(i, n)| {
                line(Record::Strategy {
                    index: i as u8,
                    count,
                    name: Name::new(n),
                })
            })
            .collect()
    }

    fn demo_result(strategy: &str, misses: u64) -> Record {
        Record::DemoResult {
            strategy: Name::new(strategy),
            patches: 300,
            iterations: 10_000,
            misses,
            extra_max_ns: 4000,
            extra_mean_ns: 100,
            mean_abs_error_c: 1.8,
            max_abs_error_c: 20.0,
        }
    }

    #[test]
    fn the_demo_needs_every_announced_strategys_results_without_misses() {
        let mut lines = announced(3);
        lines.extend(STRATEGIES.iter().map(|s| line(demo_result(s, 0))));
        assert!(demo_verdict(&lines, "demo").is_ok());
        lines[3 + 1] = line(demo_result("ftr-multi", 2));
        let e = demo_verdict(&lines, "demo").unwrap_err();
        assert!(
            e.contains("ftr-multi") && e.contains("2 deadline misses"),
            "{e}"
        );
        lines.remove(3 + 1);
        let e = demo_verdict(&lines, "demo").unwrap_err();
        assert!(e.contains("no demo result for ftr-multi"), "{e}");
    }

    #[test]
    fn the_strategies_must_be_announced_whole() {
        let results: Vec<Line> = STRATEGIES.iter().map(|s| line(demo_result(s, 0))).collect();
        let e = demo_verdict(&results, "demo").unwrap_err();
        assert!(e.contains("announced no strategies"), "{e}");
        let mut lines = announced(3);
        lines.remove(1);
        let e = announced_strategies(&lines, "demo").unwrap_err();
        assert!(e.contains("never announced strategy 1"), "{e}");
        let mut lines = announced(3);
        lines.push(line(Record::Strategy {
            index: 0,
            count: 3,
            name: Name::new("branch-flip"),
        }));
        let e = announced_strategies(&lines, "demo").unwrap_err();
        assert!(e.contains("as both ipi-sync and branch-flip"), "{e}");
        let mut lines = announced(3);
        lines.push(line(Record::Strategy {
            index: 3,
            count: 4,
            name: Name::new("stop-the-world"),
        }));
        let e = announced_strategies(&lines, "demo").unwrap_err();
        assert!(e.contains("strategy 3 of 4 after announcing 3"), "{e}");
        let mut twice = announced(3);
        twice.extend(announced(3));
        assert_eq!(
            announced_strategies(&twice, "demo").unwrap(),
            STRATEGIES.map(String::from)
        );
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
        lines[0].record = Some(Err(RecordError::Decode(protocol::DecodeError::BadTag(77))));
        let e = outcome(Some(0), false, lines)
            .verdict(Expect::Pass, "t on virt")
            .unwrap_err();
        assert!(
            e.contains("t on virt: a damaged record") && e.contains("tag 77"),
            "{e}"
        );
    }
}
