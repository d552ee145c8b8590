//! `cargo xtask qemu`: build the kernel and run it under QEMU with decoded logs (the demo, one
//! test, a sanitized run, a debugger session, or `--serve` for live patching).

use crate::runner::board::{BoardInfo, Switch};
use crate::runner::build::{build_for, find_test, prerequisites};
use crate::runner::elf::KernelTest;
use crate::runner::logs::Symbols;
use crate::runner::qemu::Run;
use crate::runner::verdict::{demo_verdict, expected_sanitized, sanitized_verdict};
use crate::runner::{live, sanitize};
use anyhow::{Result, bail};
use clap::Args;
use protocol::cmdline::keys;
use protocol::testinfo::{DEMO, Expect, Sanitized};
use std::time::Duration;

/// `cargo xtask qemu` options.
#[derive(Args, Debug)]
pub struct QemuArgs {
    /// Board configuration.
    #[arg(long, value_enum, default_value = "virt")]
    pub board: BoardInfo,
    /// Number of cores (default: the board's usual count).
    #[arg(long)]
    pub smp: Option<u32>,
    /// Kernel test to run instead of the demo (see `cargo xtask test --list`).
    #[arg(long)]
    pub test: Option<String>,
    /// Run the `live` test with the UART on a pty, for `cargo xtask patch --port PTY`.
    #[arg(long, conflicts_with_all = ["test", "sanitize", "gdb"])]
    pub serve: bool,
    /// With --serve: a development build that admits unsigned patches (the kernel's log says
    /// so); without it, a serving kernel embeds the key `cargo xtask keygen` wrote.
    #[arg(long, requires = "serve")]
    pub unsigned: bool,
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
    #[arg(long, value_enum, default_value = "on")]
    pub ic_broadcast: Switch,
    /// Extra `key=value` words for the kernel's command line (e.g. `--arg rounds=10`).
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub args: Vec<String>,
}

/// `cargo xtask qemu`.
pub fn command(args: &QemuArgs) -> Result<bool> {
    let board = args.board;
    let cores = board.cores(args.smp)?;
    prerequisites()?;
    if args.serve {
        crate::keys::for_serving(args.unsigned)?;
        return live::serve(&board);
    }
    if args.test.as_deref() == Some(live::TEST) {
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
            ic_broadcast: args.ic_broadcast.on(),
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
        extra.push(format!("{}={secs}", keys::SECS));
    }
    if args.sanitize {
        extra.push(format!("{}=1", keys::SANITIZED));
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
        test.map_or(DEMO, |t| t.name.as_str()),
        board.name
    );
    let outcome = run.execute(&symbols)?;
    if !outcome.stderr.trim().is_empty() {
        eprintln!("{}", outcome.stderr.trim_end());
    }
    let mut verdict = outcome.verdict(expect, &what);
    if test.is_none_or(|t| t.name == DEMO) {
        verdict = verdict.and_then(|()| demo_verdict(&outcome.lines, &what));
    }
    let mut note = None;
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
        // As sanitizers do, any hazard fails the run, even where it was meant to be found.
        verdict = verdict.and(sanitized_verdict(&report, Sanitized::Clean, &what));
        note = test
            .and_then(|t| negative_control_note(t, args.ic_broadcast, report.hazards.is_empty()));
    }
    let ok = match verdict {
        Ok(()) => {
            println!("xtask: {what}: ok ({:.1} s)", outcome.elapsed.as_secs_f64());
            true
        }
        Err(why) => {
            println!("xtask: FAILED: {why}");
            false
        }
    };
    if let Some(note) = note {
        println!("{note}");
    }
    Ok(ok)
}

/// What to say when a single sanitized run is a negative control (its test record expects
/// hazards with this `--ic-broadcast`): the hazards fail the run, as a sanitizer's always do, but
/// they were meant to be found; `cargo xtask test` counts that as a pass.
fn negative_control_note(test: &KernelTest, ic_broadcast: Switch, clean: bool) -> Option<String> {
    if expected_sanitized(test, ic_broadcast.on()) != Sanitized::Hazard {
        return None;
    }
    let switch = format!(
        "ic-broadcast={}",
        if ic_broadcast.on() { "on" } else { "off" }
    );
    Some(if clean {
        format!(
            "sanitizer: WARNING: {} with {switch} is a negative control and was NOT flagged; \
             `cargo xtask test` would fail it",
            test.name
        )
    } else {
        format!(
            "sanitizer: note: {} with {switch} is a negative control: these hazards were meant \
             to be flagged (`cargo xtask test` expects them); the exit status is still a failure, \
             as for any hazard",
            test.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::testinfo::Tcg;

    fn test(sanitized: [Sanitized; 2]) -> KernelTest {
        KernelTest {
            name: "patch-ipi".into(),
            expect: Expect::Pass,
            timeout_s: 1,
            min_cores: 4,
            tcg: Tcg::SingleThreaded,
            sanitized,
            idc: false,
            dic: false,
        }
    }

    #[test]
    fn negative_controls_are_named_only_where_the_record_says_so() {
        let t = test([Sanitized::Clean, Sanitized::Hazard]);
        assert_eq!(negative_control_note(&t, Switch::On, false), None);
        let flagged = negative_control_note(&t, Switch::Off, false).unwrap();
        assert!(
            flagged.contains("ic-broadcast=off is a negative control")
                && flagged.contains("meant to be flagged"),
            "{flagged}"
        );
        let missed = negative_control_note(&t, Switch::Off, true).unwrap();
        assert!(missed.contains("NOT flagged"), "{missed}");
    }
}
