//! The register-level half of the check: a path-sensitive abstract interpretation.
//!
//! Starting at the first word with the entry state, it runs every path through the block, one
//! instruction at a time ([`super::classify`] says what each does), and refuses the block at the
//! first instruction on any path that breaks a rule. What it tracks, exactly:
//!
//! - each general register `X0`-`X30` as one of: a known constant (`MOVZ/MOVN/MOVK`, `ADR`,
//!   `ADRP`, `ADD/SUB` immediate and `MOV` of constants, 64- or 32-bit), `entry SP + k`, `arg
//!   i + k` (an [`ArgBound`](super::ArgBound) register on entry), "its own entry value" (`X19`-`X30`
//!   on entry), or unknown. Every other write makes a register unknown; loads give unknown, except
//!   an 8-byte load from a stack slot, which gives what an 8-byte store of a general register
//!   left there;
//! - `SP` as `entry SP - k`, always: it may change only by `ADD/SUB SP, Xn, #imm` (where `Xn` is
//!   `SP` or holds `entry SP + k`) and by load/store writeback, and only to a 16-byte-aligned
//!   value within `stack_bytes` below the entry `SP`; anything else is [`CheckError::SpWrite`];
//! - whether each of `D8`-`D15` (the AAPCS64's callee-saved FP registers) holds its entry value:
//!   any FP write to it clears that (every listed FP instruction and FP load names its
//!   destination), an 8-byte FP store of it to a stack slot records it there, and an 8-byte FP
//!   load from such a slot back into the same register restores it;
//! - the flags, as known only after `CMP`/`CMN`/`SUBS`/`ADDS` of known constants; any other
//!   flag-setting instruction makes them unknown;
//! - 32 stack slots of 8 bytes below the entry `SP` (what `STP X29, X30, [SP, #-16]!` saved);
//!   a slot is forgotten when `SP` rises above it.
//!
//! A memory access (including atomics, exclusives and `DC`/`IC` by address) is allowed only when
//! its base register's value is known and the whole access lies between the current `SP` and
//! the entry `SP`, inside an argument's bounds (writes only if writable), or inside the block or
//! [`Externals::data`] (reads only). An unknown base is refused: the verifier never guesses.
//!
//! A conditional branch whose condition is known (flags known, `CBZ`/`TBZ` of a constant) goes
//! one way; otherwise both. So a loop whose counter and bound are constants (the stress payloads'
//! walk over their own words, a `SUBS X0, X0, #1; B.NE` count-down from a `MOV`) is run to its
//! end, and any other loop runs until the path passes `max_insns`: [`CheckError::OverBudget`].
//! States meeting at a branch target are merged (equal ones) or joined (register by register,
//! differing values becoming unknown) when too many are pending; the exploration gives up with
//! [`CheckError::TooComplex`] past a fixed amount of work, never accepting what it did not see.
//!
//! A path ends at `RET` (through `X30` only) or at a direct branch to an exported target, and
//! only if `X30`, `X19`-`X29` and `D8`-`D15` hold their entry values and `SP` is back at its
//! entry value.
//! `BL` to an exported target is a call: `X0`-`X18` and `X30` and the flags become unknown (the
//! AAPCS64), the stack slots too if a register passed a stack address or one was ever stored
//! outside the stack; what the helper itself does is not seen (it is trusted to follow the
//! AAPCS64). Exclusive, ordered and atomic accesses must also be naturally aligned (argument
//! objects are taken to be 8-byte aligned); plain ones may be unaligned (`SCTLR_EL1.A` is clear). `BL` inside the block makes `X30` unknown (so the block cannot return after
//! it without restoring `X30`).

use super::classify::{BranchKind, Class, Mem, Op, Wb, classify};
use super::{
    AccessFault, CheckError, DataWords, Externals, Policy, ReturnFault, SysReg, inside, word_at,
};
use crate::insn::Cond;
use state::{
    PENDING, Pending, SLOTS, State, Val, add_flags, aligned, holds, offset_val, sub_flags,
};

mod state;

/// What comes after one instruction.
enum Next {
    Fall,
    Jump(usize),
    /// Both: the branch to the word, and the next one.
    Fork(usize),
    /// The path ends (`RET`, or a branch out of the block to an exported target).
    End,
    /// A conditional branch out of the block: the path ends if taken, and goes on otherwise.
    EndOrFall,
}

/// Words whose classification is kept for the whole exploration: a loop's body is run once per
/// iteration, and decoding dominated the verifier's cost (blocks past this decode as they go).
const KEPT: usize = 32;

struct Ctx<'a> {
    code: &'a [u8],
    /// `classify` of each of the first [`KEPT`] words (data words included: never run).
    ops: [Op; KEPT],
    exec: u64,
    words: usize,
    block: core::ops::Range<u64>,
    ext: &'a Externals<'a>,
    policy: &'a Policy<'a>,
}

fn refused(class: Class, offset: usize, word: u32) -> CheckError {
    match class {
        Class::Exception => CheckError::Exception { offset, word },
        Class::Unlisted => CheckError::Unlisted { offset, word },
        Class::SysRegWrite => CheckError::SysRegWrite { offset, word },
        Class::PstateWrite => CheckError::PstateWrite { offset, word },
        Class::Wait => CheckError::Wait { offset, word },
        Class::Maintenance => CheckError::Maintenance { offset, word },
        Class::IndirectBranch => CheckError::IndirectBranch { offset, word },
        Class::RetNotLr => CheckError::BadReturn {
            offset,
            word,
            why: ReturnFault::NotX30,
        },
    }
}

impl Ctx<'_> {
    fn access(&self, s: &State, v: Val, len: u64, write: bool) -> Result<(), AccessFault> {
        match v {
            Val::Sp(k) => {
                if s.sp <= k && k.checked_add(len as i64).is_some_and(|end| end <= 0) {
                    Ok(())
                } else {
                    Err(AccessFault::OutOfBounds)
                }
            }
            Val::Arg(i, k) => {
                let b = self.policy.args[i as usize];
                if k < 0 || (k as u64).saturating_add(len) > b.len {
                    Err(AccessFault::OutOfBounds)
                } else if write && !b.writable {
                    Err(AccessFault::ReadOnly)
                } else {
                    Ok(())
                }
            }
            Val::Const(a) => {
                let known = inside(core::slice::from_ref(&self.block), a, len.max(1))
                    || inside(self.ext.data, a, len.max(1));
                match (known, write) {
                    (true, false) => Ok(()),
                    (true, true) => Err(AccessFault::ReadOnly),
                    (false, _) => Err(AccessFault::OutOfBounds),
                }
            }
            Val::Unknown | Val::Entry(_) | Val::EntryFp(_) => Err(AccessFault::UnknownBase),
        }
    }

    /// `SP := entry SP + k`, if allowed.
    fn set_sp(&self, s: &mut State, v: Val) -> bool {
        let Val::Sp(k) = v else { return false };
        if k > 0 || k < -i64::from(self.policy.stack_bytes) || k % 16 != 0 {
            return false;
        }
        if k > s.sp {
            // Popped: what lies below SP now may be overwritten at any time (an interrupt).
            let below = k - s.sp;
            s.forget(s.sp, below as u64);
        }
        s.sp = k;
        true
    }

    /// The path may leave here: the caller's state is as it was.
    fn returns(&self, s: &State) -> Result<(), ReturnFault> {
        if s.x[30] != Val::Entry(30) {
            return Err(ReturnFault::LinkClobbered);
        }
        for r in 19..=29u8 {
            if s.x[r as usize] != Val::Entry(r) {
                return Err(ReturnFault::CalleeSaved(r));
            }
        }
        if let Some(r) = (8..=15u8).find(|&r| !s.fp_entry(r)) {
            return Err(ReturnFault::CalleeSavedFp(r));
        }
        if s.sp != 0 {
            return Err(ReturnFault::Unbalanced((-s.sp) as u32));
        }
        Ok(())
    }

    fn mem(&self, s: &mut State, m: Mem, offset: usize, word: u32) -> Result<(), CheckError> {
        let base = s.base(m.rn);
        let at = match m.wb {
            Wb::Post => base,
            _ => offset_val(base, m.off),
        };
        // A push moves SP first: the access must lie above the new SP.
        if m.wb == Wb::Pre && m.rn == 31 && !self.set_sp(s, at) {
            return Err(CheckError::SpWrite { offset, word });
        }
        let count = m.rt.iter().flatten().count().max(1) as u64;
        let len = m.elem * count;
        self.access(s, at, len, m.store)
            .and_then(|()| if m.atomic { aligned(at, len) } else { Ok(()) })
            .map_err(|why| CheckError::UnprovenAccess { offset, word, why })?;
        // A stack address stored anywhere but the stack may reach a helper.
        if m.store && !matches!(at, Val::Sp(_)) {
            for r in m.rt.iter().flatten() {
                if !m.simd && matches!(s.get(*r), Val::Sp(_)) {
                    s.escaped = true;
                }
            }
        }
        // Stores into tracked slots first, from the registers' values before any write.
        if let Val::Sp(k) = at
            && m.store
        {
            s.forget(k, len);
            if !m.load && m.elem == 8 {
                for (j, r) in m.rt.iter().enumerate() {
                    if let (Some(r), Some(i)) = (r, s.slot(k + 8 * j as i64)) {
                        s.slots[i] = match m.simd {
                            false => s.get(*r),
                            // A saved D8-D15, so that loading it back restores it.
                            true if (8..=15).contains(r) && s.fp_entry(*r) => Val::EntryFp(*r),
                            true => Val::Unknown,
                        };
                    }
                }
            }
        }
        let mut loaded = [Val::Unknown; 2];
        if let Val::Sp(k) = at
            && m.load
            && !m.store
            && m.elem == 8
        {
            for (j, v) in loaded.iter_mut().enumerate() {
                if let Some(i) = s.slot(k + 8 * j as i64) {
                    *v = s.slots[i];
                }
            }
        }
        if m.wb == Wb::Post || (m.wb == Wb::Pre && m.rn != 31) {
            let moved = offset_val(base, m.off);
            if m.rn == 31 {
                if !self.set_sp(s, moved) {
                    return Err(CheckError::SpWrite { offset, word });
                }
            } else {
                s.set(m.rn, moved);
            }
        }
        if let Some(rs) = m.rs {
            s.set(rs, Val::Unknown);
        }
        if m.load {
            for (r, v) in m.rt.iter().zip(loaded) {
                match (r, m.simd) {
                    (Some(r), false) => s.set(*r, v),
                    (Some(r), true) => s.set_fp(*r, v == Val::EntryFp(*r)),
                    (None, _) => {}
                }
            }
        }
        Ok(())
    }

    /// Runs the instruction at `s.pc`.
    fn step(&self, s: &mut State) -> Result<Next, CheckError> {
        let offset = s.pc * 4;
        let word = word_at(self.code, s.pc);
        let pc_addr = self.exec + offset as u64;
        let op = match self.ops.get(s.pc) {
            Some(op) => *op,
            None => classify(word),
        };
        match op {
            Op::Refuse(c) => return Err(refused(c, offset, word)),
            Op::Nop => {}
            Op::Branch { kind, off } => {
                let target = pc_addr.wrapping_add_signed(off);
                let inner = self
                    .block
                    .contains(&target)
                    .then(|| ((target - self.exec) / 4) as usize);
                let taken = match kind {
                    BranchKind::Always => Some(true),
                    BranchKind::Call => {
                        return Ok(self.call(s, inner));
                    }
                    BranchKind::Cond(c) => match (c, s.nzcv) {
                        (Cond::Al | Cond::Nv, _) => Some(true),
                        (_, Some(f)) => Some(holds(c, f)),
                        _ => None,
                    },
                    BranchKind::Cbz { rt, w, nz } => match s.get(rt) {
                        Val::Const(v) => Some(((if w { v as u32 as u64 } else { v }) == 0) != nz),
                        _ => None,
                    },
                    BranchKind::Tbz { rt, bit, nz } => match s.get(rt) {
                        Val::Const(v) => Some(((v >> bit) & 1 == 1) == nz),
                        _ => None,
                    },
                };
                if let Some(t) = inner
                    && t <= s.pc
                    && taken != Some(false)
                {
                    s.back = Some(s.pc);
                }
                let leave = |s: &State| {
                    self.returns(s)
                        .map_err(|why| CheckError::BadReturn { offset, word, why })
                };
                return Ok(match (taken, inner) {
                    (Some(false), _) => Next::Fall,
                    (Some(true), Some(t)) => Next::Jump(t),
                    (None, Some(t)) => Next::Fork(t),
                    (Some(true), None) => {
                        leave(s)?;
                        Next::End
                    }
                    (None, None) => {
                        leave(s)?;
                        Next::EndOrFall
                    }
                });
            }
            Op::Ret => {
                self.returns(s)
                    .map_err(|why| CheckError::BadReturn { offset, word, why })?;
                return Ok(Next::End);
            }
            Op::Adr { rd, off, page } => {
                let from = if page { pc_addr & !0xfff } else { pc_addr };
                s.set(rd, Val::Const(from.wrapping_add_signed(off)));
            }
            Op::AddImm {
                sf,
                sub,
                s: flags,
                rd,
                rn,
                imm,
            } => {
                let a = s.base(rn);
                let delta = if sub { -(imm as i64) } else { imm as i64 };
                let mask = if sf { u64::MAX } else { 0xffff_ffff };
                let v = match a {
                    Val::Const(c) => Val::Const(c.wrapping_add_signed(delta) & mask),
                    _ if sf => offset_val(a, delta),
                    _ => Val::Unknown,
                };
                if flags {
                    s.nzcv = match a {
                        Val::Const(c) if sub => Some(sub_flags(c, imm, sf).1),
                        Val::Const(c) => Some(add_flags(c, imm, false, sf).1),
                        _ => None,
                    };
                    s.set(rd, v);
                } else if rd == 31 {
                    if !self.set_sp(s, v) {
                        return Err(CheckError::SpWrite { offset, word });
                    }
                } else {
                    s.set(rd, v);
                }
            }
            Op::MovWide {
                sf,
                rd,
                imm16,
                shift,
                keep,
                invert,
            } => {
                let mask = if sf { u64::MAX } else { 0xffff_ffff };
                let imm = u64::from(imm16) << shift;
                let v = if keep {
                    match s.get(rd) {
                        Val::Const(c) => Val::Const(((c & !(0xffff << shift)) | imm) & mask),
                        _ => Val::Unknown,
                    }
                } else if invert {
                    Val::Const(!imm & mask)
                } else {
                    Val::Const(imm)
                };
                s.set(rd, v);
            }
            Op::MovReg { sf, rd, rm } => {
                let v = match (s.get(rm), sf) {
                    (v, true) => v,
                    (Val::Const(c), false) => Val::Const(c & 0xffff_ffff),
                    _ => Val::Unknown,
                };
                s.set(rd, v);
            }
            Op::AddSubsReg {
                sf,
                sub,
                rd,
                rn,
                rm,
            } => {
                let (v, f) = match (s.get(rn), s.get(rm)) {
                    (Val::Const(a), Val::Const(b)) => {
                        let (r, f) = if sub {
                            sub_flags(a, b, sf)
                        } else {
                            add_flags(a, b, false, sf)
                        };
                        (Val::Const(r), Some(f))
                    }
                    _ => (Val::Unknown, None),
                };
                s.nzcv = f;
                s.set(rd, v);
            }
            Op::Compute { rd, flags } => {
                if let Some(r) = rd {
                    s.set(r, Val::Unknown);
                }
                if flags {
                    s.nzcv = None;
                }
            }
            Op::FpWrite { rd } => s.set_fp(rd, false),
            Op::Mem(m) => self.mem(s, m, offset, word)?,
            Op::LoadLiteral { rt } => {
                if let Some(r) = rt {
                    s.set(r, Val::Unknown);
                }
            }
            Op::Mrs { rt, sysreg } => {
                let r = SysReg(sysreg);
                if !SysReg::SAFE_READS.contains(&r) && !self.policy.sysreg_reads.contains(&r) {
                    return Err(CheckError::SysRegRead { offset, word });
                }
                s.set(rt, Val::Unknown);
            }
            Op::Msr { sysreg } => {
                if !self.policy.sysreg_writes.contains(&SysReg(sysreg)) {
                    return Err(CheckError::SysRegWrite { offset, word });
                }
            }
            Op::MsrImm { field } => {
                if !self
                    .policy
                    .pstate_writes
                    .contains(&super::PstateField(field))
                {
                    return Err(CheckError::PstateWrite { offset, word });
                }
            }
            Op::CacheByVa { rt } => {
                self.access(s, s.get(rt), 1, false)
                    .map_err(|why| CheckError::UnprovenAccess { offset, word, why })?;
            }
            Op::SpWrite => return Err(CheckError::SpWrite { offset, word }),
        }
        Ok(Next::Fall)
    }

    /// `BL`: into the block (`inner`), or to an exported helper (the shape check allowed it).
    fn call(&self, s: &mut State, inner: Option<usize>) -> Next {
        s.nzcv = None;
        if let Some(t) = inner {
            s.x[30] = Val::Unknown;
            if t <= s.pc {
                s.back = Some(s.pc);
            }
            return Next::Jump(t);
        }
        let leaks = s.escaped || s.x[..19].iter().any(|v| matches!(v, Val::Sp(_)));
        if leaks {
            s.slots = [Val::Unknown; SLOTS];
        }
        for r in s.x[..19].iter_mut() {
            *r = Val::Unknown;
        }
        s.x[30] = Val::Unknown;
        Next::Fall
    }
}

/// Checks the block's register-level rules (see the module documentation) and returns the most
/// instructions any path runs. `data` is the block's literal pool ([`super::check_shape`]),
/// which has already refused branches into it and falling into it.
pub fn verify(
    code: &[u8],
    exec: u64,
    data: &DataWords,
    ext: &Externals<'_>,
    policy: &Policy<'_>,
) -> Result<u32, CheckError> {
    let words = code.len() / 4;
    let mut ops = [Op::Nop; KEPT];
    for (i, op) in ops.iter_mut().enumerate().take(words) {
        *op = classify(word_at(code, i));
    }
    let ctx = Ctx {
        code,
        ops,
        exec,
        words,
        block: exec..exec + code.len() as u64,
        ext,
        policy,
    };
    // Branch targets inside the block: where paths may meet.
    let mut joins = DataWords([0; super::MAX_WORDS / 64]);
    for i in (0..words).filter(|&i| !data.contains(i)) {
        let op = match ctx.ops.get(i) {
            Some(op) => *op,
            None => classify(word_at(code, i)),
        };
        let off = match op {
            Op::Branch { off, .. } => off,
            _ => continue,
        };
        let t = (exec + 4 * i as u64).wrapping_add_signed(off);
        if ctx.block.contains(&t) {
            joins.insert(((t - exec) / 4) as usize);
        }
    }
    let mut entry = State {
        pc: 0,
        steps: 0,
        back: None,
        sp: 0,
        x: [Val::Unknown; 31],
        nzcv: None,
        slots: [Val::Unknown; SLOTS],
        fp_saved: 0xff,
        escaped: false,
    };
    for r in 19..=30u8 {
        entry.x[r as usize] = Val::Entry(r);
    }
    for (i, a) in policy.args.iter().enumerate() {
        if a.reg < 8 {
            entry.x[a.reg as usize] = Val::Arg(i as u8, 0);
        }
    }
    let mut pending = Pending([None; PENDING]);
    pending.0[0] = Some(entry);
    let cap = u64::from(policy.max_insns) * 16 + 4096;
    let mut work = 0u64;
    let mut worst = 0;
    let at = |i: usize| (i * 4, word_at(code, i.min(words - 1)));
    while let Some(mut s) = pending.pop() {
        loop {
            if s.pc >= ctx.words {
                return Err(CheckError::FallsThrough {
                    word: word_at(code, words - 1),
                });
            }
            if data.contains(s.pc) {
                return Err(CheckError::FallsIntoData { offset: s.pc * 4 });
            }
            work += 1;
            if work > cap {
                let (offset, word) = at(s.pc);
                return Err(CheckError::TooComplex { offset, word });
            }
            s.steps += 1;
            if s.steps > policy.max_insns {
                let (offset, word) = at(s.back.unwrap_or(s.pc));
                return Err(CheckError::OverBudget {
                    offset,
                    word,
                    budget: policy.max_insns,
                });
            }
            let here = s.pc;
            let queue = |pending: &mut Pending, s: State| {
                if pending.push(s) {
                    Ok(())
                } else {
                    let (offset, word) = at(here);
                    Err(CheckError::TooComplex { offset, word })
                }
            };
            match ctx.step(&mut s)? {
                Next::Fall => s.pc += 1,
                Next::EndOrFall => {
                    worst = worst.max(s.steps);
                    s.pc += 1;
                }
                Next::Jump(t) => s.pc = t,
                Next::Fork(t) => {
                    let mut taken = s;
                    taken.pc = t;
                    queue(&mut pending, taken)?;
                    s.pc += 1;
                }
                Next::End => {
                    worst = worst.max(s.steps);
                    break;
                }
            }
            // States meet at a branch target; with none pending, the one popped next would be
            // this one, so the path goes on without the round trip (a loop's every iteration).
            if s.pc < words && joins.contains(s.pc) && !pending.is_empty() {
                queue(&mut pending, s)?;
                break;
            }
        }
    }
    Ok(worst)
}
