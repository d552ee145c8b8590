//! The host's side of the chainloading protocol: a [`Session`] over any byte stream.
//!
//! Generic over `Read + Write` with timing-out reads, so that a real serial port, QEMU's pty and
//! the in-memory pipe of the host tests all run the same code. Every wait is bounded and every
//! failure is a [`FlashError`] naming what to check. Also here: building the loader, and
//! following the chainloaded kernel's log to its test's verdict.

use super::board::BoardInfo;
use super::logs::Symbols;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use protocol::Record;
use protocol::crc32::crc32;
use protocol::loader::{
    CHUNK, CHUNK_HEAD, CHUNK_TAIL, Header, MAX_RETRIES, NakReason, Refusal, Reply, VERSION,
    chunk_len, encode_chunk,
};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long to wait for the loader's announcement.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the loader's answer to one frame.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What can go wrong in a transfer, each naming what to check.
#[derive(Debug)]
pub enum FlashError {
    /// No announcement arrived.
    NoHandshake {
        /// Waited this long.
        waited: Duration,
    },
    /// The loader speaks another protocol version.
    Version(u32),
    /// The loader was built for another board.
    WrongBoard {
        /// The loader's board.
        loader: String,
        /// The board asked for.
        wanted: String,
    },
    /// The loader refused the transfer and went back to waiting.
    Refused(Refusal),
    /// One chunk was refused (or not answered) too often.
    ChunkFailed {
        /// The chunk.
        index: u32,
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: String,
    },
    /// An expected answer did not come.
    NoReply {
        /// What was awaited.
        what: String,
    },
    /// The loader answered out of turn (it was reset, or another program shares the port).
    Protocol(String),
    /// The port failed.
    Io(io::Error),
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHandshake { waited } => write!(
                f,
                "no loader announcement within {} s: is the loader on the SD card as kernel8.img, \
                 the Pi powered on, TX/RX crossed and GND connected?",
                waited.as_secs()
            ),
            Self::Version(v) => write!(f, "the loader speaks protocol {v}, this xtask {VERSION}"),
            Self::WrongBoard { loader, wanted } => write!(
                f,
                "the loader was built for {loader}, not {wanted}: rebuild the card with \
                 `cargo xtask image --board {wanted} --loader`, or pass --board {loader}"
            ),
            Self::Refused(r) => match r {
                Refusal::TooLarge { size, max } => write!(
                    f,
                    "the loader refused the image: {size} bytes, but only {max} fit below it"
                ),
                Refusal::Retries { chunk } => write!(
                    f,
                    "the loader gave up on chunk {chunk} after {MAX_RETRIES} bad copies"
                ),
                other => write!(f, "the loader refused the transfer: {other}"),
            },
            Self::ChunkFailed {
                index,
                attempts,
                last,
            } => write!(f, "chunk {index} failed {attempts} times (last: {last})"),
            Self::NoReply { what } => write!(
                f,
                "no {what} from the loader within {} s",
                REPLY_TIMEOUT.as_secs()
            ),
            Self::Protocol(what) => write!(f, "unexpected answer from the loader: {what}"),
            Self::Io(e) => write!(f, "serial port: {e}"),
        }
    }
}

impl std::error::Error for FlashError {}

impl From<io::Error> for FlashError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// What the loader said about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Its board.
    pub board: String,
    /// Where it writes and enters the image.
    pub load: u64,
    /// The largest image it takes.
    pub max: u32,
}

/// Deliberate damage, for tests: which chunk copies go out corrupted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Corrupt the first copy of this chunk only (the retry must get it through).
    pub corrupt_once: Option<u32>,
    /// Corrupt every copy of this chunk (the transfer must fail, by name).
    pub corrupt_always: Option<u32>,
}

impl Faults {
    fn corrupts(&self, index: u32, attempt: u32) -> bool {
        self.corrupt_always == Some(index) || (self.corrupt_once == Some(index) && attempt == 0)
    }
}

/// One conversation with a loader over a byte stream whose reads time out.
pub struct Session<P: Read + Write> {
    port: P,
    /// Bytes read and not yet consumed (after `BOOT`: the kernel's first output).
    pending: Vec<u8>,
    /// Lines that were no reply (firmware noise, a previous kernel's output), for error reports.
    pub noise: Vec<String>,
}

impl<P: Read + Write> Session<P> {
    /// Wraps `port`, whose reads must return `TimedOut` (or `WouldBlock`) after a short while.
    pub fn new(port: P) -> Self {
        Self {
            port,
            pending: Vec::new(),
            noise: Vec::new(),
        }
    }

    /// Reads until a line is complete or `deadline` passes (`Ok(None)`).
    fn line(&mut self, deadline: Instant) -> io::Result<Option<String>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(Some(String::from_utf8_lossy(&raw).trim().to_string()));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// One read into `pending`; a timeout is no error.
    fn fill(&mut self) -> io::Result<usize> {
        let mut buf = [0u8; 2048];
        match self.port.read(&mut buf) {
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                Ok(0)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Reads replies until `pick` decides, or `wait` passes ([`FlashError::NoReply`] for `what`).
    fn wait_for<T>(
        &mut self,
        wait: Duration,
        what: &str,
        mut pick: impl FnMut(Reply<'_>) -> Option<Result<T, FlashError>>,
    ) -> Result<T, FlashError> {
        let deadline = Instant::now() + wait;
        while let Some(line) = self.line(deadline)? {
            match Reply::parse(&line) {
                Some(r) => {
                    if let Some(done) = pick(r) {
                        return done;
                    }
                }
                None if line.is_empty() => {}
                None => self.noise.push(line),
            }
        }
        Err(FlashError::NoReply { what: what.into() })
    }

    /// Waits for the loader to announce itself.
    pub fn handshake(&mut self, wait: Duration) -> Result<Announce, FlashError> {
        let found = self.wait_for(wait, "announcement", |r| match r {
            Reply::Announce {
                version,
                board,
                load,
                max,
            } => Some(if version == VERSION {
                Ok(Announce {
                    board: board.to_string(),
                    load,
                    max,
                })
            } else {
                Err(FlashError::Version(version))
            }),
            _ => None,
        });
        match found {
            Err(FlashError::NoReply { .. }) => Err(FlashError::NoHandshake { waited: wait }),
            other => other,
        }
    }

    /// Sends the header for `image` (claiming `size` bytes) and waits for `READY` or `ERR`.
    pub fn offer(&mut self, size: u32, image_crc: u32) -> Result<(), FlashError> {
        self.port.write_all(
            &Header {
                size,
                crc: image_crc,
            }
            .encode(),
        )?;
        self.port.flush()?;
        self.wait_for(REPLY_TIMEOUT, "answer to the header", |r| match r {
            Reply::Ready { size: s, .. } if s == size => Some(Ok(())),
            Reply::Err(why) => Some(Err(FlashError::Refused(why))),
            _ => None,
        })
    }

    /// Sends every chunk of `image`, each until acknowledged, then waits for `BOOT`.
    pub fn send(
        &mut self,
        image: &[u8],
        faults: Faults,
        progress: &ProgressBar,
    ) -> Result<u64, FlashError> {
        let size = image.len() as u32;
        let chunks = size.div_ceil(CHUNK as u32);
        let mut frame = [0u8; CHUNK_HEAD + CHUNK + CHUNK_TAIL];
        for index in 0..chunks {
            let start = index as usize * CHUNK;
            let payload = &image[start..start + chunk_len(size, index)];
            let n = encode_chunk(index, payload, &mut frame);
            let mut attempt = 0;
            loop {
                let mut copy = frame[..n].to_vec();
                if faults.corrupts(index, attempt) {
                    copy[CHUNK_HEAD] ^= 0xff;
                }
                self.port.write_all(&copy)?;
                self.port.flush()?;
                let what = format!("answer to chunk {index}");
                let answer = self.wait_for(REPLY_TIMEOUT, &what, |r| match r {
                    Reply::Ack(i) if i == index => Some(Ok(None)),
                    // A late acknowledgement of the chunk before: not this one's answer.
                    Reply::Ack(i) if i < index => None,
                    Reply::Nak(i, why) if i == index => Some(Ok(Some(why))),
                    Reply::Err(why) => Some(Err(FlashError::Refused(why))),
                    Reply::Announce { .. } => Some(Err(FlashError::Protocol(format!(
                        "the loader started over during chunk {index} (was it reset?)"
                    )))),
                    other => Some(Err(FlashError::Protocol(format!(
                        "'{other}' while chunk {index} was awaited"
                    )))),
                });
                let last = match answer {
                    Ok(None) => break,
                    Ok(Some(why)) => nak_text(why),
                    Err(FlashError::NoReply { .. }) => "no answer".to_string(),
                    Err(e) => return Err(e),
                };
                attempt += 1;
                progress.println(format!("chunk {index}: {last}, sending it again"));
                if attempt >= MAX_RETRIES {
                    return Err(FlashError::ChunkFailed {
                        index,
                        attempts: attempt,
                        last,
                    });
                }
            }
            progress.inc(payload.len() as u64);
        }
        self.wait_for(REPLY_TIMEOUT, "BOOT", |r| match r {
            Reply::Boot(at) => Some(Ok(at)),
            Reply::Err(why) => Some(Err(FlashError::Refused(why))),
            _ => None,
        })
    }

    /// The whole transfer after the handshake: header, then chunks; returns the entry address.
    pub fn transfer(
        &mut self,
        image: &[u8],
        faults: Faults,
        progress: &ProgressBar,
    ) -> Result<u64, FlashError> {
        let size = u32::try_from(image.len()).map_err(|_| {
            FlashError::Refused(Refusal::TooLarge {
                size: u32::MAX,
                max: 0,
            })
        })?;
        self.offer(size, crc32(image))?;
        self.send(image, faults, progress)
    }

    /// Bytes already read past the last reply, then up to one more read's worth.
    pub fn take_output(&mut self) -> io::Result<Vec<u8>> {
        if self.pending.is_empty() {
            self.fill()?;
        }
        Ok(std::mem::take(&mut self.pending))
    }
}

fn nak_text(why: NakReason) -> String {
    match why {
        NakReason::Checksum => "checksum mismatch".into(),
        NakReason::Length => "wrong length".into(),
        NakReason::Index => "out of order".into(),
        NakReason::Timeout => "cut short".into(),
    }
}

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
pub fn build_loader(board: &BoardInfo) -> Result<PathBuf> {
    if !board.serial_loader {
        let with: Vec<_> = super::board::ALL
            .iter()
            .filter(|b| b.serial_loader)
            .map(|b| b.name)
            .collect();
        bail!(
            "the serial loader is not built for {}: boards with a loader are {}",
            board.name,
            with.join(", ")
        );
    }
    let target_dir = super::build::root()
        .join("target/kernel")
        .join(board.feature);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(super::build::root())
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
    std::fs::write(&img, super::image::raw_from_elf(&bytes)?)
        .with_context(|| format!("writing {}", img.display()))?;
    Ok(img)
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

#[cfg(test)]
mod tests;
