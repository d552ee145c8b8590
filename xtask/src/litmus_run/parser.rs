//! A parser of herd7 AArch64 litmus files, in the dialect of the `aarch64-ifetch` catalogue.
//!
//! It reads the header (`Variant=`, `CacheType=`), the initial state (registers and memory, with
//! labels, `instr:"..."` and variables as values), the thread columns (with `Pn.F` fault-handler
//! columns), `locations` and the final condition (`exists`, `~exists`, `forall`, with `fault(...)`
//! atoms). Instructions are parsed into [`Insn`] values from a fixed list of forms, so that
//! nothing the generator does not understand reaches the assembler: anything else is an
//! [`Unsupported`] error naming the line.

use std::fmt;

/// Why a file cannot be run, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The 1-based line of the file the reason is about.
    pub line: usize,
    /// The reason.
    pub why: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.why)
    }
}

type Res<T> = Result<T, Unsupported>;

fn unsupported<T>(line: usize, why: impl Into<String>) -> Res<T> {
    Err(Unsupported {
        line,
        why: why.into(),
    })
}

/// A general-purpose register operand: `Xn` (`wide`) or `Wn`; `n == 31` is the zero register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    /// 64-bit (`X`) or 32-bit (`W`).
    pub wide: bool,
    /// The register number, 31 for `XZR`/`WZR`.
    pub n: u8,
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.wide, self.n) {
            (true, 31) => write!(f, "xzr"),
            (false, 31) => write!(f, "wzr"),
            (true, n) => write!(f, "x{n}"),
            (false, n) => write!(f, "w{n}"),
        }
    }
}

/// One operand of an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A register.
    Reg(Reg),
    /// `#imm`.
    Imm(i64),
    /// `[Xn]` or `[Xn, Wm, SXTW]`/`[Xn, Xm]` (register offset, with its extension if any).
    Mem {
        /// The base register (an `X` register).
        base: u8,
        /// The offset register and its extension (`sxtw`, `uxtw`, `lsl`), if any.
        index: Option<(Reg, Option<String>)>,
    },
    /// A label of the same thread.
    Label(String),
    /// `.+N` or `.-N`: an offset from the instruction itself (in `instr:"..."` values).
    Here(i64),
    /// A keyword: a barrier option, a cache operation, a condition code, a system register.
    Word(String),
}

/// One instruction, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insn {
    /// The mnemonic in upper case, with its condition for `B.cond` (`B.EQ`).
    pub mnemonic: String,
    /// The operands in order.
    pub operands: Vec<Operand>,
}

/// One statement of a thread column: a label or an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `name:`.
    Label(String),
    /// An instruction, with the file line it is on.
    Insn(Insn, usize),
}

/// One thread: its code and, if the test gives one, its fault handler (`Pn.F`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Thread {
    /// The thread's code, in order.
    pub code: Vec<Stmt>,
    /// The fault handler's code, if any.
    pub handler: Option<Vec<Stmt>>,
}

/// A value in the initial state or the condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// The address of a label: `P1:L0` or `label:"P1:L0"`.
    Label {
        /// The thread the label is in.
        thread: usize,
        /// The label.
        name: String,
    },
    /// The encoding of an instruction: `NOP` or `instr:"B .+4"`.
    Instr(Insn),
    /// The address of a memory variable.
    Var(String),
}

/// A location whose final value a condition reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Loc {
    /// `n:Xr` (thread, register).
    Reg(usize, u8),
    /// A memory variable (`x` or `[x]`).
    Mem(String),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Reg(t, r) => write!(f, "{t}:X{r}"),
            Loc::Mem(v) => write!(f, "{v}"),
        }
    }
}

/// An atom of a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Atom {
    /// `loc = value`.
    Eq(Loc, Value),
    /// `fault(Pn:label[, Kind])`, or `fault(Pn)`.
    Fault {
        /// The faulting thread.
        thread: usize,
        /// The label of the faulting instruction, if given.
        label: Option<String>,
        /// The kind (`UndefinedInstruction`), if given.
        kind: Option<String>,
    },
}

/// A proposition over the final state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prop {
    /// Always true.
    True,
    /// Always false.
    False,
    /// An atom.
    Atom(Atom),
    /// Negation.
    Not(Box<Prop>),
    /// Conjunction.
    And(Vec<Prop>),
    /// Disjunction.
    Or(Vec<Prop>),
}

/// The quantifier of the final condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// `exists`: some execution satisfies it.
    Exists,
    /// `~exists`: no execution does.
    NotExists,
    /// `forall`: every execution does.
    Forall,
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quant::Exists => "exists",
            Quant::NotExists => "~exists",
            Quant::Forall => "forall",
        })
    }
}

/// One initial assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// `n:Xr = value`.
    Reg(usize, u8, Value),
    /// `[x] = value` or `x = value`.
    Mem(String, Value),
}

/// A parsed litmus test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Litmus {
    /// The test's name (the first line's second word).
    pub name: String,
    /// `Variant=` words (`self`, `fatal`).
    pub variants: Vec<String>,
    /// `CacheType=IDC`: no D-side clean needed.
    pub idc: bool,
    /// `CacheType=DIC`: no I-side invalidate needed.
    pub dic: bool,
    /// The initial state.
    pub init: Vec<Init>,
    /// The threads, `P0` first.
    pub threads: Vec<Thread>,
    /// Extra locations to show (`locations [...]`).
    pub locations: Vec<Loc>,
    /// The final condition, if the file has one.
    pub cond: Option<(Quant, Prop)>,
    /// The text of the condition as written (for the output).
    pub cond_text: String,
    /// Memory variables named anywhere, in order of first appearance.
    pub vars: Vec<String>,
}

/// Removes `(* ... *)` comments (nesting), keeping newlines so line numbers stay right.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"(*") {
            depth += 1;
            i += 2;
        } else if depth > 0 && b[i..].starts_with(b"*)") {
            depth -= 1;
            i += 2;
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            if depth == 0 || c == '\n' {
                out.push(c);
            }
            i += c.len_utf8();
        }
    }
    out
}

/// Parses a litmus file's text.
pub fn parse(text: &str) -> Res<Litmus> {
    let text = strip_comments(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let first = lines.get(i).copied().unwrap_or("");
    let mut words = first.split_whitespace();
    if words.next() != Some("AArch64") {
        return unsupported(i + 1, "not an AArch64 litmus test");
    }
    let name = match words.next() {
        Some(n) => n.to_string(),
        None => return unsupported(i + 1, "no test name"),
    };
    i += 1;
    let mut t = Litmus {
        name,
        variants: vec![],
        idc: false,
        dic: false,
        init: vec![],
        threads: vec![],
        locations: vec![],
        cond: None,
        cond_text: String::new(),
        vars: vec![],
    };
    // Header lines up to the initial state's `{`.
    while i < lines.len() && !lines[i].trim_start().starts_with('{') {
        let l = lines[i].trim();
        if let Some(v) = l.strip_prefix("Variant=") {
            t.variants.extend(
                v.split([',', ' '])
                    .filter(|w| !w.is_empty())
                    .map(String::from),
            );
        } else if let Some(v) = l.strip_prefix("CacheType=") {
            for w in v.split([',', ' ']).filter(|w| !w.is_empty()) {
                match w {
                    "IDC" => t.idc = true,
                    // The catalogue files `CacheType=DIC` tests under `DIC1-IDC1`: a DIC
                    // test's cores need no clean either.
                    "DIC" => {
                        t.dic = true;
                        t.idc = true;
                    }
                    other => return unsupported(i + 1, format!("unknown CacheType {other}")),
                }
            }
        } else if l.is_empty()
            || l.starts_with("Stable=")
            || l.starts_with("Hash=")
            || l.starts_with('"')
        {
        } else if let Some((key, _)) = l.split_once('=') {
            return unsupported(i + 1, format!("unknown header {key}"));
        }
        i += 1;
    }
    if i >= lines.len() {
        return unsupported(i, "no initial state");
    }
    // The initial state, possibly over several lines.
    let start = i;
    let mut init = String::new();
    let rest_of_line;
    loop {
        let l = if i == start {
            lines[i].trim_start().strip_prefix('{').unwrap_or("")
        } else {
            lines[i]
        };
        if let Some((a, b)) = l.split_once('}') {
            init.push_str(a);
            rest_of_line = b;
            break;
        }
        init.push_str(l);
        init.push(';');
        i += 1;
        if i >= lines.len() {
            return unsupported(start + 1, "initial state not closed");
        }
    }
    let init_line = start + 1;
    for item in init.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        parse_init(&mut t, item, init_line)?;
    }
    if !rest_of_line.trim().is_empty() {
        return unsupported(i + 1, "text after the initial state's '}'");
    }
    i += 1;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    // The thread table: a header row of names, then rows of cells.
    let Some(header) = lines.get(i) else {
        return unsupported(i, "no threads");
    };
    let columns = parse_header(header, i + 1)?;
    let nthreads = columns.iter().map(|c| c.0 + 1).max().unwrap_or(0);
    t.threads = vec![Thread::default(); nthreads];
    for &(p, handler) in &columns {
        if handler {
            t.threads[p].handler = Some(vec![]);
        }
    }
    i += 1;
    while i < lines.len() {
        let l = lines[i].trim();
        if l.is_empty() {
            i += 1;
            continue;
        }
        if !l.contains('|') && !l.ends_with(';') || is_condition_start(l) {
            break;
        }
        let row = l.strip_suffix(';').unwrap_or(l);
        let cells: Vec<&str> = row.split('|').collect();
        if cells.len() > columns.len() {
            return unsupported(i + 1, "more cells than threads");
        }
        for (cell, &(p, handler)) in cells.iter().zip(&columns) {
            let stmts = parse_cell(cell, i + 1)?;
            let dest = if handler {
                t.threads[p].handler.get_or_insert_with(Vec::new)
            } else {
                &mut t.threads[p].code
            };
            dest.extend(stmts);
        }
        i += 1;
    }
    // `locations` and the condition.
    let mut cond = String::new();
    let cond_line = i + 1;
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(rest) = l.strip_prefix("locations") {
            let inner = rest.trim().trim_end_matches(';').trim();
            let inner = inner
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .ok_or(Unsupported {
                    line: i + 1,
                    why: "locations not in [...]".into(),
                })?;
            for loc in inner.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let loc = parse_loc(&mut t, loc, i + 1)?;
                t.locations.push(loc);
            }
        } else {
            cond.push_str(l);
            cond.push(' ');
        }
        i += 1;
    }
    let cond = cond.trim();
    if !cond.is_empty() {
        t.cond_text = cond.to_string();
        t.cond = Some(parse_condition(&mut t, cond, cond_line)?);
    }
    check_labels(&t)?;
    Ok(t)
}

fn is_condition_start(l: &str) -> bool {
    ["exists", "~exists", "forall", "locations", "filter"]
        .iter()
        .any(|k| l.starts_with(k))
}

fn parse_header(line: &str, n: usize) -> Res<Vec<(usize, bool)>> {
    let row = line.trim().strip_suffix(';').unwrap_or(line.trim());
    let mut out = vec![];
    for cell in row.split('|').map(str::trim) {
        let (p, handler) = match cell.strip_suffix(".F") {
            Some(p) => (p, true),
            None => (cell, false),
        };
        let Some(num) = p.strip_prefix('P').and_then(|d| d.parse::<usize>().ok()) else {
            return unsupported(n, format!("thread header {cell:?} is not Pn or Pn.F"));
        };
        out.push((num, handler));
    }
    if out.is_empty() {
        return unsupported(n, "no threads");
    }
    Ok(out)
}

fn parse_thread_ref(s: &str) -> Option<usize> {
    s.strip_prefix('P')?.parse().ok()
}

fn parse_reg(s: &str) -> Option<Reg> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "xzr" => return Some(Reg { wide: true, n: 31 }),
        "wzr" => return Some(Reg { wide: false, n: 31 }),
        _ => {}
    }
    let (wide, num) = match lower.as_bytes().first()? {
        b'x' => (true, &lower[1..]),
        b'w' => (false, &lower[1..]),
        _ => return None,
    };
    let n: u8 = num.parse().ok()?;
    (n <= 30 && !num.starts_with('+')).then_some(Reg { wide, n })
}

/// `n:Xr` as a (thread, register) pair.
fn parse_thread_reg(s: &str) -> Option<(usize, u8)> {
    let (t, r) = s.split_once(':')?;
    let t: usize = t.trim().parse().ok()?;
    let r = parse_reg(r)?;
    (r.n != 31).then_some((t, r.n))
}

fn note_var(t: &mut Litmus, v: &str) {
    if !t.vars.iter().any(|x| x == v) {
        t.vars.push(v.to_string());
    }
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_value(t: &mut Litmus, s: &str, line: usize) -> Res<Value> {
    let s = s.trim();
    if let Some(q) = s.strip_prefix("label:") {
        let q = q.trim().trim_matches('"');
        let Some((p, l)) = q.split_once(':') else {
            return unsupported(line, format!("label value {s} is not \"Pn:label\""));
        };
        let Some(thread) = parse_thread_ref(p.trim()) else {
            return unsupported(line, format!("label value {s} names no thread"));
        };
        return Ok(Value::Label {
            thread,
            name: l.trim().to_string(),
        });
    }
    if let Some(q) = s.strip_prefix("instr:") {
        let q = q.trim();
        let Some(q) = q.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
            return unsupported(line, format!("instruction value {s} is not quoted"));
        };
        return Ok(Value::Instr(parse_insn(q, line)?));
    }
    if let Some(int) = parse_int(s) {
        return Ok(Value::Int(int));
    }
    if let Some((p, l)) = s.split_once(':')
        && let Some(thread) = parse_thread_ref(p.trim())
    {
        return Ok(Value::Label {
            thread,
            name: l.trim().to_string(),
        });
    }
    if s.eq_ignore_ascii_case("NOP") || s.eq_ignore_ascii_case("ISB") {
        return Ok(Value::Instr(parse_insn(s, line)?));
    }
    if is_ident(s) {
        note_var(t, s);
        return Ok(Value::Var(s.to_string()));
    }
    if s.contains("oa:") || s.contains("PTE(") || s.contains("TTBR") {
        return unsupported(
            line,
            format!("value {s}: page-table entries are not supported"),
        );
    }
    unsupported(line, format!("value {s:?} not understood"))
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(h, 16).ok()? as i64
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

fn parse_init(t: &mut Litmus, item: &str, line: usize) -> Res<()> {
    // Type declarations: `ins_t *1:X1`, `void *1:X9`, `int x`, or typed assignments.
    let mut item = item.trim();
    for ty in [
        "ins_t", "void", "int", "uint64_t", "int64_t", "uint32_t", "int32_t",
    ] {
        if let Some(rest) = item.strip_prefix(ty)
            && rest.starts_with([' ', '*'])
        {
            item = rest.trim_start().trim_start_matches('*').trim();
            if !item.contains('=') {
                return Ok(());
            }
            break;
        }
    }
    let Some((lhs, rhs)) = item.split_once('=') else {
        return unsupported(line, format!("initial item {item:?} is not an assignment"));
    };
    let lhs = lhs.trim();
    let value = parse_value(t, rhs, line)?;
    if let Some((p, r)) = parse_thread_reg(lhs) {
        if r == 31 {
            return unsupported(line, "the zero register cannot be initialised");
        }
        t.init.push(Init::Reg(p, r, value));
        return Ok(());
    }
    let var = lhs
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(lhs)
        .trim();
    if var.contains(':') {
        return unsupported(
            line,
            format!("initial value of code location {var} is not supported"),
        );
    }
    if !is_ident(var) {
        return unsupported(line, format!("initial item {lhs:?} not understood"));
    }
    note_var(t, var);
    t.init.push(Init::Mem(var.to_string(), value));
    Ok(())
}

fn parse_loc(t: &mut Litmus, s: &str, line: usize) -> Res<Loc> {
    let s = s.trim();
    if let Some((p, r)) = parse_thread_reg(s) {
        return Ok(Loc::Reg(p, r));
    }
    let var = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
        .trim();
    if var.contains(':') {
        return unsupported(line, format!("code location {var} is not supported"));
    }
    if !is_ident(var) {
        return unsupported(line, format!("location {s:?} not understood"));
    }
    note_var(t, var);
    Ok(Loc::Mem(var.to_string()))
}

fn parse_cell(cell: &str, line: usize) -> Res<Vec<Stmt>> {
    let mut out = vec![];
    let mut rest = cell.trim();
    // Labels `name:` (possibly several) before the instruction.
    while let Some((l, after)) = rest.split_once(':') {
        let l = l.trim();
        if !is_ident(l) || l.contains(' ') {
            break;
        }
        out.push(Stmt::Label(l.to_string()));
        rest = after.trim();
    }
    if !rest.is_empty() {
        out.push(Stmt::Insn(parse_insn(rest, line)?, line));
    }
    Ok(out)
}

/// Splits operands at commas outside brackets.
fn split_operands(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            out.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn parse_mem(s: &str, line: usize) -> Res<Operand> {
    let inner = &s[1..s.len() - 1];
    let parts = split_operands(inner);
    let base = match parts.first().and_then(|b| parse_reg(b)) {
        Some(Reg { wide: true, n }) if n != 31 => n,
        _ => return unsupported(line, format!("address {s} needs an X base register")),
    };
    let index = match parts.len() {
        1 => None,
        2 | 3 => {
            let Some(r) = parse_reg(&parts[1]) else {
                return unsupported(
                    line,
                    format!("address {s}: only register offsets supported"),
                );
            };
            let ext = match parts.get(2) {
                None => None,
                Some(e) => {
                    let e = e.to_ascii_lowercase();
                    if !["sxtw", "uxtw", "lsl #0", "sxtx"].contains(&e.as_str()) {
                        return unsupported(line, format!("address {s}: extension {e}"));
                    }
                    Some(e)
                }
            };
            Some((r, ext))
        }
        _ => return unsupported(line, format!("address {s} not understood")),
    };
    Ok(Operand::Mem { base, index })
}

fn parse_operand(s: &str, line: usize) -> Res<Operand> {
    let s = s.trim();
    if s.starts_with('[') && s.ends_with(']') {
        return parse_mem(s, line);
    }
    if let Some(imm) = s.strip_prefix('#') {
        return match parse_int(imm.trim()) {
            Some(v) => Ok(Operand::Imm(v)),
            None => unsupported(line, format!("immediate {s}")),
        };
    }
    if let Some(off) = s.strip_prefix(".+") {
        return parse_int(off).map(Operand::Here).ok_or(Unsupported {
            line,
            why: format!("offset {s}"),
        });
    }
    if let Some(off) = s.strip_prefix(".-") {
        return parse_int(off)
            .map(|v| Operand::Here(-v))
            .ok_or(Unsupported {
                line,
                why: format!("offset {s}"),
            });
    }
    if s.eq_ignore_ascii_case("sp") || s.eq_ignore_ascii_case("wsp") {
        return unsupported(line, "SP is the harness's (it holds the result pointer)");
    }
    if let Some(r) = parse_reg(s) {
        return Ok(Operand::Reg(r));
    }
    if is_ident(s) {
        return Ok(Operand::Word(s.to_string()));
    }
    unsupported(line, format!("operand {s:?} not understood"))
}

/// Operand shapes: `r` register, `i` immediate, `m` memory, `l` label (or `.+N`), `w` word.
fn shape(ops: &[Operand]) -> String {
    ops.iter()
        .map(|o| match o {
            Operand::Reg(_) => 'r',
            Operand::Imm(_) => 'i',
            Operand::Mem { .. } => 'm',
            Operand::Label(_) | Operand::Here(_) => 'l',
            Operand::Word(_) => 'w',
        })
        .collect()
}

const BARRIER_OPTIONS: &[&str] = &[
    "SY", "ST", "LD", "ISH", "ISHST", "ISHLD", "NSH", "NSHST", "NSHLD", "OSH", "OSHST", "OSHLD",
];
const CONDS: &[&str] = &[
    "EQ", "NE", "CS", "HS", "CC", "LO", "MI", "PL", "VS", "VC", "HI", "LS", "GE", "LT", "GT", "LE",
    "AL",
];

/// Parses one instruction from the catalogue's list of forms.
pub fn parse_insn(text: &str, line: usize) -> Res<Insn> {
    let text = text.trim();
    let (mn, rest) = match text.split_once(char::is_whitespace) {
        Some((m, r)) => (m, r.trim()),
        None => (text, ""),
    };
    let mnemonic = mn.to_ascii_uppercase();
    let mut operands = vec![];
    for o in split_operands(rest) {
        operands.push(parse_operand(&o, line)?);
    }
    // Branch targets and ADR's address are labels, not keywords.
    let label_at = match mnemonic.as_str() {
        "B" | "BL" => Some(0),
        m if m.starts_with("B.") => Some(0),
        "CBZ" | "CBNZ" | "ADR" => Some(1),
        _ => None,
    };
    if let Some(k) = label_at
        && let Some(Operand::Word(w)) = operands.get(k).cloned()
    {
        operands[k] = Operand::Label(w);
    }
    let sh = shape(&operands);
    let words: Vec<String> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        })
        .collect();
    let regs_same_width = || {
        let widths: Vec<bool> = operands
            .iter()
            .filter_map(|o| match o {
                Operand::Reg(r) => Some(r.wide),
                _ => None,
            })
            .collect();
        widths.windows(2).all(|w| w[0] == w[1])
    };
    let ok = match mnemonic.as_str() {
        "NOP" | "ISB" | "ERET" | "YIELD" => sh.is_empty(),
        "RET" => sh.is_empty() || sh == "r",
        "BR" | "BLR" => sh == "r" && matches!(operands[0], Operand::Reg(r) if r.wide),
        "B" | "BL" => sh == "l",
        m if m.starts_with("B.") => CONDS.contains(&&m[2..]) && sh == "l",
        "CBZ" | "CBNZ" => sh == "rl",
        "ADR" => sh == "rl" && matches!(operands[0], Operand::Reg(r) if r.wide),
        "UDF" => sh == "i" && matches!(operands[0], Operand::Imm(v) if (0..=0xffff).contains(&v)),
        "DSB" | "DMB" => sh == "w" && BARRIER_OPTIONS.contains(&words[0].as_str()),
        "DC" => {
            sh == "wr"
                && ["CVAU", "CIVAC", "CVAC", "CVAP"].contains(&words[0].as_str())
                && matches!(operands[1], Operand::Reg(r) if r.wide)
        }
        "IC" => {
            (sh == "wr" && words[0] == "IVAU" && matches!(operands[1], Operand::Reg(r) if r.wide))
                || (sh == "w" && ["IALLU", "IALLUIS"].contains(&words[0].as_str()))
        }
        "LDR" | "STR" | "LDAR" | "STLR" | "LDRB" | "STRB" => {
            sh == "rm"
                && (!matches!(mnemonic.as_str(), "LDAR" | "STLR")
                    || matches!(operands[1], Operand::Mem { index: None, .. }))
        }
        "MOV" => (sh == "ri" || sh == "rr") && regs_same_width(),
        "ADD" | "SUB" | "EOR" | "AND" | "ORR" => (sh == "rri" || sh == "rrr") && regs_same_width(),
        "CMP" => (sh == "ri" || sh == "rr") && regs_same_width(),
        "CSET" => sh == "rw" && CONDS.contains(&words[0].as_str()),
        "CSEL" => sh == "rrrw" && CONDS.contains(&words[0].as_str()) && regs_same_width(),
        "MSR" => sh == "wr" && words[0] == "ELR_EL1",
        _ => false,
    };
    if !ok {
        return unsupported(
            line,
            format!("instruction {text:?} is not one the runner supports"),
        );
    }
    Ok(Insn { mnemonic, operands })
}

fn parse_condition(t: &mut Litmus, s: &str, line: usize) -> Res<(Quant, Prop)> {
    let (quant, rest) = if let Some(r) = s.strip_prefix("~exists") {
        (Quant::NotExists, r)
    } else if let Some(r) = s.strip_prefix("exists") {
        (Quant::Exists, r)
    } else if let Some(r) = s.strip_prefix("forall") {
        (Quant::Forall, r)
    } else {
        return unsupported(
            line,
            format!("condition {s:?} is not exists/~exists/forall"),
        );
    };
    let tokens = tokenize(rest);
    let mut p = CondParser {
        t,
        tokens,
        pos: 0,
        line,
    };
    let prop = p.disj()?;
    if p.pos != p.tokens.len() {
        return unsupported(line, format!("condition: unexpected {:?}", p.tokens[p.pos]));
    }
    Ok((quant, prop))
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.trim().is_empty() {
            out.push(cur.trim().to_string());
        }
        cur.clear();
    };
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        if in_quote {
            cur.push(c);
            in_quote = c != '"';
            continue;
        }
        match c {
            '"' => {
                cur.push(c);
                in_quote = true;
            }
            '(' | ')' | '~' | '=' | ',' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            '/' if chars.peek() == Some(&'\\') => {
                chars.next();
                flush(&mut cur, &mut out);
                out.push("/\\".into());
            }
            '\\' if chars.peek() == Some(&'/') => {
                chars.next();
                flush(&mut cur, &mut out);
                out.push("\\/".into());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

struct CondParser<'a> {
    t: &'a mut Litmus,
    tokens: Vec<String>,
    pos: usize,
    line: usize,
}

impl CondParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }
    fn next(&mut self) -> Res<String> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t.ok_or(Unsupported {
            line: self.line,
            why: "condition ends early".into(),
        })
    }
    fn expect(&mut self, tok: &str) -> Res<()> {
        let got = self.next()?;
        if got != tok {
            return unsupported(self.line, format!("condition: expected {tok}, got {got}"));
        }
        Ok(())
    }
    fn disj(&mut self) -> Res<Prop> {
        let mut v = vec![self.conj()?];
        while self.peek() == Some("\\/") {
            self.pos += 1;
            v.push(self.conj()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Prop::Or(v)
        })
    }
    fn conj(&mut self) -> Res<Prop> {
        let mut v = vec![self.unary()?];
        while self.peek() == Some("/\\") {
            self.pos += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Prop::And(v)
        })
    }
    fn unary(&mut self) -> Res<Prop> {
        match self.peek() {
            Some("~") => {
                self.pos += 1;
                Ok(Prop::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.pos += 1;
                let p = self.disj()?;
                self.expect(")")?;
                Ok(p)
            }
            Some("true") => {
                self.pos += 1;
                Ok(Prop::True)
            }
            Some("false") => {
                self.pos += 1;
                Ok(Prop::False)
            }
            Some("fault") => {
                self.pos += 1;
                self.fault()
            }
            _ => {
                let lhs = self.next()?;
                self.expect("=")?;
                let rhs = self.next()?;
                let loc = parse_loc(self.t, &lhs, self.line)?;
                let value = parse_value(self.t, &rhs, self.line)?;
                Ok(Prop::Atom(Atom::Eq(loc, value)))
            }
        }
    }
    fn fault(&mut self) -> Res<Prop> {
        self.expect("(")?;
        let who = self.next()?;
        let (thread, label) = match who.split_once(':') {
            Some((p, l)) => (parse_thread_ref(p), Some(l.to_string())),
            None => (parse_thread_ref(&who), None),
        };
        let Some(thread) = thread else {
            return unsupported(self.line, format!("fault({who}) names no thread"));
        };
        let mut kind = None;
        if self.peek() == Some(",") {
            self.pos += 1;
            kind = Some(self.next()?);
        }
        self.expect(")")?;
        if let Some(k) = &kind
            && k != "UndefinedInstruction"
        {
            return unsupported(self.line, format!("fault kind {k} is not supported"));
        }
        Ok(Prop::Atom(Atom::Fault {
            thread,
            label,
            kind,
        }))
    }
}

/// Every label used is defined in its thread, each defined once.
fn check_labels(t: &Litmus) -> Res<()> {
    let defined = |p: usize, name: &str| -> usize {
        t.threads.get(p).map_or(0, |th| {
            th.code
                .iter()
                .chain(th.handler.iter().flatten())
                .filter(|s| matches!(s, Stmt::Label(l) if l == name))
                .count()
        })
    };
    for (p, th) in t.threads.iter().enumerate() {
        for s in th.code.iter().chain(th.handler.iter().flatten()) {
            match s {
                Stmt::Label(l) if defined(p, l) != 1 => {
                    return unsupported(0, format!("label P{p}:{l} defined more than once"));
                }
                Stmt::Insn(insn, line) => {
                    for o in &insn.operands {
                        if let Operand::Label(l) = o
                            && defined(p, l) == 0
                        {
                            return unsupported(*line, format!("label {l} not defined in P{p}"));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut values: Vec<&Value> = vec![];
    for i in &t.init {
        match i {
            Init::Reg(_, _, v) | Init::Mem(_, v) => values.push(v),
        }
    }
    let mut atoms = vec![];
    if let Some((_, p)) = &t.cond {
        collect_atoms(p, &mut atoms);
    }
    for a in &atoms {
        match a {
            Atom::Eq(_, v) => values.push(v),
            Atom::Fault {
                thread,
                label: Some(l),
                ..
            } if defined(*thread, l) == 0 => {
                return unsupported(0, format!("fault label P{thread}:{l} not defined"));
            }
            _ => {}
        }
    }
    for v in values {
        if let Value::Label { thread, name } = v
            && defined(*thread, name) == 0
        {
            return unsupported(0, format!("label P{thread}:{name} not defined"));
        }
    }
    for i in &t.init {
        if let Init::Reg(p, _, _) = i
            && *p >= t.threads.len()
        {
            return unsupported(
                0,
                format!("initial value for thread {p}, which does not exist"),
            );
        }
    }
    Ok(())
}

/// Every atom of a proposition, in order.
pub fn collect_atoms<'a>(p: &'a Prop, out: &mut Vec<&'a Atom>) {
    match p {
        Prop::Atom(a) => out.push(a),
        Prop::Not(q) => collect_atoms(q, out),
        Prop::And(v) | Prop::Or(v) => v.iter().for_each(|q| collect_atoms(q, out)),
        Prop::True | Prop::False => {}
    }
}
