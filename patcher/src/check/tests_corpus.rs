//! The dangerous-block corpus: every class the verifier refuses, each block refused with its
//! own error at the instruction that breaks the rule.

use std::vec::Vec;

use super::{AccessFault, CheckError, Externals, Policy, ReturnFault, check_block};
use crate::insn;

const AT: u64 = 0x4060_1000;
const HELPER: u64 = 0x4008_0000;
const RET: u32 = 0xd65f_03c0;

fn run(words: &[u32]) -> Result<u32, CheckError> {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let ext = Externals {
        branch_targets: &[HELPER],
        data: &[],
    };
    check_block(&bytes, AT, 4096, &ext, &Policy::KERNEL_SITES).map(|c| c.worst_case_insns())
}

type Make = fn(usize, u32) -> CheckError;

const EXC: Make = |offset, word| CheckError::Exception { offset, word };
const UNL: Make = |offset, word| CheckError::Unlisted { offset, word };
const SYSW: Make = |offset, word| CheckError::SysRegWrite { offset, word };
const PST: Make = |offset, word| CheckError::PstateWrite { offset, word };
const SYSR: Make = |offset, word| CheckError::SysRegRead { offset, word };
const WAIT: Make = |offset, word| CheckError::Wait { offset, word };
const MAINT: Make = |offset, word| CheckError::Maintenance { offset, word };
const IND: Make = |offset, word| CheckError::IndirectBranch { offset, word };
const SPW: Make = |offset, word| CheckError::SpWrite { offset, word };
const OVER: Make = |offset, word| CheckError::OverBudget {
    offset,
    word,
    budget: 4096,
};
/// The error expected for the offending word.
enum Want {
    F(Make),
    Ret(ReturnFault),
    Acc(AccessFault),
}

impl Want {
    fn at(&self, offset: usize, word: u32) -> CheckError {
        match *self {
            Want::F(f) => f(offset, word),
            Want::Ret(why) => CheckError::BadReturn { offset, word, why },
            Want::Acc(why) => CheckError::UnprovenAccess { offset, word, why },
        }
    }
}

/// `BL HELPER` from word `i`.
fn bl_helper(i: usize) -> u32 {
    insn::bl(HELPER as i64 - (AT as i64 + 4 * i as i64)).unwrap()
}

#[test]
fn every_dangerous_block_is_refused_with_its_own_error() {
    use AccessFault::*;
    use ReturnFault::*;
    // (what, block, index of the offending word, expected error for it)
    let corpus: Vec<(&str, Vec<u32>, usize, Want)> = std::vec![
        ("UDF", std::vec![0x0000_0000, RET], 0, Want::F(EXC)),
        (
            "UDF #1 (reserved space)",
            std::vec![0x0000_0001, RET],
            0,
            Want::F(EXC)
        ),
        ("BRK #0", std::vec![0xd420_0000, RET], 0, Want::F(EXC)),
        (
            "HLT #0xf000 (semihosting)",
            std::vec![0xd45e_0000, RET],
            0,
            Want::F(EXC)
        ),
        ("SVC #0", std::vec![0xd400_0001, RET], 0, Want::F(EXC)),
        (
            "HVC #0 (PSCI)",
            std::vec![0xd400_0002, RET],
            0,
            Want::F(EXC)
        ),
        ("SMC #0", std::vec![0xd400_0003, RET], 0, Want::F(EXC)),
        ("DCPS1", std::vec![0xd4a0_0001, RET], 0, Want::F(EXC)),
        ("ERET", std::vec![insn::nop(), 0xd69f_03e0], 1, Want::F(EXC)),
        ("ERETAA", std::vec![0xd69f_0bff, RET], 0, Want::F(EXC)),
        ("DRPS", std::vec![0xd6bf_03e0, RET], 0, Want::F(EXC)),
        (
            "MSR DAIFSet, #3",
            std::vec![0xd503_43df, RET],
            0,
            Want::F(PST)
        ),
        (
            "MSR DAIFClr, #2",
            std::vec![0xd503_42ff, RET],
            0,
            Want::F(PST)
        ),
        (
            "MSR SPSel, #1",
            std::vec![0xd500_41bf, RET],
            0,
            Want::F(PST)
        ),
        ("MSR PAN, #1", std::vec![0xd500_419f, RET], 0, Want::F(PST)),
        ("CFINV", std::vec![0xd500_401f, RET], 0, Want::F(PST)),
        (
            "MSR SCTLR_EL1, X0",
            std::vec![0xd518_1000, RET],
            0,
            Want::F(SYSW)
        ),
        (
            "MSR VBAR_EL1, X0",
            std::vec![0xd518_c000, RET],
            0,
            Want::F(SYSW)
        ),
        (
            "MSR TTBR0_EL1, X0",
            std::vec![0xd518_2000, RET],
            0,
            Want::F(SYSW)
        ),
        (
            "SYS #0, C1, C0, #0",
            std::vec![0xd508_1000, RET],
            0,
            Want::F(SYSW)
        ),
        ("SYSL", std::vec![0xd528_1000, RET], 0, Want::F(SYSW)),
        (
            "MRS X0, SCTLR_EL1",
            std::vec![0xd538_1000, RET],
            0,
            Want::F(SYSR)
        ),
        (
            "MRS X0, TPIDR_EL1",
            std::vec![0xd538_d080, RET],
            0,
            Want::F(SYSR)
        ),
        ("WFI", std::vec![0xd503_207f, RET], 0, Want::F(WAIT)),
        ("WFE", std::vec![0xd503_205f, RET], 0, Want::F(WAIT)),
        ("SEV", std::vec![0xd503_209f, RET], 0, Want::F(WAIT)),
        ("SEVL", std::vec![0xd503_20bf, RET], 0, Want::F(WAIT)),
        ("WFET X0", std::vec![0xd503_1000, RET], 0, Want::F(WAIT)),
        ("WFIT X0", std::vec![0xd503_1020, RET], 0, Want::F(WAIT)),
        (
            "DC CISW, X0",
            std::vec![0xd508_7e40, RET],
            0,
            Want::F(MAINT)
        ),
        ("DC ISW, X0", std::vec![0xd508_7640, RET], 0, Want::F(MAINT)),
        (
            "DC IVAC, X0 (discards data)",
            std::vec![0xd508_7620, RET],
            0,
            Want::F(MAINT)
        ),
        ("DC ZVA, X0", std::vec![0xd50b_7420, RET], 0, Want::F(MAINT)),
        ("IC IALLU", std::vec![0xd508_751f, RET], 0, Want::F(MAINT)),
        ("IC IALLUIS", std::vec![0xd508_711f, RET], 0, Want::F(MAINT)),
        (
            "TLBI VMALLE1",
            std::vec![0xd508_871f, RET],
            0,
            Want::F(MAINT)
        ),
        (
            "AT S1E1R, X0",
            std::vec![0xd508_7800, RET],
            0,
            Want::F(MAINT)
        ),
        ("BR X0", std::vec![0xd61f_0000], 0, Want::F(IND)),
        ("BLR X1", std::vec![0xd63f_0020, RET], 0, Want::F(IND)),
        ("BRAAZ X16", std::vec![0xd61f_0a1f], 0, Want::F(IND)),
        ("RETAA", std::vec![0xd65f_0bff], 0, Want::F(IND)),
        ("RET X1", std::vec![0xd65f_0020], 0, Want::Ret(NotX30)),
        (
            "MOV X30, X0; RET",
            std::vec![0xaa00_03fe, RET],
            1,
            Want::Ret(LinkClobbered)
        ),
        (
            "BL helper; RET (no restore)",
            std::vec![bl_helper(0), RET],
            1,
            Want::Ret(LinkClobbered)
        ),
        (
            "MOV X19, #1; RET",
            std::vec![0xd280_0033, RET],
            1,
            Want::Ret(CalleeSaved(19))
        ),
        (
            "SUB SP, SP, #16; RET",
            std::vec![0xd100_43ff, RET],
            1,
            Want::Ret(Unbalanced(16))
        ),
        ("MOV SP, X0", std::vec![0x9100_001f, RET], 0, Want::F(SPW)),
        (
            "SUB SP, SP, #512 (past the budget)",
            std::vec![0xd108_03ff, RET],
            0,
            Want::F(SPW)
        ),
        (
            "SUB SP, SP, #8 (misaligned)",
            std::vec![0xd100_23ff, RET],
            0,
            Want::F(SPW)
        ),
        (
            "ORR SP, X0, #1",
            std::vec![0xb240_001f, RET],
            0,
            Want::F(SPW)
        ),
        (
            "STR X1, [X2] (anywhere)",
            std::vec![0xf900_0041, RET],
            0,
            Want::Acc(UnknownBase)
        ),
        (
            "LDR X1, [X2]",
            std::vec![0xf940_0041, RET],
            0,
            Want::Acc(UnknownBase)
        ),
        (
            "STR X1, [X0, #16] (past the argument)",
            std::vec![0xf900_0801, RET],
            0,
            Want::Acc(OutOfBounds)
        ),
        (
            "LDUR X1, [X0, #-8]",
            std::vec![0xf85f_8001, RET],
            0,
            Want::Acc(OutOfBounds)
        ),
        (
            "STR X1, [SP] (the caller's frame)",
            std::vec![0xf900_03e1, RET],
            0,
            Want::Acc(OutOfBounds)
        ),
        (
            "STUR X1, [SP, #-8] (below SP)",
            std::vec![0xf81f_83e1, RET],
            0,
            Want::Acc(OutOfBounds)
        ),
        (
            "ADR X2, .; STR X1, [X2] (the block)",
            std::vec![0x1000_0002, 0xf900_0041, RET],
            1,
            Want::Acc(ReadOnly)
        ),
        (
            "MOVZ X2, #0x4000, LSL #16; STR X1, [X2]",
            std::vec![0xd2a8_0002, 0xf900_0041, RET],
            1,
            Want::Acc(OutOfBounds)
        ),
        (
            "LDADD X1, X2, [X3]",
            std::vec![0xf821_0062, RET],
            0,
            Want::Acc(UnknownBase)
        ),
        (
            "STXR W4, X1, [X3]",
            std::vec![0xc804_7c61, RET],
            0,
            Want::Acc(UnknownBase)
        ),
        (
            "CAS X1, X2, [X3]",
            std::vec![0xc8a1_7c62, RET],
            0,
            Want::Acc(UnknownBase)
        ),
        (
            "DC CVAU, X3 (unknown address)",
            std::vec![0xd50b_7b23, RET],
            0,
            Want::Acc(UnknownBase)
        ),
        ("B .", std::vec![0x1400_0000], 0, Want::F(OVER)),
        (
            "CBNZ X0, . (unknown count)",
            std::vec![0xb500_0000, RET],
            0,
            Want::F(OVER)
        ),
        (
            "MOV X0, #5000; SUBS X0, X0, #1; B.NE (too many)",
            std::vec![0xd282_7100, 0xf100_0400, 0x54ff_ffe1, RET],
            2,
            Want::F(OVER),
        ),
        ("SVE", std::vec![0x0420_0000, RET], 0, Want::F(UNL)),
        (
            "unallocated 0x02000000",
            std::vec![0x0200_0000, RET],
            0,
            Want::F(UNL)
        ),
        ("PACIASP", std::vec![0xd503_233f, RET], 0, Want::F(UNL)),
        ("vector ADD", std::vec![0x4ea2_8420, RET], 0, Want::F(UNL)),
        (
            "LDR X0, [X1, X2] (register offset)",
            std::vec![0xf862_6820, RET],
            0,
            Want::F(UNL)
        ),
        (
            "AND X0, X1, #reserved",
            std::vec![0x9240_fc20, RET],
            0,
            Want::F(UNL)
        ),
        (
            "BC.EQ (FEAT_HBC)",
            std::vec![0x5400_0010, RET],
            0,
            Want::F(UNL)
        ),
        (
            "LDTR (unprivileged)",
            std::vec![0xf840_0801, RET],
            0,
            Want::F(UNL)
        ),
    ];
    assert!(corpus.len() >= 40, "{}", corpus.len());
    for (what, block, at, expect) in &corpus {
        let want = expect.at(at * 4, block[*at]);
        assert_eq!(run(block), Err(want), "{what}");
    }
}

#[test]
fn the_display_names_class_offset_and_instruction() {
    let e = run(&[0xd503_43df, RET]).unwrap_err();
    assert_eq!(
        std::format!("{e}"),
        "offset 0x0: MSR DAIFSet, #3 (a PSTATE write) is not allowed"
    );
    let e = run(&[insn::nop(), 0xd518_c000, RET]).unwrap_err();
    assert_eq!(
        std::format!("{e}"),
        "offset 0x4: MSR VBAR_EL1, X0 (a system-register write) is not allowed"
    );
    let e = run(&[0xd45e_0000, RET]).unwrap_err();
    assert!(
        std::format!("{e}").starts_with("offset 0x0: HLT #0xf000 (an exception"),
        "{e}"
    );
    let e = run(&[0xd508_871f, RET]).unwrap_err();
    assert!(std::format!("{e}").contains("TLBI VMALLE1"), "{e}");
    let e = run(&[0x9100_001f, RET]).unwrap_err();
    assert!(std::format!("{e}").contains("MOV SP, X0"), "{e}");
    let e = run(&[0xd61f_0000]).unwrap_err();
    assert!(std::format!("{e}").contains("BR X0"), "{e}");
}

/// Every word the allow-list accepts must be one an independent decoder knows (`yaxpeax-arm`):
/// an unallocated encoding would be UNDEFINED on the board.
#[test]
fn the_allow_list_accepts_only_allocated_encodings() {
    use super::classify::{Op, classify};
    use yaxpeax_arch::{Decoder, U8Reader};
    use yaxpeax_arm::armv8::a64::InstDecoder;
    let decoder = InstDecoder::default();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut accepted = 0;
    let mut unknown = Vec::new();
    for _ in 0..2_000_000 {
        // xorshift64: a fixed seed, the same words on every run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let w = (seed >> 16) as u32;
        if matches!(classify(w), Op::Refuse(_)) {
            continue;
        }
        accepted += 1;
        let bytes = w.to_le_bytes();
        if decoder.decode(&mut U8Reader::new(&bytes)).is_err() {
            unknown.push(w);
        }
    }
    assert!(accepted > 100_000, "{accepted}");
    assert!(
        unknown.is_empty(),
        "{} accepted words yaxpeax cannot decode, e.g. {:#010x?}",
        unknown.len(),
        &unknown[..unknown.len().min(16)]
    );
}
