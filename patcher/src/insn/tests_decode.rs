//! Host tests of the decoder (the CMODX predicate, PC-relative classification against
//! `yaxpeax-arm` over a deterministic sweep of words, the reference kinds `check` uses) and of
//! the encoders the flush stub adds.

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Operand};

use std::format;

use super::tests::yax;
use super::*;

#[test]
fn cmodx_set() {
    for w in [
        b(0x1000).unwrap(),
        bl(-8).unwrap(),
        brk(1),
        hvc(0),
        smc(0),
        svc(0),
        ISB,
        NOP,
    ] {
        assert!(is_cmodx_safe(w), "{w:#010x} {}", yax(w));
    }
    for w in [
        br(Reg::x(1)).unwrap(),
        ret(Reg::LR).unwrap(),
        b_cond(Cond::Eq, 8).unwrap(),
        cbz(Width::X, Reg::x(0), 8, false).unwrap(),
        ldr_literal(Width::X, Reg::x(0), 8).unwrap(),
        dsb(Barrier::Sy),
        dmb(Barrier::Ish),
        0xd503_203f, // YIELD: a hint, but not NOP
        movz(Width::X, Reg::x(0), 1, 0).unwrap(),
        0,
    ] {
        assert!(!is_cmodx_safe(w), "{w:#010x} {}", yax(w));
    }
}

/// A tiny deterministic generator, so the sweep below is the same on every run.
fn xorshift(state: &mut u64) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 16) as u32
}

/// The decoder's PC-relative classification must agree with an independent disassembler on
/// every word that has a PC-relative operand: this is what `check` relies on to be complete.
#[test]
fn pc_relative_classification_agrees_with_yaxpeax() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut seen = 0;
    for i in 0..400_000u32 {
        // Half the words uniformly random, half forced into the branch/PC-relative quadrants.
        let mut w = xorshift(&mut state);
        if i % 2 == 1 {
            w = (w & 0xe3ff_ffff) | 0x1000_0000;
        }
        let bytes = w.to_le_bytes();
        let Ok(y) = InstDecoder::default().decode(&mut U8Reader::new(&bytes)) else {
            continue;
        };
        let y_off = y.operands.iter().find_map(|op| match op {
            Operand::PCOffset(o) => Some(*o),
            _ => None,
        });
        let ours = decode(w);
        let prfm = matches!(
            ours,
            Insn::LdrLiteral {
                kind: LiteralKind::Prfm,
                ..
            }
        );
        match (y_off, ours.pc_ref()) {
            (Some(o), Some(r)) => {
                seen += 1;
                assert_eq!(r.offset, o, "{w:#010x} {y}");
            }
            (Some(_), None) => assert!(prfm, "{w:#010x} {y}: PC-relative but not classified"),
            (None, Some(r)) => panic!("{w:#010x} {y}: classified as {r:?} but has no PC offset"),
            (None, None) => {}
        }
    }
    assert!(seen > 10_000, "too few PC-relative words exercised: {seen}");
}

#[test]
fn pc_ref_kinds() {
    let r = |w| decode(w).pc_ref();
    assert_eq!(
        r(bl(-8).unwrap()),
        Some(PcRef {
            kind: PcRefKind::Call,
            offset: -8
        })
    );
    assert_eq!(
        r(tbz(Reg::x(0), 3, 12, true).unwrap()),
        Some(PcRef {
            kind: PcRefKind::Branch,
            offset: 12
        })
    );
    assert_eq!(
        r(ldr_literal(Width::X, Reg::x(0), 16).unwrap()),
        Some(PcRef {
            kind: PcRefKind::Load { size: 8 },
            offset: 16
        })
    );
    // LDR Q0, literal: 16 bytes.
    assert_eq!(
        r(0x9c00_0040),
        Some(PcRef {
            kind: PcRefKind::Load { size: 16 },
            offset: 8
        })
    );
    assert_eq!(
        r(adrp_pages(Reg::x(0), -2).unwrap()),
        Some(PcRef {
            kind: PcRefKind::Page,
            offset: -8192
        })
    );
    assert_eq!(r(0xd800_0041), None); // PRFM literal
    assert_eq!(r(br(Reg::x(0)).unwrap()), None);
}

#[test]
fn loads_stores_and_register_arithmetic_round_trip() {
    for (t, n) in [(0u8, 1u8), (9, 16), (17, 16), (30, 29)] {
        let (rt, rn) = (Reg::x(t), Reg::x(n));
        for off in [0i64, 8, 16, 32, 0x7ff8, LDR_IMM_MAX] {
            let w = ldr_imm(rt, rn, off).unwrap();
            let want = if off == 0 {
                format!("ldr x{t}, [x{n}]")
            } else {
                format!("ldr x{t}, [x{n}, #{off:#x}]")
            };
            assert_eq!(yax(w), want);
            assert_eq!(
                decode(w),
                Insn::LdrImm {
                    rt,
                    rn,
                    offset: off as u16
                }
            );
        }
        assert_eq!(yax(stlr(rt, rn)), format!("stlr x{t}, [x{n}]"));
        assert_eq!(decode(stlr(rt, rn)), Insn::Stlr { rt, rn });
        let rm = Reg::x(11);
        assert_eq!(yax(add_reg(rt, rn, rm)), format!("add x{t}, x{n}, x11"));
        assert_eq!(decode(add_reg(rt, rn, rm)), Insn::AddReg { rd: rt, rn, rm });
        assert_eq!(yax(cmp_reg(rn, rm)), format!("cmp x{n}, x11"));
        assert_eq!(decode(cmp_reg(rn, rm)), Insn::CmpReg { rn, rm });
    }
    assert_eq!(
        ldr_imm(Reg::x(0), Reg::x(1), 12),
        Err(EncodeError::Misaligned {
            offset: 12,
            align: 8
        })
    );
    assert_eq!(
        ldr_imm(Reg::x(0), Reg::x(1), LDR_IMM_MAX + 8),
        Err(EncodeError::OutOfRange {
            offset: LDR_IMM_MAX + 8,
            min: 0,
            max: LDR_IMM_MAX
        })
    );
    assert!(matches!(
        ldr_imm(Reg::x(0), Reg::x(1), -8),
        Err(EncodeError::OutOfRange { .. })
    ));
}
