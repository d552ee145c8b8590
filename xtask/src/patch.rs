//! `cargo xtask patch`: send one block to a running kernel's `live` test over its serial port.
//!
//! The port is a board's serial adapter, or the pty `cargo xtask qemu --serve` prints; the link,
//! the frames and the answers are [`crate::runner::live`]'s.

use crate::runner::board::BoardInfo;
use crate::runner::build::build_for;
use crate::runner::live::{Link, SITE, template_block};
use crate::runner::logs::Symbols;
use anyhow::{Context, Result, bail};
use clap::Args;
use protocol::Record;
use protocol::live::END;
use std::path::PathBuf;
use std::time::Duration;

/// How long `cargo xtask patch` keeps showing the log after an applied patch.
const SHOW: Duration = Duration::from_millis(500);

/// `cargo xtask patch` options.
#[derive(Args, Debug)]
pub struct PatchArgs {
    /// The serial port of the running kernel (a board's adapter, or the pty that
    /// `cargo xtask qemu --serve` printed).
    #[arg(long)]
    pub port: PathBuf,
    /// The board the kernel was built for (its ELF decodes the log and holds the payload
    /// templates).
    #[arg(long, value_enum, default_value = "virt")]
    pub board: BoardInfo,
    /// The named site to patch.
    #[arg(long, default_value = SITE)]
    pub site: String,
    /// Send the kernel's own payload template carrying this version.
    #[arg(long, conflicts_with = "file")]
    pub version: Option<u64>,
    /// Send these raw bytes as the block: position-independent AArch64 code with the payload ABI
    /// `extern "C" fn(inside: *mut u64) -> (version, checksum)`.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// End the session afterwards (the kernel's `live` test then exits 0).
    #[arg(long)]
    pub end: bool,
    /// Seconds to wait for the kernel's answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// Runs `cargo xtask patch`; true if every frame sent was applied.
pub fn command(args: &PatchArgs) -> Result<bool> {
    let built = build_for(&args.board)?;
    let symbols = Symbols::new(&built.bytes)?;
    let block = match (&args.version, &args.file) {
        (Some(v), None) => Some(template_block(&built.bytes, *v)?),
        (None, Some(f)) => {
            Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?)
        }
        _ if args.end => None,
        _ => bail!("give --version N or --file PATH (or --end alone)"),
    };
    let mut link = Link::open(&args.port, &symbols)?;
    link.echo = true;
    let timeout = Duration::from_secs(args.timeout);
    let mut ok = true;
    if let Some(block) = block {
        let reply = link.patch(&args.site, &block, timeout)?;
        ok = matches!(reply, Record::LiveApplied { .. });
        if ok {
            // Show the cores moving to the new code.
            link.read_for(SHOW, |_| false)?;
        }
    }
    if args.end {
        link.send(&END)?;
        link.until("the end of the session", timeout, |r| {
            matches!(r, Record::LiveEnded { .. })
        })?;
    }
    Ok(ok)
}
