//! `cargo xtask flash`: send a kernel to the serial chainloader on a Pi, then show its logs.
//!
//! The loader (`loader/`, on the SD card as `kernel8.img`) announces itself on the PL011; this
//! side answers with the framing in `protocol::loader`: a header, then checked chunks, each
//! acknowledged or refused and sent again. The [`Session`] (in `runner::loader`) drives a real
//! port here, QEMU's pty in the end-to-end test, and an in-memory pipe in the host tests.

use crate::runner::board::{self, BoardInfo};
use crate::runner::build::{build_running, find_test};
use crate::runner::loader::{
    Faults, FlashError, HANDSHAKE_TIMEOUT, LogEnd, Session, follow, progress_bar,
};
use crate::runner::logs::Symbols;
use crate::runner::serial::open_port;
use crate::runner::{live, prereq};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `cargo xtask flash` options.
#[derive(Args, Debug)]
pub struct FlashArgs {
    /// The serial port the Pi's GPIO 14/15 are wired to (e.g. /dev/ttyUSB0).
    #[arg(long)]
    pub port: PathBuf,
    /// rpi3 or rpi4 (default: the board the loader announces).
    #[arg(long, value_enum)]
    pub board: Option<BoardInfo>,
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
    /// With --serve: a development build that admits unsigned patches (the kernel's log says
    /// so); without it, a serving kernel embeds the key `cargo xtask keygen` wrote.
    #[arg(long, requires = "serve")]
    pub unsigned: bool,
}

/// `cargo xtask flash`.
pub fn command(args: &FlashArgs) -> Result<bool> {
    let wanted = args.board;
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
        None => board::find(&announce.board)?,
    };
    prereq::rust_target()?;
    if args.serve {
        crate::keys::for_serving(args.unsigned)?;
    }
    let built = build_running(&board, args.serve.then_some(live::TEST))?;
    if let Some(name) = &args.test {
        find_test(&built.tests, name)?;
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
