//! `cargo xtask flash`: send a kernel to the serial chainloader on a Pi, then show its logs.
//!
//! The loader (`loader/`, on the SD card as `kernel8.img`) announces itself on the PL011; this
//! side answers with the framing in `protocol::loader`: a header, then checked chunks, each
//! acknowledged or refused and sent again. The same [`Session`] drives a real port, QEMU's pty in
//! the end-to-end test, and an in-memory pipe in the host tests.

use crate::boards::{self, BoardConfig};
use crate::logs::Symbols;
use crate::qemu;
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use protocol::Record;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long to wait for the loader's announcement.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the loader's answer to one frame.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// `cargo xtask flash` options.
#[derive(Args, Debug)]
pub struct FlashArgs {
    /// The serial port the Pi's GPIO 14/15 are wired to (e.g. /dev/ttyUSB0).
    #[arg(long)]
    pub port: PathBuf,
    /// rpi3 or rpi4 (default: the board the loader announces).
    #[arg(long)]
    pub board: Option<String>,
    /// Kernel test to watch for; the run ends at its PASS or FAIL line (see `cargo xtask test
    /// --list`).
    #[arg(long)]
    pub test: Option<String>,
    /// Stop showing the kernel's log after this many seconds (default: until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Send a kernel that serves live patches (its `live` test) instead of the demo, then
    /// leave the port to `cargo xtask patch`.
    #[arg(long, conflicts_with = "test")]
    pub serve: bool,
}

mod session;
pub use session::{Faults, FlashError, Session};

/// A progress bar for `bytes`, drawn on the terminal.
pub fn progress_bar(bytes: u64) -> ProgressBar {
    let bar = ProgressBar::new(bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message("sending");
    bar
}

/// Builds the loader for `board` and returns its raw image (`loader8.img`, an arm64 Image).
pub fn build_loader(board: &BoardConfig) -> Result<PathBuf> {
    if !matches!(board.feature, "rpi3" | "rpi4") {
        bail!(
            "the serial loader is for rpi3 and rpi4, not {}: boards with a loader are rpi3, rpi4",
            board.name
        );
    }
    let target_dir = crate::build::root()
        .join("target/kernel")
        .join(board.feature);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(crate::build::root())
        .args(["build", "--quiet", "--release", "--package", "graft-loader"])
        .args([
            "--target",
            "aarch64-unknown-none",
            "--features",
            board.feature,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("running cargo build for the loader")?;
    if !status.success() {
        bail!("the loader did not build for board {}", board.name);
    }
    let elf = target_dir.join("aarch64-unknown-none/release/graft-loader");
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    let img = elf.with_file_name("loader8.img");
    std::fs::write(&img, crate::image::raw_from_elf(&bytes)?)
        .with_context(|| format!("writing {}", img.display()))?;
    Ok(img)
}

/// Opens a serial port at 115200 8N1 without flow control, reads timing out after 100 ms.
pub fn open_port(path: &Path) -> Result<Box<dyn serialport::SerialPort>> {
    let name = path.to_string_lossy();
    serialport::new(name.as_ref(), 115_200)
        .data_bits(serialport::DataBits::Eight)
        .parity(serialport::Parity::None)
        .stop_bits(serialport::StopBits::One)
        .flow_control(serialport::FlowControl::None)
        .timeout(Duration::from_millis(100))
        .open()
        .with_context(|| format!("opening serial port {name}"))
}

/// How a followed log ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LogEnd {
    /// The watched test logged its PASS line.
    Pass,
    /// The watched test logged its FAIL line, or the kernel an error.
    Fail(String),
    /// The time limit passed.
    Timeout,
    /// The port closed (QEMU exited, the adapter was unplugged).
    Closed,
}

/// Prints the kernel's decoded log from `session` until `test` passes or fails, `limit` passes,
/// or the port closes. `first` holds bytes already read.
pub fn follow<P: Read + Write>(
    session: &mut Session<P>,
    symbols: &Symbols,
    test: Option<&str>,
    limit: Option<Duration>,
    print: bool,
) -> LogEnd {
    let mut decoder = symbols.decoder();
    let deadline = limit.map(|l| Instant::now() + l);
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return LogEnd::Timeout;
        }
        let bytes = match session.take_output() {
            Ok(b) => b,
            Err(_) => return LogEnd::Closed,
        };
        for line in decoder.feed(&bytes) {
            if print && line.for_people() {
                println!("{}", line.text);
            }
            let Some(t) = test else { continue };
            match &line.record {
                Some(Ok(Record::TestVerdict { test, passed })) if test.as_str() == t => {
                    return if *passed {
                        LogEnd::Pass
                    } else {
                        LogEnd::Fail(line.message)
                    };
                }
                Some(Err(_)) => return LogEnd::Fail(line.message),
                _ if line.level == "error" => return LogEnd::Fail(line.message),
                _ => {}
            }
        }
    }
}

/// `cargo xtask flash`.
pub fn command(args: &FlashArgs) -> Result<bool> {
    let wanted = args.board.as_deref().map(boards::find).transpose()?;
    let mut session = Session::new(open_port(&args.port)?);
    println!(
        "xtask: waiting for the loader on {} (reset the Pi if it is already running a kernel)",
        args.port.display()
    );
    let announce = session.handshake(HANDSHAKE_TIMEOUT)?;
    println!(
        "xtask: loader for {} at {:#x}, room for {} KiB",
        announce.board,
        announce.load,
        announce.max / 1024
    );
    let board = match wanted {
        Some(b) if b.name != announce.board => {
            return Err(FlashError::WrongBoard {
                loader: announce.board,
                wanted: b.name.into(),
            }
            .into());
        }
        Some(b) => b,
        None => boards::find(&announce.board)?,
    };
    crate::prereq::rust_target()?;
    let built = qemu::build_running(&board, args.serve.then_some(crate::live::TEST))?;
    if let Some(name) = &args.test {
        qemu::find_test(&built.tests, name)?;
        println!(
            "xtask: note: the kernel reads test={name} through semihosting, which only QEMU \
             answers; on a board this run only watches for the test's PASS or FAIL line"
        );
    }
    let image = std::fs::read(&built.boot)?;
    if image.len() as u64 > u64::from(announce.max) {
        bail!(
            "the kernel image is {} bytes, the loader has room for {}",
            image.len(),
            announce.max
        );
    }
    let bar = progress_bar(image.len() as u64);
    let start = Instant::now();
    let entry = session.transfer(&image, Faults::default(), &bar)?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "xtask: sent {} KiB in {secs:.1} s ({:.1} KiB/s); the loader enters it at {entry:#x}",
        image.len() / 1024,
        image.len() as f64 / 1024.0 / secs
    );
    if args.serve {
        println!(
            "xtask: the kernel serves live patches; send them with: cargo xtask patch --board {} \
             --port {} --version 7",
            board.name,
            args.port.display()
        );
        return Ok(true);
    }
    let symbols = Symbols::new(&built.bytes)?;
    let end = follow(
        &mut session,
        &symbols,
        args.test.as_deref(),
        args.timeout.map(Duration::from_secs),
        true,
    );
    println!("xtask: log ended: {end:?}");
    Ok(!matches!(end, LogEnd::Fail(_)))
}

#[cfg(test)]
mod tests;
