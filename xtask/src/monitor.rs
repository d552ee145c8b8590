//! `cargo xtask monitor`: a running kernel's decoded log, from its serial port.
//!
//! The log is `defmt` frames, which only the ELF they came from decodes. The monitor asks the
//! kernel which image it runs (`GWHO`: a serving kernel answers at once; any kernel announces
//! its build id at boot), keeps what arrives, and decodes it with each kernel ELF under
//! `target/kernel` (or the one `--elf` names) until one decodes the announcement of its own build
//! id. From then on it prints every line as `patch` and `flash` do: defmt-decoder's formatter,
//! records as the host decoded them, and fault addresses named by function and file:line.

use crate::keys::hex;
use crate::runner::build::root;
use crate::runner::logs::{Line, Symbols};
use crate::runner::serial;
use anyhow::{Context, Result, bail};
use protocol::Record;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `cargo xtask monitor` options.
#[derive(clap::Args)]
pub struct MonitorArgs {
    /// The serial port (a board's adapter, or the pty `cargo xtask qemu --serve` printed).
    #[arg(long)]
    pub port: PathBuf,
    /// The running kernel's ELF (default: whichever kernel ELF under target/kernel decodes the
    /// kernel's announcement of its own build id).
    #[arg(long)]
    pub elf: Option<PathBuf>,
    /// Stop after this many seconds (default: until the port closes, or Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Seconds to wait for the kernel to name its image (a kernel that does not serve patches
    /// names it only at boot: reset the board within this time).
    #[arg(long, default_value_t = 20)]
    pub identify: u64,
}

/// A kernel ELF that might be the running one.
struct Candidate {
    path: PathBuf,
    symbols: Symbols,
}

/// `cargo xtask monitor`.
pub fn command(args: &MonitorArgs) -> Result<bool> {
    let candidates = candidates(args.elf.as_deref())?;
    let mut port = serial::open_port(&args.port)?;
    port.set_timeout(Duration::from_millis(50))?;
    // A serving kernel answers with its build id; any other kernel ignores the bytes.
    port.write_all(&protocol::live::WHO)
        .context("writing to the serial port")?;
    let started = Instant::now();
    let stop = args.seconds.map(|s| started + Duration::from_secs(s));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut last_try = 0;
    let chosen = loop {
        if started.elapsed() > Duration::from_secs(args.identify) {
            bail!(
                "no kernel ELF decoded the kernel's announcement of its build id within {} s \
                 (tried {}); give --elf, or reset the board so that it announces it at boot",
                args.identify,
                candidates
                    .iter()
                    .map(|c| c.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        match read(&mut *port, &mut buf)? {
            None => bail!("the serial port closed before the kernel named its image"),
            Some(n) => seen.extend_from_slice(&buf[..n]),
        }
        if seen.len() > last_try {
            last_try = seen.len();
            if let Some(i) = identify(&candidates, &seen) {
                break i;
            }
        }
    };
    let c = &candidates[chosen];
    println!(
        "monitor: the kernel on {} runs {} (build {})",
        args.port.display(),
        c.path.display(),
        c.symbols.build_id.as_deref().map(hex).unwrap_or_default()
    );
    let mut decoder = c.symbols.decoder();
    let show = |lines: Vec<Line>| {
        for l in lines.iter().filter(|l| l.for_people()) {
            println!("{}", l.text);
        }
    };
    show(decoder.feed(&seen));
    loop {
        if stop.is_some_and(|s| Instant::now() >= s) {
            return Ok(true);
        }
        match read(&mut *port, &mut buf)? {
            None => {
                println!("monitor: the serial port closed");
                return Ok(true);
            }
            Some(n) => show(decoder.feed(&buf[..n])),
        }
    }
}

/// Reads what is there: `Some(0)` after a quiet timeout, `None` once the other end closed.
fn read(port: &mut dyn serialport::SerialPort, buf: &mut [u8]) -> Result<Option<usize>> {
    match port.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::TimedOut => Ok(Some(0)),
        Err(e) if e.kind() == ErrorKind::BrokenPipe || e.raw_os_error() == Some(5) => Ok(None),
        Err(e) => Err(e).context("reading the serial port"),
    }
}

/// The candidate whose decoding of `bytes` holds a `Record::Image` naming its own build id.
fn identify(candidates: &[Candidate], bytes: &[u8]) -> Option<usize> {
    candidates.iter().position(|c| {
        let mut d = c.symbols.decoder();
        d.feed(bytes).iter().filter_map(Line::record).any(|r| {
            matches!(r, Record::Image { build_id }
                if c.symbols.build_id.as_deref() == Some(&build_id[..]))
        })
    })
}

/// `elf`, or every kernel ELF under `target/kernel`, newest first.
fn candidates(elf: Option<&Path>) -> Result<Vec<Candidate>> {
    let paths: Vec<PathBuf> = match elf {
        Some(p) => vec![p.to_path_buf()],
        None => {
            let mut found: Vec<(std::time::SystemTime, PathBuf)> =
                std::fs::read_dir(root().join("target/kernel"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path().join("aarch64-unknown-none/release/graft-kernel"))
                    .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
                    .collect();
            found.sort_by_key(|f| std::cmp::Reverse(f.0));
            found.into_iter().map(|(_, p)| p).collect()
        }
    };
    let out: Vec<Candidate> = paths
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let symbols = Symbols::new(&bytes).ok()?;
            Some(Candidate { path, symbols })
        })
        .collect();
    if out.is_empty() {
        bail!(
            "no kernel ELF to decode with: build one (cargo xtask qemu, image, flash) or give \
             --elf"
        );
    }
    Ok(out)
}
