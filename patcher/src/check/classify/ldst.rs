//! The load/store part of the allow-list: every addressing form the verifier can bound.

use super::{Class, Mem, Op, Wb, bits, sext};
use crate::insn::{Insn, LiteralKind, decode};

pub(super) fn load_store(w: u32) -> Op {
    let unlisted = Op::Refuse(Class::Unlisted);
    let rt = bits(w, 0, 5) as u8;
    let rn = bits(w, 5, 5) as u8;
    let rt2 = bits(w, 10, 5) as u8;
    let simd = bits(w, 26, 1) == 1;
    let size = bits(w, 30, 2);
    if let Insn::LdrLiteral { kind, rt, .. } = decode(w) {
        return match kind {
            LiteralKind::Prfm => Op::Nop,
            LiteralKind::Simd(_) => Op::FpWrite { rd: rt.number() },
            _ => Op::LoadLiteral {
                rt: Some(rt.number()),
            },
        };
    }
    let mem = |off, wb, elem, load, store| {
        Op::Mem(Mem {
            rn,
            off,
            wb,
            elem,
            rt: [Some(rt), None],
            simd,
            load,
            store,
            rs: None,
            atomic: false,
        })
    };
    // Load/store pair: opc 101 V 0 mode(2) L imm7 Rt2 Rn Rt.
    if w & 0x3a00_0000 == 0x2800_0000 {
        let mode = bits(w, 23, 2);
        let load = bits(w, 22, 1) == 1;
        let elem = match (simd, size) {
            (false, 0b00) => 4,
            (false, 0b01) if load && mode != 0 => 4, // LDPSW
            (false, 0b10) => 8,
            (true, s @ 0..=2) => 4 << s,
            _ => return unlisted,
        };
        let wb = match mode {
            0b01 => Wb::Post,
            0b11 => Wb::Pre,
            _ => Wb::None,
        };
        // CONSTRAINED UNPREDICTABLE forms: the same register twice, or writeback into one.
        if !simd && ((load && rt == rt2) || (wb != Wb::None && rn != 31 && (rn == rt || rn == rt2)))
        {
            return unlisted;
        }
        let off = sext(bits(w, 15, 7), 7) * elem as i64;
        let Op::Mem(mut m) = mem(off, wb, elem, load, !load) else {
            return unlisted;
        };
        m.rt[1] = Some(rt2);
        return Op::Mem(m);
    }
    // Load/store register: size 111 V 0 opc(2) ...
    if w & 0x3a00_0000 == 0x3800_0000 {
        let opc = bits(w, 22, 2);
        // (bytes, load, store), or None for PRFM.
        let access = if simd {
            match (size, opc) {
                (_, 0b00) => Some((1u64 << size, false, true)),
                (_, 0b01) => Some((1 << size, true, false)),
                (0b00, 0b10) => Some((16, false, true)),
                (0b00, 0b11) => Some((16, true, false)),
                _ => return unlisted,
            }
        } else {
            match (size, opc) {
                (_, 0b00) => Some((1u64 << size, false, true)),
                (_, 0b01) => Some((1 << size, true, false)),
                (0b11, 0b10) => None,
                (0b00..=0b10, 0b10) => Some((1 << size, true, false)),
                (0b00 | 0b01, 0b11) => Some((1 << size, true, false)),
                _ => return unlisted,
            }
        };
        let unsigned = bits(w, 24, 1) == 1;
        let (off, wb) = if unsigned {
            let scale = access.map_or(8, |a| a.0) as i64;
            (bits(w, 10, 12) as i64 * scale, Wb::None)
        } else {
            if bits(w, 21, 1) == 1 {
                // Register offset, atomics, pointer-authenticated loads.
                return if !simd && bits(w, 10, 2) == 0 && bits(w, 24, 2) == 0 {
                    atomic(w)
                } else {
                    unlisted
                };
            }
            let imm = sext(bits(w, 12, 9), 9);
            match bits(w, 10, 2) {
                0b00 => (imm, Wb::None),
                0b01 => (imm, Wb::Post),
                0b11 => (imm, Wb::Pre),
                _ => return unlisted, // unprivileged (LDTR/STTR)
            }
        };
        let Some((bytes, load, store)) = access else {
            // PRFM/PRFUM: a hint, nothing is accessed; the writeback forms do not exist.
            return if wb == Wb::None { Op::Nop } else { unlisted };
        };
        if !simd && wb != Wb::None && rn != 31 && rn == rt {
            return unlisted;
        }
        return mem(off, wb, bytes, load, store);
    }
    // Load/store exclusive and ordered: size 001000 o2 L o1 Rs o0 Rt2 Rn Rt.
    if bits(w, 24, 6) == 0b001000 {
        let (o2, l, o1) = (bits(w, 23, 1), bits(w, 22, 1) == 1, bits(w, 21, 1));
        let rs = bits(w, 16, 5) as u8;
        let bytes = 1u64 << size;
        let one = |load, store, status: Option<u8>| {
            let Op::Mem(mut m) = mem(0, Wb::None, bytes, load, store) else {
                return unlisted;
            };
            m.simd = false;
            m.rs = status;
            m.atomic = true;
            Op::Mem(m)
        };
        return match (o2, o1) {
            // LDXR/LDAXR, STXR/STLXR.
            (0, 0) if rt2 == 31 && l && rs == 31 => one(true, false, None),
            (0, 0) if rt2 == 31 && !l && rs != rt && rs != rn => one(false, true, Some(rs)),
            // LDAR/STLR.
            (1, 0) if rt2 == 31 && rs == 31 && bits(w, 15, 1) == 1 => one(l, !l, None),
            // CAS family.
            (1, 1) if rt2 == 31 => one(true, true, Some(rs)),
            _ => unlisted,
        };
    }
    unlisted
}

/// LSE atomic memory operations: `LDADD` ... `LDUMIN`, `SWP`.
fn atomic(w: u32) -> Op {
    let (o3, opc) = (bits(w, 15, 1), bits(w, 12, 3));
    if bits(w, 26, 1) != 0 || !(o3 == 0 || opc == 0) {
        return Op::Refuse(Class::Unlisted);
    }
    Op::Mem(Mem {
        rn: bits(w, 5, 5) as u8,
        off: 0,
        wb: Wb::None,
        elem: 1 << bits(w, 30, 2),
        rt: [Some(bits(w, 0, 5) as u8), None],
        simd: false,
        load: true,
        store: true,
        rs: None,
        atomic: true,
    })
}
