//! The generator: one bare-metal AArch64 program (assembly text) per litmus test.
//!
//! Thread `Pn` runs on core `n`, at EL1 with the MMU off, for many iterations. Core 0 is also the
//! master: before each iteration it waits until every other core has stored its previous
//! iteration's number (`LDAR` spin, bounded by the generic timer), resets the variables, stores
//! the code words of every thread back from a copy taken at boot, cleans every data line
//! (`DC CVAU`, `DSB ISH`), invalidates every instruction line (`IC IVAU`, `DSB ISH`), and
//! publishes the iteration number with `STLR`. The other cores spin `LDAR; CMP; B.EQ; YIELD; B`
//! on it and run `ISB` after they see it: the catalogue's `MP.RF+dc-dsb-ic-dsb+ctrlisb` shape,
//! Forbidden by herd7, so no core can run a previous iteration's code. The master runs `ISB`
//! after its own maintenance. Each core then waits a pseudo-random delay (so that both orders of
//! a race show up), zeroes its registers, sets the test's initial values and branches to its
//! thread. `SP` points at the core's part of this iteration's record, where the thread's end
//! stores the observed registers and where the exception vector counts faults (`ELR`, `ESR`).
//! At the end the master writes a header and every record to a host file through semihosting
//! and exits; a core that does not finish in time ends the run with a timeout record naming it.

use super::parser::{Atom, Init, Insn, Litmus, Loc, Operand, Stmt, Unsupported, Value};
use std::fmt::Write;

/// The magic word at the start of a results file ("GLTR").
pub const MAGIC: u64 = 0x5254_4c47;
/// Header words: magic, status, midr, ctr, iterations done, timeout core, timeout iteration,
/// record size in bytes.
pub const HEADER_WORDS: usize = 8;
/// Status: every iteration ran.
pub const STATUS_OK: u64 = 0;
/// Status: the master waited too long for a core.
pub const STATUS_TIMEOUT: u64 = 1;
/// Status: a core waited too long for the master (core 0 stuck in its thread).
pub const STATUS_MASTER_TIMEOUT: u64 = 2;
/// Status: an exception the test did not cause (a harness bug).
pub const STATUS_HARNESS_FAULT: u64 = 3;

/// Per-thread slots at the start of the thread's part of a record (8 bytes each).
const SLOT_SAVE0: usize = 0;
const SLOT_SAVE1: usize = 1;
/// Number of faults the thread took in this iteration.
pub const SLOT_FAULTS: usize = 2;
/// `ELR_EL1` of the first fault.
pub const SLOT_FAULT_ELR: usize = 3;
/// `ESR_EL1` of the first fault.
pub const SLOT_FAULT_ESR: usize = 4;
const THREAD_FIXED_SLOTS: usize = 5;
/// Room for the copy of the code region (the host checks the region fits).
pub const PRISTINE_BYTES: u64 = 65536;
/// A thread that faults this often in one iteration is ended (a fault loop).
const MAX_FAULTS: u32 = 64;

/// Options of one generated program.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Iterations to run.
    pub iters: u32,
    /// The host file the results go to (through semihosting).
    pub out_path: String,
    /// How long the master waits for a core, in generic-timer ticks (`CNTFRQ` per second).
    pub timeout_secs: u32,
    /// Mask of the pseudo-random start delay (a power of two minus one; loop iterations).
    pub delay_mask: u32,
    /// Emit the sanitizer's `ITERATION` marker (`hint #114`) at each thread's start.
    pub iteration_marker: bool,
}

/// Where each observed value sits in a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Record size in bytes.
    pub record_bytes: usize,
    /// Offset (bytes) of each thread's part.
    pub thread_base: Vec<usize>,
    /// Observed locations and their byte offsets in the record.
    pub slots: Vec<(Loc, usize)>,
}

impl Layout {
    /// Offset of a location, if observed.
    pub fn offset(&self, loc: &Loc) -> Option<usize> {
        self.slots.iter().find(|(l, _)| l == loc).map(|(_, o)| *o)
    }
}

/// A generated program.
#[derive(Clone, Debug)]
pub struct Program {
    /// The assembly text.
    pub asm: String,
    /// The record layout.
    pub layout: Layout,
    /// Instruction values and the symbol holding each one's encoding.
    pub instr_symbols: Vec<(Insn, String)>,
}

/// The symbol of label `name` of thread `p`.
pub fn label_symbol(p: usize, name: &str) -> String {
    format!("litmus_P{p}_{name}")
}

/// The symbol of memory variable `v`.
pub fn var_symbol(v: &str) -> String {
    format!("litmus_var_{v}")
}

/// The observed locations: the condition's and `locations`, in order.
pub fn observed(t: &Litmus) -> Vec<Loc> {
    let mut out: Vec<Loc> = vec![];
    let mut atoms = vec![];
    if let Some((_, p)) = &t.cond {
        super::parser::collect_atoms(p, &mut atoms);
    }
    for a in atoms {
        if let Atom::Eq(l, _) = a
            && !out.contains(l)
        {
            out.push(l.clone());
        }
    }
    for l in &t.locations {
        if !out.contains(l) {
            out.push(l.clone());
        }
    }
    out
}

fn layout(t: &Litmus) -> Layout {
    let obs = observed(t);
    let mut slots = vec![];
    let mut thread_base = vec![];
    let mut off = 0;
    for p in 0..t.threads.len() {
        thread_base.push(off);
        let mut n = THREAD_FIXED_SLOTS;
        for l in &obs {
            if let Loc::Reg(q, _) = l
                && *q == p
            {
                slots.push((l.clone(), off + n * 8));
                n += 1;
            }
        }
        off += n.div_ceil(2) * 16;
    }
    for l in &obs {
        if let Loc::Mem(_) = l {
            slots.push((l.clone(), off));
            off += 8;
        }
    }
    Layout {
        record_bytes: off.div_ceil(16) * 16,
        thread_base,
        slots,
    }
}

fn operand_text(p: usize, o: &Operand) -> String {
    match o {
        Operand::Reg(r) => r.to_string(),
        Operand::Imm(v) => format!("#{v}"),
        Operand::Mem { base, index } => match index {
            None => format!("[x{base}]"),
            Some((r, None)) => format!("[x{base}, {r}]"),
            Some((r, Some(ext))) => format!("[x{base}, {r}, {ext}]"),
        },
        Operand::Label(l) => label_symbol(p, l),
        Operand::Here(n) if *n >= 0 => format!(".+{n}"),
        Operand::Here(n) => format!(".-{}", -n),
        Operand::Word(w) => w.to_ascii_lowercase(),
    }
}

/// The assembly text of one instruction of thread `p`.
pub fn insn_text(p: usize, i: &Insn) -> String {
    let ops: Vec<String> = i.operands.iter().map(|o| operand_text(p, o)).collect();
    if ops.is_empty() {
        i.mnemonic.to_ascii_lowercase()
    } else {
        format!("{} {}", i.mnemonic.to_ascii_lowercase(), ops.join(", "))
    }
}

struct Gen<'a> {
    t: &'a Litmus,
    s: String,
    instrs: Vec<(Insn, String)>,
}

impl Gen<'_> {
    fn line(&mut self, l: &str) {
        self.s.push_str("    ");
        self.s.push_str(l);
        self.s.push('\n');
    }
    fn label(&mut self, l: &str) {
        let _ = writeln!(self.s, "{l}:");
    }
    fn addr(&mut self, reg: &str, sym: &str) {
        self.line(&format!("adrp {reg}, {sym}"));
        self.line(&format!("add {reg}, {reg}, :lo12:{sym}"));
    }
    /// Loads `v` into X register `x`.
    fn load_value(&mut self, x: u8, v: &Value) -> Result<(), Unsupported> {
        match v {
            Value::Int(n) => self.line(&format!("ldr x{x}, ={:#x}", *n as u64)),
            Value::Label { thread, name } => {
                self.addr(&format!("x{x}"), &label_symbol(*thread, name))
            }
            Value::Var(name) => self.addr(&format!("x{x}"), &var_symbol(name)),
            Value::Instr(insn) => {
                if insn.operands.iter().any(|o| matches!(o, Operand::Label(_))) {
                    return Err(Unsupported {
                        line: 0,
                        why: "an instruction value with a label operand".into(),
                    });
                }
                let sym = self.instr_symbol(insn);
                self.addr(&format!("x{x}"), &sym);
                self.line(&format!("ldr w{x}, [x{x}]"));
            }
        }
        Ok(())
    }
    fn instr_symbol(&mut self, insn: &Insn) -> String {
        if let Some((_, s)) = self.instrs.iter().find(|(i, _)| i == insn) {
            return s.clone();
        }
        let s = format!("litmus_instr_{}", self.instrs.len());
        self.instrs.push((insn.clone(), s.clone()));
        s
    }
}

/// Generates the program of test `t`.
pub fn generate(t: &Litmus, o: &GenOptions) -> Result<Program, Unsupported> {
    let n = t.threads.len();
    if n == 0 || n > 8 {
        return Err(Unsupported {
            line: 0,
            why: format!("{n} threads (the runner takes 1 to 8)"),
        });
    }
    let lay = layout(t);
    let mut g = Gen {
        t,
        s: String::new(),
        instrs: vec![],
    };
    // Instruction values the condition compares with get their encoding in the ELF too.
    let mut atoms = vec![];
    if let Some((_, p)) = &t.cond {
        super::parser::collect_atoms(p, &mut atoms);
    }
    for a in atoms {
        if let Atom::Eq(_, Value::Instr(i)) = a {
            if i.operands.iter().any(|o| matches!(o, Operand::Label(_))) {
                return Err(Unsupported {
                    line: 0,
                    why: "an instruction value with a label operand".into(),
                });
            }
            g.instr_symbol(i);
        }
    }
    let hdr = HEADER_WORDS * 8;
    g.s.push_str("// Generated by `cargo xtask litmus` from a herd7 litmus test.\n");
    g.s.push_str(".section .text.boot, \"ax\"\n.global _start\n_start:\n");
    // Every core: core number in x19, SCTLR (MMU and alignment checks off), its vectors.
    g.line("mrs x19, mpidr_el1");
    g.line("and x19, x19, #0xff");
    g.label("litmus_common");
    g.line("msr tpidr_el1, x19");
    g.line("ldr x0, =0x30d00800");
    g.line("msr sctlr_el1, x0");
    g.addr("x0", "litmus_vectors");
    g.line("add x0, x0, x19, lsl #11");
    g.line("msr vbar_el1, x0");
    g.line("isb");
    g.line("mov x0, #1");
    g.line("msr tpidrro_el0, x0");
    g.line("cbnz x19, litmus_secondary");
    // Master setup: header, control words, copy of the code, seeds, other cores on.
    g.addr("x0", "litmus_results");
    g.line(&format!("ldr x1, ={MAGIC:#x}"));
    g.line("str x1, [x0]");
    g.line("str xzr, [x0, #8]");
    g.line("mrs x1, midr_el1");
    g.line("str x1, [x0, #16]");
    g.line("mrs x1, ctr_el0");
    g.line("str x1, [x0, #24]");
    g.line("str xzr, [x0, #32]");
    g.line(&format!("ldr x1, ={}", lay.record_bytes));
    g.line("str x1, [x0, #56]");
    g.addr("x0", "litmus_go");
    g.line("str xzr, [x0]");
    for c in 1..n {
        g.addr("x0", &format!("litmus_done_{c}"));
        g.line("str xzr, [x0]");
    }
    g.addr("x0", "litmus_code_start");
    g.addr("x1", "litmus_code_end");
    g.addr("x2", "litmus_pristine");
    g.label("1");
    g.line("ldr w3, [x0], #4");
    g.line("str w3, [x2], #4");
    g.line("cmp x0, x1");
    g.line("b.lo 1b");
    for c in 0..n {
        g.addr("x0", &format!("litmus_rng_{c}"));
        g.line(&format!(
            "ldr x1, ={:#x}",
            0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 * 0x1234_5679)
        ));
        g.line("str x1, [x0]");
    }
    for c in 1..n {
        g.line("ldr x0, =0xc4000003");
        g.line(&format!("mov x1, #{c}"));
        g.addr("x2", "litmus_secondary_entry");
        g.line(&format!("mov x3, #{c}"));
        g.line("hvc #0");
        g.line("cbnz x0, litmus_harness_fault");
    }
    // The master's loop: wait for every core, collect memory, reset, publish.
    g.label("litmus_master_loop");
    g.line("mrs x20, tpidrro_el0");
    g.line("sub x21, x20, #1");
    for c in 1..n {
        g.line("mrs x22, cntvct_el0");
        g.line("mrs x23, cntfrq_el0");
        g.line(&format!("mov x24, #{}", o.timeout_secs));
        g.line("madd x22, x23, x24, x22");
        g.addr("x0", &format!("litmus_done_{c}"));
        g.label("1");
        g.line("ldar x1, [x0]");
        g.line("cmp x1, x21");
        g.line("b.eq 2f");
        g.line("yield");
        g.line("mrs x3, cntvct_el0");
        g.line("cmp x3, x22");
        g.line("b.lo 1b");
        g.line(&format!("mov x25, #{c}"));
        g.line(&format!("mov x26, #{STATUS_TIMEOUT}"));
        g.line("b litmus_finish_timeout");
        g.label("2");
    }
    // Memory locations of the iteration just finished.
    g.line("cbz x21, 3f");
    g.addr("x0", "litmus_records");
    g.line(&format!("ldr x1, ={}", lay.record_bytes));
    g.line("sub x2, x21, #1");
    g.line("madd x0, x2, x1, x0");
    for (loc, off) in &lay.slots {
        if let Loc::Mem(v) = loc {
            g.addr("x1", &var_symbol(v));
            g.line("ldr x1, [x1]");
            g.line(&format!("str x1, [x0, #{off}]"));
        }
    }
    g.addr("x0", "litmus_results");
    g.line("str x21, [x0, #32]");
    g.label("3");
    g.line(&format!("ldr x1, ={}", o.iters));
    g.line("cmp x21, x1");
    g.line("b.hs litmus_finish");
    // Reset the variables.
    for v in &t.vars {
        let init = t.init.iter().find_map(|i| match i {
            Init::Mem(name, val) if name == v => Some(val.clone()),
            _ => None,
        });
        match init {
            Some(val) => g.load_value(1, &val)?,
            None => g.line("mov x1, #0"),
        }
        g.addr("x0", &var_symbol(v));
        g.line("str x1, [x0]");
    }
    // Store the code back, then clean and invalidate every line of it.
    g.addr("x0", "litmus_code_start");
    g.addr("x1", "litmus_code_end");
    g.addr("x2", "litmus_pristine");
    g.line("mov x4, x0");
    g.label("1");
    g.line("ldr w3, [x2], #4");
    g.line("str w3, [x4], #4");
    g.line("cmp x4, x1");
    g.line("b.lo 1b");
    g.line("mrs x5, ctr_el0");
    g.line("ubfx x6, x5, #16, #4");
    g.line("mov x7, #4");
    g.line("lsl x6, x7, x6");
    g.line("mov x4, x0");
    g.label("1");
    g.line("dc cvau, x4");
    g.line("add x4, x4, x6");
    g.line("cmp x4, x1");
    g.line("b.lo 1b");
    g.line("dsb ish");
    g.line("and x6, x5, #0xf");
    g.line("lsl x6, x7, x6");
    g.line("mov x4, x0");
    g.label("1");
    g.line("ic ivau, x4");
    g.line("add x4, x4, x6");
    g.line("cmp x4, x1");
    g.line("b.lo 1b");
    g.line("dsb ish");
    g.addr("x0", "litmus_go");
    g.line("stlr x20, [x0]");
    g.line("isb");
    g.line("b litmus_thread_start_0");
    // The other cores.
    g.label("litmus_secondary_entry");
    g.line("mov x19, x0");
    g.line("b litmus_common");
    g.label("litmus_secondary");
    g.label("litmus_secondary_loop");
    g.line("mrs x20, tpidrro_el0");
    g.line("mrs x22, cntvct_el0");
    g.line("mrs x23, cntfrq_el0");
    g.line(&format!("mov x24, #{}", o.timeout_secs * 3));
    g.line("madd x22, x23, x24, x22");
    g.addr("x0", "litmus_go");
    g.label("1");
    g.line("ldar x1, [x0]");
    g.line("cmp x1, x20");
    g.line("b.eq 2f");
    g.line("yield");
    g.line("mrs x3, cntvct_el0");
    g.line("cmp x3, x22");
    g.line("b.lo 1b");
    g.line("mov x25, #0");
    g.line(&format!("mov x26, #{STATUS_MASTER_TIMEOUT}"));
    g.line("sub x21, x20, #1");
    g.line("b litmus_finish_timeout");
    g.label("2");
    g.line("isb");
    g.line("mrs x19, tpidr_el1");
    for c in 1..n {
        g.line(&format!("cmp x19, #{c}"));
        g.line(&format!("b.eq litmus_thread_start_{c}"));
    }
    g.line("b litmus_harness_fault");
    // The end of any thread's code, reached by whichever core ran it: its own end.
    g.label("litmus_end");
    g.line(&format!("str x0, [sp, #{}]", SLOT_SAVE0 * 8));
    g.line("mrs x0, tpidr_el1");
    for c in 0..n {
        g.line(&format!("cmp x0, #{c}"));
        g.line(&format!("b.eq litmus_end_restore_{c}"));
    }
    g.line("b litmus_harness_fault");
    // Each thread's start and end.
    for c in 0..n {
        thread_start(&mut g, c, &lay, o)?;
    }
    finish(&mut g, hdr);
    vectors(&mut g, n);
    code_region(&mut g);
    data(&mut g, &lay, o, hdr);
    let instr_symbols = g.instrs.clone();
    Ok(Program {
        asm: g.s,
        layout: lay,
        instr_symbols,
    })
}

fn thread_start(g: &mut Gen, c: usize, lay: &Layout, o: &GenOptions) -> Result<(), Unsupported> {
    g.label(&format!("litmus_thread_start_{c}"));
    // Pseudo-random delay (a 64-bit LCG per core).
    g.addr("x0", &format!("litmus_rng_{c}"));
    g.line("ldr x1, [x0]");
    g.line("ldr x2, =0x5851f42d4c957f2d");
    g.line("ldr x3, =0x14057b7ef767814f");
    g.line("madd x1, x1, x2, x3");
    g.line("str x1, [x0]");
    g.line("lsr x1, x1, #40");
    g.line(&format!("and x1, x1, #{:#x}", o.delay_mask));
    g.line("add x1, x1, #1");
    g.label("1");
    g.line("subs x1, x1, #1");
    g.line("b.ne 1b");
    // SP := this core's part of this iteration's record.
    g.line("mrs x20, tpidrro_el0");
    g.line("sub x20, x20, #1");
    g.addr("x0", "litmus_records");
    g.line(&format!("ldr x1, ={}", lay.record_bytes));
    g.line("madd x0, x20, x1, x0");
    g.line(&format!("add x0, x0, #{}", lay.thread_base[c]));
    g.line("mov sp, x0");
    g.line(&format!("str xzr, [sp, #{}]", SLOT_FAULTS * 8));
    g.line(&format!("str xzr, [sp, #{}]", SLOT_FAULT_ELR * 8));
    g.line(&format!("str xzr, [sp, #{}]", SLOT_FAULT_ESR * 8));
    if o.iteration_marker {
        g.line("add x0, x20, #1");
        g.line("hint #114");
    }
    let t = g.t;
    for r in 0..=30u8 {
        let init = t.init.iter().find_map(|i| match i {
            Init::Reg(p, q, v) if *p == c && *q == r => Some(v.clone()),
            _ => None,
        });
        match init {
            Some(v) => g.load_value(r, &v)?,
            None => g.line(&format!("mov x{r}, #0")),
        }
    }
    g.line("msr nzcv, xzr");
    g.line(&format!("b litmus_start_P{c}"));
    g.line(".ltorg");
    // The end: store the observed registers, then report (or, on core 0, loop).
    g.label(&format!("litmus_end_restore_{c}"));
    g.line(&format!("ldr x0, [sp, #{}]", SLOT_SAVE0 * 8));
    g.label(&format!("litmus_end_{c}"));
    for (loc, off) in &lay.slots {
        if let Loc::Reg(p, r) = loc
            && *p == c
        {
            g.line(&format!("str x{r}, [sp, #{}]", off - lay.thread_base[c]));
        }
    }
    g.line("mrs x20, tpidrro_el0");
    if c == 0 {
        g.line("add x20, x20, #1");
        g.line("msr tpidrro_el0, x20");
        g.line("b litmus_master_loop");
    } else {
        g.addr("x0", &format!("litmus_done_{c}"));
        g.line("stlr x20, [x0]");
        g.line("add x20, x20, #1");
        g.line("msr tpidrro_el0, x20");
        g.line("b litmus_secondary_loop");
    }
    // Faults: count, keep the first one's ELR and ESR, then the handler or the end.
    g.label(&format!("litmus_fault_{c}"));
    g.line("mrs x0, elr_el1");
    g.addr("x1", "litmus_code_start");
    g.line("cmp x0, x1");
    g.line("b.lo litmus_harness_fault");
    g.addr("x1", "litmus_code_end");
    g.line("cmp x0, x1");
    g.line("b.hs litmus_harness_fault");
    g.line(&format!("ldr x1, [sp, #{}]", SLOT_FAULTS * 8));
    g.line("add x1, x1, #1");
    g.line(&format!("str x1, [sp, #{}]", SLOT_FAULTS * 8));
    g.line("cmp x1, #1");
    g.line("b.ne 1f");
    g.line(&format!("str x0, [sp, #{}]", SLOT_FAULT_ELR * 8));
    g.line("mrs x0, esr_el1");
    g.line(&format!("str x0, [sp, #{}]", SLOT_FAULT_ESR * 8));
    g.label("1");
    g.line(&format!("cmp x1, #{MAX_FAULTS}"));
    g.line(&format!("b.hs litmus_fault_end_{c}"));
    g.line(&format!("ldr x0, [sp, #{}]", SLOT_SAVE0 * 8));
    g.line(&format!("ldr x1, [sp, #{}]", SLOT_SAVE1 * 8));
    // A fault goes to the thread's handler when it has one; otherwise it ends the thread
    // (herd7's `fatal`, and the only choice without a handler).
    if t.threads[c].handler.is_some() {
        g.line(&format!("b litmus_handler_P{c}"));
    } else {
        g.line(&format!("b litmus_end_{c}"));
    }
    g.label(&format!("litmus_fault_end_{c}"));
    g.line(&format!("ldr x0, [sp, #{}]", SLOT_SAVE0 * 8));
    g.line(&format!("ldr x1, [sp, #{}]", SLOT_SAVE1 * 8));
    g.line(&format!("b litmus_end_{c}"));
    Ok(())
}

fn finish(g: &mut Gen, hdr: usize) {
    // x25 = core, x26 = status, x21 = iteration that did not finish.
    g.label("litmus_finish_timeout");
    g.addr("x0", "litmus_results");
    g.line("str x26, [x0, #8]");
    g.line("str x25, [x0, #40]");
    g.line("str x21, [x0, #48]");
    g.line("b litmus_write");
    g.label("litmus_harness_fault");
    g.addr("x0", "litmus_results");
    g.line(&format!("mov x1, #{STATUS_HARNESS_FAULT}"));
    g.line("str x1, [x0, #8]");
    g.line("mrs x1, tpidr_el1");
    g.line("str x1, [x0, #40]");
    g.line("mrs x1, elr_el1");
    g.line("str x1, [x0, #48]");
    g.line("b litmus_write");
    g.label("litmus_finish");
    g.label("litmus_write");
    // SYS_OPEN(path, "wb"), SYS_WRITE(header and records), SYS_CLOSE, SYS_EXIT.
    g.addr("x1", "litmus_semi_block");
    g.addr("x2", "litmus_out_path");
    g.line("str x2, [x1]");
    g.line("mov x2, #5");
    g.line("str x2, [x1, #8]");
    g.addr("x2", "litmus_out_path_len");
    g.line("ldr x2, [x2]");
    g.line("str x2, [x1, #16]");
    g.line("mov w0, #1");
    g.line("hlt #0xf000");
    g.line("cmn x0, #1");
    g.line("b.eq litmus_exit_error");
    g.addr("x1", "litmus_semi_block");
    g.line("str x0, [x1]");
    g.line("mov x9, x0");
    g.addr("x2", "litmus_results");
    g.line("str x2, [x1, #8]");
    g.line("ldr x3, [x2, #32]");
    g.line("ldr x4, [x2, #56]");
    g.line(&format!("mov x5, #{hdr}"));
    g.line("madd x3, x3, x4, x5");
    g.line("str x3, [x1, #16]");
    g.line("mov w0, #5");
    g.line("hlt #0xf000");
    g.addr("x1", "litmus_semi_block");
    g.line("str x9, [x1]");
    g.line("mov w0, #2");
    g.line("hlt #0xf000");
    g.line("mov x2, #0");
    g.line("b litmus_exit");
    g.label("litmus_exit_error");
    g.line("mov x2, #3");
    g.label("litmus_exit");
    g.addr("x1", "litmus_semi_block");
    g.line("ldr x3, =0x20026");
    g.line("str x3, [x1]");
    g.line("str x2, [x1, #8]");
    g.line("mov w0, #0x18");
    g.line("hlt #0xf000");
    g.label("1");
    g.line("wfi");
    g.line("b 1b");
    g.line(".ltorg");
}

fn vectors(g: &mut Gen, n: usize) {
    g.s.push_str(".balign 2048\nlitmus_vectors:\n");
    for c in 0..n {
        for entry in 0..16 {
            let _ = writeln!(g.s, ".balign 128");
            if entry == 4 {
                // Synchronous exception, current EL with SP_ELx: the test's own faults.
                g.line(&format!("str x0, [sp, #{}]", SLOT_SAVE0 * 8));
                g.line(&format!("str x1, [sp, #{}]", SLOT_SAVE1 * 8));
                g.line(&format!("b litmus_fault_{c}"));
            } else {
                g.line("b litmus_harness_fault");
            }
        }
        let _ = writeln!(g.s, ".balign 2048");
    }
}

fn code_region(g: &mut Gen) {
    let t = g.t;
    g.s.push_str(".section .text.litmus, \"ax\"\n.balign 4096\nlitmus_code_start:\n");
    for (p, th) in t.threads.iter().enumerate() {
        let _ = writeln!(g.s, ".balign 256");
        g.label(&format!("litmus_start_P{p}"));
        emit_stmts(g, p, &th.code);
        g.line("b litmus_end");
        if let Some(h) = &th.handler {
            let _ = writeln!(g.s, ".balign 64");
            g.label(&format!("litmus_handler_P{p}"));
            emit_stmts(g, p, h);
            g.line("b litmus_end");
        }
    }
    g.s.push_str(".balign 256\nlitmus_code_end:\n");
}

fn emit_stmts(g: &mut Gen, p: usize, stmts: &[Stmt]) {
    for s in stmts {
        match s {
            Stmt::Label(l) => {
                let sym = label_symbol(p, l);
                let _ = writeln!(g.s, ".global {sym}");
                g.label(&sym);
            }
            Stmt::Insn(i, _) => g.line(&insn_text(p, i)),
        }
    }
}

fn data(g: &mut Gen, lay: &Layout, o: &GenOptions, hdr: usize) {
    let t = g.t;
    g.s.push_str(".section .rodata.litmus, \"a\"\n.balign 8\n");
    let instrs = g.instrs.clone();
    for (i, sym) in &instrs {
        let _ = writeln!(g.s, ".global {sym}\n{sym}:");
        g.line(&insn_text(0, i));
    }
    let path = o.out_path.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(
        g.s,
        ".balign 8\nlitmus_out_path_len:\n    .quad {}",
        o.out_path.len()
    );
    let _ = writeln!(g.s, "litmus_out_path:\n    .asciz \"{path}\"");
    g.s.push_str(".section .data.litmus, \"aw\"\n");
    for v in &t.vars {
        let sym = var_symbol(v);
        let _ = writeln!(g.s, ".balign 64\n.global {sym}\n{sym}:\n    .quad 0");
    }
    g.s.push_str(".balign 64\nlitmus_go:\n    .quad 0\n");
    for c in 0..t.threads.len() {
        let _ = writeln!(g.s, ".balign 64\nlitmus_done_{c}:\n    .quad 0");
        let _ = writeln!(g.s, ".balign 64\nlitmus_rng_{c}:\n    .quad 0");
    }
    g.s.push_str(".balign 64\nlitmus_semi_block:\n    .quad 0, 0, 0, 0\n");
    g.s.push_str(".section .bss.litmus, \"aw\", @nobits\n.balign 4096\n");
    let _ = write!(g.s, "litmus_pristine:\n    .skip {PRISTINE_BYTES}\n");
    let _ = writeln!(
        g.s,
        ".balign 64\nlitmus_results:\n    .skip {hdr}\nlitmus_records:\n    .skip {}",
        lay.record_bytes * o.iters as usize
    );
}
