//! Every word the verifier may meet, sorted into what it does: the allow-list.
//!
//! [`classify`] names the effect of each allowed instruction on the registers, flags, stack and
//! memory that [`super::verify`] tracks, and sorts every other word into the class it is refused
//! for. Anything not recognized here, including every unallocated encoding the decoder knows of,
//! is [`Op::Refuse`]`(`[`Class::Unlisted`]`)`: the list says what may run, not what may not.

mod fp;
mod ldst;

use crate::insn::{Cond, Insn, decode};
use fp::fp;
use ldst::load_store;

/// Why a word is refused whatever the registers hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `SVC`, `HVC`, `SMC`, `BRK`, `HLT`, `UDF`, `DCPS1-3`, `ERET`, `ERETAA/AB`, `DRPS`.
    Exception,
    /// Unallocated, or a form the verifier does not model (SVE, vector arithmetic, PAC, ...).
    Unlisted,
    /// `MSR <sysreg>, Xt`, `SYS`, `SYSL` (other than the allowed maintenance).
    SysRegWrite,
    /// `MSR <pstatefield>, #imm` (`DAIFSet`, `SPSel`, `PAN`, ...), `CFINV`, `XAFLAG`, `AXFLAG`.
    PstateWrite,
    /// `WFI`, `WFE`, `WFIT`, `WFET`, `SEV`, `SEVL`.
    Wait,
    /// Cache maintenance other than `DC CVAU/CVAC/CIVAC` and `IC IVAU` by address, `TLBI`, `AT`.
    Maintenance,
    /// `BR`, `BLR`, `BRAA` and the other branches through a register, `RETAA/AB`.
    IndirectBranch,
    /// `RET` through a register other than `X30`.
    RetNotLr,
}

/// How a direct branch decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BranchKind {
    /// `B`.
    Always,
    /// `B.cond`.
    Cond(Cond),
    /// `CBZ`/`CBNZ` (`nz`); `w` for a 32-bit register.
    Cbz { rt: u8, w: bool, nz: bool },
    /// `TBZ`/`TBNZ` (`nz`).
    Tbz { rt: u8, bit: u8, nz: bool },
    /// `BL`.
    Call,
}

/// Base address of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wb {
    /// `[Xn, #off]`: no writeback.
    None,
    /// `[Xn, #off]!`: the address is `Xn + off`, then `Xn` takes it.
    Pre,
    /// `[Xn], #off`: the address is `Xn`, then `Xn += off`.
    Post,
}

/// A load, store or read-modify-write through a base register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    /// Base register; 31 is `SP`.
    pub rn: u8,
    /// Byte offset (see [`Wb`]).
    pub off: i64,
    /// Writeback form.
    pub wb: Wb,
    /// Bytes per register transferred.
    pub elem: u64,
    /// Registers transferred (`Rt`, and `Rt2` for pairs); `None` past the count.
    pub rt: [Option<u8>; 2],
    /// Whether `rt` are SIMD&FP registers (never tracked).
    pub simd: bool,
    /// Whether memory is read.
    pub load: bool,
    /// Whether memory is written.
    pub store: bool,
    /// A general register written besides `rt` (the status of `STXR`, the old value of `CAS`).
    pub rs: Option<u8>,
    /// An exclusive, ordered or atomic access: it faults unless naturally aligned.
    pub atomic: bool,
}

/// What an allowed instruction does, in the terms the verifier tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Refused, whatever the state.
    Refuse(Class),
    /// No effect on anything tracked (`NOP`, barriers, `PRFM`, `CLREX`, `BTI`).
    Nop,
    /// A direct branch `off` bytes away.
    Branch { kind: BranchKind, off: i64 },
    /// `RET X30`.
    Ret,
    /// `Xd := pc + off` (`ADR`), or its page (`ADRP`, `page`).
    Adr { rd: u8, off: i64, page: bool },
    /// `ADD`/`SUB` (immediate), `S` sets flags; register 31 is `SP` except as a flags-setting
    /// destination.
    AddImm {
        sf: bool,
        sub: bool,
        s: bool,
        rd: u8,
        rn: u8,
        imm: u64,
    },
    /// `MOVZ` (`keep` false, `invert` false), `MOVN` (`invert`), `MOVK` (`keep`); `shift` in
    /// bits.
    MovWide {
        sf: bool,
        rd: u8,
        imm16: u16,
        shift: u8,
        keep: bool,
        invert: bool,
    },
    /// `MOV Xd, Xm` (`ORR Xd, XZR, Xm`).
    MovReg { sf: bool, rd: u8, rm: u8 },
    /// `SUBS`/`ADDS` (shifted register, no shift): `CMP`/`CMN`.
    AddSubsReg {
        sf: bool,
        sub: bool,
        rd: u8,
        rn: u8,
        rm: u8,
    },
    /// Any other computation: writes general register `rd` (if any, 31 being `XZR`) with an
    /// unknown value, and the flags if `flags`.
    Compute { rd: Option<u8>, flags: bool },
    /// Writes SIMD&FP register `rd` (bits 4:0 of every listed FP instruction, an `LDR (literal)`
    /// of one): nothing general is touched, but `D8`-`D15` are callee-saved.
    FpWrite { rd: u8 },
    /// A memory access.
    Mem(Mem),
    /// A literal load (`LDR (literal)`), already bounded by the shape check.
    LoadLiteral { rt: Option<u8> },
    /// `MRS Xt, <sysreg>` whose register is `sysreg` (bits 19:5 of the word).
    Mrs { rt: u8, sysreg: u16 },
    /// `MSR <sysreg>, Xt` (refused unless the policy lists `sysreg`).
    Msr { sysreg: u16 },
    /// `MSR <pstatefield>, #imm` (refused unless the policy lists `field`: `op1 << 3 | op2`).
    MsrImm { field: u8 },
    /// `DC CVAU/CVAC/CIVAC` or `IC IVAU` on the address in `rt`.
    CacheByVa { rt: u8 },
    /// A write to `SP` other than `ADD`/`SUB` (immediate) and load/store writeback.
    SpWrite,
}

pub(super) const fn bits(w: u32, lo: u32, n: u32) -> u32 {
    (w >> lo) & ((1 << n) - 1)
}

pub(super) const fn sext(v: u32, n: u32) -> i64 {
    let s = 64 - n;
    (((v as u64) << s) as i64) >> s
}

/// Sorts one word (see the module documentation).
pub fn classify(w: u32) -> Op {
    match bits(w, 25, 4) {
        0b1000 | 0b1001 => dp_imm(w),
        0b1010 | 0b1011 => branch_sys(w),
        0b0101 | 0b1101 => dp_reg(w),
        0b0111 | 0b1111 => fp(w),
        0b0100 | 0b0110 | 0b1100 | 0b1110 => load_store(w),
        // UDF is the only allocated word of the reserved space the base ISA has.
        _ if w >> 16 == 0 => Op::Refuse(Class::Exception),
        _ => Op::Refuse(Class::Unlisted),
    }
}

fn dp_imm(w: u32) -> Op {
    let sf = w >> 31 == 1;
    let rd = bits(w, 0, 5) as u8;
    let rn = bits(w, 5, 5) as u8;
    match bits(w, 23, 3) {
        0b000 | 0b001 => match decode(w) {
            Insn::Adr { rd, offset } => Op::Adr {
                rd: rd.number(),
                off: offset,
                page: false,
            },
            Insn::Adrp { rd, pages } => Op::Adr {
                rd: rd.number(),
                off: pages * 4096,
                page: true,
            },
            _ => Op::Refuse(Class::Unlisted),
        },
        0b010 => Op::AddImm {
            sf,
            sub: bits(w, 30, 1) == 1,
            s: bits(w, 29, 1) == 1,
            rd,
            rn,
            imm: (bits(w, 10, 12) as u64) << (12 * bits(w, 22, 1)),
        },
        0b100 => {
            let n = bits(w, 22, 1);
            if (!sf && n == 1) || !bitmask_ok(n, bits(w, 10, 6)) {
                return Op::Refuse(Class::Unlisted);
            }
            let ands = bits(w, 29, 2) == 0b11;
            // AND/ORR/EOR (immediate) write SP when Rd is 31.
            if rd == 31 && !ands {
                return Op::SpWrite;
            }
            Op::Compute {
                rd: Some(rd),
                flags: ands,
            }
        }
        0b101 => {
            let opc = bits(w, 29, 2);
            let hw = bits(w, 21, 2);
            if opc == 0b01 || (!sf && hw > 1) {
                return Op::Refuse(Class::Unlisted);
            }
            Op::MovWide {
                sf,
                rd,
                imm16: bits(w, 5, 16) as u16,
                shift: (16 * hw) as u8,
                keep: opc == 0b11,
                invert: opc == 0b00,
            }
        }
        0b110 => {
            let n = bits(w, 22, 1) == 1;
            let high = bits(w, 21, 1) | bits(w, 15, 1);
            if bits(w, 29, 2) == 0b11 || n != sf || (!sf && high != 0) {
                return Op::Refuse(Class::Unlisted);
            }
            Op::Compute {
                rd: Some(rd),
                flags: false,
            }
        }
        _ => {
            // Extract (EXTR/ROR); 0b011 (tags, min/max immediate) is not listed.
            let n = bits(w, 22, 1) == 1;
            if bits(w, 23, 3) != 0b111
                || bits(w, 29, 2) != 0
                || bits(w, 21, 1) != 0
                || n != sf
                || (!sf && bits(w, 15, 1) != 0)
            {
                return Op::Refuse(Class::Unlisted);
            }
            Op::Compute {
                rd: Some(rd),
                flags: false,
            }
        }
    }
}

/// Whether `N:imms` is a valid logical immediate (the Arm ARM's `DecodeBitMasks` is UNDEFINED
/// for an all-ones element).
fn bitmask_ok(n: u32, imms: u32) -> bool {
    let combined = (n << 6) | (!imms & 0x3f);
    if combined == 0 {
        return false;
    }
    let len = 31 - combined.leading_zeros();
    if len < 1 {
        return false;
    }
    let levels = (1 << len) - 1;
    imms & levels != levels
}

fn dp_reg(w: u32) -> Op {
    let sf = w >> 31 == 1;
    let rd = bits(w, 0, 5) as u8;
    let rn = bits(w, 5, 5) as u8;
    let rm = bits(w, 16, 5) as u8;
    let s = bits(w, 29, 1) == 1;
    let imm6 = bits(w, 10, 6);
    let plain = Op::Compute {
        rd: Some(rd),
        flags: false,
    };
    let unlisted = Op::Refuse(Class::Unlisted);
    if bits(w, 28, 1) == 0 {
        if bits(w, 24, 1) == 0 {
            // Logical (shifted register).
            if !sf && imm6 >= 32 {
                return unlisted;
            }
            let opc = bits(w, 29, 2);
            if opc == 0b01 && bits(w, 21, 3) == 0 && imm6 == 0 && rn == 31 {
                return Op::MovReg { sf, rd, rm };
            }
            return Op::Compute {
                rd: Some(rd),
                flags: opc == 0b11,
            };
        }
        if bits(w, 21, 1) == 0 {
            // Add/subtract (shifted register).
            let shift = bits(w, 22, 2);
            if shift == 0b11 || (!sf && imm6 >= 32) {
                return unlisted;
            }
            if s && shift == 0 && imm6 == 0 {
                return Op::AddSubsReg {
                    sf,
                    sub: bits(w, 30, 1) == 1,
                    rd,
                    rn,
                    rm,
                };
            }
            return Op::Compute {
                rd: Some(rd),
                flags: s,
            };
        }
        // Add/subtract (extended register): Rd 31 is SP unless flags are set.
        if bits(w, 22, 2) != 0 || bits(w, 10, 3) > 4 {
            return unlisted;
        }
        if rd == 31 && !s {
            return Op::SpWrite;
        }
        return Op::Compute {
            rd: Some(rd),
            flags: s,
        };
    }
    let op3 = bits(w, 10, 6);
    match bits(w, 21, 4) {
        0b0000 if op3 == 0 => Op::Compute {
            rd: Some(rd),
            flags: s,
        },
        0b0010 if s && bits(w, 10, 1) == 0 && bits(w, 4, 1) == 0 => Op::Compute {
            rd: None,
            flags: true,
        },
        0b0100 if !s && bits(w, 11, 1) == 0 => plain,
        0b0110 if !s => {
            let ok = if bits(w, 30, 1) == 0 {
                matches!(op3, 0b000010 | 0b000011 | 0b001000..=0b001011)
            } else {
                rm == 0 && (op3 <= 0b000010 || op3 == 0b000100 || op3 == 0b000101)
                    || (rm == 0 && sf && op3 == 0b000011)
            };
            if ok { plain } else { unlisted }
        }
        0b1000..=0b1111 => {
            let op31 = bits(w, 21, 3);
            let o0 = bits(w, 15, 1);
            let ok = bits(w, 29, 2) == 0
                && match op31 {
                    0b000 => true,
                    0b001 | 0b101 => sf,
                    0b010 | 0b110 => sf && o0 == 0,
                    _ => false,
                };
            if ok { plain } else { unlisted }
        }
        _ => unlisted,
    }
}

fn branch_sys(w: u32) -> Op {
    match decode(w) {
        Insn::B { offset } => {
            return Op::Branch {
                kind: BranchKind::Always,
                off: offset,
            };
        }
        Insn::Bl { offset } => {
            return Op::Branch {
                kind: BranchKind::Call,
                off: offset,
            };
        }
        Insn::BCond {
            cond,
            offset,
            consistent: false,
        } => {
            return Op::Branch {
                kind: BranchKind::Cond(cond),
                off: offset,
            };
        }
        Insn::Cbz {
            width,
            rt,
            offset,
            nonzero,
        } => {
            return Op::Branch {
                kind: BranchKind::Cbz {
                    rt: rt.number(),
                    w: matches!(width, crate::insn::Width::W),
                    nz: nonzero,
                },
                off: offset,
            };
        }
        Insn::Tbz {
            rt,
            bit,
            offset,
            nonzero,
        } => {
            return Op::Branch {
                kind: BranchKind::Tbz {
                    rt: rt.number(),
                    bit,
                    nz: nonzero,
                },
                off: offset,
            };
        }
        _ => {}
    }
    if w & 0xff00_0000 == 0xd400_0000 {
        return Op::Refuse(Class::Exception);
    }
    if w & 0xfe00_0000 == 0xd600_0000 {
        return match w {
            0xd65f_03c0 => Op::Ret,
            0xd69f_03e0 | 0xd69f_0bff | 0xd69f_0fff | 0xd6bf_03e0 => Op::Refuse(Class::Exception),
            _ if w & 0xffff_fc1f == 0xd65f_0000 => Op::Refuse(Class::RetNotLr),
            _ => Op::Refuse(Class::IndirectBranch),
        };
    }
    if w & 0xffc0_0000 == 0xd500_0000 {
        return system(w);
    }
    Op::Refuse(Class::Unlisted)
}

fn system(w: u32) -> Op {
    let l = bits(w, 21, 1) == 1;
    let op0 = bits(w, 19, 2);
    let op1 = bits(w, 16, 3);
    let crn = bits(w, 12, 4);
    let crm = bits(w, 8, 4);
    let op2 = bits(w, 5, 3);
    let rt = bits(w, 0, 5) as u8;
    let sysreg = bits(w, 5, 15) as u16;
    match (l, op0) {
        (false, 0b00) => match crn {
            0b0010 if op1 == 3 && rt == 31 => match (crm, op2) {
                (0, 0) | (0, 1) | (0b0010, 0b100) => Op::Nop,
                (0b0100, o) if o & 1 == 0 => Op::Nop, // BTI
                (0, 2..=5) => Op::Refuse(Class::Wait),
                _ => Op::Refuse(Class::Unlisted),
            },
            0b0001 if op1 == 3 && crm == 0 && op2 <= 1 => Op::Refuse(Class::Wait),
            0b0011 if op1 == 3 && rt == 31 => match op2 {
                0b010 | 0b100 | 0b101 | 0b110 => Op::Nop,
                _ => Op::Refuse(Class::Unlisted),
            },
            0b0100 if rt == 31 => {
                if op1 == 0 && crm == 0 && op2 <= 2 {
                    Op::Refuse(Class::PstateWrite) // CFINV, XAFLAG, AXFLAG
                } else {
                    Op::MsrImm {
                        field: ((op1 << 3) | op2) as u8,
                    }
                }
            }
            _ => Op::Refuse(Class::Unlisted),
        },
        (false, 0b01) => match (crn, op1, crm, op2) {
            (0b0111, 3, 11 | 10 | 14 | 5, 1) => Op::CacheByVa { rt },
            (0b0111, _, _, _) | (0b1000 | 0b1001, _, _, _) => Op::Refuse(Class::Maintenance),
            _ => Op::Refuse(Class::SysRegWrite),
        },
        (true, 0b01) => Op::Refuse(Class::SysRegWrite),
        (false, _) if op0 >= 2 => Op::Msr { sysreg },
        (true, _) if op0 >= 2 => Op::Mrs { rt, sysreg },
        _ => Op::Refuse(Class::Unlisted),
    }
}
