//! The decoder: recognizes what the patcher emits, every PC-relative form, and the CMODX set.
//!
//! [`check`](crate::check) relies on [`Insn::pc_ref`] being complete for the base A64 ISA:
//! every instruction whose effect depends on its own address is one of the forms decoded here.
//! (A newer extension adding PC-relative forms, such as FEAT_CMPBR's compare-and-branch, would
//! have to be added here before patches may use it.)

use super::{Barrier, Cond, DcOp, IcOp, Insn, LiteralKind, Reg, Width};

/// Sign-extends the low `bits` bits of `v`.
const fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    (((v as u64) << shift) as i64) >> shift
}

/// Decodes one instruction word.
pub const fn decode(w: u32) -> Insn {
    let rd = Reg::from_field(w);
    let rn = Reg::from_field(w >> 5);
    match w & 0xfc00_0000 {
        0x1400_0000 => {
            return Insn::B {
                offset: sext(w, 26) * 4,
            };
        }
        0x9400_0000 => {
            return Insn::Bl {
                offset: sext(w, 26) * 4,
            };
        }
        _ => {}
    }
    if w & 0xff00_0000 == 0x5400_0000 {
        return Insn::BCond {
            cond: Cond::ALL[(w & 15) as usize],
            offset: sext(w >> 5, 19) * 4,
            consistent: w & 0x10 != 0,
        };
    }
    if w & 0x7e00_0000 == 0x3400_0000 {
        return Insn::Cbz {
            width: Width::from_sf(w >> 31),
            rt: rd,
            offset: sext(w >> 5, 19) * 4,
            nonzero: w & (1 << 24) != 0,
        };
    }
    if w & 0x7e00_0000 == 0x3600_0000 {
        return Insn::Tbz {
            rt: rd,
            bit: (((w >> 31) << 5) | ((w >> 19) & 31)) as u8,
            offset: sext(w >> 5, 14) * 4,
            nonzero: w & (1 << 24) != 0,
        };
    }
    match w & 0xffff_fc1f {
        0xd61f_0000 => return Insn::Br { rn },
        0xd63f_0000 => return Insn::Blr { rn },
        0xd65f_0000 => return Insn::Ret { rn },
        _ => {}
    }
    if w == super::NOP {
        return Insn::Nop;
    }
    // Barriers: 1101 0101 0000 0011 0011 CRm op2 11111.
    if w & 0xffff_f01f == 0xd503_301f {
        let crm = (w >> 8) & 15;
        match (w >> 5) & 7 {
            // Every CRm of op2 = 110 is ISB: the only option is SY, the rest are reserved and
            // behave as it.
            6 => return Insn::Isb,
            4 => {
                if let Some(b) = Barrier::from_crm(crm) {
                    return Insn::Dsb(b);
                }
            }
            5 => {
                if let Some(b) = Barrier::from_crm(crm) {
                    return Insn::Dmb(b);
                }
            }
            _ => {}
        }
        return Insn::Other(w);
    }
    // Literal loads: opc 011 V 00 imm19 Rt.
    if w & 0x3b00_0000 == 0x1800_0000 {
        let opc = w >> 30;
        let simd = w & (1 << 26) != 0;
        let kind = match (simd, opc) {
            (false, 0) => LiteralKind::W,
            (false, 1) => LiteralKind::X,
            (false, 2) => LiteralKind::Sw,
            (false, _) => LiteralKind::Prfm,
            (true, 0) => LiteralKind::Simd(4),
            (true, 1) => LiteralKind::Simd(8),
            (true, 2) => LiteralKind::Simd(16),
            (true, _) => return Insn::Other(w),
        };
        return Insn::LdrLiteral {
            kind,
            rt: rd,
            offset: sext(w >> 5, 19) * 4,
        };
    }
    // PC-relative addressing: op immlo 10000 immhi Rd.
    if w & 0x1f00_0000 == 0x1000_0000 {
        let imm = sext((((w >> 5) & 0x7_ffff) << 2) | ((w >> 29) & 3), 21);
        return if w >> 31 == 0 {
            Insn::Adr { rd, offset: imm }
        } else {
            Insn::Adrp { rd, pages: imm }
        };
    }
    // ADD (immediate), without flags: sf 0 0 100010 sh imm12 Rn Rd.
    if w & 0x7f80_0000 == 0x1100_0000 {
        return Insn::AddImm {
            width: Width::from_sf(w >> 31),
            rd,
            rn,
            imm12: ((w >> 10) & 0xfff) as u16,
            shift12: w & (1 << 22) != 0,
        };
    }
    // Move wide: sf opc 100101 hw imm16 Rd, opc 10 = MOVZ, 11 = MOVK.
    if w & 0x1f80_0000 == 0x1280_0000 {
        let width = Width::from_sf(w >> 31);
        let hw = (w >> 21) & 3;
        let imm16 = ((w >> 5) & 0xffff) as u16;
        let shift = (hw * 16) as u8;
        // `hw` 2 and 3 are unallocated for 32-bit forms.
        if !(matches!(width, Width::W) && hw > 1) {
            match (w >> 29) & 3 {
                2 => {
                    return Insn::Movz {
                        width,
                        rd,
                        imm16,
                        shift,
                    };
                }
                3 => {
                    return Insn::Movk {
                        width,
                        rd,
                        imm16,
                        shift,
                    };
                }
                _ => {}
            }
        }
        return Insn::Other(w);
    }
    // SYS cache maintenance: 1101 0101 0000 1 op1 0111 CRm op2 Rt.
    if w & 0xfff8_f000 == 0xd508_7000 {
        let op1 = (w >> 16) & 7;
        let crm = (w >> 8) & 15;
        let op2 = (w >> 5) & 7;
        match (op1, crm, op2) {
            (3, 11, 1) => {
                return Insn::Dc {
                    op: DcOp::Cvau,
                    rt: rd,
                };
            }
            (3, 10, 1) => {
                return Insn::Dc {
                    op: DcOp::Cvac,
                    rt: rd,
                };
            }
            (3, 14, 1) => {
                return Insn::Dc {
                    op: DcOp::Civac,
                    rt: rd,
                };
            }
            (3, 5, 1) => {
                return Insn::Ic {
                    op: IcOp::Ivau,
                    rt: rd,
                };
            }
            (0, 5, 0) => {
                return Insn::Ic {
                    op: IcOp::Iallu,
                    rt: rd,
                };
            }
            (0, 1, 0) => {
                return Insn::Ic {
                    op: IcOp::Ialluis,
                    rt: rd,
                };
            }
            _ => return Insn::Other(w),
        }
    }
    // LDR Xt, [Xn, #imm12 * 8].
    if w & 0xffc0_0000 == 0xf940_0000 {
        return Insn::LdrImm {
            rt: rd,
            rn,
            offset: (((w >> 10) & 0xfff) * 8) as u16,
        };
    }
    let rm = Reg::from_field(w >> 16);
    if w & 0xffff_fc00 == 0xc89f_fc00 {
        return Insn::Stlr { rt: rd, rn };
    }
    // ADD/SUBS (shifted register), 64-bit, LSL #0.
    if w & 0xffe0_fc00 == 0x8b00_0000 {
        return Insn::AddReg { rd, rn, rm };
    }
    if w & 0xffe0_fc1f == 0xeb00_001f {
        return Insn::CmpReg { rn, rm };
    }
    // FEAT_PAuth_LR: AUTIASPPC/AUTIBSPPC (0xf380_001f/0xf3a0_001f) and RETAASPPC/RETABSPPC
    // (0x5500_001f/0x5520_001f) take the address of an earlier instruction as their modifier,
    // `imm16` words back from the last possible one. Matched without the low five bits so that
    // the unallocated neighbours are treated as PC-relative too.
    if w & 0xffc0_0000 == 0xf380_0000 || w & 0xffc0_0000 == 0x5500_0000 {
        return Insn::PacLabel {
            offset: -((0xffff - ((w >> 5) & 0xffff)) as i64) * 4,
            word: w,
        };
    }
    // Exception generation: 11010100 opc imm16 op2 LL.
    let imm16 = ((w >> 5) & 0xffff) as u16;
    match w & 0xffe0_001f {
        0xd400_0001 => Insn::Svc(imm16),
        0xd400_0002 => Insn::Hvc(imm16),
        0xd400_0003 => Insn::Smc(imm16),
        0xd420_0000 => Insn::Brk(imm16),
        _ => Insn::Other(w),
    }
}

/// Whether `word` is in the set the Arm ARM allows to be concurrently modified and executed
/// (`B`, `BL`, `BRK`, `HVC`, `ISB`, `NOP`, `SMC`, `SVC`). Rewriting a word in place while
/// another core may run it is allowed only when both the old and the new word pass.
pub const fn is_cmodx_safe(word: u32) -> bool {
    matches!(
        decode(word),
        Insn::B { .. }
            | Insn::Bl { .. }
            | Insn::Brk(_)
            | Insn::Hvc(_)
            | Insn::Isb
            | Insn::Nop
            | Insn::Smc(_)
            | Insn::Svc(_)
    )
}

/// What a PC-relative instruction refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcRefKind {
    /// Control may continue at the target (`B`, `B.cond`, `CBZ`, `TBZ` and their negations).
    Branch,
    /// A call: control continues at the target and later returns (`BL`).
    Call,
    /// An address is formed (`ADR`) and may be used for anything.
    Address,
    /// A 4 KiB page address is formed (`ADRP`); the target is the page's first byte.
    Page,
    /// `size` bytes are read at the target (`LDR (literal)` family).
    Load {
        /// Bytes read.
        size: u64,
    },
}

/// A PC-relative reference: what kind, and where to relative to the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcRef {
    /// What the reference does.
    pub kind: PcRefKind,
    /// Byte offset of the target from the instruction (for [`PcRefKind::Page`], from the
    /// instruction's page).
    pub offset: i64,
}

impl Insn {
    /// The PC-relative reference this instruction makes, if any. `PRFM (literal)` makes none: it
    /// is a hint and accesses nothing.
    pub const fn pc_ref(&self) -> Option<PcRef> {
        let (kind, offset) = match *self {
            Insn::B { offset } | Insn::BCond { offset, .. } => (PcRefKind::Branch, offset),
            Insn::Cbz { offset, .. } | Insn::Tbz { offset, .. } => (PcRefKind::Branch, offset),
            Insn::Bl { offset } => (PcRefKind::Call, offset),
            Insn::Adr { offset, .. } | Insn::PacLabel { offset, .. } => {
                (PcRefKind::Address, offset)
            }
            Insn::Adrp { pages, .. } => (PcRefKind::Page, pages * 4096),
            Insn::LdrLiteral { kind, offset, .. } => match kind {
                LiteralKind::Prfm => return None,
                _ => (
                    PcRefKind::Load {
                        size: kind.access_size(),
                    },
                    offset,
                ),
            },
            _ => return None,
        };
        Some(PcRef { kind, offset })
    }
}
