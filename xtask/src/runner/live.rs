//! Live patching from the host: a [`Link`] to a running kernel's `live` test, serving it under
//! QEMU, and the scripted session.
//!
//! `cargo xtask patch` sends one block over the kernel's UART (a board's serial adapter, or the
//! pty `cargo xtask qemu --serve` prints) through a [`Link`]. The frame format is
//! `protocol::live`; the kernel answers each frame with one typed record (`LiveApplied`,
//! `LiveRefused` with its reason, `LiveBadFrame`), beside a log line for people. [`e2e`] is the
//! scripted session `cargo xtask test` runs against QEMU.

use super::board::BoardInfo;
use super::build::{self, find_test};
use super::logs::{Decoder, Line, Symbols};
use super::qemu::Run;
use super::{pty, serial};
use anyhow::{Context, Result, anyhow, bail};
use object::{Object, ObjectSection, ObjectSymbol};
use protocol::Record;
use protocol::live::{self, END, FrameError, IMAGE_BYTES, MAX_FRAME, Refusal, WHO};
use std::collections::{BTreeSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The kernel test that serves patches.
pub const TEST: &str = "live";
/// The site a live session patches unless told otherwise.
pub const SITE: &str = "indirect";
/// The live session's control-law site, patched from Rust source through staging.
pub const LAW_SITE: &str = "law";

/// `cargo xtask qemu --serve`: the `live` test under QEMU with its UART on a pty; waits until
/// QEMU ends (a `GEND` frame, or Ctrl-C).
///
/// It runs as a board would, without semihosting: a patch could otherwise reach QEMU's
/// semihosting calls (`HLT #0xF000`: files, the host's shell) from EL1. The kernel is built to
/// serve when no command line names a test, and a finished session turns the machine off
/// (PSCI on `virt`), which ends QEMU.
pub fn serve(board: &BoardInfo) -> Result<bool> {
    let (_, _, mut qemu, port) = start(board)?;
    println!(
        "Graft's `live` test runs on {} (no semihosting); its UART is {}",
        board.name,
        port.display()
    );
    println!(
        "send a control law from Rust source with: cargo xtask patch send --board {} --port {} \
         patches/pi-antiwindup --version 7",
        board.name,
        port.display()
    );
    println!(
        "or, on a development build (--unsigned), an unsigned payload block to the `indirect` \
         site: cargo xtask patch --board {} --port {} --version 7",
        board.name,
        port.display()
    );
    println!("(add --end to finish the session; the log shows on the patch command)");
    let status = qemu.wait_exit_within(None)?;
    println!("QEMU exited with status {status}");
    Ok(status == 0)
}

/// The kernel's payload template for `version` (the kernel's `payload::build`): template A
/// for even versions, B for odd ones, with the version in its last 8 bytes.
pub fn template_block(elf: &[u8], version: u64) -> Result<Vec<u8>> {
    let name = if version.is_multiple_of(2) { "a" } else { "b" };
    let file = object::File::parse(elf).context("parsing the kernel ELF")?;
    let addr = |sym: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(sym))
            .map(|s| s.address())
            .ok_or_else(|| anyhow!("the kernel has no symbol {sym}"))
    };
    let start = addr(&format!("graft_payload_{name}"))?;
    let end = addr(&format!("graft_payload_{name}_end"))?;
    let section = file
        .sections()
        .find(|s| s.address() <= start && end <= s.address() + s.size())
        .ok_or_else(|| anyhow!("no section holds graft_payload_{name}"))?;
    let data = section.data()?;
    let from = (start - section.address()) as usize;
    let mut block = data[from..from + (end - start) as usize].to_vec();
    let n = block.len();
    if n < 8 {
        bail!("payload template {name} is {n} bytes");
    }
    block[n - 8..].copy_from_slice(&version.to_le_bytes());
    Ok(block)
}

/// A serial link to a running kernel, with its log decoded.
pub struct Link<'a> {
    port: Box<dyn serialport::SerialPort>,
    /// The build id of the ELF this link decodes with: every patch frame is bound to it.
    image: [u8; IMAGE_BYTES],
    decoder: Decoder<'a>,
    /// Lines decoded but not yet read.
    backlog: VecDeque<Line>,
    /// Print every decoded line as it arrives.
    pub echo: bool,
    /// What the kernel said it admits (`Record::PatchKey`, at boot and before each `who`
    /// answer), once seen.
    pub admits: Option<Admits>,
    /// Seconds without a frame after which the kernel frees a staging this link opens.
    pub expiry_s: u16,
}

/// A staging's expiry unless told otherwise: long enough for a person between `patch stage`
/// and `patch activate`.
pub const EXPIRY_S: u16 = 300;

/// Which patches a kernel admits, as it announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admits {
    /// The public key it embeds.
    pub key: Option<[u8; 32]>,
    /// Whether it is a development build.
    pub development: bool,
}

impl<'a> Link<'a> {
    /// Opens the port of a kernel running the ELF `symbols` was read from.
    pub fn open(path: &Path, symbols: &'a Symbols) -> Result<Self> {
        let image = symbols
            .build_id
            .as_deref()
            .and_then(|id| id.try_into().ok())
            .context("the kernel ELF has no build id of 20 bytes")?;
        let mut port = serial::open_port(path)?;
        port.set_timeout(Duration::from_millis(50))?;
        Ok(Self {
            port,
            image,
            decoder: symbols.decoder(),
            backlog: VecDeque::new(),
            echo: false,
            admits: None,
            expiry_s: EXPIRY_S,
        })
    }

    /// Writes raw bytes to the kernel.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()?;
        Ok(())
    }

    /// Sends one patch frame, bound to this link's image, and returns the kernel's answer.
    pub fn patch(&mut self, site: &str, block: &[u8], timeout: Duration) -> Result<Record> {
        let image = self.image;
        self.patch_for(&image, site, block, timeout)
    }

    /// As [`Link::patch`], for the image with build id `image` (a test of the kernel's refusal).
    pub fn patch_for(
        &mut self,
        image: &[u8; IMAGE_BYTES],
        site: &str,
        block: &[u8],
        timeout: Duration,
    ) -> Result<Record> {
        let mut frame = [0u8; MAX_FRAME];
        let n = live::encode(image, site, block, &mut frame).map_err(|e| anyhow!("{e}"))?;
        self.send(&frame[..n])?;
        self.answer(timeout)
    }

    /// Stages a block of `len` bytes at `site`: the kernel's answer (`LiveStaged` with the
    /// reserved address and the nonce, or a refusal).
    pub fn stage(&mut self, site: &str, len: u32, timeout: Duration) -> Result<Record> {
        let mut frame = [0u8; MAX_FRAME];
        let n = live::encode_stage(&self.image, site, len, self.expiry_s, &mut frame)
            .map_err(|e| anyhow!("{e}"))?;
        self.send(&frame[..n])?;
        self.answer(timeout)
    }

    /// Sends `block` for staging `nonce` from `from` on, in data frames, each acknowledged
    /// before the next; `progress` sees the bytes received so far. Stops at the first answer
    /// that is not `LiveReceived` and returns it (`None`: every byte arrived).
    pub fn send_block(
        &mut self,
        site: &str,
        nonce: u64,
        block: &[u8],
        from: usize,
        timeout: Duration,
        mut progress: impl FnMut(usize),
    ) -> Result<Option<Record>> {
        let mut frame = [0u8; MAX_FRAME];
        let mut at = from;
        while at < block.len() {
            let end = block.len().min(at + live::MAX_CHUNK);
            let n = live::encode_data(
                &self.image,
                site,
                nonce,
                at as u32,
                &block[at..end],
                &mut frame,
            )
            .map_err(|e| anyhow!("{e}"))?;
            self.send(&frame[..n])?;
            match self.answer(timeout)? {
                Record::LiveReceived { received, .. } if received as usize == end => {
                    progress(end);
                    at = end;
                }
                other => return Ok(Some(other)),
            }
        }
        Ok(None)
    }

    /// Sends staging `nonce`'s seal frame with `signature`; the kernel's answer (`LiveSealed`,
    /// or a refusal).
    pub fn seal(
        &mut self,
        site: &str,
        nonce: u64,
        signature: &[u8; 64],
        timeout: Duration,
    ) -> Result<Record> {
        let mut frame = [0u8; MAX_FRAME];
        let n = live::encode_seal(&self.image, site, nonce, signature, &mut frame)
            .map_err(|e| anyhow!("{e}"))?;
        self.send(&frame[..n])?;
        self.answer(timeout)
    }

    /// Signs `block` for staging `nonce` at `addr` of `site` on this link's image with `pair`,
    /// and seals it.
    pub fn sign_and_seal(
        &mut self,
        pair: &crate::keys::KeyPair,
        site: &str,
        nonce: u64,
        addr: u64,
        block: &[u8],
        timeout: Duration,
    ) -> Result<Record> {
        let image = self.image;
        let binding = protocol::signing::Binding {
            image: &image,
            site,
            addr,
            nonce,
        };
        let signature = protocol::signing::sign(&pair.seed, &binding, block)
            .context("the block or site name is too long to sign")?;
        self.seal(site, nonce, &signature, timeout)
    }

    /// Sends an activate ([`live::ACTIVATE`]) or cancel ([`live::CANCEL`]) frame for staging
    /// `nonce`; the kernel's answer.
    pub fn end_stage(
        &mut self,
        magic: [u8; 4],
        site: &str,
        nonce: u64,
        timeout: Duration,
    ) -> Result<Record> {
        let mut frame = [0u8; MAX_FRAME];
        let n = live::encode_end_of_stage(magic, &self.image, site, nonce, &mut frame)
            .map_err(|e| anyhow!("{e}"))?;
        self.send(&frame[..n])?;
        self.answer(timeout)
    }

    /// Asks for every site's state: the `SiteState` and `LoopStats` records, then the `ListEnd`.
    pub fn list(&mut self, timeout: Duration) -> Result<(Vec<Record>, Record)> {
        let mut frame = [0u8; MAX_FRAME];
        let n = live::encode_request(live::LIST, &self.image, "", &mut frame)
            .map_err(|e| anyhow!("{e}"))?;
        self.send(&frame[..n])?;
        let lines = self.until("the end of the site list", timeout, |r| {
            matches!(r, Record::ListEnd { .. })
        })?;
        let mut records: Vec<Record> = lines
            .iter()
            .filter_map(Line::record)
            .filter(|r| {
                matches!(
                    r,
                    Record::SiteState { .. } | Record::LoopStats { .. } | Record::ListEnd { .. }
                )
            })
            .copied()
            .collect();
        let end = records.pop().context("until returns the ListEnd last")?;
        Ok((records, end))
    }

    /// Asks the kernel to lead `site` back to its previous code; its answer
    /// (`LiveRolledBack`, or a refusal).
    pub fn rollback(&mut self, site: &str, timeout: Duration) -> Result<Record> {
        let mut frame = [0u8; MAX_FRAME];
        let n = live::encode_request(live::ROLLBACK, &self.image, site, &mut frame)
            .map_err(|e| anyhow!("{e}"))?;
        self.send(&frame[..n])?;
        self.answer(timeout)
    }

    /// Asks the kernel which image it runs; its build id.
    pub fn who(&mut self, timeout: Duration) -> Result<[u8; IMAGE_BYTES]> {
        self.send(&WHO)?;
        let lines = self.until("its build id", timeout, |r| {
            matches!(r, Record::Image { .. })
        })?;
        match lines.last().and_then(Line::record) {
            Some(Record::Image { build_id }) => Ok(*build_id),
            _ => bail!("the kernel's answer to GWHO was not its build id"),
        }
    }

    /// The next answer to a frame: `LiveApplied`, `LiveRefused`, `LiveBadFrame`, or for staging
    /// frames `LiveStaged`, `LiveReceived`, `LiveCancelled`.
    pub fn answer(&mut self, timeout: Duration) -> Result<Record> {
        let lines = self.until("the kernel's answer", timeout, |r| {
            matches!(
                r,
                Record::LiveApplied { .. }
                    | Record::LiveRefused { .. }
                    | Record::LiveBadFrame { .. }
                    | Record::LiveStaged { .. }
                    | Record::LiveReceived { .. }
                    | Record::LiveCancelled { .. }
                    | Record::LiveSealed { .. }
                    | Record::LiveRolledBack { .. }
            )
        })?;
        lines
            .last()
            .and_then(Line::record)
            .copied()
            .context("until returns the matching record last")
    }

    /// Reads until a record that satisfies `done` or `timeout` passes; returns every line read
    /// (the matching one last) and whether it came. A damaged record is an error.
    pub fn read_for(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Record) -> bool,
    ) -> Result<(Vec<Line>, bool)> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            while let Some(line) = self.backlog.pop_front() {
                if let Some(Err(e)) = &line.record {
                    bail!("a damaged record from the kernel: {e}");
                }
                if let Some(Record::PatchKey {
                    key,
                    signed,
                    development,
                }) = line.record()
                {
                    self.admits = Some(Admits {
                        key: signed.then_some(*key),
                        development: *development,
                    });
                }
                let last = line.record().is_some_and(&mut done);
                lines.push(line);
                if last {
                    return Ok((lines, true));
                }
            }
            if Instant::now() >= deadline {
                return Ok((lines, false));
            }
            let n = match self.port.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::TimedOut => continue,
                // The other end closed (QEMU exited): nothing more will come.
                Err(e) if e.kind() == ErrorKind::BrokenPipe || e.raw_os_error() == Some(5) => {
                    return Ok((lines, false));
                }
                Err(e) => return Err(e).context("reading the serial port"),
            };
            for line in self.decoder.feed(&buf[..n]) {
                if self.echo && line.for_people() {
                    println!("{}", line.text);
                }
                // Kept for the next read when an earlier line of this batch ends this one.
                self.backlog.push_back(line);
            }
        }
    }

    /// As [`Link::read_for`], and an error naming `what` if the line does not come.
    pub fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl FnMut(&Record) -> bool,
    ) -> Result<Vec<Line>> {
        match self.read_for(timeout, done)? {
            (lines, true) => Ok(lines),
            (_, false) => bail!(
                "the kernel did not give {what} within {} s",
                timeout.as_secs()
            ),
        }
    }
}

/// How long one answer may take (a publication waits for every core's acknowledgement).
const ANSWER: Duration = Duration::from_secs(20);
/// How long the consumers get to show a change that must not happen.
const QUIET: Duration = Duration::from_millis(1500);

/// The scripted live session on `board`: one named result per check, in order.
pub fn e2e(board: &BoardInfo) -> Vec<(String, Result<(), String>)> {
    let mut results = Vec::new();
    if let Err(e) = session(board, &mut results) {
        results.push((
            format!("live patching on {}", board.name),
            Err(format!("{e:#}")),
        ));
    }
    results
}

/// How a patch from Rust source went.
#[derive(Debug)]
pub enum Sent {
    /// Published: the kernel's `LiveApplied`, and the staging's nonce.
    Applied {
        /// The kernel's answer.
        answer: Record,
        /// The staging's nonce (an activate frame naming it again is a replay).
        nonce: u64,
        /// Bytes sent.
        bytes: usize,
        /// Where the time went.
        phases: Phases,
    },
    /// The host refused to build or send it (nothing was staged, or the staging was cancelled).
    Refused(String),
    /// The kernel refused a frame (its answer); the staging is over or cancelled.
    KernelRefused(Record),
    /// Staged and every byte sent, not activated (`activate: false`).
    Staged {
        /// The staging's nonce: an activate or cancel frame names it.
        nonce: u64,
        /// The reserved slot's address.
        addr: u64,
        /// Bytes sent.
        bytes: usize,
    },
}

/// Wall time of each step of [`send_patch`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Compiling the crate (twice: for the length, then for the reserved address; the second
    /// is cargo finding nothing to do).
    pub compile: Duration,
    /// Linking and checking the block on the host (both builds).
    pub link: Duration,
    /// The stage frame and its answer.
    pub stage: Duration,
    /// The data frames and their answers.
    pub transfer: Duration,
    /// Signing, and the board verifying the signature and checking the block (the seal).
    pub verify: Duration,
    /// The activate frame until the kernel's answer: the publication, every core's
    /// acknowledgement included.
    pub publish: Duration,
}

/// Whether `signer` can sign patches `admits` admits: the reason not, if not. `None` for
/// `admits` (the kernel never said) is an error: a kernel too old to say, or not this one.
fn signable(admits: Option<Admits>, signer: Option<&crate::keys::KeyPair>) -> Option<String> {
    use crate::keys::hex;
    let Some(a) = admits else {
        return Some("the kernel did not say which patches it admits (no PatchKey record)".into());
    };
    match (a.key, signer) {
        (Some(k), Some(s)) if s.public == k => None,
        (Some(k), Some(s)) => Some(format!(
            "is signed with key {}, but the image admits only key {} (give --key with its \
             secret, or serve an image built with yours)",
            hex(&s.public),
            hex(&k)
        )),
        (Some(k), None) => Some(format!(
            "is not signed, and the image admits only patches signed with key {}",
            hex(&k)
        )),
        (None, _) if a.development => None,
        (None, _) => Some(
            "cannot be sent: the image embeds no patch key and is no development build, so it \
             admits no patches (run `cargo xtask keygen`, then serve a new image)"
                .into(),
        ),
    }
}

/// Builds the patch crate `dir` for the running image and sends it to `site` in two phases:
/// stage (the kernel reserves a slot and answers its address), link there, send, sign and seal
/// (with `signer`, when the image has a key), activate. The block is first built at the image's
/// first slot to learn its length; a block whose length changes at the reserved address is not
/// sent (the staging is cancelled). Without `activate`, it stops once every byte is staged and
/// sealed.
#[allow(clippy::too_many_arguments)]
pub fn send_patch(
    link: &mut Link,
    elf: &[u8],
    dir: &Path,
    site: &str,
    version: u64,
    signer: Option<&crate::keys::KeyPair>,
    timeout: Duration,
    activate: bool,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<Sent> {
    use super::patch_build;
    if link.admits.is_none() {
        link.who(timeout)?;
    }
    if let Some(why) = signable(link.admits, signer) {
        return Ok(Sent::Refused(why));
    }
    let sign = link.admits.and_then(|a| a.key).is_some();
    let mut phases = Phases::default();
    let mut lap = Instant::now();
    let mut split = || {
        let now = Instant::now();
        let d = now - lap;
        lap = now;
        d
    };
    let slot = protocol::exports::SLOT_BYTES;
    let first = patch_build::first_slot(elf)?;
    let probe = patch_build::build(dir, elf, first, slot, version)?;
    phases.compile += probe.compile;
    phases.link += probe.link;
    split();
    let len = match (probe.linked, probe.verdict) {
        (Some(l), Ok(_)) => l.code.len(),
        (_, Err(r)) => return Ok(Sent::Refused(format!("{r}"))),
        (None, Ok(_)) => bail!("a patch passed with no block"),
    };
    progress("stage", 0, len);
    let (nonce, addr) = match link.stage(site, len as u32, timeout)? {
        Record::LiveStaged { nonce, addr, .. } => (nonce, addr),
        other => return Ok(Sent::KernelRefused(other)),
    };
    phases.stage = split();
    let built = patch_build::build(dir, elf, addr, slot, version)?;
    phases.compile += built.compile;
    phases.link += built.link;
    split();
    let code = match (built.linked, built.verdict) {
        (Some(l), Ok(_)) if l.code.len() == len => l.code,
        (linked, verdict) => {
            link.end_stage(live::CANCEL, site, nonce, timeout)?;
            let why = match verdict {
                Err(r) => format!("{r}"),
                Ok(_) => format!(
                    "its length at {addr:#x} ({} bytes) is not the staged {len}",
                    linked.map_or(0, |l| l.code.len())
                ),
            };
            return Ok(Sent::Refused(why));
        }
    };
    if let Some(answer) =
        link.send_block(site, nonce, &code, 0, timeout, |n| progress("send", n, len))?
    {
        link.end_stage(live::CANCEL, site, nonce, timeout)?;
        return Ok(Sent::KernelRefused(answer));
    }
    phases.transfer = split();
    if let Some(pair) = signer.filter(|_| sign) {
        progress("seal", len, len);
        match link.sign_and_seal(pair, site, nonce, addr, &code, timeout)? {
            Record::LiveSealed { .. } => {}
            // A refused seal ended the staging on the board.
            other => return Ok(Sent::KernelRefused(other)),
        }
    }
    phases.verify = split();
    if !activate {
        return Ok(Sent::Staged {
            nonce,
            addr,
            bytes: len,
        });
    }
    progress("activate", len, len);
    match link.end_stage(live::ACTIVATE, site, nonce, timeout)? {
        answer @ Record::LiveApplied { .. } => Ok(Sent::Applied {
            answer,
            nonce,
            bytes: len,
            phases: Phases {
                publish: split(),
                ..phases
            },
        }),
        other => Ok(Sent::KernelRefused(other)),
    }
}

/// The `law` site through two-phase staging: three example patches from Rust source (the last a
/// full 4 KiB slot of code and read-only data), built for the slot the kernel reserved, signed,
/// move every loop to their versions; then a replayed activation, an
/// activation after a cancel, data out of order, an early activation and a block linked for
/// another address are each refused by name, and no loop changes law.
fn staged_session(
    link: &mut Link,
    elf: &[u8],
    board: &BoardInfo,
    consumers: u32,
    results: &mut Vec<(String, Result<(), String>)>,
) -> Result<()> {
    let patches = build::root().join("patches");
    let what = |s: &str| format!("live patch on {}: {s}", board.name);
    let quiet = |_: &str, _: usize, _: usize| {};
    // Test kernels embed the suite's key (`keys`).
    let pair = crate::keys::test_pair()?;
    let wrong = crate::keys::test_wrong_pair()?;
    results.push((
        what("the kernel announces the suite's key and the development switch"),
        match link.admits {
            Some(Admits {
                key: Some(k),
                development: true,
            }) if k == pair.public => Ok(()),
            other => Err(format!("it announced {other:?}")),
        },
    ));
    let mut last_nonce = None;
    let mut iterations = Vec::new();
    for (dir, version) in [
        ("pid-gains", 11),
        ("pi-antiwindup", 12),
        ("calibrated-pid", 14),
    ] {
        let sent = send_patch(
            link,
            elf,
            &patches.join(dir),
            LAW_SITE,
            version,
            Some(&pair),
            ANSWER,
            true,
            quiet,
        )?;
        let r = match sent {
            Sent::Applied { nonce, .. } => {
                last_nonce = Some(nonce);
                all_laws_run(link, consumers, version)
            }
            other => Err(format!("{other:?}")),
        };
        results.push((
            what(&format!(
                "patches/{dir} from Rust source, signed, staged and activated, runs in every loop"
            )),
            r,
        ));
        let r = loops_on_time(link, consumers, &iterations)?.map(|now| iterations = now);
        results.push((
            what(&format!(
                "with patches/{dir}, every 10 kHz loop met every deadline and tracks its \
                 set-point"
            )),
            r,
        ));
    }
    let refused_as = |answer: Record, want: fn(&Refusal) -> bool, name: &str| match answer {
        Record::LiveRefused { reason, .. } if want(&reason) => Ok(()),
        other => Err(format!("expected a refusal {name}, got: {other}")),
    };
    // Signing: a staging activated without its seal, one sealed with the wrong key, and a
    // signature replayed into the next staging of the same bytes at the same address.
    let gains = patches.join("pid-gains");
    let r = match stage_built(link, elf, &gains, 21)? {
        Ok((nonce, _, _)) => {
            let answer = link.end_stage(live::ACTIVATE, LAW_SITE, nonce, ANSWER)?;
            link.end_stage(live::CANCEL, LAW_SITE, nonce, ANSWER)?;
            refused_as(answer, |r| *r == Refusal::Unsigned, "Unsigned")
        }
        Err(e) => Err(e),
    };
    results.push((what("an unsigned staging is not activated"), r));
    let r = match stage_built(link, elf, &gains, 22)? {
        Ok((nonce, addr, code)) => {
            let answer = link.sign_and_seal(&wrong, LAW_SITE, nonce, addr, &code, ANSWER)?;
            // The refused seal ended the staging: its nonce names nothing now.
            let after = link.end_stage(live::ACTIVATE, LAW_SITE, nonce, ANSWER)?;
            refused_as(answer, |r| *r == Refusal::BadSignature, "BadSignature").and(refused_as(
                after,
                |r| *r == Refusal::NotStaged,
                "NotStaged after the bad seal",
            ))
        }
        Err(e) => Err(e),
    };
    results.push((
        what("a patch signed with another key is refused and its staging ends"),
        r,
    ));
    let r = match stage_built(link, elf, &gains, 23)? {
        Ok((first, addr, code)) => {
            let sealed = link.sign_and_seal(&pair, LAW_SITE, first, addr, &code, ANSWER)?;
            link.end_stage(live::CANCEL, LAW_SITE, first, ANSWER)?;
            let image = link.image;
            let binding = protocol::signing::Binding {
                image: &image,
                site: LAW_SITE,
                addr,
                nonce: first,
            };
            let old = protocol::signing::sign(&pair.seed, &binding, &code)
                .context("signing the test block")?;
            match (sealed, stage_built(link, elf, &gains, 23)?) {
                (Record::LiveSealed { .. }, Ok((second, addr2, code2)))
                    if addr2 == addr && code2 == code =>
                {
                    let answer = link.seal(LAW_SITE, second, &old, ANSWER)?;
                    refused_as(answer, |r| *r == Refusal::BadSignature, "BadSignature")
                }
                (Record::LiveSealed { .. }, Ok((second, addr2, _))) => {
                    link.end_stage(live::CANCEL, LAW_SITE, second, ANSWER)?;
                    Err(format!(
                        "the second staging got {addr2:#x}, not the freed {addr:#x}: the replay \
                         would differ in its address too"
                    ))
                }
                (sealed, second) => Err(format!("the first seal: {sealed}; then {second:?}")),
            }
        }
        Err(e) => Err(e),
    };
    results.push((
        what("a signature replayed into another staging of the same block is refused"),
        r,
    ));
    // A replayed activation.
    let nonce = last_nonce.unwrap_or(0);
    let answer = link.end_stage(live::ACTIVATE, LAW_SITE, nonce, ANSWER)?;
    results.push((
        what("a replayed activation is refused"),
        refused_as(answer, |r| *r == Refusal::NotStaged, "NotStaged"),
    ));
    // Stage, cancel, activate the cancelled staging.
    let r = match link.stage(LAW_SITE, 8, ANSWER)? {
        Record::LiveStaged { nonce, .. } => {
            match link.end_stage(live::CANCEL, LAW_SITE, nonce, ANSWER)? {
                Record::LiveCancelled { .. } => {
                    let answer = link.end_stage(live::ACTIVATE, LAW_SITE, nonce, ANSWER)?;
                    refused_as(answer, |r| *r == Refusal::NotStaged, "NotStaged")
                }
                other => Err(format!("cancel answered: {other}")),
            }
        }
        other => Err(format!("stage answered: {other}")),
    };
    results.push((what("a cancelled staging cannot be activated"), r));
    // A staging its host abandons (a dropped connection) is freed after its expiry.
    link.expiry_s = 1;
    let r = match link.stage(LAW_SITE, 8, ANSWER)? {
        Record::LiveStaged { nonce, .. } => {
            link.expiry_s = EXPIRY_S;
            let expired = link
                .read_for(
                    ANSWER,
                    |r| matches!(*r, Record::LiveExpired { nonce: n, .. } if n == nonce),
                )?
                .1;
            let after = link.end_stage(live::ACTIVATE, LAW_SITE, nonce, ANSWER)?;
            if expired {
                refused_as(
                    after,
                    |r| *r == Refusal::NotStaged,
                    "NotStaged after the expiry",
                )
            } else {
                Err(format!("no LiveExpired within {} s", ANSWER.as_secs()))
            }
        }
        other => Err(format!("stage answered: {other}")),
    };
    link.expiry_s = EXPIRY_S;
    results.push((
        what("a staging no frame follows expires and frees its slot"),
        r,
    ));
    // A stage frame for another image (another build of the kernel).
    let mut other = link.image;
    other[0] ^= 0xff;
    let mut frame = [0u8; MAX_FRAME];
    let n = live::encode_stage(&other, LAW_SITE, 8, EXPIRY_S, &mut frame)
        .map_err(|e| anyhow!("{e}"))?;
    link.send(&frame[..n])?;
    let answer = link.answer(ANSWER)?;
    results.push((
        what("a staging for another image is refused"),
        refused_as(answer, |r| *r == Refusal::WrongImage, "WrongImage"),
    ));
    // More than a slot holds.
    const SLOT: u32 = protocol::exports::SLOT_BYTES as u32;
    let answer = link.stage(LAW_SITE, SLOT + 4, ANSWER)?;
    results.push((
        what("a staging larger than a slot is refused"),
        refused_as(
            answer,
            |r| matches!(*r, Refusal::TooLarge { len, max } if len == SLOT + 4 && max == SLOT),
            "TooLarge",
        ),
    ));
    // Data out of order, then an activation before every byte arrived.
    let r = match link.stage(LAW_SITE, 8, ANSWER)? {
        Record::LiveStaged { nonce, .. } => {
            let late = link.send_block(LAW_SITE, nonce, &[0; 8], 4, ANSWER, |_| {})?;
            let early = link.end_stage(live::ACTIVATE, LAW_SITE, nonce, ANSWER)?;
            link.end_stage(live::CANCEL, LAW_SITE, nonce, ANSWER)?;
            match late {
                Some(answer) => refused_as(
                    answer,
                    |r| {
                        matches!(
                            r,
                            Refusal::OutOfOrder {
                                offset: 4,
                                expected: 0
                            }
                        )
                    },
                    "OutOfOrder",
                )
                .and(refused_as(
                    early,
                    |r| {
                        matches!(
                            r,
                            Refusal::Incomplete {
                                received: 0,
                                len: 8
                            }
                        )
                    },
                    "Incomplete",
                )),
                None => Err("bytes out of order were taken".into()),
            }
        }
        other => Err(format!("stage answered: {other}")),
    };
    results.push((
        what("data out of order and an early activation are refused"),
        r,
    ));
    // A patch linked for another address than the reserved one: its calls to the kernel's
    // exports land elsewhere, and the board's verifier refuses it.
    let dir = patches.join("pid-kernel-helper");
    let r = match link.stage(LAW_SITE, 0, ANSWER)? {
        // Length 0 is refused: learn the real length first.
        Record::LiveRefused {
            reason: Refusal::Empty,
            ..
        } => {
            let first = super::patch_build::first_slot(elf)?;
            let slot = protocol::exports::SLOT_BYTES;
            let wrong = super::patch_build::build(&dir, elf, first + 0x10_0000, slot, 13)?;
            match wrong.linked {
                Some(l) => match link.stage(LAW_SITE, l.code.len() as u32, ANSWER)? {
                    Record::LiveStaged { nonce, addr, .. } => {
                        let sent = link.send_block(LAW_SITE, nonce, &l.code, 0, ANSWER, |_| {})?;
                        // Signed as it is: the board's check at the seal refuses it.
                        let answer =
                            link.sign_and_seal(&pair, LAW_SITE, nonce, addr, &l.code, ANSWER)?;
                        match sent {
                            None => refused_as(
                                answer,
                                |r| matches!(r, Refusal::Escapes { .. }),
                                "Escapes",
                            ),
                            Some(a) => Err(format!("its bytes were refused: {a}")),
                        }
                    }
                    other => Err(format!("stage answered: {other}")),
                },
                None => Err(format!("it did not link: {:?}", wrong.verdict.err())),
            }
        }
        other => Err(format!("an empty staging answered: {other}")),
    };
    results.push((
        what("an empty staging and a block linked for another slot are refused"),
        r,
    ));
    let quiet_lines = link.read_for(QUIET, |_| false)?.0;
    let moved: Vec<String> = quiet_lines
        .iter()
        .filter_map(Line::record)
        .filter(|r| matches!(r, Record::LiveLawRuns { .. }))
        .map(|r| r.to_string())
        .collect();
    results.push((
        what("after the refused stagings every loop still runs law version 14 (calibrated-pid)"),
        if moved.is_empty() {
            Ok(())
        } else {
            Err(format!("loops changed law: {moved:?}"))
        },
    ));
    rollback_session(link, consumers, results, &what)
}

/// `list` shows the law site keeping its previous block; `rollback` leads every loop back to
/// law version 12 with one publication; a second rollback finds nothing kept; `list` says so.
fn rollback_session(
    link: &mut Link,
    consumers: u32,
    results: &mut Vec<(String, Result<(), String>)>,
    what: &dyn Fn(&str) -> String,
) -> Result<()> {
    let law = |sites: &[Record]| {
        sites.iter().find_map(|r| match *r {
            Record::SiteState {
                site,
                version,
                previous_version,
                rollback,
                ..
            } if site.as_str() == LAW_SITE => Some((version, previous_version, rollback)),
            _ => None,
        })
    };
    let (sites, end) = link.list(ANSWER)?;
    let names: BTreeSet<String> = sites
        .iter()
        .filter_map(|r| match r {
            Record::SiteState { site, .. } => Some(site.as_str().to_string()),
            _ => None,
        })
        .collect();
    let r = match (law(&sites), end) {
        (
            Some((v, prev, true)),
            Record::ListEnd {
                sites: n,
                free_slots,
                free_bytes,
            },
        ) if prev > 0
            && v > prev
            && n as usize == names.len()
            && names.contains(SITE)
            && free_bytes == u32::from(free_slots) * protocol::exports::SLOT_BYTES as u32 =>
        {
            Ok(())
        }
        other => Err(format!(
            "the law site and the end: {other:?}; sites {names:?}"
        )),
    };
    results.push((
        what("list shows every site, and the law site keeping its previous block"),
        r,
    ));
    let r = match link.rollback(LAW_SITE, ANSWER)? {
        Record::LiveRolledBack { .. } => all_laws_run(link, consumers, 12),
        other => Err(format!("rollback answered: {other}")),
    };
    let r = match r {
        Ok(()) => loops_on_time(link, consumers, &[])?.map(|_| ()),
        e => e,
    };
    results.push((
        what(
            "rollback returns every loop to law version 12 with one publication, with no \
             deadline missed",
        ),
        r,
    ));
    let again = link.rollback(LAW_SITE, ANSWER)?;
    let (sites, _) = link.list(ANSWER)?;
    let r = match (again, law(&sites)) {
        (
            Record::LiveRefused {
                reason: Refusal::NothingKept,
                ..
            },
            Some((_, 0, false)),
        ) => Ok(()),
        other => Err(format!("{other:?}")),
    };
    results.push((
        what("a second rollback finds nothing kept, and list says so"),
        r,
    ));
    Ok(())
}

/// A staging [`stage_built`] opened: its nonce, the reserved address, the block sent.
type Staged = (u64, u64, Vec<u8>);

/// Builds the patch crate `dir` for the reserved slot and stages it (stage, link at the answered
/// address, every data frame), without sealing: the nonce, the address and the block, or what
/// went wrong (the staging cancelled).
fn stage_built(
    link: &mut Link,
    elf: &[u8],
    dir: &Path,
    version: u64,
) -> Result<Result<Staged, String>> {
    use super::patch_build;
    let slot = protocol::exports::SLOT_BYTES;
    let probe = patch_build::build(dir, elf, patch_build::first_slot(elf)?, slot, version)?;
    let Some(len) = probe.linked.map(|l| l.code.len()) else {
        return Ok(Err(format!("it did not link: {:?}", probe.verdict.err())));
    };
    let (nonce, addr) = match link.stage(LAW_SITE, len as u32, ANSWER)? {
        Record::LiveStaged { nonce, addr, .. } => (nonce, addr),
        other => return Ok(Err(format!("stage answered: {other}"))),
    };
    let built = patch_build::build(dir, elf, addr, slot, version)?;
    let code = match built.linked {
        Some(l) if l.code.len() == len => l.code,
        _ => {
            link.end_stage(live::CANCEL, LAW_SITE, nonce, ANSWER)?;
            return Ok(Err(format!("it did not link at {addr:#x} to {len} bytes")));
        }
    };
    if let Some(answer) = link.send_block(LAW_SITE, nonce, &code, 0, ANSWER, |_| {})? {
        link.end_stage(live::CANCEL, LAW_SITE, nonce, ANSWER)?;
        return Ok(Err(format!("its bytes were refused: {answer}")));
    }
    Ok(Ok((nonce, addr, code)))
}

/// How far from its set-point a loop's plant may be and still count as tracking it, degrees C.
const TRACKING_C: f32 = 2.0;

/// Every consumer's control loop has run since `before` (iterations), missed no deadline, and
/// its plant is within [`TRACKING_C`] of the set-point. Returns the iterations now.
fn loops_on_time(
    link: &mut Link,
    consumers: u32,
    before: &[u64],
) -> Result<Result<Vec<u64>, String>> {
    let (records, _) = link.list(ANSWER)?;
    let mut now = Vec::new();
    for core in 1..=consumers as u8 {
        let stats = records.iter().find_map(|r| match *r {
            Record::LoopStats {
                core: c,
                iterations,
                misses,
                error_c,
            } if c == core => Some((iterations, misses, error_c)),
            _ => None,
        });
        let was = before.get(core as usize - 1).copied().unwrap_or(0);
        match stats {
            Some((i, 0, e)) if i > was && e < TRACKING_C => now.push(i),
            Some((i, m, e)) => {
                return Ok(Err(format!(
                    "the loop on core {core}: {i} iterations (before: {was}), {m} deadline \
                     misses, |error| {e:.3} C (at most {TRACKING_C} C)"
                )));
            }
            None => return Ok(Err(format!("no figures for the loop on core {core}"))),
        }
    }
    Ok(Ok(now))
}

/// Every consumer core's loop says its law records `version` (in any order).
fn all_laws_run(link: &mut Link, consumers: u32, version: u64) -> Result<(), String> {
    let mut missing: BTreeSet<u8> = (1..=consumers).map(|c| c as u8).collect();
    let (lines, _) = link
        .read_for(ANSWER, |r| {
            if let Record::LiveLawRuns { core, version: v } = *r
                && v == version
            {
                missing.remove(&core);
            }
            missing.is_empty()
        })
        .map_err(|e| format!("{e:#}"))?;
    if missing.is_empty() {
        return Ok(());
    }
    let seen: Vec<String> = lines
        .iter()
        .filter_map(Line::record)
        .map(|r| r.to_string())
        .collect();
    Err(format!(
        "cores {missing:?} never said their law records version {version} (saw: {seen:?})"
    ))
}

/// Every consumer core says it runs `version` with a good checksum (in any order).
fn all_run(link: &mut Link, consumers: u32, version: u64) -> Result<(), String> {
    let mut missing: BTreeSet<u8> = (1..=consumers).map(|c| c as u8).collect();
    let (lines, _) = link
        .read_for(ANSWER, |r| {
            if let Record::LiveRuns {
                core,
                version: v,
                checksum_ok: true,
            } = *r
                && v == version
            {
                missing.remove(&core);
            }
            missing.is_empty()
        })
        .map_err(|e| format!("{e:#}"))?;
    if missing.is_empty() {
        return Ok(());
    }
    let seen: Vec<String> = lines
        .iter()
        .filter_map(Line::record)
        .map(|r| r.to_string())
        .collect();
    Err(format!(
        "cores {missing:?} never said they run version {version} with a good checksum (saw: {seen:?})"
    ))
}

/// The `live` kernel for `board`, built and started under QEMU with its UART on a pty, as
/// `--serve` runs it.
fn start(board: &BoardInfo) -> Result<(build::Built, Symbols, pty::Qemu, std::path::PathBuf)> {
    let built = build::build_running(board, Some(TEST))?;
    let test = find_test(&built.tests, TEST)?;
    let symbols = Symbols::new(&built.bytes)?;
    let (qemu, port) = pty::start(&Run {
        semihosting: false,
        ..Run::new(&built.boot, *board, Some(test))
    })?;
    Ok((built, symbols, qemu, port))
}

fn session(board: &BoardInfo, results: &mut Vec<(String, Result<(), String>)>) -> Result<()> {
    // As `--serve` runs it, and a board: no semihosting, so no command line; the kernel is built
    // to serve when none names a test (as `cargo xtask flash --serve` builds it).
    let (built, symbols, mut qemu, port) = start(board)?;
    let consumers = board.default_cores - 1;
    let mut link = Link::open(&port, &symbols)?;
    let boot = link.until("its ready record", ANSWER, |r| {
        matches!(r, Record::LiveReady { .. })
    })?;
    symbols.same_image(&boot).map_err(|e| anyhow!(e))?;
    all_run(&mut link, consumers, 0).map_err(|e| anyhow!("before any patch: {e}"))?;

    // A good block: applied, and every consumer moves to it.
    let v1 = template_block(&built.bytes, 1)?;
    let applied = link.patch(SITE, &v1, ANSWER)?;
    let r = match applied {
        Record::LiveApplied { site, .. } if site.as_str() == SITE => {
            all_run(&mut link, consumers, 1)
        }
        other => Err(format!("answer: {other}")),
    };
    results.push((
        format!(
            "live patch on {}: a block sent over the UART runs on every consumer",
            board.name
        ),
        r,
    ));

    // Bad input: each refused by name, and nothing changes on any core.
    let mut escaping = template_block(&built.bytes, 3)?;
    escaping[..4].copy_from_slice(&0x1404_0000u32.to_le_bytes()); // B .+0x100000
    let mut damaged = [0u8; MAX_FRAME];
    let image: [u8; IMAGE_BYTES] = symbols
        .build_id
        .as_deref()
        .and_then(|id| id.try_into().ok())
        .context("the kernel ELF has no build id")?;
    let n = live::encode(&image, SITE, &v1, &mut damaged).map_err(|e| anyhow!("{e}"))?;
    damaged[4 + IMAGE_BYTES + 8] ^= 0x01;
    let nops: Vec<u8> = std::iter::repeat_n(0xd503_201fu32.to_le_bytes(), 128)
        .flatten()
        .collect();
    type Why = fn(&Refusal) -> bool;
    let cases: [(&str, &str, &[u8], &str, Why); 4] = [
        // (A block larger than a slot, 4 KiB, does not fit a frame: `patch-errors` refuses one
        // on the board.)
        (
            "a block that runs off its end",
            SITE,
            &nops,
            "FallsThrough",
            |r| matches!(r, Refusal::FallsThrough { word: 0xd503_201f }),
        ),
        (
            "a block whose length is not a multiple of 4",
            SITE,
            &v1[..6],
            "MisalignedLength",
            |r| matches!(r, Refusal::MisalignedLength { len: 6 }),
        ),
        (
            "a block with a branch leaving it",
            SITE,
            &escaping,
            "Escapes",
            |r| matches!(r, Refusal::Escapes { offset: 0, .. }),
        ),
        ("an unknown site", "no-such-site", &v1, "UnknownSite", |r| {
            *r == Refusal::UnknownSite
        }),
    ];
    for (what, site, block, name, why) in cases {
        let answer = link.patch(site, block, ANSWER)?;
        let r = match answer {
            Record::LiveRefused { site: s, reason } if s.as_str() == site && why(&reason) => Ok(()),
            other => Err(format!("expected a refusal {name}, got: {other}")),
        };
        results.push((
            format!("live patch on {}: {what} is refused", board.name),
            r,
        ));
    }
    // The kernel says which image it runs, and refuses a frame bound to another.
    let who = link.who(ANSWER);
    results.push((
        format!(
            "live patch on {}: the kernel names the image it runs",
            board.name
        ),
        match who {
            Ok(id) if id == image => Ok(()),
            Ok(id) => Err(format!("it names build {id:02x?}, the ELF is {image:02x?}")),
            Err(e) => Err(format!("{e:#}")),
        },
    ));
    let mut other = image;
    other[0] ^= 0xff;
    let answer = link.patch_for(&other, SITE, &v1, ANSWER)?;
    results.push((
        format!(
            "live patch on {}: a block built for another image is refused",
            board.name
        ),
        match answer {
            Record::LiveRefused {
                reason: Refusal::WrongImage,
                ..
            } => Ok(()),
            other => Err(format!("expected a refusal WrongImage, got: {other}")),
        },
    ));
    link.send(&damaged[..n])?;
    let answer = link.answer(ANSWER)?;
    results.push((
        format!(
            "live patch on {}: a damaged frame is refused by its checksum",
            board.name
        ),
        match answer {
            Record::LiveBadFrame {
                error: FrameError::Checksum { .. },
            } => Ok(()),
            other => Err(format!("got: {other}")),
        },
    ));
    let quiet = link.read_for(QUIET, |_| false)?.0;
    let moved: Vec<String> = quiet
        .iter()
        .filter_map(Line::record)
        .filter(|r| matches!(r, Record::LiveRuns { .. }))
        .map(|r| r.to_string())
        .collect();
    results.push((
        format!(
            "live patch on {}: after the refusals every core still runs version 1",
            board.name
        ),
        if moved.is_empty() {
            Ok(())
        } else {
            Err(format!("cores changed code: {moved:?}"))
        },
    ));

    // Another good block, then the end of the session: QEMU exits 0.
    let v2 = template_block(&built.bytes, 2)?;
    let applied = link.patch(SITE, &v2, ANSWER)?;
    let r = match applied {
        Record::LiveApplied { .. } => all_run(&mut link, consumers, 2),
        other => Err(format!("answer: {other}")),
    };
    results.push((
        format!(
            "live patch on {}: the next good block runs everywhere",
            board.name
        ),
        r,
    ));
    staged_session(&mut link, &built.bytes, board, consumers, results)?;

    link.send(&END)?;
    let ended = link.until("the end of the session", ANSWER, |r| {
        matches!(r, Record::LiveEnded { .. })
    })?;
    let summary = ended.last().and_then(Line::record).copied();
    // No semihosting: the kernel reports the run's status, then turns the machine off where it
    // can (PSCI on virt, so QEMU exits by itself) or halts (a Pi).
    let (lines, _) = link.read_for(ANSWER, |r| matches!(r, Record::RunEnded { .. }))?;
    let mut status = match lines.last().and_then(Line::record) {
        Some(Record::RunEnded { status }) => Some(*status),
        _ => None,
    };
    if board.powers_off && qemu.wait_exit().is_err() {
        // It reported but did not power off: that is a failure of the path `--serve` takes.
        status = None;
    }
    let good_end = status == Some(protocol::testinfo::EXIT_PASS);
    results.push((
        format!(
            "live patch on {}: the session ends and the run with status 0",
            board.name
        ),
        if summary
            == Some(Record::LiveEnded {
                applied: 6,
                refused: 20,
            })
            && good_end
        {
            Ok(())
        } else {
            Err(format!("{summary:?}, then status {status:?}"))
        },
    ));
    Ok(())
}

/// One edit-to-running measurement ([`edit_to_running`]).
#[derive(Clone, Copy, Debug)]
pub struct EditToRunning {
    /// The steps of `patch send`.
    pub phases: Phases,
    /// From the kernel's `LiveApplied` until every loop said its law records the new version.
    pub running: Duration,
    /// From the start of `patch send` until every loop runs the new version.
    pub total: Duration,
}

/// The bench's edit-to-running figure: serves `board`'s live kernel under QEMU, sends
/// `patches/pi-antiwindup` once to warm the build, then `runs` times with a new version each
/// (one recompile of the crate each, as after an edit), signed with the suite's key, timing
/// `send_patch`'s steps and the wait until every loop runs the new law.
pub fn edit_to_running(board: &BoardInfo, runs: u32) -> Result<Vec<EditToRunning>> {
    let pair = crate::keys::test_pair()?;
    let (built, symbols, mut qemu, port) = start(board)?;
    let consumers = board.default_cores - 1;
    let mut link = Link::open(&port, &symbols)?;
    link.until("its ready record", ANSWER, |r| {
        matches!(r, Record::LiveReady { .. })
    })?;
    let dir = build::root().join("patches/pi-antiwindup");
    let mut out = Vec::new();
    for i in 0..=runs {
        let version = 100 + u64::from(i);
        let start = Instant::now();
        let sent = send_patch(
            &mut link,
            &built.bytes,
            &dir,
            LAW_SITE,
            version,
            Some(&pair),
            ANSWER,
            true,
            |_, _, _| {},
        )?;
        let Sent::Applied { phases, .. } = sent else {
            bail!("the bench's patch was not applied: {sent:?}");
        };
        let applied = Instant::now();
        all_laws_run(&mut link, consumers, version).map_err(|e| anyhow!(e))?;
        // The first send builds the crate from cold: not an edit.
        if i > 0 {
            out.push(EditToRunning {
                phases,
                running: applied.elapsed(),
                total: start.elapsed(),
            });
        }
    }
    link.send(&END)?;
    link.until("the end of the session", ANSWER, |r| {
        matches!(r, Record::LiveEnded { .. })
    })?;
    if board.powers_off {
        qemu.wait_exit()?;
    }
    Ok(out)
}
