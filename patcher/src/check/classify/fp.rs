//! The floating-point part of the allow-list.

use super::{Class, Op, bits};

/// Scalar single- and double-precision floating point, and `MOVI`: what compiled control laws
/// use. Vector arithmetic and half precision are not listed.
pub(super) fn fp(w: u32) -> Op {
    let rd = bits(w, 0, 5) as u8;
    let ptype_ok = bits(w, 22, 2) <= 1;
    let flags_only = Op::Compute {
        rd: None,
        flags: true,
    };
    // Every listed instruction that writes an FP register names it in bits 4:0.
    let vreg = Op::FpWrite { rd };
    let unlisted = Op::Refuse(Class::Unlisted);
    // AdvSIMD modified immediate: 0 Q op 0111100000 abc cmode o2 1 defgh Rd.
    if w & 0x9ff8_0400 == 0x0f00_0400 {
        let (q, op, cmode, o2) = (
            bits(w, 30, 1),
            bits(w, 29, 1),
            bits(w, 12, 4),
            bits(w, 11, 1),
        );
        return if o2 == 0 && !(op == 1 && cmode == 0b1111 && q == 0) {
            vreg
        } else {
            unlisted
        };
    }
    // FP data-processing (3 source): 0 0 0 11111 ptype o1 Rm o0 Ra Rn Rd.
    if bits(w, 24, 8) == 0b0001_1111 {
        return if ptype_ok { vreg } else { unlisted };
    }
    // Everything else listed: 0 0 0 11110 ptype 1 ...
    if bits(w, 24, 8) != 0b0001_1110 || bits(w, 21, 1) != 1 || !ptype_ok {
        return unlisted;
    }
    let ptype = bits(w, 22, 2);
    match bits(w, 10, 2) {
        0b10 => {
            return if bits(w, 12, 4) <= 0b1000 {
                vreg
            } else {
                unlisted
            };
        }
        0b11 => return vreg,
        0b01 => {
            return if bits(w, 4, 1) == 0 {
                flags_only
            } else {
                unlisted
            };
        }
        _ => {}
    }
    if bits(w, 10, 3) == 0b100 {
        return if bits(w, 5, 5) == 0 { vreg } else { unlisted };
    }
    if bits(w, 10, 5) == 0b10000 {
        let ok = match bits(w, 15, 6) {
            0b000000..=0b000011 => true,
            0b000100 => ptype == 1,
            0b000101 => ptype == 0,
            o @ 0b001000..=0b001111 => o != 0b001101,
            _ => false,
        };
        return if ok { vreg } else { unlisted };
    }
    if bits(w, 10, 6) == 0b001000 {
        return if bits(w, 0, 3) == 0 {
            flags_only
        } else {
            unlisted
        };
    }
    if bits(w, 10, 6) == 0 {
        // Conversion between floating point and integer. `SCVTF`, `UCVTF` (opcode 010, 011)
        // and `FMOV` from a general register (111) write an FP register; the others (`FCVT*` to an integer, `FMOV` to a general register) write `Xd`/`Wd`.
        let (sf, rmode, opcode) = (bits(w, 31, 1), bits(w, 19, 2), bits(w, 16, 3));
        let ok = match opcode {
            0b000 | 0b001 => true,
            0b010..=0b101 => rmode == 0,
            _ => rmode == 0 && ((sf == 0 && ptype == 0) || (sf == 1 && ptype == 1)),
        };
        let writes_fp = matches!(opcode, 0b010 | 0b011 | 0b111);
        return match (ok, writes_fp) {
            (false, _) => unlisted,
            (true, true) => vreg,
            (true, false) => Op::Compute {
                rd: Some(rd),
                flags: false,
            },
        };
    }
    unlisted
}
