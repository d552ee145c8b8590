//! What the interpretation knows at one point of one path, and how states meet.

use super::super::AccessFault;
use crate::insn::Cond;

/// Stack slots tracked (8 bytes each, below the entry `SP`).
pub(super) const SLOTS: usize = 32;
/// States waiting to be explored at once.
pub(super) const PENDING: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Val {
    Unknown,
    Const(u64),
    Sp(i64),
    Arg(u8, i64),
    Entry(u8),
    /// The entry value of `D8`-`D15` (in a stack slot an 8-byte FP store left).
    EntryFp(u8),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct State {
    /// Word index of the next instruction.
    pub(super) pc: usize,
    /// Instructions run so far on this path.
    pub(super) steps: u32,
    /// The last backward branch taken (word index).
    pub(super) back: Option<usize>,
    /// `SP - entry SP`.
    pub(super) sp: i64,
    pub(super) x: [Val; 31],
    pub(super) nzcv: Option<u8>,
    pub(super) slots: [Val; SLOTS],
    /// Bit `i` set: `D(8 + i)` holds its entry value.
    pub(super) fp_saved: u8,
    /// Whether a stack address was stored outside the stack (a helper may then write the frame).
    pub(super) escaped: bool,
}

impl State {
    pub(super) fn same(&self, o: &State) -> bool {
        self.pc == o.pc
            && self.sp == o.sp
            && self.x == o.x
            && self.nzcv == o.nzcv
            && self.slots == o.slots
            && self.fp_saved == o.fp_saved
            && self.escaped == o.escaped
    }

    pub(super) fn get(&self, r: u8) -> Val {
        if r >= 31 {
            Val::Const(0)
        } else {
            self.x[r as usize]
        }
    }

    /// The register as a base address or `ADD (immediate)` source: 31 is `SP`.
    pub(super) fn base(&self, r: u8) -> Val {
        if r >= 31 {
            Val::Sp(self.sp)
        } else {
            self.x[r as usize]
        }
    }

    pub(super) fn set(&mut self, r: u8, v: Val) {
        if r < 31 {
            self.x[r as usize] = v;
        }
    }

    pub(super) fn slot(&self, k: i64) -> Option<usize> {
        let i = (k + 8 * SLOTS as i64) / 8;
        (k < 0 && k % 8 == 0 && i >= 0).then_some(i as usize)
    }

    /// Whether FP register `r` holds its entry value (always true outside `D8`-`D15`: only
    /// those must be restored).
    pub(super) fn fp_entry(&self, r: u8) -> bool {
        !(8..=15).contains(&r) || self.fp_saved & (1 << (r - 8)) != 0
    }

    /// FP register `r` now holds its entry value (`restored`) or something else.
    pub(super) fn set_fp(&mut self, r: u8, restored: bool) {
        if (8..=15).contains(&r) {
            let bit = 1 << (r - 8);
            if restored {
                self.fp_saved |= bit;
            } else {
                self.fp_saved &= !bit;
            }
        }
    }

    /// Forgets every slot overlapping `k..k + len` (relative to the entry `SP`).
    pub(super) fn forget(&mut self, k: i64, len: u64) {
        for i in 0..SLOTS {
            let at = 8 * i as i64 - 8 * SLOTS as i64;
            if at < k + len as i64 && k < at + 8 {
                self.slots[i] = Val::Unknown;
            }
        }
    }
}

/// `v + off` for a tracked value (64-bit arithmetic).
pub(super) fn offset(v: Val, off: i64) -> Val {
    match v {
        Val::Const(c) => Val::Const(c.wrapping_add_signed(off)),
        // Checked: an offset that would overflow is no address the verifier can bound.
        Val::Sp(k) => k.checked_add(off).map_or(Val::Unknown, Val::Sp),
        Val::Arg(i, k) => k.checked_add(off).map_or(Val::Unknown, |k| Val::Arg(i, k)),
        _ => Val::Unknown,
    }
}

/// NZCV of `a + b + carry` in 32 or 64 bits, as bits 3..0.
pub(super) fn add_flags(a: u64, b: u64, carry: bool, sf: bool) -> (u64, u8) {
    let (bits, mask) = if sf {
        (64, u64::MAX)
    } else {
        (32, 0xffff_ffff)
    };
    let (a, b) = (a & mask, b & mask);
    let wide = a as u128 + b as u128 + carry as u128;
    let res = (wide as u64) & mask;
    let top = 1u64 << (bits - 1);
    let n = res & top != 0;
    let z = res == 0;
    let c = wide >> bits != 0;
    let v = (!(a ^ b) & (a ^ res)) & top != 0;
    (
        res,
        (n as u8) << 3 | (z as u8) << 2 | (c as u8) << 1 | v as u8,
    )
}

/// `a - b` (as `a + !b + 1`) with its flags.
pub(super) fn sub_flags(a: u64, b: u64, sf: bool) -> (u64, u8) {
    add_flags(a, !b, true, sf)
}

pub(super) fn holds(cond: Cond, nzcv: u8) -> bool {
    let (n, z, c, v) = (nzcv & 8 != 0, nzcv & 4 != 0, nzcv & 2 != 0, nzcv & 1 != 0);
    match cond {
        Cond::Eq => z,
        Cond::Ne => !z,
        Cond::Cs => c,
        Cond::Cc => !c,
        Cond::Mi => n,
        Cond::Pl => !n,
        Cond::Vs => v,
        Cond::Vc => !v,
        Cond::Hi => c && !z,
        Cond::Ls => !c || z,
        Cond::Ge => n == v,
        Cond::Lt => n != v,
        Cond::Gt => !z && n == v,
        Cond::Le => z || n != v,
        Cond::Al | Cond::Nv => true,
    }
}

/// Whether an exclusive or atomic access of `len` bytes at `v` is naturally aligned, given that
/// the entry `SP` is 16-byte aligned (AAPCS64) and argument objects 8-byte aligned.
pub(super) fn aligned(v: Val, len: u64) -> Result<(), AccessFault> {
    let len = len as i64;
    let ok = match v {
        Val::Sp(k) => len <= 16 && k % len == 0,
        Val::Arg(_, k) => len <= 8 && k % len == 0,
        Val::Const(a) => a % len as u64 == 0,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AccessFault::Misaligned)
    }
}

pub(super) fn offset_val(v: Val, off: i64) -> Val {
    offset(v, off)
}

/// Joins `b` into `a` (same `pc` and `sp`): differing values become unknown.
pub(super) fn join(a: &mut State, b: &State) {
    for (x, y) in a.x.iter_mut().zip(b.x) {
        if *x != y {
            *x = Val::Unknown;
        }
    }
    for (x, y) in a.slots.iter_mut().zip(b.slots) {
        if *x != y {
            *x = Val::Unknown;
        }
    }
    if a.nzcv != b.nzcv {
        a.nzcv = None;
    }
    a.fp_saved &= b.fp_saved;
    a.escaped |= b.escaped;
    if b.steps > a.steps {
        a.steps = b.steps;
        a.back = b.back;
    }
}

pub(super) struct Pending(pub(super) [Option<State>; PENDING]);

impl Pending {
    /// Adds `s`, merged with an equal pending state, kept apart while there is room, or joined
    /// with one at the same `pc` and `sp`.
    pub(super) fn push(&mut self, s: State) -> bool {
        for p in self.0.iter_mut().flatten() {
            if p.same(&s) {
                if s.steps > p.steps {
                    p.steps = s.steps;
                    p.back = s.back;
                }
                return true;
            }
        }
        if let Some(free) = self.0.iter_mut().find(|p| p.is_none()) {
            *free = Some(s);
            return true;
        }
        for p in self.0.iter_mut().flatten() {
            if p.pc == s.pc && p.sp == s.sp {
                join(p, &s);
                return true;
            }
        }
        false
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The pending state with the lowest `pc`, so that states meet at join points.
    pub(super) fn pop(&mut self) -> Option<State> {
        let mut best: Option<usize> = None;
        for (i, p) in self.0.iter().enumerate() {
            if let Some(p) = p
                && best.is_none_or(|b| self.0[b].is_some_and(|q| p.pc < q.pc))
            {
                best = Some(i);
            }
        }
        best.and_then(|i| self.0[i].take())
    }
}
