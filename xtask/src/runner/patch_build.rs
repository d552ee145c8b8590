//! `cargo xtask patch build DIR`: a patch crate of Rust source made into a block for one image.
//!
//! The crate (see `patches/`) is compiled for `aarch64-unknown-none` as a static library, then
//! linked by the toolchain's own `rust-lld` at the address the block will run from, against a
//! symbol file holding the image's export table (`.graft_exports`, `protocol::exports`) and
//! nothing else. Linking at the final address (rather than building position-independent code
//! and relocating on the board) keeps the board's side to one check and one copy, and makes
//! every reference a PC-relative one the verifier can see: a call to an exported helper is a
//! `BL` to its address, a read of an exported static an `ADRP`/`LDR` inside its range. A
//! reference to anything the image does not export is an undefined symbol at the link.
//!
//! The linked block is text and read-only data in one section, the entry first. The build
//! refuses, each with its own error: a writable static (a block is not writable), a block that
//! links the panic handler (it never returns), and anything `patcher::check` refuses with the
//! policy of the kernel's sites, exactly as the board will check it.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol};
use patcher::check::{Checked, Externals, Policy, check_block};
use protocol::exports::{self, Kind};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The section of the linked patch that is the block.
const BLOCK_SECTION: &str = ".graft_block";
/// Where the linker script gathers writable sections, so that the build can name them.
const WRITABLE_SECTION: &str = ".graft_writable";
/// The panic handler's symbol (its mangled name ends so): linked only if some path of the patch
/// can panic.
const PANIC_SYMBOL: &str = "rust_begin_unwind";

/// One symbol the image exports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Its name.
    pub name: String,
    /// Its address.
    pub addr: u64,
    /// Its length in bytes (0 for a function).
    pub len: u64,
    /// Function or data.
    pub kind: Kind,
}

/// The export table of a kernel ELF.
pub fn image_exports(elf: &[u8]) -> Result<Vec<Export>> {
    let file = object::File::parse(elf).context("parsing the kernel ELF")?;
    let section = file.section_by_name(".graft_exports").context(
        "the kernel ELF has no .graft_exports section (built before patches had exports?)",
    )?;
    let data = section.data().context("reading .graft_exports")?;
    exports::entries(data)
        .map(|e| {
            let e = e.map_err(|e| anyhow::anyhow!("the image's export table: {e}"))?;
            Ok(Export {
                name: e.name.to_string(),
                addr: e.addr,
                len: e.len,
                kind: e.kind,
            })
        })
        .collect()
}

/// Where an image's arena slots start (the `graft_arena_slots` symbol).
pub fn first_slot(elf: &[u8]) -> Result<u64> {
    let file = object::File::parse(elf).context("parsing the kernel ELF")?;
    file.symbols()
        .find(|s| s.name() == Ok("graft_arena_slots"))
        .map(|s| s.address())
        .context("the kernel ELF has no graft_arena_slots symbol")
}

/// What a patch may refer to: the exported functions as branch targets, the exported statics as
/// read-only data.
pub struct Allowed {
    targets: Vec<u64>,
    data: Vec<Range<u64>>,
}

impl Allowed {
    /// From an image's exports.
    pub fn new(exports: &[Export]) -> Self {
        Self {
            targets: exports
                .iter()
                .filter(|e| e.kind == Kind::Function)
                .map(|e| e.addr)
                .collect(),
            data: exports
                .iter()
                .filter(|e| e.kind == Kind::Data)
                .map(|e| e.addr..e.addr + e.len)
                .collect(),
        }
    }

    /// As the verifier takes them.
    pub fn externals(&self) -> Externals<'_> {
        Externals {
            branch_targets: &self.targets,
            data: &self.data,
        }
    }
}

/// A patch crate compiled and linked for one image.
pub struct Linked {
    /// The block: text and read-only data, the entry first.
    pub code: Vec<u8>,
    /// The address it was linked to run from.
    pub at: u64,
    /// Functions in the block, by address (for the disassembly).
    pub functions: Vec<(u64, String)>,
}

/// Why a patch was refused after it compiled.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It refers to symbols the image does not export.
    Unexported(Vec<String>),
    /// It has writable statics (named).
    Writable(Vec<String>),
    /// Some path of it can panic.
    CanPanic,
    /// The verifier refused it.
    Verifier(String),
}

impl Refusal {
    /// The refusal's kind, as `cargo xtask test` expects it of `patches/refused/`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unexported(_) => "unexported",
            Self::Writable(_) => "writable",
            Self::CanPanic => "can-panic",
            Self::Verifier(_) => "verifier",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unexported(names) => write!(
                f,
                "refers to symbols the image does not export for patches: {}",
                names.join(", ")
            ),
            Self::Writable(names) => write!(
                f,
                "has writable statics ({}): a block is code and read-only data; keep state in the \
                 site's argument",
                names.join(", ")
            ),
            Self::CanPanic => write!(
                f,
                "can panic (it links the panic handler, which never returns): remove the \
                 indexing, unwrap or arithmetic that can fail"
            ),
            Self::Verifier(why) => write!(f, "refused by the verifier: {why}"),
        }
    }
}

/// The toolchain's `rust-lld`.
fn rust_lld() -> Result<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = |args: &[&str]| -> Result<String> {
        let o = Command::new(&rustc)
            .args(args)
            .current_dir(super::build::root())
            .output()
            .with_context(|| format!("running {rustc} {}", args.join(" ")))?;
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let sysroot = out(&["--print", "sysroot"])?;
    let host = out(&["-vV"])?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV names no host")?;
    let lld = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(host)
        .join("bin/rust-lld");
    if !lld.exists() {
        bail!(
            "{} is missing: the toolchain ships rust-lld with the aarch64-unknown-none target",
            lld.display()
        );
    }
    Ok(lld)
}

/// Compiles the patch crate in `dir` (release, `aarch64-unknown-none`, `GRAFT_PATCH_VERSION` =
/// `version`) and returns its static library.
fn compile(dir: &Path, version: u64, target_dir: &Path) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.exists() {
        bail!("{} is not a patch crate (no Cargo.toml)", dir.display());
    }
    println!(
        "compiling the patch {} (cargo build --release) ...",
        dir.display()
    );
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", "aarch64-unknown-none"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--message-format", "json-render-diagnostics"])
        .env("GRAFT_PATCH_VERSION", version.to_string())
        .output()
        .context("running cargo build for the patch")?;
    if !out.status.success() {
        bail!(
            "the patch {} did not compile:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let manifest = manifest.canonicalize()?;
    let lib = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["manifest_path"]
                .as_str()
                .is_some_and(|p| Path::new(p) == manifest)
        })
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "a"));
    lib.with_context(|| {
        format!(
            "{} built no static library: give its [lib] crate-type = [\"staticlib\"]",
            dir.display()
        )
    })
}

/// The linker script: the exports as absolute symbols, the block at `at` with the entry first,
/// writable sections gathered where the build can name them, the rest discarded.
fn script(exports: &[Export], at: u64) -> String {
    let mut s = String::from("/* Generated by cargo xtask patch build: the image's exports. */\n");
    for e in exports {
        let _ = writeln!(s, "{} = {:#x};", e.name, e.addr);
    }
    let _ = write!(
        s,
        "ENTRY({entry})\nSECTIONS\n{{\n    . = {at:#x};\n    {BLOCK_SECTION} : {{\n        \
         KEEP(*(.text.{entry}))\n        *(.text .text.*)\n        *(.rodata .rodata.*)\n    \
         }}\n    {WRITABLE_SECTION} : {{ *(.data .data.* .bss .bss.* COMMON) }}\n    /DISCARD/ \
         : {{ *(.eh_frame .eh_frame_hdr .comment .note .note.*) }}\n}}\n",
        entry = graft_patch_entry(),
    );
    s
}

fn graft_patch_entry() -> &'static str {
    "graft_patch_entry"
}

/// Links `lib` at `at` against `exports`; a link that fails for undefined symbols is a
/// [`Refusal::Unexported`].
fn link(lib: &Path, exports: &[Export], at: u64, out: &Path) -> Result<Result<Linked, Refusal>> {
    let ld = out.with_extension("ld");
    std::fs::write(&ld, script(exports, at))
        .with_context(|| format!("writing {}", ld.display()))?;
    let o = Command::new(rust_lld()?)
        .args([
            "-flavor",
            "gnu",
            "--gc-sections",
            "--no-undefined",
            "-static",
        ])
        .arg("-T")
        .arg(&ld)
        .arg("-o")
        .arg(out)
        .arg(lib)
        .output()
        .context("running rust-lld")?;
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        let mut undefined: Vec<String> = stderr
            .lines()
            .filter_map(|l| {
                l.split_once("undefined symbol: ")
                    .map(|(_, s)| s.trim().to_string())
            })
            .collect();
        undefined.dedup();
        if !undefined.is_empty() {
            return Ok(Err(Refusal::Unexported(undefined)));
        }
        bail!("rust-lld failed:\n{}", stderr.trim_end());
    }
    let bytes = std::fs::read(out).with_context(|| format!("reading {}", out.display()))?;
    let file = object::File::parse(&*bytes).context("parsing the linked patch")?;
    let writable: Vec<String> = match file.section_by_name(WRITABLE_SECTION) {
        Some(w) if w.size() > 0 => {
            let range = w.address()..w.address() + w.size();
            let mut names: Vec<String> = file
                .symbols()
                .filter(|s| range.contains(&s.address()) && s.size() > 0)
                .filter_map(|s| s.name().ok().map(demangle))
                .collect();
            if names.is_empty() {
                names.push(format!("{} bytes", w.size()));
            }
            names
        }
        _ => Vec::new(),
    };
    if !writable.is_empty() {
        return Ok(Err(Refusal::Writable(writable)));
    }
    if file
        .symbols()
        .any(|s| s.name().is_ok_and(|n| n.ends_with(PANIC_SYMBOL)))
    {
        return Ok(Err(Refusal::CanPanic));
    }
    let block = file
        .section_by_name(BLOCK_SECTION)
        .context("the linked patch has no block section")?;
    if block.address() != at {
        bail!(
            "the block was linked at {:#x}, not {at:#x} (check the crate's sections)",
            block.address()
        );
    }
    let entry = file
        .symbols()
        .find(|s| s.name() == Ok(graft_patch_entry()))
        .context("the patch has no entry: declare it with graft_patch::control_law!")?;
    if entry.address() != at {
        bail!(
            "the entry is at {:#x}, not first in the block",
            entry.address()
        );
    }
    let code = block.data().context("reading the block")?.to_vec();
    let end = at + code.len() as u64;
    let mut functions: Vec<(u64, String)> = file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && (at..end).contains(&s.address()))
        .filter_map(|s| s.name().ok().map(|n| (s.address(), demangle(n))))
        .collect();
    functions.sort();
    functions.dedup_by_key(|f| f.0);
    Ok(Ok(Linked {
        code,
        at,
        functions,
    }))
}

fn demangle(name: &str) -> String {
    // `{:#}` leaves out the hash.
    format!("{:#}", rustc_demangle::demangle(name))
}

/// A patch built and checked.
pub struct Outcome {
    /// The linked block, if the link succeeded.
    pub linked: Option<Linked>,
    /// The most instructions any path runs, or why the patch is refused.
    pub verdict: Result<u32, Refusal>,
    /// Wall time compiling the crate (cargo).
    pub compile: std::time::Duration,
    /// Wall time linking and checking the block.
    pub link: std::time::Duration,
}

/// Compiles, links and checks the patch in `dir` for the image `elf` at `at` (a slot of `slot`
/// bytes). A refusal of the patch is in the outcome; `Err` is a failure of the tools.
pub fn build(dir: &Path, elf: &[u8], at: u64, slot: usize, version: u64) -> Result<Outcome> {
    let exports = image_exports(elf)?;
    let target_dir = super::build::root().join("target").join("patches");
    let started = std::time::Instant::now();
    let lib = compile(dir, version, &target_dir)?;
    let compiled = std::time::Instant::now();
    let name = lib
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("patch")
        .trim_start_matches("lib")
        .to_string();
    let out = target_dir.join(format!("{name}.elf"));
    let linked = match link(&lib, &exports, at, &out)? {
        Ok(l) => l,
        Err(r) => {
            return Ok(Outcome {
                linked: None,
                verdict: Err(r),
                compile: compiled - started,
                link: compiled.elapsed(),
            });
        }
    };
    let allowed = Allowed::new(&exports);
    let checked: Result<Checked<'_>, _> = check_block(
        &linked.code,
        at,
        slot,
        &allowed.externals(),
        &Policy::KERNEL_SITES,
    );
    let verdict = checked
        .map(|c| c.worst_case_insns())
        .map_err(|e| Refusal::Verifier(e.to_string()));
    Ok(Outcome {
        linked: Some(linked),
        verdict,
        compile: compiled - started,
        link: compiled.elapsed(),
    })
}

/// The block's disassembly: one line per word, functions and exported targets named, and the
/// words the board's shape check calls data (literal pools, and what no path reaches: the
/// read-only data after the code) shown as data.
pub fn disassemble(linked: &Linked, exports: &[Export]) -> String {
    use yaxpeax_arch::{Decoder, U8Reader};
    use yaxpeax_arm::armv8::a64::InstDecoder;
    let decoder = InstDecoder::default();
    let allowed = Allowed::new(exports);
    let data = patcher::check::check_shape(
        &linked.code,
        linked.at,
        protocol::exports::SLOT_BYTES,
        &allowed.externals(),
    )
    .ok();
    let mut s = String::new();
    for (i, w) in linked.code.chunks_exact(4).enumerate() {
        let addr = linked.at + 4 * i as u64;
        if let Some((_, f)) = linked.functions.iter().find(|f| f.0 == addr) {
            let _ = writeln!(s, "{f}:");
        }
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let text = match decoder.decode(&mut U8Reader::new(w)) {
            _ if data.as_ref().is_some_and(|d| d.contains(i)) => ".word (data)".to_string(),
            Ok(insn) => insn.to_string(),
            Err(_) => ".word (not an instruction)".to_string(),
        };
        let target = branch_target(word, addr).and_then(|t| {
            exports
                .iter()
                .find(|e| e.addr == t)
                .map(|e| format!("  <{}>", e.name))
        });
        let _ = writeln!(
            s,
            "  {addr:#x}: {word:08x}  {text}{}",
            target.unwrap_or_default()
        );
    }
    s
}

/// Where a `B`/`BL` at `addr` goes.
fn branch_target(word: u32, addr: u64) -> Option<u64> {
    if word & 0x7c00_0000 != 0x1400_0000 {
        return None;
    }
    let imm = ((word & 0x03ff_ffff) << 6) as i32 >> 4;
    Some(addr.wrapping_add(imm as i64 as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_defines_only_the_exports() {
        let s = script(
            &[Export {
                name: "graft_clamp".into(),
                addr: 0x4008_1234,
                len: 0,
                kind: Kind::Function,
            }],
            0x4060_1000,
        );
        assert!(s.contains("graft_clamp = 0x40081234;"));
        assert!(s.contains(". = 0x40601000;"));
        assert!(s.contains("KEEP(*(.text.graft_patch_entry))"));
        assert_eq!(s.matches(" = 0x").count(), 2, "{s}");
    }

    #[test]
    fn branch_targets_decode() {
        // BL +8 and B -4.
        assert_eq!(branch_target(0x9400_0002, 0x1000), Some(0x1008));
        assert_eq!(branch_target(0x17ff_ffff, 0x1000), Some(0x0ffc));
        assert_eq!(branch_target(0xd65f_03c0, 0x1000), None);
    }

    #[test]
    fn names_statics() {
        assert_eq!(
            demangle("_ZN29patch_refused_writable_static5CALLS17h0123456789abcdefE"),
            "patch_refused_writable_static::CALLS"
        );
        assert_eq!(demangle("graft_clamp"), "graft_clamp");
    }
}
