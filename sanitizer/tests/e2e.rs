//! End to end: the bare-metal probe (`probe/`) under QEMU `virt` with the plugin loaded.
//!
//! Builds the probe for `aarch64-unknown-none`, runs it on two cores under the default
//! multi-threaded TCG with the plugin this test run built, and checks the reports per scenario
//! (the probe's module doc lists them). Skipped, with a message, when `qemu-system-aarch64` is
//! not installed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const QEMU: &str = "qemu-system-aarch64";

/// One parsed `graft-sanitizer:` line: its keyword and its `key=value` fields.
#[derive(Debug)]
struct Line {
    tag: String,
    fields: HashMap<String, String>,
}

impl Line {
    fn get(&self, k: &str) -> &str {
        self.fields.get(k).map_or("", String::as_str)
    }
}

fn parse(out: &str) -> Vec<Line> {
    out.lines()
        .filter_map(|l| l.strip_prefix("graft-sanitizer: "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let tag = words.next().unwrap_or_default().to_string();
            let fields = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Line { tag, fields }
        })
        .collect()
}

fn qemu_available() -> bool {
    Command::new(QEMU).arg("--version").output().is_ok()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the probe once per test binary (its own target dir, so no lock is shared with the
/// cargo that runs this test).
fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = manifest_dir().join("probe");
        let target = manifest_dir().join("target").join("probe");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&dir)
            .args(["build", "--release", "--target", "aarch64-unknown-none"])
            .arg("--target-dir")
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo for the probe");
        assert!(
            status.success(),
            "building the probe failed (is `rustup target add aarch64-unknown-none` done?)"
        );
        target.join("aarch64-unknown-none/release/graft-sanitizer-probe")
    })
}

/// The plugin cargo built for this test run: beside the test binary in `deps/` (cargo
/// uplifts it to `target/<profile>/` only on `cargo build`).
fn plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    [
        deps.to_path_buf(),
        deps.parent().expect("target/<profile>").to_path_buf(),
    ]
    .iter()
    .map(|d| d.join("libgraft_sanitizer.so"))
    .find(|so| so.exists())
    .expect("the plugin next to the test binary")
}

/// Runs the probe with the plugin and `args`; returns the exit code and the report lines.
fn run(name: &str, args: &str, extra: &[&str], append: Option<&str>) -> (i32, Vec<Line>) {
    let out =
        std::env::temp_dir().join(format!("graft-sanitizer-{name}-{}.txt", std::process::id()));
    let mut plugin_arg = format!("{},out={}", plugin().display(), out.display());
    if !args.is_empty() {
        plugin_arg = format!("{plugin_arg},{args}");
    }
    let mut cmd = Command::new(QEMU);
    cmd.args([
        "-M",
        "virt",
        "-cpu",
        "cortex-a72",
        "-smp",
        "2",
        "-nographic",
        "-semihosting",
    ])
    .args(["-monitor", "none", "-serial", "none"])
    .arg("-kernel")
    .arg(probe())
    .args(["-plugin", &plugin_arg])
    .args(extra);
    if let Some(a) = append {
        cmd.args(["-append", a]);
    }
    let status = cmd.status().expect("run qemu");
    let text = std::fs::read_to_string(&out).expect("plugin output file");
    let _ = std::fs::remove_file(&out);
    (status.code().unwrap_or(-1), parse(&text))
}

fn reports<'a>(lines: &'a [Line], iter: &str) -> Vec<&'a Line> {
    lines
        .iter()
        .filter(|l| (l.tag == "hazard" || l.tag == "stale") && l.get("iter") == iter)
        .collect()
}

fn summary(lines: &[Line]) -> &Line {
    lines
        .iter()
        .find(|l| l.tag == "summary")
        .expect("summary line")
}

macro_rules! need_qemu {
    () => {
        if !qemu_available() {
            eprintln!("SKIPPED: {QEMU} is not installed; the end-to-end sanitizer test needs it");
            return;
        }
    };
}

#[test]
fn scenarios_default_switches() {
    need_qemu!();
    let (code, lines) = run("default", "", &[], None);
    assert_eq!(
        code, 0,
        "every consumer must run the new code in QEMU (exit 10+N names N)"
    );
    check_default_scenarios(&lines);
}

#[test]
fn round_robin_tcg_attributes_by_register() {
    need_qemu!();
    // The probe keeps its core number in TPIDR_EL1. Under round-robin TCG the vCPU index QEMU
    // hands callbacks is the translating vCPU's; with `core-reg` every report must still be
    // exactly the multi-threaded run's.
    for (name, extra) in [
        ("rr-single", &["-accel", "tcg,thread=single"][..]),
        ("rr-icount", &["-icount", "shift=0,sleep=off"][..]),
    ] {
        let (code, lines) = run(name, "core-reg=tpidr_el1", extra, None);
        assert_eq!(code, 0, "{name}");
        check_default_scenarios(&lines);
    }
}

#[test]
fn core_reg_that_holds_no_core_number_is_an_error() {
    need_qemu!();
    // CONTEXTIDR_EL1 stays 0 on both cores: core 1's events would be core 0's.
    let (_, lines) = run(
        "rr-wrong-reg",
        "core-reg=contextidr_el1",
        &["-accel", "tcg,thread=single"],
        None,
    );
    let s = summary(&lines);
    assert_ne!(s.get("attribution-errors"), "0", "{lines:?}");
    let (_, lines) = run("rr-no-reg", "core-reg=no_such_reg", &[], None);
    assert!(lines.iter().any(|l| l.tag == "error"), "{lines:?}");
    assert_ne!(summary(&lines).get("attribution-errors"), "0");
}

/// The reports the probe's scenarios must give with the default switches.
fn check_default_scenarios(lines: &[Line]) {
    // 1: naive rewrite of an ordinary instruction: unpredictable, nothing was done.
    let r = reports(lines, "1");
    assert_eq!(r.len(), 1, "{lines:?}");
    assert_eq!(
        (r[0].tag.as_str(), r[0].get("kind")),
        ("hazard", "unpredictable")
    );
    assert_eq!((r[0].get("core"), r[0].get("writer-core")), ("1", "0"));
    assert_eq!(
        (r[0].get("va"), r[0].get("missing")),
        ("0x40201000", "clean")
    );
    assert_eq!(
        (r[0].get("old"), r[0].get("new")),
        ("0xd2800029", "0xd2800049")
    );
    // 2: full maintenance and the consumer's ISB: fresh.
    assert!(reports(lines, "2").is_empty(), "{:?}", reports(lines, "2"));
    // 3: the consumer lacks its ISB.
    let r = reports(lines, "3");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].get("kind"), r[0].get("missing")),
        ("unpredictable", "context-sync")
    );
    // 4: written through the other alias: found by physical address.
    let r = reports(lines, "4");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].get("va"), r[0].get("pa")),
        ("0x40201300", "0x40201300")
    );
    assert_eq!(r[0].get("missing"), "clean");
    // 5: cleaned through the write alias, invalidated through the executable one: fresh.
    assert!(reports(lines, "5").is_empty(), "{:?}", reports(lines, "5"));
    // 6: CMODX flip in flight: stale, not a hazard. 7: once published: a hazard.
    let r = reports(lines, "6");
    assert_eq!(
        (r.len(), r[0].tag.as_str(), r[0].get("kind")),
        (1, "stale", "stale")
    );
    let r = reports(lines, "7");
    assert_eq!(
        (r.len(), r[0].tag.as_str(), r[0].get("kind")),
        (1, "hazard", "stale")
    );
    assert_eq!(r[0].get("published"), "yes");

    let s = summary(lines);
    assert_eq!(
        (s.get("stale"), s.get("unpredictable"), s.get("hazards")),
        ("2", "3", "4")
    );
    // Attribution: both cores announced themselves and QEMU's indices matched.
    assert_eq!((s.get("attribution-errors"), s.get("core-ids")), ("0", "2"));
    assert_eq!(s.get("unresolved-maintenance"), "0");
}

#[test]
fn ic_broadcast_off_needs_the_consumer_to_invalidate() {
    need_qemu!();
    let (code, lines) = run("icb-off", "ic-broadcast=off", &[], None);
    assert_eq!(code, 0);
    for iter in ["2", "5"] {
        let r = reports(&lines, iter);
        assert_eq!(r.len(), 1, "iteration {iter}: {lines:?}");
        assert_eq!(r[0].get("missing"), "invalidate");
    }
}

#[test]
fn idc_dic_drop_maintenance_but_not_the_isb() {
    need_qemu!();
    let (code, lines) = run("idc-dic", "idc=1,dic=1", &[], None);
    assert_eq!(code, 0);
    assert!(reports(&lines, "2").is_empty() && reports(&lines, "5").is_empty());
    // Naive rewrite: with IDC=DIC=1 only the write's completion and an ISB were missing.
    let r = reports(&lines, "1");
    assert_eq!((r.len(), r[0].get("missing")), (1, "context-sync"));
    let r = reports(&lines, "3");
    assert_eq!((r.len(), r[0].get("missing")), (1, "context-sync"));
}

#[test]
fn wrong_vcpu_indices_are_detected() {
    need_qemu!();
    // Negative control for attribution: QEMU 10.0.2 hands wrong indices under thread=single.
    let (_, lines) = run("single", "", &["-accel", "tcg,thread=single"], None);
    let s = summary(&lines);
    assert_ne!(s.get("attribution-errors"), "0", "{lines:?}");
    assert!(lines.iter().any(|l| l.tag == "error"));
}

#[test]
fn timing_workload_is_quiet() {
    need_qemu!();
    let (code, lines) = run("bench", "", &[], Some("bench"));
    assert_eq!(code, 0);
    let s = summary(&lines);
    assert_eq!((s.get("hazards"), s.get("attribution-errors")), ("0", "0"));
}
