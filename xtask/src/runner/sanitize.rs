//! Running kernels under the coherence sanitizer (`sanitizer/`, a QEMU TCG plugin) and reading
//! its reports, with each address resolved to the ELF symbol it falls in.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSymbol, SymbolKind};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin's switches for one run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whether `IC IVAU` reaches every core (`ic-broadcast=on`, the ARMv8 rule) or only the issuer.
    pub ic_broadcast: bool,
    /// Where the plugin writes its lines.
    pub out: PathBuf,
    /// `CTR_EL0.IDC` to model (`idc=1`): no clean needed.
    pub idc: bool,
    /// `CTR_EL0.DIC` to model (`dic=1`): no invalidate needed.
    pub dic: bool,
}

impl Options {
    /// The `-plugin` argument for QEMU.
    pub fn qemu_arg(&self, plugin: &Path) -> String {
        let mut arg = format!(
            "{},out={},ic-broadcast={}",
            plugin.display(),
            self.out.display(),
            if self.ic_broadcast { "on" } else { "off" }
        );
        if self.idc {
            arg.push_str(",idc=1");
        }
        if self.dic {
            arg.push_str(",dic=1");
        }
        arg
    }
}

/// Builds the plugin (release) and returns the shared library's path.
pub fn build_plugin() -> Result<PathBuf> {
    let root = super::build::root();
    let ok = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "graft-sanitizer",
        ])
        .status()
        .context("running cargo build for the sanitizer")?
        .success();
    if !ok {
        bail!("the sanitizer plugin did not build");
    }
    Ok(root.join("target/release/libgraft_sanitizer.so"))
}

/// What the sanitizer reported for one run.
#[derive(Debug, Default)]
pub struct Report {
    /// Hazard lines, each with the symbol of its address appended.
    pub hazards: Vec<String>,
    /// Stale (CMODX, unpublished) executions: expected during a branch flip, not hazards.
    pub stale: u64,
    /// The summary line, if the plugin wrote one (it does at exit).
    pub summary: Option<String>,
    /// Events the plugin could not attribute to a core.
    pub attribution_errors: u64,
}

/// Symbols of an ELF, sorted by address, to name report addresses.
pub struct SymbolMap(Vec<(u64, String)>);

impl SymbolMap {
    /// Reads the symbol table of `elf`.
    pub fn new(elf: &[u8]) -> Result<Self> {
        let file = object::File::parse(elf).context("parsing the kernel ELF")?;
        let mut syms: Vec<(u64, String)> = file
            .symbols()
            .filter(|s| {
                matches!(
                    s.kind(),
                    SymbolKind::Text | SymbolKind::Data | SymbolKind::Unknown
                )
            })
            .filter(|s| s.address() != 0)
            .filter_map(|s| {
                s.name()
                    .ok()
                    .filter(|n| !n.is_empty() && !n.starts_with('$'))
                    .map(|n| (s.address(), n.to_string()))
            })
            .collect();
        syms.sort();
        Ok(Self(syms))
    }

    /// `name+offset` for the symbol at or below `addr`.
    pub fn name(&self, addr: u64) -> String {
        match self.0.partition_point(|(a, _)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let (base, name) = &self.0[i - 1];
                format!("{name}+{:#x}", addr - base)
            }
        }
    }
}

/// What starts every line of the plugin's.
pub const PREFIX: &str = "graft-sanitizer: ";

/// The value of the first `key=value` word of one of the plugin's lines: the one parser of
/// its output (the hazard report here, the mirrors' tally in `litmus.rs`).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// A number as the plugin prints it: `0x` hexadecimal, or decimal.
pub fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Parses the plugin's output.
pub fn parse(text: &str, symbols: &SymbolMap) -> Report {
    let mut report = Report::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(PREFIX) else {
            continue;
        };
        if rest.starts_with("hazard ") {
            let va = field(rest, "va").and_then(number);
            let writer = field(rest, "writer-pc").and_then(number);
            let mut named = rest.to_string();
            if let Some(va) = va {
                named.push_str(&format!(" symbol={}", symbols.name(va)));
            }
            if let Some(pc) = writer {
                named.push_str(&format!(" writer={}", symbols.name(pc)));
            }
            report.hazards.push(named);
        } else if rest.starts_with("stale ") {
            report.stale += 1;
        } else if rest.starts_with("summary ") {
            report.attribution_errors = field(rest, "attribution-errors")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            report.summary = Some(rest.to_string());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards_are_named_and_counted() {
        let syms = SymbolMap(vec![
            (0x1000, "graft_naive_site".into()),
            (0x2000, "writer_fn".into()),
        ]);
        let text = "noise\n\
            graft-sanitizer: hazard kind=unpredictable core=1 va=0x1004 pa=0x1004 writer-core=0 writer-pc=0x2010 missing=clean\n\
            graft-sanitizer: stale kind=stale core=2 va=0x1000 pa=0x1000 writer-core=0 writer-pc=0x2010 missing=clean\n\
            graft-sanitizer: summary stale=1 unpredictable=1 hazards=1 attribution-errors=2 core-ids=4\n";
        let r = parse(text, &syms);
        assert_eq!(r.hazards.len(), 1);
        assert!(
            r.hazards[0].contains("symbol=graft_naive_site+0x4"),
            "{}",
            r.hazards[0]
        );
        assert!(
            r.hazards[0].contains("writer=writer_fn+0x10")
                && r.hazards[0].contains("missing=clean")
        );
        assert_eq!((r.stale, r.attribution_errors), (1, 2));
        assert!(r.summary.is_some());
    }

    #[test]
    fn no_summary_is_visible() {
        assert!(parse("", &SymbolMap(vec![])).summary.is_none());
    }
}
