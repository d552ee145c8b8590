//! An independent A64 decoder for the few instruction classes the sanitizer reasons about.
//!
//! The sanitizer shares no code with `patcher`: a bug in one must not hide the same bug in the
//! other. Encodings are from the Arm ARM (DDI 0487) C4 "A64 Instruction Set Encoding"; each
//! test in this file checks a word produced by an assembler.

use crate::markers;

/// What a `DMB`/`DSB` orders (the `CRm<1:0>` field of its option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarrierKind {
    /// `ISH`, `SY`, `OSH`, `NSH`: all accesses.
    Full,
    /// `*ST`: stores before stores.
    Store,
    /// `*LD`: loads before loads and stores.
    Load,
}

/// A data cache operation by virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcOp {
    /// `DC CVAU`, `DC CVAC`, `DC CIVAC`, `DC CVAP`, `DC CVADP`: clean (at least to the PoU).
    Clean,
    /// `DC IVAC`: invalidate without clean; not a clean.
    Invalidate,
}

/// An instruction cache operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcOp {
    /// `IC IVAU, Xt`: one line, Inner Shareable broadcast on ARMv8.
    Ivau,
    /// `IC IALLUIS`: everything, Inner Shareable.
    AllInnerShareable,
    /// `IC IALLU`: everything, this core only.
    AllLocal,
}

/// A decoded instruction, as far as the model cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `DMB <option>`.
    Dmb(BarrierKind),
    /// `DSB <option>`.
    Dsb(BarrierKind),
    /// `ISB`.
    Isb,
    /// `DC <op>, Xt`.
    Dc(DcOp, u8),
    /// `IC <op>{, Xt}` (the register is 31 for the `ALL` forms).
    Ic(IcOp, u8),
    /// `ERET`, `ERETAA`, `ERETAB`.
    Eret,
    /// `SVC`, `HVC`, `SMC`: the exception they generate is a context synchronization event.
    ExceptionCall,
    /// `MSR VBAR_ELx, Xt` (`el` is 1 or 2).
    MsrVbar(u8, u8),
    /// A marker `HINT` (see [`crate::markers`]).
    Marker(u32),
    /// `TLBI`, or `MSR` to `SCTLR_ELx`, `TTBRn_ELx`, `TCR_ELx`: virtual-to-physical
    /// mappings may change.
    Translation,
    /// `CBZ`/`CBNZ`/`TBZ`/`TBNZ` on a register.
    BranchOnReg(u8),
    /// `B.cond`.
    BranchCond,
    /// An instruction that sets NZCV from one or two registers (`CMP`, `SUBS`, `ANDS`, `CCMP`...).
    SetFlags(u8, u8),
    /// A load or store (including atomics); see [`mem_of`].
    Mem,
    /// Anything else.
    Other,
}

/// Decodes one instruction word.
pub fn decode(w: u32) -> Insn {
    if let Some(m) = markers::marker_of(w) {
        return Insn::Marker(m);
    }
    let barrier = |crm: u32| match crm & 3 {
        3 => Some(BarrierKind::Full),
        2 => Some(BarrierKind::Store),
        1 => Some(BarrierKind::Load),
        _ => None, // SSBB, PSSBB and friends: no ordering the model uses.
    };
    match w & 0xFFFF_F0FF {
        0xD503_30BF => return barrier(w >> 8).map_or(Insn::Other, Insn::Dmb),
        0xD503_309F => return barrier(w >> 8).map_or(Insn::Other, Insn::Dsb),
        0xD503_30DF => return Insn::Isb,
        _ => {}
    }
    let rt = (w & 31) as u8;
    // SYS with CRn = 8 is TLBI; MSR (register) with CRn = 1 or 2 is SCTLR/CPACR/TTBR/TCR.
    if w & 0xFFF8_F000 == 0xD508_8000
        || (w & 0xFFF0_0000 == 0xD510_0000 && matches!((w >> 12) & 0xF, 1 | 2))
    {
        return Insn::Translation;
    }
    // SYS (L = 0): op1:CRn:CRm:op2 in bits 18..5.
    if w & 0xFFF8_0000 == 0xD508_0000 {
        return match w & 0x0007_FFE0 {
            0x0003_7B20 | 0x0003_7A20 | 0x0003_7E20 | 0x0003_7C20 | 0x0003_7D20 => {
                Insn::Dc(DcOp::Clean, rt)
            }
            0x0000_7620 => Insn::Dc(DcOp::Invalidate, rt),
            0x0003_7520 => Insn::Ic(IcOp::Ivau, rt),
            0x0000_7100 => Insn::Ic(IcOp::AllInnerShareable, rt),
            0x0000_7500 => Insn::Ic(IcOp::AllLocal, rt),
            _ => Insn::Other,
        };
    }
    match w & 0xFFFF_FFE0 {
        0xD518_C000 => return Insn::MsrVbar(1, rt),
        0xD51C_C000 => return Insn::MsrVbar(2, rt),
        _ => {}
    }
    if matches!(w, 0xD69F_03E0 | 0xD69F_0BFF | 0xD69F_0FFF) {
        return Insn::Eret;
    }
    if w & 0xFFE0_001C == 0xD400_0000 && w & 3 != 0 {
        return Insn::ExceptionCall;
    }
    if w & 0x7C00_0000 == 0x3400_0000 {
        return Insn::BranchOnReg(rt); // CBZ, CBNZ (x0110100) and TBZ, TBNZ (x0110110)
    }
    if w & 0xFF00_0010 == 0x5400_0000 {
        return Insn::BranchCond;
    }
    let rn = ((w >> 5) & 31) as u8;
    let rm = ((w >> 16) & 31) as u8;
    // ADDS/SUBS (shifted or extended register) and ANDS/BICS (shifted register).
    if w & 0x3F00_0000 == 0x2B00_0000 || w & 0x7F00_0000 == 0x6A00_0000 {
        return Insn::SetFlags(rn, rm);
    }
    // ADDS/SUBS (immediate), ANDS (immediate).
    if w & 0x3F00_0000 == 0x3100_0000 || w & 0x7F80_0000 == 0x7200_0000 {
        return Insn::SetFlags(rn, rn);
    }
    // CCMN/CCMP (register form has bit 11 clear).
    if w & 0x3FE0_0000 == 0x3A40_0000 {
        return Insn::SetFlags(rn, if w & (1 << 11) == 0 { rm } else { rn });
    }
    if w & 0x0A00_0000 == 0x0800_0000 {
        return Insn::Mem;
    }
    Insn::Other
}

/// For a data-processing instruction that writes `Rd` from registers: `Rd` and its source
/// registers (31 where a source is absent, or is the zero register); `None` for anything else.
/// A load's value reaches a branch or a maintenance address through these (`LDR; LDR; AND;
/// CBNZ`: WRC-inst-mod+cachesync+po+ctrlisb).
pub fn alu_sources(w: u32) -> Option<(u8, [u8; 2])> {
    let rd = (w & 31) as u8;
    let rn = ((w >> 5) & 31) as u8;
    let rm = ((w >> 16) & 31) as u8;
    // Logical and add/subtract (shifted or extended register), without flags: x0101010 and
    // x0001011 / x1001011 (the flag-setting forms are `SetFlags`).
    let logical = w & 0x1F00_0000 == 0x0A00_0000;
    let addsub = w & 0x1F00_0000 == 0x0B00_0000;
    // Data-processing (2 source): x0011010110; conditional select: x0011010100.
    let two_source = w & 0x5FE0_0000 == 0x1AC0_0000;
    let select = w & 0x1FE0_0000 == 0x1A80_0000;
    if logical || addsub || two_source || select {
        return Some((rd, [rn, rm]));
    }
    // Add/subtract (immediate), logical (immediate), bitfield (UBFX, SBFX, LSL #, ...).
    let imm = w & 0x1F00_0000 == 0x1100_0000
        || w & 0x1F80_0000 == 0x1200_0000
        || w & 0x1F80_0000 == 0x1300_0000;
    if imm {
        return Some((rd, [rn, 31]));
    }
    None
}

/// The ordering-relevant facts of a load/store instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// Load-acquire (`LDAR`, `LDAXR`, `LDAPR`, `CASA`, `SWPA`, `LDADDA`...).
    pub acquire: bool,
    /// Store-release (`STLR`, `STLXR`, `CASL`, `SWPL`...).
    pub release: bool,
    /// General-purpose registers the load writes (31 = none).
    pub dest: [u8; 2],
}

/// Decodes the load/store facts of `w` (all `false`/31 for anything that is not a load/store).
pub fn mem_of(w: u32) -> MemInfo {
    let none = MemInfo {
        dest: [31, 31],
        ..MemInfo::default()
    };
    if w & 0x0A00_0000 != 0x0800_0000 || w & (1 << 26) != 0 {
        return none; // not a load/store, or SIMD&FP (no GPR destination, no ordering)
    }
    let rt = (w & 31) as u8;
    let rt2 = ((w >> 10) & 31) as u8;
    let rs = ((w >> 16) & 31) as u8;
    let bit = |n: u32| w & (1 << n) != 0;
    match (w >> 27) & 7 {
        // Exclusives, load-acquire/store-release, CAS.
        0b001 if w & 0x3F00_0000 == 0x0800_0000 => {
            if bit(23) && bit(21) {
                // CAS{A}{L}: acquire = L (bit 22), release = o0 (bit 15); loads into Rs.
                MemInfo {
                    acquire: bit(22),
                    release: bit(15),
                    dest: [rs, 31],
                }
            } else if bit(22) {
                MemInfo {
                    acquire: bit(15),
                    release: false,
                    dest: [rt, if bit(21) { rt2 } else { 31 }],
                }
            } else {
                MemInfo {
                    release: bit(15),
                    ..none
                }
            }
        }
        // Load register (literal); opc = 11 is PRFM.
        0b011 if !bit(24) && (w >> 30) != 3 => MemInfo {
            dest: [rt, 31],
            ..none
        },
        // Load/store pair: L = bit 22.
        0b101 if bit(22) => MemInfo {
            dest: [rt, rt2],
            ..none
        },
        0b111 => {
            let opc = (w >> 22) & 3;
            let atomic = !bit(24) && bit(21) && (w >> 10) & 3 == 0;
            if atomic {
                // LDADD/SWP/LDAPR...: A = bit 23, R = bit 22.
                MemInfo {
                    acquire: bit(23),
                    release: bit(22),
                    dest: [rt, 31],
                }
            } else if opc == 0 || (w >> 30 == 3 && opc == 2) {
                none // store, or PRFM
            } else {
                MemInfo {
                    dest: [rt, 31],
                    ..none
                }
            }
        }
        _ => none,
    }
}

/// True for the words `CMODX` allows to be rewritten while another core may execute them:
/// `B`, `BL`, `BRK`, `HVC`, `ISB`, `NOP`, `SMC`, `SVC` (Arm ARM B2.2.5).
pub fn is_cmodx(w: u32) -> bool {
    w & 0x7C00_0000 == 0x1400_0000            // B, BL
        || w & 0xFFE0_001F == 0xD420_0000     // BRK
        || (w & 0xFFE0_001C == 0xD400_0000 && w & 3 != 0) // SVC, HVC, SMC
        || w == 0xD503_3FDF                   // ISB
        || w == 0xD503_201F // NOP
}

/// Dependencies of each load of a translated block on later instructions of the same block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadDeps {
    /// The loaded value decides a conditional branch of the block (ctrl dependency).
    pub ctrl: bool,
    /// The loaded value is the address of a later `DC`/`IC` in the block (addr dependency).
    pub addr_cmo: bool,
    /// The sanitizer must see what this load reads: it is an acquire, has one of the
    /// dependencies above, is followed by a `DMB`/`DSB`/`DC` in the block, or the block ends in an
    /// indirect branch (`BR`/`BLR`, which may enter code that starts with a barrier, like a
    /// flush stub). Other loads order nothing the model could use before the next block.
    pub follow: bool,
    /// A full `DMB`/`DSB` precedes the load in the block: what it orders before the load is
    /// ordered before a later store of another core that overwrites the value read (from-read,
    /// SB.RF+dmb+dmb.ish-cachesync-isb), so the load is followed (with `follow`).
    pub after_barrier: bool,
}

/// True for `BR Xn`/`BLR Xn`.
pub fn is_indirect_branch(w: u32) -> bool {
    w & 0xFFDF_FC1F == 0xD61F_0000
}

/// Finds, for each instruction of a block, whether it is a load whose value feeds the block's
/// conditional branch or a cache maintenance address. Only direct uses and uses through the
/// flags are followed; any other data flow counts as no dependency, which can only make the
/// sanitizer report more, never less. A store between the load and the branch also drops the
/// ctrl dependency (the model applies it from the load on).
pub fn analyse_block(words: &[u32]) -> Vec<LoadDeps> {
    let mut out = vec![LoadDeps::default(); words.len()];
    let indirect = words.last().is_some_and(|&w| is_indirect_branch(w));
    for (i, &w) in words.iter().enumerate() {
        let mem = mem_of(w);
        let barrier = words[i + 1..].iter().any(|&u| {
            matches!(
                decode(u),
                Insn::Dmb(BarrierKind::Full | BarrierKind::Load)
                    | Insn::Dsb(BarrierKind::Full | BarrierKind::Load)
                    // A `DC` is ordered after earlier loads of its line (2SM.B+cachesync-isb).
                    | Insn::Dc(..)
            )
        });
        out[i].after_barrier = decode(w) == Insn::Mem
            && mem.dest != [31, 31]
            && words[..i].iter().any(|&u| {
                matches!(
                    decode(u),
                    Insn::Dmb(BarrierKind::Full) | Insn::Dsb(BarrierKind::Full)
                )
            });
        out[i].follow = mem.acquire || barrier || indirect || out[i].after_barrier;
        let mut live: Vec<u8> = mem.dest.iter().copied().filter(|&r| r != 31).collect();
        if live.is_empty() || decode(w) != Insn::Mem {
            continue;
        }
        let mut flags_dep = false;
        let mut stored = false;
        for &u in &words[i + 1..] {
            match decode(u) {
                Insn::BranchOnReg(r) if live.contains(&r) && !stored => out[i].ctrl = true,
                Insn::BranchCond if flags_dep && !stored => out[i].ctrl = true,
                Insn::SetFlags(a, b) => flags_dep = live.contains(&a) || live.contains(&b),
                Insn::Dc(_, r) | Insn::Ic(IcOp::Ivau, r) if live.contains(&r) => {
                    out[i].addr_cmo = true
                }
                Insn::Mem => {
                    let m = mem_of(u);
                    if m.dest == [31, 31] {
                        stored = true;
                    }
                    live.retain(|r| !m.dest.contains(r));
                }
                Insn::Other => match alu_sources(u) {
                    // The value flows on into Rd (or Rd is overwritten by other values).
                    Some((rd, src)) if rd != 31 && src.iter().any(|r| live.contains(r)) => {
                        if !live.contains(&rd) {
                            live.push(rd);
                        }
                    }
                    // Most other data-processing instructions write Rd = bits 4..0.
                    _ => {
                        let rd = (u & 31) as u8;
                        live.retain(|&r| r != rd);
                    }
                },
                _ => {}
            }
            if live.is_empty() {
                break;
            }
        }
        out[i].follow |= out[i].ctrl || out[i].addr_cmo;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Words below were assembled with `llvm-mc -triple=aarch64 -show-encoding`.
    #[test]
    fn barriers() {
        assert_eq!(decode(0xD503_3BBF), Insn::Dmb(BarrierKind::Full)); // dmb ish
        assert_eq!(decode(0xD503_39BF), Insn::Dmb(BarrierKind::Load)); // dmb ishld
        assert_eq!(decode(0xD503_3ABF), Insn::Dmb(BarrierKind::Store)); // dmb ishst
        assert_eq!(decode(0xD503_3FBF), Insn::Dmb(BarrierKind::Full)); // dmb sy
        assert_eq!(decode(0xD503_3B9F), Insn::Dsb(BarrierKind::Full)); // dsb ish
        assert_eq!(decode(0xD503_3A9F), Insn::Dsb(BarrierKind::Store)); // dsb ishst
        assert_eq!(decode(0xD503_3D9F), Insn::Dsb(BarrierKind::Load)); // dsb ld
        assert_eq!(decode(0xD503_3FDF), Insn::Isb);
    }

    #[test]
    fn data_flow_through_alu_instructions() {
        assert_eq!(alu_sources(0x0A04_0042), Some((2, [2, 4]))); // and w2, w2, w4
        assert_eq!(alu_sources(0x8B02_0020), Some((0, [1, 2]))); // add x0, x1, x2
        assert_eq!(alu_sources(0x9100_1020), Some((0, [1, 31]))); // add x0, x1, #4
        assert_eq!(alu_sources(0xAA01_03E3), Some((3, [31, 1]))); // mov x3, x1
        assert_eq!(alu_sources(0xD350_4CA6), Some((6, [5, 31]))); // ubfx x6, x5, #16, #4
        assert_eq!(alu_sources(0xD280_0029), None); // mov x9, #1
        // WRC-inst-mod+cachesync+po+ctrlisb's P2: both loads feed the CBNZ through the AND.
        let block = [
            0xB940_0062, // ldr w2, [x3]
            0xB940_00A4, // ldr w4, [x5]
            0x0A04_0042, // and w2, w2, w4
            0x3500_0022, // cbnz w2, .+4
        ];
        let deps = analyse_block(&block);
        assert!(deps[0].ctrl && deps[1].ctrl);
        // A register overwritten from unrelated values carries nothing on.
        let block = [0xB940_0062, 0x9100_1062, 0x3500_0022]; // ldr w2; add x2, x3, #4; cbnz
        assert!(!analyse_block(&block)[0].ctrl);
    }

    #[test]
    fn cache_maintenance() {
        assert_eq!(decode(0xD50B_7B21), Insn::Dc(DcOp::Clean, 1)); // dc cvau, x1
        assert_eq!(decode(0xD50B_7E22), Insn::Dc(DcOp::Clean, 2)); // dc civac, x2
        assert_eq!(decode(0xD50B_7A23), Insn::Dc(DcOp::Clean, 3)); // dc cvac, x3
        assert_eq!(decode(0xD508_7620), Insn::Dc(DcOp::Invalidate, 0)); // dc ivac, x0
        assert_eq!(decode(0xD50B_7525), Insn::Ic(IcOp::Ivau, 5)); // ic ivau, x5
        assert_eq!(decode(0xD508_711F), Insn::Ic(IcOp::AllInnerShareable, 31)); // ic ialluis
        assert_eq!(decode(0xD508_751F), Insn::Ic(IcOp::AllLocal, 31)); // ic iallu
        assert_eq!(decode(0xD50B_7421), Insn::Other, "dc zva is not a clean");
    }

    #[test]
    fn exceptions_and_system() {
        assert_eq!(decode(0xD69F_03E0), Insn::Eret);
        assert_eq!(decode(0xD400_0001), Insn::ExceptionCall); // svc #0
        assert_eq!(decode(0xD400_0002), Insn::ExceptionCall); // hvc #0
        assert_eq!(decode(0xD400_0003), Insn::ExceptionCall); // smc #0
        assert_eq!(decode(0xD518_C000), Insn::MsrVbar(1, 0)); // msr vbar_el1, x0
        assert_eq!(decode(0xD51C_C001), Insn::MsrVbar(2, 1)); // msr vbar_el2, x1
        assert_eq!(decode(0xD503_201F), Insn::Other, "nop");
        assert_eq!(decode(0xD508_871F), Insn::Translation); // tlbi vmalle1
        assert_eq!(decode(0xD518_2000), Insn::Translation); // msr ttbr0_el1, x0
        assert_eq!(decode(0xD518_1000), Insn::Translation); // msr sctlr_el1, x0
        assert_eq!(decode(0xD518_A200), Insn::Other); // msr mair_el1, x0
        assert_eq!(decode(0xD503_2E1F), Insn::Marker(markers::MARK_PUBLISHED));
    }

    #[test]
    fn branches_and_flags() {
        assert_eq!(decode(0x3400_0040), Insn::BranchOnReg(0)); // cbz w0, .+8
        assert_eq!(decode(0xB500_0041), Insn::BranchOnReg(1)); // cbnz x1, .+8
        assert_eq!(decode(0x3600_0042), Insn::BranchOnReg(2)); // tbz w2, #0, .+8
        assert_eq!(decode(0x5400_0040), Insn::BranchCond); // b.eq .+8
        assert_eq!(decode(0xEB02_003F), Insn::SetFlags(1, 2)); // cmp x1, x2
        assert_eq!(decode(0xF100_043F), Insn::SetFlags(1, 1)); // cmp x1, #1
        assert_eq!(decode(0x14000010), Insn::Other); // b
    }

    #[test]
    fn loads_and_stores() {
        let ldar = mem_of(0xC8DF_FC62); // ldar x2, [x3]
        assert!(ldar.acquire && !ldar.release && ldar.dest[0] == 2);
        let stlr = mem_of(0xC89F_FC62); // stlr x2, [x3]
        assert!(stlr.release && !stlr.acquire && stlr.dest == [31, 31]);
        let ldapr = mem_of(0xF8BF_C062); // ldapr x2, [x3]
        assert!(ldapr.acquire && ldapr.dest[0] == 2);
        let ldr = mem_of(0xF940_0062); // ldr x2, [x3]
        assert!(!ldr.acquire && ldr.dest[0] == 2);
        assert_eq!(mem_of(0xF900_0062).dest, [31, 31]); // str x2, [x3]
        assert_eq!(mem_of(0xA940_07E0).dest, [0, 1]); // ldp x0, x1, [sp]
        assert_eq!(mem_of(0x5800_0040).dest, [0, 31]); // ldr x0, literal
        assert!(mem_of(0xC85F_7C62).dest[0] == 2 && !mem_of(0xC85F_7C62).acquire); // ldxr
        assert!(mem_of(0xC85F_FC62).acquire); // ldaxr x2, [x3]
        assert_eq!(decode(0xF940_0062), Insn::Mem);
    }

    #[test]
    fn cmodx_set() {
        for w in [
            0x1400_0010,
            0x9400_0010,
            0xD420_0000,
            0xD400_0002,
            0xD503_3FDF,
            0xD503_201F,
        ] {
            assert!(is_cmodx(w), "{w:#x}");
        }
        for w in [
            0xD280_0029,
            0xD65F_03C0,
            0xD503_2E1F,
            0x5400_0040,
            0xF940_0062,
        ] {
            assert!(!is_cmodx(w), "{w:#x}"); // mov, ret, marker, b.eq, ldr
        }
    }

    #[test]
    fn block_dependencies() {
        // ldr w2,[x3]; cbnz w2 -> ctrl
        assert!(analyse_block(&[0xB940_0062, 0x3500_0042])[0].ctrl);
        // ldr x1,[x3]; cmp x1,x2; b.eq -> ctrl (miniJit02)
        assert!(analyse_block(&[0xF940_0061, 0xEB02_003F, 0x5400_0040])[0].ctrl);
        // ldr x1,[x3]; br x1 -> no dependency (miniJit01), but followed (indirect branch)
        let d = analyse_block(&[0xF940_0061, 0xD61F_0020])[0];
        assert!(!d.ctrl && !d.addr_cmo && d.follow);
        // ldr x1,[x3]; add; b -> not followed; ldr; dmb ish -> followed; ldar -> followed
        assert!(!analyse_block(&[0xF940_0061, 0x9100_0421, 0x1400_0002])[0].follow);
        assert!(analyse_block(&[0xF940_0061, 0xD503_3BBF])[0].follow);
        assert!(analyse_block(&[0xC8DF_FC62])[0].follow);
        assert!(is_indirect_branch(0xD63F_0020) && !is_indirect_branch(0xD65F_03C0)); // blr, ret
        // ldr x1,[x3]; ic ivau, x1 -> addr
        assert!(analyse_block(&[0xF940_0061, 0xD50B_7521])[0].addr_cmo);
        // ldr x1,[x3]; mov x1,#0; cbz x1 -> killed
        assert!(!analyse_block(&[0xF940_0061, 0xD280_0001, 0xB400_0041])[0].ctrl);
        // ldr w2,[x3]; str w9,[x4]; cbnz w2 -> a store in between drops it
        assert!(!analyse_block(&[0xB940_0062, 0xB900_0089, 0x3500_0042])[0].ctrl);
    }
}
