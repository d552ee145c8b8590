//! The chainloader end to end: the loader under QEMU on a pty, `cargo xtask flash`'s code on
//! the host side, a kernel test at the end.
//!
//! QEMU boots `loader8.img` as the Pi firmware would boot it from the card, with its PL011 on a
//! pseudo-terminal; the host opens that pty with the same `serialport` code as a real adapter.
//! First an oversize image is offered (the loader must refuse it and keep waiting), then the
//! kernel is sent with one chunk corrupted on its first copy (it must be sent again), and the
//! kernel's `smp` test, selected by QEMU's semihosting command line, must PASS and end QEMU
//! with status 0.

use super::board::BoardInfo;
use super::build::{build_for, find_test};
use super::loader::{self, Faults, FlashError, HANDSHAKE_TIMEOUT, LogEnd, Session, build_loader};
use super::logs::Symbols;
use super::qemu::Run;
use super::{pty, serial};
use anyhow::{Context, Result, anyhow};
use indicatif::ProgressBar;
use protocol::loader::Refusal;
use std::time::{Duration, Instant};

/// The kernel test the loaded kernel runs.
const TEST: &str = "smp";
/// Runs the whole scenario on `board`; one named result per check, in order.
pub fn run(board: &BoardInfo) -> Vec<(String, Result<(), String>)> {
    let mut results = Vec::new();
    if let Err(e) = scenario(board, &mut results) {
        results.push((
            format!("chainload {TEST} on {} through the loader", board.name),
            Err(format!("{e:#}")),
        ));
    }
    results
}

fn scenario(board: &BoardInfo, results: &mut Vec<(String, Result<(), String>)>) -> Result<()> {
    let loader = build_loader(board)?;
    let built = build_for(board)?;
    let test = find_test(&built.tests, TEST)?;
    let image = std::fs::read(&built.boot)?;
    let symbols = Symbols::new(&built.bytes)?;
    // QEMU boots the loader; the command line still names the test the sent kernel runs.
    let (mut qemu, pty) = pty::start(&Run::new(&loader, *board, Some(test)))?;
    let mut session = Session::new(serial::open_port(&pty)?);
    let announce = session
        .handshake(HANDSHAKE_TIMEOUT)
        .with_context(|| format!("loader on {} (noise: {:?})", board.name, session.noise))?;

    // An image one byte too large: refused by name, and the loader keeps waiting.
    let oversize = match session.offer(announce.max + 1, 0) {
        Err(FlashError::Refused(Refusal::TooLarge { size, max }))
            if size == announce.max + 1 && max == announce.max =>
        {
            session
                .handshake(Duration::from_secs(5))
                .map(|_| ())
                .map_err(|e| format!("after refusing, the loader did not announce again: {e}"))
        }
        Err(e) => Err(format!("expected a too-large refusal, got: {e}")),
        Ok(()) => Err("the loader accepted an image larger than its room".into()),
    };
    results.push((
        format!(
            "loader on {} refuses an oversize image and keeps waiting",
            board.name
        ),
        oversize,
    ));

    // The kernel, with chunk 1 corrupted once: the sender must resend it and the kernel boot.
    let faults = Faults {
        corrupt_once: Some(1),
        ..Faults::default()
    };
    let start = Instant::now();
    let sent = session.transfer(&image, faults, &ProgressBar::hidden());
    results.push((
        format!(
            "loader on {} takes the kernel with a corrupted chunk resent",
            board.name
        ),
        sent.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    ));
    sent.map_err(|e| anyhow!("{e}"))?;
    let rate = image.len() as f64 / 1024.0 / start.elapsed().as_secs_f64();
    let limit = built
        .tests
        .iter()
        .find(|t| t.name == TEST)
        .map_or(60, |t| u64::from(t.timeout_s));
    let end = loader::follow(
        &mut session,
        &symbols,
        Some(TEST),
        Some(Duration::from_secs(limit)),
        false,
    );
    let verdict = match end {
        LogEnd::Pass => match qemu.wait_exit()? {
            0 => Ok(()),
            code => Err(format!(
                "the kernel logged PASS but QEMU exited with {code}"
            )),
        },
        other => Err(format!("the chainloaded kernel's log ended with {other:?}")),
    };
    if verdict.is_ok() {
        println!(
            "     ({} KiB kernel at {rate:.0} KiB/s over QEMU's pty)",
            image.len() / 1024
        );
    }
    results.push((
        format!(
            "chainloaded {TEST} on {} passes and QEMU exits 0",
            board.name
        ),
        verdict,
    ));
    Ok(())
}
