//! What a refusal says: the class, the offset, and the instruction decoded and named.

use core::fmt;

use super::{AccessFault, CheckError, ReturnFault};

/// An instruction word, named for a person: the classes the verifier refuses by name, and
/// `.inst 0x...` for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named(pub u32);

/// Names of the system registers a refusal is likely to name; others print as `S3_1_C2_C3_4`.
const SYSREGS: [(u16, &str); 27] = [
    (0x5f02, "CNTVCT_EL0"),
    (0x5f00, "CNTFRQ_EL0"),
    (0x5f01, "CNTPCT_EL0"),
    (0x4080, "SCTLR_EL1"),
    (0x4082, "CPACR_EL1"),
    (0x4600, "VBAR_EL1"),
    (0x4100, "TTBR0_EL1"),
    (0x4101, "TTBR1_EL1"),
    (0x4102, "TCR_EL1"),
    (0x4510, "MAIR_EL1"),
    (0x5a11, "DAIF"),
    (0x5a10, "NZCV"),
    (0x5a20, "FPCR"),
    (0x5a21, "FPSR"),
    (0x5e82, "TPIDR_EL0"),
    (0x5e83, "TPIDRRO_EL0"),
    (0x4684, "TPIDR_EL1"),
    (0x4208, "SP_EL0"),
    (0x4201, "ELR_EL1"),
    (0x4200, "SPSR_EL1"),
    (0x4290, "ESR_EL1"),
    (0x4300, "FAR_EL1"),
    (0x4212, "CurrentEL"),
    (0x4000, "MIDR_EL1"),
    (0x4005, "MPIDR_EL1"),
    (0x5801, "CTR_EL0"),
    (0x5f19, "CNTV_CTL_EL0"),
];

const fn bits(w: u32, lo: u32, n: u32) -> u32 {
    (w >> lo) & ((1 << n) - 1)
}

fn sysreg(f: &mut fmt::Formatter<'_>, enc: u16) -> fmt::Result {
    match SYSREGS.iter().find(|(e, _)| *e == enc) {
        Some((_, name)) => f.write_str(name),
        None => {
            let e = u32::from(enc);
            write!(
                f,
                "S{}_{}_C{}_C{}_{}",
                2 + bits(e, 14, 1),
                bits(e, 11, 3),
                bits(e, 7, 4),
                bits(e, 3, 4),
                bits(e, 0, 3)
            )
        }
    }
}

fn reg(r: u32) -> RegName {
    RegName(r)
}

struct RegName(u32);

/// A register where 31 is `SP`.
struct SpName(u32);

impl fmt::Display for SpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            31 => f.write_str("SP"),
            n => write!(f, "X{n}"),
        }
    }
}

impl fmt::Display for RegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            31 => f.write_str("XZR"),
            n => write!(f, "X{n}"),
        }
    }
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.0;
        let rt = bits(w, 0, 5);
        let rn = bits(w, 5, 5);
        let imm16 = bits(w, 5, 16);
        if w >> 16 == 0 {
            return write!(f, "UDF #{:#x}", w & 0xffff);
        }
        if w & 0xff00_0000 == 0xd400_0000 {
            let name = match (bits(w, 21, 3), bits(w, 0, 5)) {
                (0, 1) => "SVC",
                (0, 2) => "HVC",
                (0, 3) => "SMC",
                (1, 0) => "BRK",
                (2, 0) => "HLT",
                (5, 1) => "DCPS1",
                (5, 2) => "DCPS2",
                (5, 3) => "DCPS3",
                _ => return write!(f, ".inst {w:#010x} (exception generation)"),
            };
            return write!(f, "{name} #{imm16:#x}");
        }
        match w {
            0xd69f_03e0 => return f.write_str("ERET"),
            0xd69f_0bff => return f.write_str("ERETAA"),
            0xd69f_0fff => return f.write_str("ERETAB"),
            0xd6bf_03e0 => return f.write_str("DRPS"),
            0xd65f_0bff => return f.write_str("RETAA"),
            0xd65f_0fff => return f.write_str("RETAB"),
            0xd503_205f => return f.write_str("WFE"),
            0xd503_207f => return f.write_str("WFI"),
            0xd503_209f => return f.write_str("SEV"),
            0xd503_20bf => return f.write_str("SEVL"),
            0xd503_201f => return f.write_str("NOP"),
            _ => {}
        }
        match w & 0xffff_fc1f {
            0xd61f_0000 => return write!(f, "BR {}", reg(rn)),
            0xd63f_0000 => return write!(f, "BLR {}", reg(rn)),
            0xd65f_0000 => return write!(f, "RET {}", reg(rn)),
            _ => {}
        }
        if w & 0xfe00_0000 == 0xd600_0000 {
            return write!(f, "{w:#010x} (a branch through {})", reg(rn));
        }
        if w & 0xffff_ffe0 == 0xd503_1000 {
            return write!(f, "WFET {}", reg(rt));
        }
        if w & 0xffff_ffe0 == 0xd503_1020 {
            return write!(f, "WFIT {}", reg(rt));
        }
        if w & 0xffc0_0000 == 0xd500_0000 {
            return system(f, w);
        }
        match w & 0xfc00_0000 {
            0x1400_0000 => return write!(f, "B .{:+#x}", (((w << 6) as i32) >> 4)),
            0x9400_0000 => return write!(f, "BL .{:+#x}", (((w << 6) as i32) >> 4)),
            _ => {}
        }
        if w & 0xff00_0010 == 0x5400_0000 {
            const CONDS: [&str; 16] = [
                "EQ", "NE", "HS", "LO", "MI", "PL", "VS", "VC", "HI", "LS", "GE", "LT", "GT", "LE",
                "AL", "NV",
            ];
            let off = ((w << 8) as i32 >> 13) * 4;
            return write!(f, "B.{} .{off:+#x}", CONDS[(w & 15) as usize]);
        }
        // ADD/SUB (immediate) to or from SP: MOV SP, Xn and friends.
        if w & 0x1f80_0000 == 0x1100_0000 && bits(w, 29, 1) == 0 {
            let sp = |r: u32| SpName(r);
            let imm = bits(w, 10, 12) << (12 * bits(w, 22, 1));
            let op = if bits(w, 30, 1) == 1 { "SUB" } else { "ADD" };
            return if imm == 0 && op == "ADD" {
                write!(f, "MOV {}, {}", sp(rt), sp(rn))
            } else {
                write!(f, "{op} {}, {}, #{imm:#x}", sp(rt), sp(rn))
            };
        }
        if bits(w, 25, 4) & 0b0101 == 0b0100 {
            return write!(f, "{w:#010x} (a load or store through {})", SpName(rn));
        }
        write!(f, ".inst {w:#010x}")
    }
}

fn system(f: &mut fmt::Formatter<'_>, w: u32) -> fmt::Result {
    let l = bits(w, 21, 1) == 1;
    let op0 = bits(w, 19, 2);
    let op1 = bits(w, 16, 3);
    let crn = bits(w, 12, 4);
    let crm = bits(w, 8, 4);
    let op2 = bits(w, 5, 3);
    let rt = bits(w, 0, 5);
    let enc = bits(w, 5, 15) as u16;
    if op0 >= 2 {
        return if l {
            write!(f, "MRS {}, ", reg(rt)).and_then(|_| sysreg(f, enc))
        } else {
            f.write_str("MSR ")
                .and_then(|_| sysreg(f, enc))
                .and_then(|_| write!(f, ", {}", reg(rt)))
        };
    }
    if op0 == 0 && crn == 4 && !l {
        let field = match (op1, op2) {
            (3, 6) => "DAIFSet",
            (3, 7) => "DAIFClr",
            (0, 5) => "SPSel",
            (0, 4) => "PAN",
            (0, 3) => "UAO",
            (3, 2) => "DIT",
            (3, 1) => "SSBS",
            (3, 4) => "TCO",
            (0, 0..=2) if crm == 0 => {
                return f.write_str(["CFINV", "XAFLAG", "AXFLAG"][op2 as usize]);
            }
            _ => return write!(f, "MSR <PSTATE op1={op1} op2={op2}>, #{crm}"),
        };
        return write!(f, "MSR {field}, #{crm}");
    }
    if op0 == 1 && !l {
        let name = match (crn, op1, crm, op2) {
            (7, 3, 11, 1) => Some("DC CVAU"),
            (7, 3, 10, 1) => Some("DC CVAC"),
            (7, 3, 14, 1) => Some("DC CIVAC"),
            (7, 3, 4, 1) => Some("DC ZVA"),
            (7, 0, 6, 1) => Some("DC IVAC"),
            (7, 0, 6, 2) => Some("DC ISW"),
            (7, 0, 10, 2) => Some("DC CSW"),
            (7, 0, 14, 2) => Some("DC CISW"),
            (7, 3, 5, 1) => Some("IC IVAU"),
            (7, 0, 5, 0) => return f.write_str("IC IALLU"),
            (7, 0, 1, 0) => return f.write_str("IC IALLUIS"),
            (7, _, 8, _) | (7, _, 9, _) => Some("AT"),
            (8, 0, 7, 0) if rt == 31 => return f.write_str("TLBI VMALLE1"),
            (8, 0, 3, 0) if rt == 31 => return f.write_str("TLBI VMALLE1IS"),
            (8, _, _, _) | (9, _, _, _) => Some("TLBI"),
            _ => None,
        };
        return match name {
            Some(n) => write!(f, "{n}, {}", reg(rt)),
            None => write!(f, "SYS #{op1}, C{crn}, C{crm}, #{op2}, {}", reg(rt)),
        };
    }
    if op0 == 1 {
        return write!(f, "SYSL {}, #{op1}, C{crn}, C{crm}, #{op2}", reg(rt));
    }
    write!(f, ".inst {w:#010x} (a system instruction)")
}

impl fmt::Display for ReturnFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotX30 => f.write_str("returns through a register other than X30"),
            Self::LinkClobbered => f.write_str(
                "returns with X30 overwritten (by BL or a write) and not restored from the stack",
            ),
            Self::CalleeSaved(r) => write!(f, "returns with callee-saved X{r} not restored"),
            Self::CalleeSavedFp(r) => write!(f, "returns with callee-saved D{r} not restored"),
            Self::Unbalanced(n) => {
                write!(f, "returns with SP still {n} bytes below its entry value")
            }
        }
    }
}

impl fmt::Display for AccessFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownBase => "through a register whose address the verifier cannot tell",
            Self::OutOfBounds => {
                "outside the stack frame, the site's argument objects, the block and allowed data"
            }
            Self::ReadOnly => {
                "a write to read-only memory (the block, allowed data, a read-only argument)"
            }
            Self::Misaligned => {
                "that is exclusive, ordered or atomic and may not be naturally aligned"
            }
        })
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |f: &mut fmt::Formatter<'_>, offset: usize, word: u32, class: &str| {
            write!(
                f,
                "offset {offset:#x}: {} ({class}) is not allowed",
                Named(word)
            )
        };
        match *self {
            Self::Empty => f.write_str("empty block"),
            Self::TooLarge { len, max } => write!(f, "block of {len} bytes, at most {max} allowed"),
            Self::MisalignedAddress { addr } => write!(f, "misaligned execution address {addr:#x}"),
            Self::MisalignedLength { len } => write!(f, "length {len} is not a multiple of 4"),
            Self::AddressOverflow => f.write_str("the block passes the top of the address space"),
            Self::Escapes {
                offset,
                word,
                target,
                ..
            } => write!(
                f,
                "offset {offset:#x}: {} reaches {target:#x}, outside the block and not exported",
                Named(word)
            ),
            Self::BranchIntoData {
                offset,
                target_offset,
            } => write!(
                f,
                "offset {offset:#x}: a branch into the literal-pool word at {target_offset:#x}"
            ),
            Self::FallsIntoData { offset } => {
                write!(
                    f,
                    "offset {offset:#x}: execution runs into a literal-pool word"
                )
            }
            Self::FallsThrough { word } => write!(
                f,
                "the last instruction, {}, can run past the end of the block",
                Named(word)
            ),
            Self::Exception { offset, word } => what(
                f,
                offset,
                word,
                "an exception-generating or debug instruction",
            ),
            Self::Unlisted { offset, word } => what(
                f,
                offset,
                word,
                "unallocated, or not on the verifier's allow-list",
            ),
            Self::SysRegWrite { offset, word } => what(f, offset, word, "a system-register write"),
            Self::PstateWrite { offset, word } => what(f, offset, word, "a PSTATE write"),
            Self::SysRegRead { offset, word } => what(
                f,
                offset,
                word,
                "a system-register read outside the safe set",
            ),
            Self::Wait { offset, word } => what(f, offset, word, "a wait or event instruction"),
            Self::Maintenance { offset, word } => what(
                f,
                offset,
                word,
                "cache, TLB or address-translation maintenance other than by address",
            ),
            Self::IndirectBranch { offset, word } => {
                what(f, offset, word, "a register-indirect branch")
            }
            Self::BadReturn { offset, word, why } => {
                write!(f, "offset {offset:#x}: {} {why}", Named(word))
            }
            Self::SpWrite { offset, word } => what(
                f,
                offset,
                word,
                "a write to SP other than a balanced, aligned adjustment within the stack budget",
            ),
            Self::UnprovenAccess { offset, word, why } => write!(
                f,
                "offset {offset:#x}: {} is a memory access {why}",
                Named(word)
            ),
            Self::OverBudget {
                offset,
                word,
                budget,
            } => write!(
                f,
                "offset {offset:#x}: {} leads to a path of more than {budget} instructions \
                 (a loop the verifier cannot bound)",
                Named(word)
            ),
            Self::TooComplex { offset, word } => write!(
                f,
                "offset {offset:#x}: {}: too many paths for the verifier to explore",
                Named(word)
            ),
        }
    }
}
