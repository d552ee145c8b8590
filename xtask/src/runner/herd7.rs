//! herd7, the reference model: finding it, and its verdict on one litmus file.
//!
//! A user's clone has no herd7: it is found through `GRAFT_HERD7` (herd7 itself, or a wrapper
//! that passes its model library, like the shared tools' `herd7/run`), else at
//! `../shared/tools/herd7/run` beside the project; without either, callers say so plainly.

use super::build;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// herd7's executable (or wrapper), if there is one.
pub fn find() -> Option<PathBuf> {
    match std::env::var_os("GRAFT_HERD7") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let beside = build::root().join("../shared/tools/herd7/run");
            beside.is_file().then_some(beside)
        }
    }
}

/// What a litmus test's `exists` clause gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No execution satisfies it (herd7: `Never`).
    Forbidden,
    /// Some execution does (herd7: `Sometimes` or `Always`).
    Allowed,
}

/// The verdict a project litmus file states in its header comment (`Expected: Forbidden`).
pub fn expected(text: &str) -> Option<Verdict> {
    let rest = &text[text.find("Expected:")? + "Expected:".len()..];
    match rest
        .split_whitespace()
        .next()?
        .trim_end_matches(['.', ',', ';'])
    {
        "Forbidden" => Some(Verdict::Forbidden),
        "Allowed" => Some(Verdict::Allowed),
        _ => None,
    }
}

/// The verdict in herd7's output: its `Observation NAME Never|Sometimes|Always P N` line.
pub fn observed(output: &str) -> Option<Verdict> {
    let line = output.lines().find(|l| l.starts_with("Observation "))?;
    match line.split_whitespace().nth(2)? {
        "Never" => Some(Verdict::Forbidden),
        "Sometimes" | "Always" => Some(Verdict::Allowed),
        _ => None,
    }
}

/// Memory herd7 may take (KiB): some shapes grow without bound, and a test run must not take
/// the machine with them.
const MEMORY_KIB: u64 = 4 * 1024 * 1024;

/// herd7's verdict on `file` within `timeout`, or why there is none.
pub fn run(herd7: &Path, file: &Path, timeout: Duration) -> Result<Verdict, String> {
    // `ulimit -v` through the shell: the standard library sets no resource limits.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB}; exec \"$0\" \"$@\""))
        .arg(herd7)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", herd7.display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "herd7 gave no verdict within {} s",
                    timeout.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for herd7: {e}")),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    observed(&out).ok_or_else(|| {
        let why = err.lines().chain(out.lines()).last().unwrap_or("no output");
        format!("herd7 gave no verdict ({status}): {why}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stated_and_the_observed_verdict() {
        let text = "AArch64 x\n(*\n * Kernel mirror: patch-x.   Expected: Forbidden.\n *)\n";
        assert_eq!(expected(text), Some(Verdict::Forbidden));
        assert_eq!(expected("(* Expected: Allowed *)"), Some(Verdict::Allowed));
        assert_eq!(expected("(* Expected: maybe *)"), None);
        assert_eq!(expected("(* no verdict *)"), None);
        let out = "Test x Allowed\nStates 2\nNo\nWitnesses\nObservation x Never 0 3\nTime x 0.01\n";
        assert_eq!(observed(out), Some(Verdict::Forbidden));
        assert_eq!(
            observed("Observation x Sometimes 1 2\n"),
            Some(Verdict::Allowed)
        );
        assert_eq!(
            observed("Observation x Always 2 0\n"),
            Some(Verdict::Allowed)
        );
        assert_eq!(observed("Warning: stack overflow\n"), None);
    }

    #[test]
    fn a_missing_herd7_is_an_error_not_a_verdict() {
        let e = run(
            Path::new("/nonexistent/herd7"),
            Path::new("x.litmus"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.contains("no verdict"), "{e}");
    }
}
