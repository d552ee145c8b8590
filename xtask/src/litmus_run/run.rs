//! Building a generated program and running it under QEMU `virt`: the ELF, the bounded run, the
//! results file, and the outcome of each iteration.

use super::parser::{Atom, Insn, Litmus, Loc, Prop, Value};
use super::program::{self, Program};
use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection, ObjectSymbol};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The load address of generated programs (1 MiB and more above `virt`'s RAM base).
const LOAD_ADDRESS: u64 = 0x4020_0000;

/// Assembles and links `prog` into `dir/prog.elf` with the Rust toolchain's integrated assembler
/// and `rust-lld`, and returns the ELF's path.
pub fn build(prog: &Program, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("prog.s"), &prog.asm)?;
    std::fs::write(
        dir.join("prog.rs"),
        "//! A generated litmus program (see prog.s).\n#![no_std]\n#![no_main]\n\
         core::arch::global_asm!(include_str!(\"prog.s\"), options(raw));\n\
         #[panic_handler]\nfn panic(_: &core::panic::PanicInfo) -> ! {\n    loop {}\n}\n",
    )?;
    std::fs::write(
        dir.join("link.ld"),
        format!(
            "ENTRY(_start)\nSECTIONS {{\n  . = {LOAD_ADDRESS:#x};\n  .text : {{ *(.text.boot) *(.text.litmus) *(.text*) }}\n  \
             .rodata : {{ *(.rodata*) }}\n  .data : {{ *(.data*) }}\n  .bss (NOLOAD) : {{ *(.bss*) }}\n}}\n"
        ),
    )?;
    let elf = dir.join("prog.elf");
    let out = Command::new("rustc")
        .current_dir(dir)
        .args([
            "--edition",
            "2024",
            "--target",
            "aarch64-unknown-none",
            "-C",
            "panic=abort",
            "-C",
            "opt-level=1",
            "-C",
            "link-arg=-Tlink.ld",
            "-o",
        ])
        .arg(&elf)
        .arg("prog.rs")
        .output()
        .context("running rustc (is the aarch64-unknown-none target installed?)")?;
    if !out.status.success() {
        bail!(
            "the generated program did not assemble:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(elf)
}

/// Addresses and encodings the host needs to judge outcomes, read from the ELF.
#[derive(Debug, Default)]
pub struct Symbols {
    by_name: BTreeMap<String, u64>,
    instrs: Vec<(Insn, u32)>,
}

impl Symbols {
    /// Reads the symbols of `elf` and the encodings of the program's instruction values.
    pub fn read(elf: &[u8], prog: &Program) -> Result<Self> {
        let file = object::File::parse(elf).context("parsing the generated ELF")?;
        let mut by_name = BTreeMap::new();
        for s in file.symbols() {
            if let Ok(n) = s.name()
                && n.starts_with("litmus_")
            {
                by_name.insert(n.to_string(), s.address());
            }
        }
        let mut instrs = vec![];
        for (insn, sym) in &prog.instr_symbols {
            let addr = *by_name
                .get(sym)
                .with_context(|| format!("symbol {sym} missing"))?;
            let word = read_word(&file, addr).with_context(|| format!("reading {sym}"))?;
            instrs.push((insn.clone(), word));
        }
        Ok(Self { by_name, instrs })
    }

    /// A symbol table from (name, address) pairs (for tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, u64)]) -> Self {
        Self {
            by_name: pairs.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
            instrs: vec![],
        }
    }

    /// The address of a symbol.
    pub fn addr(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied()
    }

    /// The value a condition compares with, and whether only its low 32 bits count.
    fn resolve(&self, v: &Value) -> Option<(u64, bool)> {
        match v {
            Value::Int(n) => Some((*n as u64, false)),
            Value::Label { thread, name } => self
                .addr(&program::label_symbol(*thread, name))
                .map(|a| (a, false)),
            Value::Var(name) => self.addr(&program::var_symbol(name)).map(|a| (a, false)),
            Value::Instr(i) => self
                .instrs
                .iter()
                .find(|(j, _)| j == i)
                .map(|(_, w)| (u64::from(*w), true)),
        }
    }

    /// A label's name for an address, for showing states.
    fn label_at(&self, addr: u64) -> Option<String> {
        self.by_name.iter().find_map(|(n, a)| {
            let rest = n.strip_prefix("litmus_P")?;
            let (p, l) = rest.split_once('_')?;
            (*a == addr && p.parse::<usize>().is_ok()).then(|| format!("P{p}:{l}"))
        })
    }
}

/// Reads the little-endian word at `addr` from the section holding it.
pub fn read_word(file: &object::File, addr: u64) -> Result<u32> {
    for sec in file.sections() {
        if (sec.address()..sec.address() + sec.size()).contains(&addr) {
            let data = sec.data()?;
            let off = (addr - sec.address()) as usize;
            let b = data
                .get(off..off + 4)
                .context("word outside the section data")?;
            return Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
    }
    bail!("address {addr:#x} is in no section")
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every iteration ran.
    Complete,
    /// A core did not finish an iteration in time (`core`, 1-based `iter`).
    Timeout {
        /// The thread (core) that did not finish.
        core: u64,
        /// The iteration it did not finish.
        iter: u64,
    },
    /// An exception the test did not cause.
    HarnessFault {
        /// The core.
        core: u64,
        /// Its `ELR_EL1`.
        elr: u64,
    },
    /// QEMU had to be killed, or wrote no results.
    Killed(String),
}

/// The results of one run.
#[derive(Debug)]
pub struct RunResult {
    /// `MIDR_EL1` of core 0.
    pub midr: u64,
    /// `CTR_EL0` of core 0.
    pub ctr: u64,
    /// One record per completed iteration, as 64-bit words.
    pub records: Vec<Vec<u64>>,
    /// How the run ended.
    pub ending: Ending,
    /// Wall time of the QEMU run.
    pub elapsed: Duration,
}

/// QEMU's options for one run.
pub struct QemuRun<'a> {
    /// The program.
    pub elf: &'a Path,
    /// The results file the program writes.
    pub results: &'a Path,
    /// Number of cores.
    pub cores: usize,
    /// The `-plugin` argument, if sanitized.
    pub plugin: Option<String>,
    /// Kill QEMU after this long.
    pub limit: Duration,
}

/// Runs the program under QEMU and reads its results file.
pub fn run(q: &QemuRun) -> Result<RunResult> {
    let _ = std::fs::remove_file(q.results);
    let mut cmd = Command::new("qemu-system-aarch64");
    cmd.args(["-M", "virt", "-cpu", "cortex-a72", "-m", "512M"])
        .arg("-smp")
        .arg(q.cores.to_string())
        .args([
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "null",
            "-semihosting",
        ])
        .arg("-kernel")
        .arg(q.elf);
    if let Some(p) = &q.plugin {
        cmd.arg("-plugin").arg(p);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-aarch64")?;
    let killed = loop {
        if child.try_wait()?.is_some() {
            break false;
        }
        if start.elapsed() > q.limit {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let output = child.wait_with_output()?;
    if killed {
        return Ok(RunResult {
            midr: 0,
            ctr: 0,
            records: vec![],
            ending: Ending::Killed(format!(
                "QEMU killed after {} s: core 0 (the master) stopped answering",
                q.limit.as_secs()
            )),
            elapsed,
        });
    }
    let Ok(bytes) = std::fs::read(q.results) else {
        return Ok(RunResult {
            midr: 0,
            ctr: 0,
            records: vec![],
            ending: Ending::Killed(format!(
                "no results file (QEMU exit {:?}): {}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            elapsed,
        });
    };
    let mut r = parse_results(&bytes)?;
    r.elapsed = elapsed;
    Ok(r)
}

/// Parses a results file: the header, then one record per completed iteration.
pub fn parse_results(bytes: &[u8]) -> Result<RunResult> {
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    if words.len() < program::HEADER_WORDS || words[0] != program::MAGIC {
        bail!("the results file has no valid header");
    }
    let (status, done, core, iter, rec) = (words[1], words[4], words[5], words[6], words[7]);
    let per = (rec / 8) as usize;
    if per == 0 {
        bail!("record size 0 in the results header");
    }
    let body = &words[program::HEADER_WORDS..];
    if body.len() < done as usize * per {
        bail!("results file shorter than its {done} records");
    }
    let records = body
        .chunks_exact(per)
        .take(done as usize)
        .map(<[u64]>::to_vec)
        .collect();
    let ending = match status {
        program::STATUS_OK => Ending::Complete,
        program::STATUS_TIMEOUT | program::STATUS_MASTER_TIMEOUT => Ending::Timeout { core, iter },
        program::STATUS_HARNESS_FAULT => Ending::HarnessFault { core, elr: iter },
        s => bail!("unknown status {s} in the results header"),
    };
    Ok(RunResult {
        midr: words[2],
        ctr: words[3],
        records,
        ending,
        elapsed: Duration::ZERO,
    })
}

/// The final state of one iteration, as the host judges it.
pub struct State<'a> {
    t: &'a Litmus,
    prog: &'a Program,
    syms: &'a Symbols,
    rec: &'a [u64],
}

impl<'a> State<'a> {
    /// The state of record `rec`.
    pub fn new(t: &'a Litmus, prog: &'a Program, syms: &'a Symbols, rec: &'a [u64]) -> Self {
        Self { t, prog, syms, rec }
    }

    fn loc(&self, l: &Loc) -> Option<u64> {
        let off = self.prog.layout.offset(l)?;
        self.rec.get(off / 8).copied()
    }

    fn thread_slot(&self, p: usize, slot: usize) -> u64 {
        let base = self.prog.layout.thread_base.get(p).copied().unwrap_or(0);
        self.rec.get(base / 8 + slot).copied().unwrap_or(0)
    }

    /// Whether thread `p` faulted, and the first fault's address and ESR.
    pub fn fault(&self, p: usize) -> Option<(u64, u64)> {
        (self.thread_slot(p, program::SLOT_FAULTS) > 0).then(|| {
            (
                self.thread_slot(p, program::SLOT_FAULT_ELR),
                self.thread_slot(p, program::SLOT_FAULT_ESR),
            )
        })
    }

    /// Evaluates a proposition; `None` if a value cannot be resolved.
    pub fn eval(&self, p: &Prop) -> Option<bool> {
        Some(match p {
            Prop::True => true,
            Prop::False => false,
            Prop::Not(q) => !self.eval(q)?,
            Prop::And(v) => {
                let mut all = true;
                for q in v {
                    all &= self.eval(q)?;
                }
                all
            }
            Prop::Or(v) => {
                let mut any = false;
                for q in v {
                    any |= self.eval(q)?;
                }
                any
            }
            Prop::Atom(Atom::Eq(l, v)) => {
                let got = self.loc(l)?;
                let (want, low32) = self.syms.resolve(v)?;
                if low32 {
                    got & 0xffff_ffff == want
                } else {
                    got == want
                }
            }
            Prop::Atom(Atom::Fault {
                thread,
                label,
                kind,
            }) => match self.fault(*thread) {
                None => false,
                Some((elr, esr)) => {
                    let at = match label {
                        Some(l) => self.syms.addr(&program::label_symbol(*thread, l))? == elr,
                        None => true,
                    };
                    // ESR_EL1.EC 0: an unknown reason (UDF and unallocated encodings).
                    let k = kind.is_none() || (esr >> 26) == 0;
                    at && k
                }
            },
        })
    }

    /// The state as litmus7 shows it: `1:X2=1; x=0;` and any faults.
    pub fn show(&self) -> String {
        let mut s = String::new();
        for l in program::observed(self.t) {
            let v = self.loc(&l).unwrap_or(0);
            let instr = self.syms.instrs.iter().find(|(_, w)| u64::from(*w) == v);
            let shown = match (self.syms.label_at(v), instr) {
                (Some(label), _) if v != 0 => label,
                (_, Some((i, _))) => format!("instr:\"{}\"", program::insn_text(0, i)),
                _ => (v as i64).to_string(),
            };
            s.push_str(&format!("{l}={shown}; "));
        }
        for p in 0..self.t.threads.len() {
            if let Some((elr, _)) = self.fault(p) {
                let at = self
                    .syms
                    .label_at(elr)
                    .unwrap_or_else(|| format!("P{p}:{elr:#x}"));
                s.push_str(&format!("fault({at}); "));
            }
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn results_header_and_records() {
        let r = parse_results(&file(&[
            program::MAGIC,
            0,
            0x41,
            0x84,
            2,
            0,
            0,
            16,
            1,
            2,
            3,
            4,
        ]))
        .unwrap();
        assert_eq!(
            (r.midr, r.ctr, r.ending.clone()),
            (0x41, 0x84, Ending::Complete)
        );
        assert_eq!(r.records, vec![vec![1, 2], vec![3, 4]]);
        let t = parse_results(&file(&[program::MAGIC, 1, 0, 0, 0, 2, 5, 16])).unwrap();
        assert_eq!(t.ending, Ending::Timeout { core: 2, iter: 5 });
        assert!(parse_results(&file(&[program::MAGIC, 0, 0, 0, 3, 0, 0, 16, 1, 2])).is_err());
        assert!(parse_results(&file(&[7; 8])).is_err());
    }
}
