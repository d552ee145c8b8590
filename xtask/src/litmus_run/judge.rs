//! Which iterations a sanitizer report speaks for.
//!
//! QEMU fetches coherently, so the atoms of a condition that say what a core fetched (a register
//! some `MOV`, `ADD`, `CSET`, `BL`... writes, a fault) show the fresh outcome; a `stale` report on
//! the word that decides such an atom stands for the stale one. An iteration *meets the data
//! atoms* when every other atom (memory, registers only loads write) holds. It *shows the
//! outcome* when, in addition, every fetch atom either holds or has a report, on its core, at a
//! word it depends on, and at least one report is among those words. A word decides an atom
//! when the atom's writer is reachable from it in the test's code without passing another word
//! the test writes (a label given as a value is a word the test may write).

use super::parser::{Atom, Init, Insn, Litmus, Loc, Operand, Prop, Quant, Stmt, Value};
use super::program;
use super::run::{State, Symbols};
use std::collections::{BTreeMap, BTreeSet};

/// A fetch atom and the words that decide it.
#[derive(Debug)]
struct Fetch {
    atom: Prop,
    core: u64,
    words: BTreeSet<u64>,
    /// For `n:Xr = v`: the register, the value, and the value `r` holds before any of its
    /// thread's writers of it ran (the initial state); `None` for a fault atom.
    reg: Option<(u8, i64, i64)>,
}

/// What running on from an address can write, for a report's old word: the registers set by
/// `MOV Xr, #imm` (with the value) or by other non-load writers (`None`), and whether a word the
/// test writes was reached (past it, anything may run).
#[derive(Debug, Default)]
struct Onward {
    writes: Vec<(u8, Option<i64>)>,
    /// The addresses of those writers.
    writers: BTreeSet<u64>,
    open: bool,
    /// A conditional branch was passed: some paths may skip a writer.
    branchy: bool,
}

/// One conjunction of the condition's disjunctive normal form, split.
#[derive(Debug, Default)]
struct Alt {
    data: Vec<Prop>,
    fetch: Vec<Fetch>,
}

/// The split of a test's condition: the outcome shows when one of its alternatives does.
#[derive(Debug)]
pub struct Judge {
    alts: Vec<Alt>,
    /// From each code address and label: what running on from it can write.
    onward: BTreeMap<u64, Onward>,
    /// Non-load writers of each (thread, register), by address.
    writers_at: BTreeMap<(usize, u8), Vec<u64>>,
}

/// One sanitizer report of an iteration.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The executing core.
    pub core: u64,
    /// The word's address.
    pub va: u64,
    /// The report's number.
    pub id: u64,
    /// Reports that cannot have been stale together with this one.
    pub excludes: Vec<u64>,
    /// The word the stale fetch may have run instead, if the sanitizer knew it.
    pub old: Option<u32>,
}

/// What one iteration says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessed {
    /// Every data atom held.
    pub meets_data: bool,
    /// The reports make the condition's outcome possible in this iteration.
    pub shows_outcome: bool,
}

struct Code<'a> {
    /// Address -> (thread, instruction).
    at: BTreeMap<u64, (usize, &'a Insn)>,
    labels: BTreeMap<(usize, String), u64>,
}

fn code<'a>(t: &'a Litmus, syms: &Symbols) -> Result<Code<'a>, String> {
    let mut at = BTreeMap::new();
    let mut labels = BTreeMap::new();
    for (p, th) in t.threads.iter().enumerate() {
        let blocks = [
            (format!("litmus_start_P{p}"), Some(&th.code)),
            (format!("litmus_handler_P{p}"), th.handler.as_ref()),
        ];
        for (sym, stmts) in blocks {
            let Some(stmts) = stmts else { continue };
            let mut a = syms.addr(&sym).ok_or(format!("no symbol {sym}"))?;
            for s in stmts {
                match s {
                    Stmt::Label(l) => {
                        labels.insert((p, l.clone()), a);
                    }
                    Stmt::Insn(i, _) => {
                        at.insert(a, (p, i));
                        a += 4;
                    }
                }
            }
        }
    }
    Ok(Code { at, labels })
}

/// The register a non-load instruction writes, if any.
pub fn written_by_non_load(i: &Insn) -> Option<u8> {
    match i.mnemonic.as_str() {
        "BL" | "BLR" => Some(30),
        "MOV" | "ADD" | "SUB" | "EOR" | "AND" | "ORR" | "CSET" | "CSEL" | "ADR" => {
            match i.operands.first() {
                Some(Operand::Reg(r)) if r.n != 31 => Some(r.n),
                _ => None,
            }
        }
        _ => None,
    }
}

impl Code<'_> {
    fn successors(&self, a: u64) -> Vec<u64> {
        let Some(&(p, i)) = self.at.get(&a) else {
            return vec![];
        };
        let mut out: Vec<u64> = self.target(p, i).into_iter().collect();
        if !matches!(i.mnemonic.as_str(), "B" | "BR" | "RET" | "ERET")
            && self.at.contains_key(&(a + 4))
        {
            out.push(a + 4);
        }
        out
    }

    fn target(&self, p: usize, i: &Insn) -> Option<u64> {
        i.operands.iter().find_map(|o| match o {
            Operand::Label(l) => self.labels.get(&(p, l.clone())).copied(),
            _ => None,
        })
    }

    /// Addresses of non-load writers reachable from `from` before a written word.
    fn reach(&self, from: u64, written: &BTreeSet<u64>) -> BTreeSet<u64> {
        self.onward(from, written).writers
    }

    /// What running on from `from` can write before it reaches a word the test writes.
    fn onward(&self, from: u64, written: &BTreeSet<u64>) -> Onward {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        let mut out = Onward::default();
        while let Some(a) = todo.pop() {
            if !seen.insert(a) {
                continue;
            }
            if written.contains(&a) {
                out.open = true;
                continue;
            }
            if let Some((_, i)) = self.at.get(&a) {
                if let Some(r) = written_by_non_load(i) {
                    let imm = match (i.mnemonic.as_str(), &i.operands[..]) {
                        ("MOV", [Operand::Reg(_), Operand::Imm(v)]) => Some(*v),
                        _ => None,
                    };
                    out.writes.push((r, imm));
                    out.writers.insert(a);
                }
                if i.mnemonic.starts_with("B.")
                    || matches!(i.mnemonic.as_str(), "CBZ" | "CBNZ" | "TBZ" | "TBNZ")
                {
                    out.branchy = true;
                }
                // A return or indirect branch leaves the code this can follow.
                if matches!(i.mnemonic.as_str(), "RET" | "BR" | "BLR" | "ERET") {
                    out.open = true;
                }
            }
            todo.extend(self.successors(a));
        }
        out
    }

    /// Registers whose writing depends on which version of `w` runs: the word's own write, and
    /// writers reached from some but not all of its possible next instructions (falling through,
    /// its branch target, the targets of the instruction values the test stores).
    fn decided_by(&self, w: u64, written: &BTreeSet<u64>, here: &[i64]) -> BTreeSet<u8> {
        let reg = |a: &u64| self.at.get(a).and_then(|(_, i)| written_by_non_load(i));
        let mut regs: BTreeSet<u8> = reg(&w).into_iter().collect();
        let Some(&(p, i)) = self.at.get(&w) else {
            return regs;
        };
        let mut next: BTreeSet<u64> = self.target(p, i).into_iter().collect();
        next.insert(w + 4);
        next.extend(here.iter().map(|off| w.wrapping_add_signed(*off)));
        let paths: Vec<BTreeSet<u64>> = next.iter().map(|&n| self.reach(n, written)).collect();
        let all: BTreeSet<u64> = paths.iter().flatten().copied().collect();
        for a in &all {
            if !paths.iter().all(|p| p.contains(a)) {
                regs.extend(reg(a));
            }
        }
        regs
    }
}

fn register_writers(t: &Litmus) -> BTreeSet<(usize, u8)> {
    let mut out = BTreeSet::new();
    for (p, th) in t.threads.iter().enumerate() {
        for s in th.code.iter().chain(th.handler.iter().flatten()) {
            if let Stmt::Insn(i, _) = s
                && let Some(r) = written_by_non_load(i)
            {
                out.insert((p, r));
            }
        }
    }
    out
}

impl Judge {
    /// Splits `t`'s condition, with addresses from its program's symbols.
    pub fn new(t: &Litmus, syms: &Symbols) -> Result<Self, String> {
        let Some((q, p)) = &t.cond else {
            return Err("no condition".into());
        };
        if *q != Quant::Exists {
            return Err(format!("a {q} condition is not judged"));
        }
        let alternatives = dnf(p)?;
        let code = code(t, syms)?;
        let mut written = BTreeSet::new();
        for i in &t.init {
            if let Init::Reg(_, _, Value::Label { thread, name })
            | Init::Mem(_, Value::Label { thread, name }) = i
                && let Some(a) = code.labels.get(&(*thread, name.clone()))
            {
                written.insert(*a);
            }
        }
        let mut here = vec![];
        for i in &t.init {
            if let Init::Reg(_, _, Value::Instr(insn)) | Init::Mem(_, Value::Instr(insn)) = i {
                here.extend(insn.operands.iter().filter_map(|o| match o {
                    Operand::Here(off) => Some(*off),
                    _ => None,
                }));
            }
        }
        let mut decides: BTreeMap<u64, BTreeSet<u8>> = written
            .iter()
            .map(|&w| (w, code.decided_by(w, &written, &here)))
            .collect();
        // A register copied from a decided one is decided by the same words (coFF: X1 and X2
        // are copies of X9 after each call of the rewritten function).
        let copies: Vec<(u8, u8)> = code
            .at
            .values()
            .filter_map(|(_, i)| match (i.mnemonic.as_str(), &i.operands[..]) {
                ("MOV", [Operand::Reg(d), Operand::Reg(s)]) if d.n != 31 && s.n != 31 => {
                    Some((d.n, s.n))
                }
                _ => None,
            })
            .collect();
        for regs in decides.values_mut() {
            loop {
                let add: Vec<u8> = copies
                    .iter()
                    .filter(|(d, s)| regs.contains(s) && !regs.contains(d))
                    .map(|(d, _)| *d)
                    .collect();
                if add.is_empty() {
                    break;
                }
                regs.extend(add);
            }
        }
        // Any thread's code may run on any core (a BR into another thread's code), but a
        // register is a fetch register only if some instruction other than a load writes it.
        let writers: BTreeSet<u8> = register_writers(t).into_iter().map(|(_, r)| r).collect();
        let mut onward = BTreeMap::new();
        for a in code.at.keys().chain(code.labels.values()) {
            onward.insert(*a, code.onward(*a, &written));
        }
        let mut writers_at: BTreeMap<(usize, u8), Vec<u64>> = BTreeMap::new();
        for (a, (p, i)) in &code.at {
            if let Some(r) = written_by_non_load(i) {
                writers_at.entry((*p, r)).or_default().push(*a);
            }
        }
        let init_of = |p: usize, r: u8| {
            t.init
                .iter()
                .find_map(|i| match i {
                    Init::Reg(q, x, Value::Int(v)) if *q == p && *x == r => Some(*v),
                    _ => None,
                })
                .unwrap_or(0)
        };
        let mut judge = Judge {
            alts: vec![],
            onward,
            writers_at,
        };
        for atoms in &alternatives {
            let alt = split(atoms, &decides, &writers, &written, syms, &init_of)?;
            judge.alts.push(alt);
        }
        Ok(judge)
    }
}

/// The condition as a disjunction of conjunctions of literals (atoms and negated atoms).
fn dnf(p: &Prop) -> Result<Vec<Vec<Prop>>, String> {
    Ok(match p {
        Prop::True => vec![vec![]],
        Prop::False => vec![],
        a @ Prop::Atom(_) => vec![vec![a.clone()]],
        n @ Prop::Not(inner) if matches!(**inner, Prop::Atom(_)) => vec![vec![n.clone()]],
        Prop::Or(v) => {
            let mut out = vec![];
            for q in v {
                out.extend(dnf(q)?);
            }
            out
        }
        Prop::And(v) => {
            let mut out = vec![vec![]];
            for q in v {
                let d = dnf(q)?;
                let mut next = vec![];
                for left in &out {
                    for right in &d {
                        let mut c: Vec<Prop> = left.clone();
                        c.extend(right.iter().cloned());
                        next.push(c);
                    }
                }
                out = next;
            }
            if out.len() > 64 {
                return Err("the condition has too many alternatives".into());
            }
            out
        }
        Prop::Not(_) => return Err("a negation of more than an atom is not judged".into()),
    })
}

/// Splits one conjunction into data atoms and fetch atoms.
fn split(
    atoms: &[Prop],
    decides: &BTreeMap<u64, BTreeSet<u8>>,
    writers: &BTreeSet<u8>,
    written: &BTreeSet<u64>,
    syms: &Symbols,
    init_of: &dyn Fn(usize, u8) -> i64,
) -> Result<Alt, String> {
    let mut alt = Alt::default();
    for a in atoms {
        // A negated fetch atom is a fetch atom any report at its words can stand for.
        let (lit, negated) = match a {
            Prop::Not(inner) => (&**inner, true),
            other => (other, false),
        };
        match lit {
            Prop::Atom(Atom::Eq(Loc::Reg(p, r), v)) if writers.contains(r) => {
                let words = decides
                    .iter()
                    .filter(|(_, regs)| regs.contains(r))
                    .map(|(w, _)| *w)
                    .collect();
                let reg = match v {
                    Value::Int(v) if !negated => Some((*r, *v, init_of(*p, *r))),
                    _ => None,
                };
                alt.fetch.push(Fetch {
                    atom: a.clone(),
                    core: *p as u64,
                    words,
                    reg,
                });
            }
            Prop::Atom(Atom::Fault { thread, label, .. }) => {
                let words = match label {
                    Some(l) => syms
                        .addr(&program::label_symbol(*thread, l))
                        .into_iter()
                        .collect(),
                    None => written.clone(),
                };
                alt.fetch.push(Fetch {
                    atom: a.clone(),
                    core: *thread as u64,
                    words,
                    reg: None,
                });
            }
            Prop::Atom(_) => alt.data.push(a.clone()),
            _ => return Err("the condition is not a conjunction of atoms".into()),
        }
    }
    Ok(alt)
}

impl Judge {
    /// Judges one iteration from its final state and its reports.
    ///
    /// Each fetch atom that does not hold must be stood for by a report on its core at a word
    /// deciding it, and the reports chosen must be able to be stale together (no two of them
    /// exclude each other): two fetches each of which may alone have run the old word do not
    /// make an outcome that needs both.
    pub fn assess(&self, st: &State, reports: &[Seen]) -> Assessed {
        let mut out = Assessed {
            meets_data: false,
            shows_outcome: false,
        };
        for alt in &self.alts {
            let a = self.assess_alt(alt, st, reports);
            out.meets_data |= a.meets_data;
            out.shows_outcome |= a.shows_outcome;
        }
        out
    }

    fn assess_alt(&self, alt: &Alt, st: &State, reports: &[Seen]) -> Assessed {
        let meets_data = alt.data.iter().all(|d| st.eval(d) == Some(true));
        if !meets_data {
            return Assessed {
                meets_data,
                shows_outcome: false,
            };
        }
        let shows_outcome = if alt.fetch.is_empty() {
            !reports.is_empty()
        } else {
            // For each atom: the reports that can stand for it (None: it holds anyway).
            let mut options: Vec<Vec<Option<&Seen>>> = vec![];
            for f in &alt.fetch {
                let mut o: Vec<Option<&Seen>> = reports
                    .iter()
                    .filter(|r| r.core == f.core && f.words.contains(&r.va))
                    .filter(|r| self.can_stand(f, r))
                    .map(Some)
                    .collect();
                if st.eval(&f.atom) == Some(true) {
                    o.push(None);
                }
                options.push(o);
            }
            choose(&options, &mut vec![])
        };
        Assessed {
            meets_data,
            shows_outcome,
        }
    }
}

impl Judge {
    /// True if report `r`'s fetch running its old word could give atom `f` its value: the old
    /// word is a `NOP` or a `B` (what the catalogue writes) and what runs on from it up to the
    /// thread's end, reaching no other written word, cannot set the register to the value.
    /// Anything else may (MP.FF+dc.cvau-dsb.ish-ic.ivau-dsb.ish+po: the old `NOP` at `m0` runs
    /// on to `B end`, so it cannot be why `X9 = 1`).
    fn can_stand(&self, f: &Fetch, r: &Seen) -> bool {
        let (Some((reg, value, initial)), Some(old)) = (f.reg, r.old) else {
            return true;
        };
        let next = if old == 0xD503_201F {
            r.va + 4
        } else if old & 0xFC00_0000 == 0x1400_0000 {
            // B imm26: a signed word offset.
            let off = (((old & 0x03FF_FFFF) << 6) as i32 >> 6) as i64 * 4;
            r.va.wrapping_add_signed(off)
        } else {
            return true;
        };
        let Some(on) = self.onward.get(&next) else {
            return true;
        };
        if on.open {
            return true;
        }
        let mine: Vec<Option<i64>> = on
            .writes
            .iter()
            .filter(|(x, _)| *x == reg)
            .map(|(_, v)| *v)
            .collect();
        if mine.iter().any(|v| v.is_none_or(|v| v == value)) {
            return true;
        }
        // Not written (or only to other values) from here on: it keeps what it held before,
        // the initial value unless a writer of it comes earlier in the thread.
        let earlier = self
            .writers_at
            .get(&(f.core as usize, reg))
            .is_some_and(|at| at.iter().any(|&a| a < r.va));
        let kept = earlier || initial == value;
        if mine.is_empty() {
            return kept;
        }
        on.branchy && kept
    }
}

/// True if one option per atom can be chosen with at least one report among them and no two
/// chosen reports excluding each other.
fn choose<'a>(options: &[Vec<Option<&'a Seen>>], chosen: &mut Vec<&'a Seen>) -> bool {
    let Some((first, rest)) = options.split_first() else {
        return !chosen.is_empty();
    };
    for o in first {
        match o {
            None => {
                if choose(rest, chosen) {
                    return true;
                }
            }
            Some(r) => {
                let clash = chosen
                    .iter()
                    .any(|c| c.excludes.contains(&r.id) || r.excludes.contains(&c.id));
                if clash {
                    continue;
                }
                let same = chosen.iter().any(|c| c.id == r.id);
                if !same {
                    chosen.push(r);
                }
                let ok = choose(rest, chosen);
                if !same {
                    chosen.pop();
                }
                if ok {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litmus_run::parser;

    fn judge(text: &str) -> Judge {
        let t = parser::parse(text).unwrap();
        let syms = Symbols::from_pairs(&[("litmus_start_P0", 0x1000), ("litmus_start_P1", 0x1100)]);
        Judge::new(&t, &syms).unwrap()
    }

    fn fetch(j: &Judge) -> Vec<(u64, Vec<u64>)> {
        j.alts[0]
            .fetch
            .iter()
            .map(|f| (f.core, f.words.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn a_skipped_mov_is_decided_by_the_word_before_it() {
        // MP.FF+dc-dsb+ic-dsb-isb: X10 says what ran at Lself01, X11 what ran at Lself00.
        let j = judge(
            "AArch64 T\n{ 0:X0=NOP; 0:X1=P1:Lself00; 0:X2=P1:Lself01; 1:X1=P1:Lself00; }\n\
             P0 | P1 ;\n STR W0,[X1] | Lself01: ;\n DC CVAU,X1 | B L00 ;\n DSB SY | MOV W10,#1 ;\n\
             STR W0,[X2] | L00: ;\n | IC IVAU,X1 ;\n | DSB SY ;\n | ISB ;\n | Lself00: ;\n\
             | B L01 ;\n | MOV W11,#1 ;\n | L01: ;\nexists (1:X10=1 /\\ 1:X11=0)\n",
        );
        assert!(j.alts[0].data.is_empty());
        assert_eq!(fetch(&j), [(1, vec![0x1100]), (1, vec![0x1114])]);
    }

    #[test]
    fn a_register_both_versions_reach_is_not_decided() {
        // 2SM.B+cachesync-isb: CSET W3 runs whichever version of L0 ran: only X9 is decided.
        let j = judge(
            "AArch64 T\n{ 0:X0=NOP; 0:X1=P1:L0; 1:X0=NOP; 1:X1=P1:L0; }\n P0 | P1 ;\n\
             STR W0,[X1] | LDR W2,[X1] ;\n | ISB ;\n | L0: B L1 ;\n | MOV W9,#1 ;\n | L1: ;\n\
             | CMP W2,W0 ;\n | CSET W3,EQ ;\nexists 1:X3=1 /\\ 1:X9=0\n",
        );
        assert_eq!(fetch(&j), [(1, vec![]), (1, vec![0x1108])]);
    }

    #[test]
    fn a_copy_of_a_decided_register_is_decided() {
        // coFF: X1 and X2 copy X9, which the rewritten word at L0 decides.
        let j = judge(
            "AArch64 T\n{ 0:X0=NOP; 0:X1=P1:L0; }\n P0 | P1 ;\n STR W0,[X1] | BL L0 ;\n\
             | MOV W1,W9 ;\n | BL L0 ;\n | MOV W2,W9 ;\n | B END ;\n | L0: ;\n | B L1 ;\n\
             | MOV W9,#1 ;\n | RET ;\n | L1: ;\n | MOV W9,#0 ;\n | RET ;\n | END: ;\n\
             exists (1:X1=1 /\\ 1:X2=0)\n",
        );
        assert_eq!(fetch(&j), [(1, vec![0x1114]), (1, vec![0x1114])]);
    }

    #[test]
    fn a_report_stands_only_for_values_its_old_word_can_give() {
        // MP.FF+dc.cvau-dsb.ish-ic.ivau-dsb.ish+po, Forbidden: X9 = 1 needs the new B at m0
        // and the old B at m1. A report at m0 whose old word is the NOP cannot stand for it:
        // the NOP runs on to B end, and X9 keeps its initial 0.
        let j = judge(
            "AArch64 T\n{ 0:X1=instr:\"NOP\"; 0:X3=P1:m1; 0:X2=instr:\"B .+8\"; 0:X4=P1:m0; }\n\
             P0 | P1 ;\n STR W1,[X3] | m0: ;\n DC CVAU,X3 | NOP ;\n DSB SY | B end ;\n\
             IC IVAU,X3 | l0: ;\n DSB SY | MOV W9,#1 ;\n STR W2,[X4] | m1: ;\n | B end ;\n\
             | MOV W9,#2 ;\n | end: ;\nexists (1:X9=1)\n",
        );
        let f = &j.alts[0].fetch[0];
        assert_eq!(f.words, BTreeSet::from([0x1100, 0x110c]));
        let at = |va, old| Seen {
            core: 1,
            va,
            id: 1,
            excludes: vec![],
            old,
        };
        assert!(
            !j.can_stand(f, &at(0x1100, Some(0xD503_201F))),
            "old NOP at m0"
        );
        assert!(j.can_stand(f, &at(0x1100, None)), "old word unknown");
        // The old B end at m1 runs to the end with X9 as l0 left it: it may be 1.
        assert!(j.can_stand(f, &at(0x110c, Some(0x1400_0002))));
    }

    #[test]
    fn a_condition_with_alternatives_is_judged_per_alternative() {
        // branch-flip's shape: X9 = 1 or 3 at the consumer, after the producer's two
        // acknowledgements (data atoms). Either alternative may show the outcome.
        let j = judge(
            "AArch64 T\n{ 0:X0=NOP; 0:X1=P1:site; 1:X9=0; }\n P0 | P1 ;\n\
             STR W0,[X1] | site: ;\n LDR W8,[X2] | B L1 ;\n | MOV W9,#1 ;\n | B end ;\n\
             | L1: ;\n | MOV W9,#3 ;\n | end: ;\n\
             exists (0:X8=0 /\\ (1:X9=1 \\/ 1:X9=3))\n",
        );
        assert_eq!(j.alts.len(), 2);
        assert!(
            j.alts
                .iter()
                .all(|a| a.data.len() == 1 && a.fetch.len() == 1)
        );
        // A negated fetch atom is a fetch atom (call-site: ~(1:X9=2)).
        let j = judge(
            "AArch64 T\n{ 0:X0=NOP; 0:X1=P1:site; 1:X9=0; }\n P0 | P1 ;\n\
             STR W0,[X1] | site: ;\n | B L1 ;\n | MOV W9,#2 ;\n | L1: ;\n\
             exists (~(1:X9=2))\n",
        );
        assert_eq!(j.alts.len(), 1);
        assert_eq!(j.alts[0].fetch.len(), 1);
        assert!(j.alts[0].fetch[0].reg.is_none());
    }

    #[test]
    fn reports_that_exclude_each_other_do_not_show_an_outcome_needing_both() {
        // SB-bnop-cachesyncs: each core's fetch alone may have been stale, not both.
        let a = Seen {
            core: 0,
            va: 0x1018,
            id: 1,
            excludes: vec![],
            old: None,
        };
        let b = Seen {
            core: 1,
            va: 0x1118,
            id: 2,
            excludes: vec![1],
            old: None,
        };
        assert!(!choose(&[vec![Some(&a)], vec![Some(&b)]], &mut vec![]));
        // Either alone, with the other atom holding, still shows it.
        assert!(choose(&[vec![Some(&a)], vec![Some(&b), None]], &mut vec![]));
        let b_free = Seen {
            excludes: vec![],
            ..b.clone()
        };
        assert!(choose(&[vec![Some(&a)], vec![Some(&b_free)]], &mut vec![]));
        // Nothing reported: nothing shown.
        assert!(!choose(&[vec![None], vec![None]], &mut vec![]));
    }
}
