//! Host tests: every encoder against the independent `yaxpeax-arm` disassembler and against
//! our own decoder, over many offsets including the edges of each range.

use std::format;
use std::string::String;
use std::vec::Vec;

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::{InstDecoder, Instruction};

use super::*;

fn yax_insn(w: u32) -> Instruction {
    let bytes = w.to_le_bytes();
    let mut reader = U8Reader::new(&bytes);
    InstDecoder::default()
        .decode(&mut reader)
        .unwrap_or_else(|e| panic!("yaxpeax cannot decode {w:#010x}: {e:?}"))
}

pub(super) fn yax(w: u32) -> String {
    format!("{}", yax_insn(w))
}

fn rel(off: i64) -> String {
    if off < 0 {
        format!("$-{:#x}", -off)
    } else {
        format!("$+{off:#x}")
    }
}

fn reg(width: Width, r: Reg) -> String {
    match (width, r.number()) {
        (Width::X, 31) => "xzr".into(),
        (Width::W, 31) => "wzr".into(),
        (Width::X, n) => format!("x{n}"),
        (Width::W, n) => format!("w{n}"),
    }
}

/// The edges of `range` and 256 evenly spread values inside it, all multiples of `align`.
fn offsets((min, max): (i64, i64), align: i64) -> Vec<i64> {
    let mut v = std::vec![min, min + align, -align, 0, align, max - align, max];
    let step = (max - min) / 256;
    for k in 1..256 {
        let o = min + k * step;
        v.push(o - o.rem_euclid(align));
    }
    v
}

const REGS: [u8; 5] = [0, 1, 7, 29, 30];

#[test]
fn b_and_bl_round_trip() {
    for o in offsets(B_RANGE, 4) {
        let w = b(o).unwrap();
        assert_eq!(yax(w), format!("b {}", rel(o)));
        assert_eq!(decode(w), Insn::B { offset: o });
        let w = bl(o).unwrap();
        assert_eq!(yax(w), format!("bl {}", rel(o)));
        assert_eq!(decode(w), Insn::Bl { offset: o });
    }
    assert_eq!(b(0), Ok(0x1400_0000));
    assert_eq!(bl(-4), Ok(0x97ff_ffff));
}

#[test]
fn b_errors_are_typed() {
    let (min, max) = B_RANGE;
    assert_eq!(min, -0x800_0000);
    assert_eq!(max, 0x7ff_fffc);
    let oor = |offset| EncodeError::OutOfRange { offset, min, max };
    assert_eq!(b(max + 4), Err(oor(max + 4)));
    assert_eq!(b(min - 4), Err(oor(min - 4)));
    assert_eq!(bl(1 << 40), Err(oor(1 << 40)));
    assert_eq!(
        b(2),
        Err(EncodeError::Misaligned {
            offset: 2,
            align: 4
        })
    );
    assert_eq!(
        bl(-1),
        Err(EncodeError::Misaligned {
            offset: -1,
            align: 4
        })
    );
}

#[test]
fn b_cond_round_trip() {
    const NAMES: [&str; 16] = [
        "eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al",
        "nv",
    ];
    for (cond, name) in Cond::ALL.into_iter().zip(NAMES) {
        for o in offsets(COND_RANGE, 4) {
            let w = b_cond(cond, o).unwrap();
            assert_eq!(yax(w), format!("b.{name} {}", rel(o)));
            assert_eq!(
                decode(w),
                Insn::BCond {
                    cond,
                    offset: o,
                    consistent: false
                }
            );
        }
    }
    assert!(matches!(
        b_cond(Cond::Eq, COND_RANGE.1 + 4),
        Err(EncodeError::OutOfRange { .. })
    ));
}

#[test]
fn cbz_cbnz_round_trip() {
    for width in [Width::W, Width::X] {
        for r in REGS.into_iter().chain([31]) {
            let rt = Reg::new(r).unwrap();
            for o in offsets(COND_RANGE, 4) {
                for nonzero in [false, true] {
                    let w = cbz(width, rt, o, nonzero).unwrap();
                    let m = if nonzero { "cbnz" } else { "cbz" };
                    assert_eq!(yax(w), format!("{m} {}, {}", reg(width, rt), rel(o)));
                    assert_eq!(
                        decode(w),
                        Insn::Cbz {
                            width,
                            rt,
                            offset: o,
                            nonzero
                        }
                    );
                }
            }
        }
    }
    assert!(matches!(
        cbz(Width::X, Reg::x(0), COND_RANGE.0 - 4, false),
        Err(EncodeError::OutOfRange { .. })
    ));
    assert!(matches!(
        cbz(Width::X, Reg::x(0), 6, true),
        Err(EncodeError::Misaligned { .. })
    ));
}

#[test]
fn tbz_tbnz_round_trip() {
    for bit in [0u8, 1, 5, 31, 32, 40, 63] {
        let width = if bit < 32 { Width::W } else { Width::X };
        for o in offsets(TB_RANGE, 4) {
            for nonzero in [false, true] {
                let rt = Reg::x(3);
                let w = tbz(rt, bit, o, nonzero).unwrap();
                let m = if nonzero { "tbnz" } else { "tbz" };
                assert_eq!(
                    yax(w),
                    format!("{m} {}, #{bit:#x}, {}", reg(width, rt), rel(o))
                );
                assert_eq!(
                    decode(w),
                    Insn::Tbz {
                        rt,
                        bit,
                        offset: o,
                        nonzero
                    }
                );
            }
        }
    }
    assert_eq!(tbz(Reg::x(0), 64, 0, false), Err(EncodeError::BadBit(64)));
    assert_eq!(
        tbz(Reg::x(0), 0, TB_RANGE.1 + 4, false),
        Err(EncodeError::OutOfRange {
            offset: 0x8000,
            min: -0x8000,
            max: 0x7ffc
        })
    );
}

#[test]
fn register_branches() {
    for n in 0..=30 {
        let rn = Reg::x(n);
        assert_eq!(yax(br(rn).unwrap()), format!("br x{n}"));
        assert_eq!(yax(blr(rn).unwrap()), format!("blr x{n}"));
        let want = if n == 30 {
            "ret".into()
        } else {
            format!("ret x{n}")
        };
        assert_eq!(yax(ret(rn).unwrap()), want);
        assert_eq!(decode(br(rn).unwrap()), Insn::Br { rn });
        assert_eq!(decode(blr(rn).unwrap()), Insn::Blr { rn });
        assert_eq!(decode(ret(rn).unwrap()), Insn::Ret { rn });
    }
    assert_eq!(ret(Reg::LR), Ok(0xd65f_03c0));
    assert_eq!(br(Reg::ZR_SP), Err(EncodeError::BadRegister(31)));
    assert_eq!(blr(Reg::ZR_SP), Err(EncodeError::BadRegister(31)));
}

#[test]
fn ldr_literal_round_trip() {
    for width in [Width::W, Width::X] {
        for r in REGS {
            let rt = Reg::x(r);
            for o in offsets(COND_RANGE, 4) {
                let w = ldr_literal(width, rt, o).unwrap();
                assert_eq!(yax(w), format!("ldr {}, {}", reg(width, rt), rel(o)));
                let kind = match width {
                    Width::W => LiteralKind::W,
                    Width::X => LiteralKind::X,
                };
                assert_eq!(
                    decode(w),
                    Insn::LdrLiteral {
                        kind,
                        rt,
                        offset: o
                    }
                );
            }
        }
    }
    assert!(matches!(
        ldr_literal(Width::X, Reg::x(0), 0x10_0000),
        Err(EncodeError::OutOfRange { .. })
    ));
}

#[test]
fn adr_adrp_round_trip() {
    for o in offsets(ADR_RANGE, 1).into_iter().chain([1, 2, 3, -1, -3]) {
        let w = adr(Reg::x(5), o).unwrap();
        assert_eq!(yax(w), format!("adr x5, {}", rel(o)));
        assert_eq!(
            decode(w),
            Insn::Adr {
                rd: Reg::x(5),
                offset: o
            }
        );
    }
    for p in offsets(ADRP_PAGE_RANGE, 1) {
        let w = adrp_pages(Reg::x(9), p).unwrap();
        assert_eq!(yax(w), format!("adrp x9, {}", rel(p * 4096)));
        assert_eq!(
            decode(w),
            Insn::Adrp {
                rd: Reg::x(9),
                pages: p
            }
        );
    }
    assert!(matches!(
        adr(Reg::x(0), 1 << 20),
        Err(EncodeError::OutOfRange { .. })
    ));
    assert!(matches!(
        adrp_pages(Reg::x(0), -(1 << 20) - 1),
        Err(EncodeError::OutOfRange { .. })
    ));
    // From the last word of one page to the first of the next: one page up.
    assert_eq!(
        adrp(Reg::x(0), 0x4020_0ffc, 0x4020_1000),
        adrp_pages(Reg::x(0), 1)
    );
    assert_eq!(
        adrp(Reg::x(0), 0x4020_1000, 0x4020_0fff),
        adrp_pages(Reg::x(0), -1)
    );
    assert!(matches!(
        adrp(Reg::x(0), 0, 1 << 40),
        Err(EncodeError::OutOfRange { .. })
    ));
}

#[test]
fn add_imm_round_trip() {
    for width in [Width::W, Width::X] {
        for imm in [1u16, 2, 0x7ff, 0xfff] {
            for shift12 in [false, true] {
                let (rd, rn) = (Reg::x(1), Reg::x(2));
                let w = add_imm(width, rd, rn, imm, shift12).unwrap();
                let lsl = if shift12 { ", lsl #12" } else { "" };
                assert_eq!(
                    yax(w),
                    format!("add {}, {}, #{imm:#x}{lsl}", reg(width, rd), reg(width, rn))
                );
                assert_eq!(
                    decode(w),
                    Insn::AddImm {
                        width,
                        rd,
                        rn,
                        imm12: imm,
                        shift12
                    }
                );
            }
        }
    }
    assert_eq!(
        yax(add_imm(Width::X, Reg::ZR_SP, Reg::ZR_SP, 16, false).unwrap()),
        "add sp, sp, #0x10"
    );
    assert_eq!(
        add_imm(Width::X, Reg::x(0), Reg::x(0), 0x1000, false),
        Err(EncodeError::ImmediateTooLarge {
            value: 0x1000,
            max: 0xfff
        })
    );
}

#[test]
fn movz_movk_round_trip() {
    for (width, shifts) in [(Width::W, &[0u8, 16][..]), (Width::X, &[0, 16, 32, 48][..])] {
        let yw = match width {
            Width::W => "W",
            Width::X => "X",
        };
        for &shift in shifts {
            for imm in [0u16, 1, 0x1234, 0xffff] {
                for r in REGS {
                    let rd = Reg::x(r);
                    let w = movz(width, rd, imm, shift).unwrap();
                    let i = yax_insn(w);
                    assert_eq!(format!("{:?}", i.opcode), "MOVZ");
                    assert_eq!(
                        format!("{:?}", &i.operands[..2]),
                        format!("[Register({yw}, {r}), ImmShift({imm}, {shift})]")
                    );
                    assert_eq!(
                        decode(w),
                        Insn::Movz {
                            width,
                            rd,
                            imm16: imm,
                            shift
                        }
                    );
                    let w = movk(width, rd, imm, shift).unwrap();
                    let i = yax_insn(w);
                    assert_eq!(format!("{:?}", i.opcode), "MOVK");
                    assert_eq!(
                        format!("{:?}", &i.operands[..2]),
                        format!("[Register({yw}, {r}), ImmShift({imm}, {shift})]")
                    );
                    assert_eq!(
                        decode(w),
                        Insn::Movk {
                            width,
                            rd,
                            imm16: imm,
                            shift
                        }
                    );
                }
            }
        }
    }
    assert_eq!(
        movz(Width::W, Reg::x(0), 1, 32),
        Err(EncodeError::BadShift(32))
    );
    assert_eq!(
        movk(Width::X, Reg::x(0), 1, 8),
        Err(EncodeError::BadShift(8))
    );
    assert_eq!(
        movk(Width::X, Reg::x(0), 1, 64),
        Err(EncodeError::BadShift(64))
    );
}

/// Runs a MOVZ/MOVK sequence as the hardware would.
fn run_mov(words: &[u32]) -> u64 {
    let mut x = 0u64;
    for &w in words {
        match decode(w) {
            Insn::Movz { imm16, shift, .. } => x = (imm16 as u64) << shift,
            Insn::Movk { imm16, shift, .. } => {
                x = (x & !(0xffff << shift)) | ((imm16 as u64) << shift)
            }
            other => panic!("not a move: {other:?}"),
        }
    }
    x
}

#[test]
fn mov_u64_loads_exact_values() {
    for (value, len) in [
        (0u64, 1),
        (0xffff, 1),
        (0x1_0000, 2),
        (0x4020_0000, 2),
        (0xffff_0000_0000_0000, 2),
        (0x0000_1234_0000_5678, 2),
        (0x1234_5678_9abc_def0, 4),
        (u64::MAX, 4),
    ] {
        let words = mov_u64(Reg::x(17), value);
        assert_eq!(words.len(), len, "{value:#x}");
        assert_eq!(run_mov(&words), value);
        assert!(words.iter().all(|&w| w & 31 == 17));
    }
}

#[test]
fn barriers_round_trip() {
    const NAMES: [&str; 12] = [
        "oshld", "oshst", "osh", "nshld", "nshst", "nsh", "ishld", "ishst", "ish", "ld", "st", "sy",
    ];
    for (opt, name) in Barrier::ALL.into_iter().zip(NAMES) {
        assert_eq!(yax(dsb(opt)), format!("dsb {name}"));
        assert_eq!(yax(dmb(opt)), format!("dmb {name}"));
        assert_eq!(decode(dsb(opt)), Insn::Dsb(opt));
        assert_eq!(decode(dmb(opt)), Insn::Dmb(opt));
    }
    assert_eq!(dsb(Barrier::Ish), 0xd503_3b9f);
    assert_eq!(dmb(Barrier::Ish), 0xd503_3bbf);
    assert_eq!(yax(isb()), "isb");
    assert_eq!(yax(nop()), "nop");
    assert_eq!(decode(ISB), Insn::Isb);
    assert_eq!(decode(NOP), Insn::Nop);
    // SSBB and PSSBB share the DSB encoding space but are not DSBs.
    assert_eq!(decode(0xd503_309f), Insn::Other(0xd503_309f));
    assert_eq!(decode(0xd503_349f), Insn::Other(0xd503_349f));
}

#[test]
fn cache_maintenance_round_trip() {
    for r in REGS {
        let rt = Reg::x(r);
        for (op, crm) in [(DcOp::Cvau, 11), (DcOp::Cvac, 10), (DcOp::Civac, 14)] {
            assert_eq!(yax(dc(op, rt)), format!("sys #0x3, c7, c{crm}, #0x1, x{r}"));
            assert_eq!(decode(dc(op, rt)), Insn::Dc { op, rt });
        }
        assert_eq!(
            yax(ic(IcOp::Ivau, rt)),
            format!("sys #0x3, c7, c5, #0x1, x{r}")
        );
        assert_eq!(decode(ic(IcOp::Ivau, rt)), Insn::Ic { op: IcOp::Ivau, rt });
    }
    assert_eq!(
        yax(ic(IcOp::Iallu, Reg::x(3))),
        "sys #0x0, c7, c5, #0x0, xzr"
    );
    assert_eq!(
        yax(ic(IcOp::Ialluis, Reg::x(3))),
        "sys #0x0, c7, c1, #0x0, xzr"
    );
    assert_eq!(dc(DcOp::Cvau, Reg::x(0)), 0xd50b_7b20);
    assert_eq!(ic(IcOp::Ivau, Reg::x(0)), 0xd50b_7520);
}

#[test]
fn exception_generation_round_trip() {
    for imm in [0u16, 1, 0x1234, 0xffff] {
        assert_eq!(yax(brk(imm)), format!("brk #{imm:#x}"));
        assert_eq!(yax(svc(imm)), format!("svc #{imm:#x}"));
        assert_eq!(yax(hvc(imm)), format!("hvc #{imm:#x}"));
        assert_eq!(yax(smc(imm)), format!("smc #{imm:#x}"));
        assert_eq!(decode(brk(imm)), Insn::Brk(imm));
        assert_eq!(decode(svc(imm)), Insn::Svc(imm));
        assert_eq!(decode(hvc(imm)), Insn::Hvc(imm));
        assert_eq!(decode(smc(imm)), Insn::Smc(imm));
    }
}
