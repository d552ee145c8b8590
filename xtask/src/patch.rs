//! `cargo xtask patch`: send one block to a running kernel's `live` test over its serial port,
//! or (`cargo xtask patch check FILE`) check a block as the board would, without a board.
//!
//! The port is a board's serial adapter, or the pty `cargo xtask qemu --serve` prints; the link,
//! the frames and the answers are [`crate::runner::live`]'s. The check is `patcher::check`
//! itself, with the policy every kernel site uses.

use crate::keys::hex;
use crate::runner::board::BoardInfo;
use crate::runner::build::build_running;
use crate::runner::live::{Link, SITE, template_block};
use crate::runner::logs::Symbols;
use crate::runner::patch_build;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use patcher::check::{Externals, Policy, check_block};
use protocol::Record;
use protocol::live::{self, END};
use std::path::PathBuf;
use std::time::Duration;

/// How long `cargo xtask patch` keeps showing the log after an applied patch.
const SHOW: Duration = Duration::from_millis(500);

/// `cargo xtask patch` options.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PatchArgs {
    /// Check a block instead of sending one.
    #[command(subcommand)]
    pub check: Option<PatchCommand>,
    /// The serial port of the running kernel (a board's adapter, or the pty that
    /// `cargo xtask qemu --serve` printed).
    #[arg(long, required = true)]
    pub port: Option<PathBuf>,
    /// The board the kernel was built for (its ELF decodes the log and holds the payload
    /// templates).
    #[arg(long, value_enum, default_value = "virt")]
    pub board: BoardInfo,
    /// The ELF of the running kernel (default: the board's serving build, or whichever kernel
    /// ELF under target/kernel the running kernel says it is).
    #[arg(long)]
    pub elf: Option<PathBuf>,
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
    /// Send a `--file` block the host's check refuses (to see the board refuse it too).
    #[arg(long, requires = "file")]
    pub unchecked: bool,
    /// End the session afterwards (the kernel's `live` test then exits 0).
    #[arg(long)]
    pub end: bool,
    /// Seconds to wait for the kernel's answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// `cargo xtask patch` subcommands.
#[derive(Subcommand, Debug)]
pub enum PatchCommand {
    /// Check a raw block with the board's verifier and the kernel sites' policy: prints OK with
    /// the worst-case instruction count, or the rule broken with the offset and the decoded
    /// instruction (and exits non-zero).
    Check(CheckArgs),
    /// Build a patch crate of Rust source for the running image: compile it for
    /// aarch64-unknown-none, link it against the image's exports at the slot it will run from,
    /// and check it as the board will (prints the verdict; `--disasm` the code).
    Build(Box<BuildArgs>),
    /// Build a patch crate for the running kernel and send it in two phases: stage (the kernel
    /// reserves a slot and answers its address and a nonce), link at that address, send with a
    /// progress bar, sign and seal (the board verifies the signature and checks the block),
    /// then activate (published with the site's strategy).
    Send(Box<SendArgs>),
    /// As `send` up to the seal, without the activation: prints the nonce that `activate` or
    /// `cancel` names.
    Stage(Box<SendArgs>),
    /// Activate the open staging `--nonce` at `--site`.
    Activate(Box<EndArgs>),
    /// Cancel the open staging `--nonce` at `--site` (its slot is freed).
    Cancel(Box<EndArgs>),
    /// Show every site of the running kernel: its strategy, the version and CRC of the code it
    /// runs, the previous one and whether a rollback can restore it, what is staged, and the
    /// arena's free space.
    List(Box<Target>),
    /// Lead a site back to the code it ran before its last patch, with one publication through
    /// its strategy (the previous block is kept in its slot until the next patch).
    Rollback(Box<RollbackArgs>),
}

/// `cargo xtask patch rollback` options.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The site (default: `--site`'s, the live session's `law`).
    pub site_name: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// The running kernel: its port, and the ELF it was built from.
#[derive(Args, Debug)]
pub struct Target {
    /// The serial port of the running kernel (a board's adapter, or the pty that
    /// `cargo xtask qemu --serve` printed).
    #[arg(long)]
    pub port: PathBuf,
    /// The board the kernel was built for.
    #[arg(long, value_enum, default_value = "virt")]
    pub board: BoardInfo,
    /// The ELF of the running kernel (default: the board's serving build, or whichever kernel
    /// ELF under target/kernel the running kernel says it is).
    #[arg(long)]
    pub elf: Option<PathBuf>,
    /// The site.
    #[arg(long, default_value = crate::runner::live::LAW_SITE)]
    pub site: String,
    /// Seconds to wait for each of the kernel's answers.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// `cargo xtask patch send` and `stage` options.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The patch crate (for example `patches/pi-antiwindup`).
    pub dir: PathBuf,
    #[command(flatten)]
    pub target: Target,
    /// The version the law records when it runs.
    #[arg(long, default_value_t = 1)]
    pub version: u64,
    /// The secret key to sign with (a `patch-key` file; default: the one `cargo xtask keygen`
    /// wrote). A development image without a key takes the patch unsigned.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Seconds without a frame after which the board frees the staging (a dropped connection,
    /// or a `stage` never activated).
    #[arg(long, default_value_t = crate::runner::live::EXPIRY_S)]
    pub expire: u16,
}

/// `cargo xtask patch activate` and `cancel` options.
#[derive(Args, Debug)]
pub struct EndArgs {
    #[command(flatten)]
    pub target: Target,
    /// The staging's nonce, as `stage` printed it.
    #[arg(long, value_parser = parse_addr)]
    pub nonce: u64,
}

/// `cargo xtask patch build` options.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The patch crate (for example `patches/pid-gains`).
    pub dir: PathBuf,
    /// The board whose kernel the patch is for (its serving build, unless `--elf`).
    #[arg(long, value_enum, default_value = "virt")]
    pub board: BoardInfo,
    /// The ELF of the image the patch is for.
    #[arg(long)]
    pub elf: Option<PathBuf>,
    /// The address the block will run from (default: the image's first arena slot).
    #[arg(long, value_parser = parse_addr)]
    pub at: Option<u64>,
    /// The slot size in bytes (the kernel's `patch::SLOT_SIZE`).
    #[arg(long, default_value_t = protocol::exports::SLOT_BYTES)]
    pub slot: usize,
    /// The version the law records when it runs.
    #[arg(long, default_value_t = 1)]
    pub version: u64,
    /// Where to write the raw block (default: target/patches/NAME.bin).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the block's disassembly.
    #[arg(long)]
    pub disasm: bool,
}

/// `cargo xtask patch check` options.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The raw block: little-endian AArch64 words, position-independent, with the sites' ABI.
    pub file: PathBuf,
    /// The slot address to check it at (only page-granular `ADRP` checks depend on it; the
    /// board checks again at the slot it picks).
    #[arg(long, default_value = "0x40601000", value_parser = parse_addr)]
    pub at: u64,
    /// The slot size in bytes (the kernel's `patch::SLOT_SIZE`).
    #[arg(long, default_value_t = 128)]
    pub slot: usize,
}

/// The slot address and size the host checks a `--file` block at (a virt arena slot; only
/// page-granular `ADRP` checks depend on the address).
const DEFAULT_AT: u64 = 0x4060_1000;
const SLOT: usize = 128;

fn parse_addr(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    u64::from_str_radix(&digits.replace('_', ""), radix).map_err(|e| format!("{s}: {e}"))
}

/// Checks `code` as a kernel site would at `at` in a slot of `slot` bytes: the verdict, and the
/// line that says it.
pub fn check(code: &[u8], at: u64, slot: usize) -> (bool, String) {
    match check_block(code, at, slot, &Externals::NONE, &Policy::KERNEL_SITES) {
        Ok(c) => (
            true,
            format!(
                "OK: {} bytes, at most {} instructions on any path",
                c.len(),
                c.worst_case_insns()
            ),
        ),
        Err(e) => (false, format!("refused: {e}")),
    }
}

/// Runs `cargo xtask patch`; true if every frame sent was applied (or the block checked passed).
pub fn command(args: &PatchArgs) -> Result<bool> {
    match &args.check {
        Some(PatchCommand::Build(b)) => return build_command(b),
        Some(PatchCommand::Send(a)) => return send_command(a, true),
        Some(PatchCommand::Stage(a)) => return send_command(a, false),
        Some(PatchCommand::Activate(a)) => return end_command(a, live::ACTIVATE),
        Some(PatchCommand::Cancel(a)) => return end_command(a, live::CANCEL),
        Some(PatchCommand::List(t)) => return list_command(t),
        Some(PatchCommand::Rollback(a)) => return rollback_command(a),
        _ => {}
    }
    if let Some(PatchCommand::Check(c)) = &args.check {
        let code =
            std::fs::read(&c.file).with_context(|| format!("reading {}", c.file.display()))?;
        let (ok, line) = check(&code, c.at, c.slot);
        println!("{line}");
        return Ok(ok);
    }
    let port = args
        .port
        .as_ref()
        .context("give --port (or the check subcommand)")?;
    let timeout = Duration::from_secs(args.timeout);
    // A raw block meets the board's verifier and policy here first, before any connection: a
    // refused block is not sent.
    let file_block = match &args.file {
        Some(f) => {
            let code = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let (ok, line) = check(&code, DEFAULT_AT, SLOT);
            if !ok && !args.unchecked {
                println!("{line} (not sent; --unchecked sends it anyway)");
                return Ok(false);
            }
            Some(code)
        }
        None => None,
    };
    let (elf, bytes) = match &args.elf {
        Some(path) => read_elf(path)?,
        None => {
            // The image `qemu --serve` and `flash --serve` run, unless the kernel says otherwise.
            let built = build_running(&args.board, Some(crate::runner::live::TEST))?;
            running_elf(port, built.elf, built.bytes)?
        }
    };
    let symbols = Symbols::new(&bytes)?;
    let built = Built { elf, bytes };
    let block = match (&args.version, &args.file) {
        (Some(v), None) => Some(template_block(&built.bytes, *v)?),
        (None, Some(_)) => file_block.clone(),
        _ if args.end => None,
        _ => bail!("give --version N or --file PATH (or --end alone)"),
    };
    let mut link = Link::open(port, &symbols)?;
    // Bound to the running image: a frame for another would be refused by the kernel anyway.
    let running = link.who(timeout)?;
    if symbols.build_id.as_deref() != Some(&running[..]) {
        bail!(
            "the kernel on {} runs build {}, not {} ({}); give --elf with its ELF",
            port.display(),
            hex(&running),
            symbols.build_id.as_deref().map(hex).unwrap_or_default(),
            built.elf.display()
        );
    }
    link.echo = true;
    let mut ok = true;
    if let Some(block) = block {
        let reply = link.patch(&args.site, &block, timeout)?;
        ok = matches!(reply, Record::LiveApplied { .. });
        if !ok {
            // The log line says that it was refused; the record says why.
            println!("{reply}");
        }
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

/// The running kernel's ELF (checked against what it announces): `--elf`, else the board's
/// serving build as `--serve` left it (built only if there is none: a rebuild made now could
/// differ from what runs, in its key among others), else any kernel ELF that matches.
fn target_elf(t: &Target) -> Result<(PathBuf, Vec<u8>)> {
    if let Some(path) = &t.elf {
        return read_elf(path);
    }
    let serving = crate::runner::build::kernel_path(&t.board, Some(crate::runner::live::TEST));
    let (elf, bytes) = match std::fs::read(&serving) {
        Ok(bytes) => (serving, bytes),
        Err(_) => {
            let built = build_running(&t.board, Some(crate::runner::live::TEST))?;
            (built.elf, built.bytes)
        }
    };
    running_elf(&t.port, elf, bytes)
}

/// Opens a link to the kernel on `t.port` and checks it runs the ELF `symbols` is from.
fn connect<'a>(t: &Target, elf: &std::path::Path, symbols: &'a Symbols) -> Result<Link<'a>> {
    let mut link = Link::open(&t.port, symbols)?;
    let running = link.who(Duration::from_secs(t.timeout))?;
    if symbols.build_id.as_deref() != Some(&running[..]) {
        bail!(
            "the kernel on {} runs build {}, not {} ({}); give --elf with its ELF",
            t.port.display(),
            hex(&running),
            symbols.build_id.as_deref().map(hex).unwrap_or_default(),
            elf.display()
        );
    }
    Ok(link)
}

/// `cargo xtask patch send` (`activate`) and `stage`.
fn send_command(args: &SendArgs, activate: bool) -> Result<bool> {
    let t = &args.target;
    // A key given by name must be there; the default one may be absent (a development image).
    let signer = match &args.key {
        Some(path) => Some(crate::keys::signer(Some(path))?),
        None => crate::keys::signer(None).ok(),
    };
    let (elf, bytes) = target_elf(t)?;
    let symbols = Symbols::new(&bytes)?;
    let mut link = connect(t, &elf, &symbols)?;
    link.expiry_s = args.expire;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>9} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let sent = crate::runner::live::send_patch(
        &mut link,
        &bytes,
        &args.dir,
        &t.site,
        args.version,
        signer.as_ref(),
        Duration::from_secs(t.timeout),
        activate,
        |stage, done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(stage.to_string());
        },
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    use crate::runner::live::Sent;
    match sent {
        Sent::Applied {
            answer,
            bytes,
            phases: p,
            ..
        } => {
            println!(
                "{answer} ({bytes} bytes staged and activated in {secs:.2} s: compile {:.2}, \
                 link and check {:.2}, stage {:.3}, transfer {:.3}, verify {:.3}, publish {:.3})",
                p.compile.as_secs_f64(),
                p.link.as_secs_f64(),
                p.stage.as_secs_f64(),
                p.transfer.as_secs_f64(),
                p.verify.as_secs_f64(),
                p.publish.as_secs_f64()
            );
            link.echo = true;
            link.read_for(SHOW, |_| false)?;
            Ok(true)
        }
        Sent::Staged { nonce, addr, bytes } => {
            println!(
                "staged {bytes} bytes at {addr:#x} on site {}: nonce {nonce:#x} (cargo xtask \
                 patch activate --port {} --site {} --nonce {nonce:#x}; the board frees it after \
                 {} s without a frame)",
                t.site,
                t.port.display(),
                t.site,
                args.expire
            );
            Ok(true)
        }
        Sent::Refused(why) => {
            println!(
                "refused on the host: the patch {} {why}",
                args.dir.display()
            );
            Ok(false)
        }
        Sent::KernelRefused(answer) => {
            println!("{answer}");
            Ok(false)
        }
    }
}

/// `cargo xtask patch activate` and `cancel`.
fn end_command(args: &EndArgs, magic: [u8; 4]) -> Result<bool> {
    let t = &args.target;
    let (elf, bytes) = target_elf(t)?;
    let symbols = Symbols::new(&bytes)?;
    let mut link = connect(t, &elf, &symbols)?;
    let answer = link.end_stage(magic, &t.site, args.nonce, Duration::from_secs(t.timeout))?;
    println!("{answer}");
    let ok = matches!(
        answer,
        Record::LiveApplied { .. } | Record::LiveCancelled { .. }
    );
    if ok && magic == live::ACTIVATE {
        link.echo = true;
        link.read_for(SHOW, |_| false)?;
    }
    Ok(ok)
}

/// `cargo xtask patch list`.
fn list_command(t: &Target) -> Result<bool> {
    let (elf, bytes) = target_elf(t)?;
    let symbols = Symbols::new(&bytes)?;
    let mut link = connect(t, &elf, &symbols)?;
    let (sites, end) = link.list(Duration::from_secs(t.timeout))?;
    if let Some(a) = link.admits {
        match a.key {
            Some(k) => println!(
                "image {}: patches signed with key {}",
                elf.display(),
                hex(&k)
            ),
            None => println!("image {}: embeds no patch key", elf.display()),
        }
        if a.development {
            println!("  DEVELOPMENT BUILD: unsigned patches are admitted");
        }
    }
    for s in &sites {
        println!("{s}");
    }
    println!("{end}");
    Ok(true)
}

/// `cargo xtask patch rollback`.
fn rollback_command(a: &RollbackArgs) -> Result<bool> {
    let t = &a.target;
    let site = a.site_name.as_deref().unwrap_or(&t.site);
    let (elf, bytes) = target_elf(t)?;
    let symbols = Symbols::new(&bytes)?;
    let mut link = connect(t, &elf, &symbols)?;
    let answer = link.rollback(site, Duration::from_secs(t.timeout))?;
    println!("{answer}");
    let ok = matches!(answer, Record::LiveRolledBack { .. });
    if ok {
        link.echo = true;
        link.read_for(SHOW, |_| false)?;
    }
    Ok(ok)
}

/// A kernel ELF given with `--elf`: its path and bytes.
fn read_elf(path: &std::path::Path) -> Result<(PathBuf, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((path.to_path_buf(), bytes))
}

/// `cargo xtask patch build`: true if the patch was built and passed the board's checks.
fn build_command(args: &BuildArgs) -> Result<bool> {
    let (elf_path, elf) = match &args.elf {
        Some(p) => read_elf(p)?,
        None => {
            let built = build_running(&args.board, Some(crate::runner::live::TEST))?;
            (built.elf, built.bytes)
        }
    };
    let at = match args.at {
        Some(a) => a,
        None => patch_build::first_slot(&elf)?,
    };
    let symbols = Symbols::new(&elf)?;
    let image = symbols.build_id.as_deref().map(hex).unwrap_or_default();
    let outcome = patch_build::build(&args.dir, &elf, at, args.slot, args.version)?;
    if let (true, Some(l)) = (args.disasm, &outcome.linked) {
        print!(
            "{}",
            patch_build::disassemble(l, &patch_build::image_exports(&elf)?)
        );
    }
    let (l, worst) = match (&outcome.linked, outcome.verdict) {
        (Some(l), Ok(worst)) => (l, worst),
        (_, Err(refusal)) => {
            println!("refused: the patch {} {refusal}", args.dir.display());
            return Ok(false);
        }
        (None, Ok(_)) => bail!("a patch passed with no block"),
    };
    let name = args
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("patch");
    let out = args.out.clone().unwrap_or_else(|| {
        crate::runner::build::root()
            .join("target/patches")
            .join(format!("{name}.bin"))
    });
    std::fs::write(&out, &l.code).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "OK: {name} version {} for image {image} ({}): {} bytes at {:#x}, at most {worst} \
         instructions on any path; written to {}",
        args.version,
        elf_path.display(),
        l.code.len(),
        l.at,
        out.display()
    );
    Ok(true)
}

/// The ELF the kernel was built from and its bytes.
struct Built {
    elf: PathBuf,
    bytes: Vec<u8>,
}

/// The kernel ELF that the kernel on `port` says it runs: `first` if it does, else the kernel
/// ELF under `target/kernel` whose log table decodes its answer to `GWHO` as its own build id.
fn running_elf(
    port: &std::path::Path,
    first: PathBuf,
    bytes: Vec<u8>,
) -> Result<(PathBuf, Vec<u8>)> {
    let answers = |bytes: &[u8]| -> bool {
        let Ok(symbols) = Symbols::new(bytes) else {
            return false;
        };
        let Ok(mut link) = Link::open(port, &symbols) else {
            return false;
        };
        matches!(link.who(WHO_TIMEOUT), Ok(id) if symbols.build_id.as_deref() == Some(&id[..]))
    };
    if answers(&bytes) {
        return Ok((first, bytes));
    }
    let dir = crate::runner::build::root().join("target/kernel");
    let mut tried = vec![first.display().to_string()];
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let elf = entry
            .path()
            .join("aarch64-unknown-none/release/graft-kernel");
        if elf == first || !elf.is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(&elf) else {
            continue;
        };
        if answers(&bytes) {
            println!("the kernel on {} runs {}", port.display(), elf.display());
            return Ok((elf, bytes));
        }
        tried.push(elf.display().to_string());
    }
    bail!(
        "the kernel on {} runs an image no ELF here matches (tried {}); give --elf with its ELF",
        port.display(),
        tried.join(", ")
    )
}

/// How long one ELF's decoding of the kernel's `GWHO` answer is waited for.
const WHO_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        patch: PatchArgs,
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn msr_daifset_is_refused_by_name() {
        // The bytes `df 43 03 d5 c0 03 5f d6`: MSR DAIFSet, #3; RET.
        let code = words(&[0xd503_43df, 0xd65f_03c0]);
        assert_eq!(code[..4], [0xdf, 0x43, 0x03, 0xd5]);
        let (ok, line) = check(&code, 0x4060_1000, 128);
        assert!(!ok);
        assert_eq!(
            line,
            "refused: offset 0x0: MSR DAIFSet, #3 (a PSTATE write) is not allowed"
        );
        // Through the command, from a file: refused means a non-zero exit (`Ok(false)`).
        let path = std::env::temp_dir().join(format!("graft-check-{}.bin", std::process::id()));
        std::fs::write(&path, &code).unwrap();
        let cli = Cli::try_parse_from(["patch", "check", path.to_str().unwrap()]).unwrap();
        assert!(!command(&cli.patch).unwrap());
        // A block that only returns passes.
        std::fs::write(&path, words(&[0xd65f_03c0])).unwrap();
        assert!(command(&cli.patch).unwrap());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_cli_keeps_sending_and_adds_check() {
        assert!(Cli::try_parse_from(["patch", "--port", "/dev/null", "--version", "3"]).is_ok());
        assert!(Cli::try_parse_from(["patch", "--version", "3"]).is_err());
        let c = Cli::try_parse_from(["patch", "check", "f.bin", "--at", "0x1000"]).unwrap();
        assert!(matches!(
            c.patch.check,
            Some(PatchCommand::Check(CheckArgs { at: 0x1000, .. }))
        ));
    }
}
