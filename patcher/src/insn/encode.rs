//! Encoders: one function per instruction, each refusing what it cannot encode exactly.
//!
//! Offsets are bytes from the instruction's own address. Ranges are the architecture's: a
//! 26-bit word offset for `B`/`BL` (±128 MiB), 19 bits for `B.cond`, `CBZ` and literal loads
//! (±1 MiB), 14 bits for `TBZ` (±32 KiB), 21 bits of bytes for `ADR` and of pages for `ADRP`.

use super::{Barrier, Cond, DcOp, EncodeError, IcOp, Reg, Width};

/// Range of `B`/`BL` offsets in bytes.
pub const B_RANGE: (i64, i64) = (-(1 << 27), (1 << 27) - 4);
/// Range of `B.cond`, `CBZ`/`CBNZ` and `LDR (literal)` offsets in bytes.
pub const COND_RANGE: (i64, i64) = (-(1 << 20), (1 << 20) - 4);
/// Range of `TBZ`/`TBNZ` offsets in bytes.
pub const TB_RANGE: (i64, i64) = (-(1 << 15), (1 << 15) - 4);
/// Range of `ADR` offsets in bytes.
pub const ADR_RANGE: (i64, i64) = (-(1 << 20), (1 << 20) - 1);
/// Range of `ADRP` offsets in 4 KiB pages.
pub const ADRP_PAGE_RANGE: (i64, i64) = (-(1 << 20), (1 << 20) - 1);

/// `offset` as a field of `bits` bits after dividing by `align`, or why not.
const fn field(offset: i64, align: i64, range: (i64, i64), bits: u32) -> Result<u32, EncodeError> {
    if offset % align != 0 {
        return Err(EncodeError::Misaligned { offset, align });
    }
    if offset < range.0 || offset > range.1 {
        return Err(EncodeError::OutOfRange {
            offset,
            min: range.0,
            max: range.1,
        });
    }
    Ok(((offset / align) as u32) & ((1u32 << bits) - 1))
}

/// `B offset`.
pub const fn b(offset: i64) -> Result<u32, EncodeError> {
    match field(offset, 4, B_RANGE, 26) {
        Ok(imm) => Ok(0x1400_0000 | imm),
        Err(e) => Err(e),
    }
}

/// `BL offset`.
pub const fn bl(offset: i64) -> Result<u32, EncodeError> {
    match field(offset, 4, B_RANGE, 26) {
        Ok(imm) => Ok(0x9400_0000 | imm),
        Err(e) => Err(e),
    }
}

/// `B.cond offset`.
pub const fn b_cond(cond: Cond, offset: i64) -> Result<u32, EncodeError> {
    match field(offset, 4, COND_RANGE, 19) {
        Ok(imm) => Ok(0x5400_0000 | (imm << 5) | cond as u32),
        Err(e) => Err(e),
    }
}

/// `CBZ Rt, offset`, or `CBNZ` when `nonzero`.
pub const fn cbz(width: Width, rt: Reg, offset: i64, nonzero: bool) -> Result<u32, EncodeError> {
    match field(offset, 4, COND_RANGE, 19) {
        Ok(imm) => Ok(0x3400_0000
            | (width.sf() << 31)
            | ((nonzero as u32) << 24)
            | (imm << 5)
            | rt.bits()),
        Err(e) => Err(e),
    }
}

/// `TBZ Rt, #bit, offset`, or `TBNZ` when `nonzero`.
pub const fn tbz(rt: Reg, bit: u8, offset: i64, nonzero: bool) -> Result<u32, EncodeError> {
    if bit > 63 {
        return Err(EncodeError::BadBit(bit));
    }
    let bit = bit as u32;
    match field(offset, 4, TB_RANGE, 14) {
        Ok(imm) => Ok(0x3600_0000
            | ((bit >> 5) << 31)
            | ((nonzero as u32) << 24)
            | ((bit & 31) << 19)
            | (imm << 5)
            | rt.bits()),
        Err(e) => Err(e),
    }
}

const fn branch_reg(base: u32, rn: Reg) -> Result<u32, EncodeError> {
    if rn.number() == 31 {
        return Err(EncodeError::BadRegister(31));
    }
    Ok(base | (rn.bits() << 5))
}

/// `BR Xn` (`XZR` refused: a branch to address 0 is never meant).
pub const fn br(rn: Reg) -> Result<u32, EncodeError> {
    branch_reg(0xd61f_0000, rn)
}

/// `BLR Xn` (`XZR` refused).
pub const fn blr(rn: Reg) -> Result<u32, EncodeError> {
    branch_reg(0xd63f_0000, rn)
}

/// `RET Xn` (`XZR` refused); `RET` alone is `ret(Reg::LR)`.
pub const fn ret(rn: Reg) -> Result<u32, EncodeError> {
    branch_reg(0xd65f_0000, rn)
}

/// `LDR Wt|Xt, offset` (literal).
pub const fn ldr_literal(width: Width, rt: Reg, offset: i64) -> Result<u32, EncodeError> {
    match field(offset, 4, COND_RANGE, 19) {
        Ok(imm) => Ok(0x1800_0000 | (width.sf() << 30) | (imm << 5) | rt.bits()),
        Err(e) => Err(e),
    }
}

const fn adr_form(op: u32, rd: Reg, imm: u32) -> u32 {
    (op << 31) | ((imm & 3) << 29) | 0x1000_0000 | ((imm >> 2) << 5) | rd.bits()
}

/// `ADR Xd, offset`.
pub const fn adr(rd: Reg, offset: i64) -> Result<u32, EncodeError> {
    match field(offset, 1, ADR_RANGE, 21) {
        Ok(imm) => Ok(adr_form(0, rd, imm)),
        Err(e) => Err(e),
    }
}

/// `ADRP Xd` with a page delta: `Xd = (pc & !0xfff) + pages * 4096`.
pub const fn adrp_pages(rd: Reg, pages: i64) -> Result<u32, EncodeError> {
    match field(pages, 1, ADRP_PAGE_RANGE, 21) {
        Ok(imm) => Ok(adr_form(1, rd, imm)),
        Err(e) => Err(e),
    }
}

/// `ADRP Xd` for an instruction at `pc` that must yield the page of `target`.
pub const fn adrp(rd: Reg, pc: u64, target: u64) -> Result<u32, EncodeError> {
    let pages = ((target >> 12) as i64).wrapping_sub((pc >> 12) as i64);
    adrp_pages(rd, pages)
}

/// `ADD Rd, Rn, #imm12{, LSL #12}` (register 31 is `SP` here).
pub const fn add_imm(
    width: Width,
    rd: Reg,
    rn: Reg,
    imm12: u16,
    shift12: bool,
) -> Result<u32, EncodeError> {
    if imm12 > 0xfff {
        return Err(EncodeError::ImmediateTooLarge {
            value: imm12 as u64,
            max: 0xfff,
        });
    }
    Ok(0x1100_0000
        | (width.sf() << 31)
        | ((shift12 as u32) << 22)
        | ((imm12 as u32) << 10)
        | (rn.bits() << 5)
        | rd.bits())
}

const fn mov_wide(
    base: u32,
    width: Width,
    rd: Reg,
    imm16: u16,
    shift: u8,
) -> Result<u32, EncodeError> {
    let max = match width {
        Width::W => 16,
        Width::X => 48,
    };
    if !shift.is_multiple_of(16) || shift > max {
        return Err(EncodeError::BadShift(shift));
    }
    Ok(base
        | (width.sf() << 31)
        | (((shift / 16) as u32) << 21)
        | ((imm16 as u32) << 5)
        | rd.bits())
}

/// `MOVZ Rd, #imm16, LSL #shift`.
pub const fn movz(width: Width, rd: Reg, imm16: u16, shift: u8) -> Result<u32, EncodeError> {
    mov_wide(0x5280_0000, width, rd, imm16, shift)
}

/// `MOVK Rd, #imm16, LSL #shift`.
pub const fn movk(width: Width, rd: Reg, imm16: u16, shift: u8) -> Result<u32, EncodeError> {
    mov_wide(0x7280_0000, width, rd, imm16, shift)
}

/// `MOVZ` then one `MOVK` per further non-zero half-word: loads any 64-bit `value` into `Xd`
/// in 1 to 4 instructions.
pub fn mov_u64(rd: Reg, value: u64) -> heapless::Vec<u32, 4> {
    // The 64-bit forms with `hw` = shift / 16, written out: every shift here is encodable.
    let word = |base: u32, shift: u32| {
        base | ((shift / 16) << 21) | (((value >> shift) as u32 & 0xffff) << 5) | rd.bits()
    };
    let mut out = heapless::Vec::new();
    out.push(word(0xd280_0000, 0)).ok();
    for shift in [16, 32, 48] {
        if (value >> shift) & 0xffff != 0 {
            // At most three more words after the first: the capacity of four holds them all.
            out.push(word(0xf280_0000, shift)).ok();
        }
    }
    out
}

/// Largest `LDR Xt, [Xn, #offset]` offset: 4095 double-words.
pub const LDR_IMM_MAX: i64 = 4095 * 8;

/// `LDR Xt, [Xn, #offset]`, unsigned scaled offset (register 31 is `SP` as the base).
pub const fn ldr_imm(rt: Reg, rn: Reg, offset: i64) -> Result<u32, EncodeError> {
    match field(offset, 8, (0, LDR_IMM_MAX), 12) {
        Ok(imm) => Ok(0xf940_0000 | (imm << 10) | (rn.bits() << 5) | rt.bits()),
        Err(e) => Err(e),
    }
}

/// `STLR Xt, [Xn]` (register 31 is `SP` as the base).
pub const fn stlr(rt: Reg, rn: Reg) -> u32 {
    0xc89f_fc00 | (rn.bits() << 5) | rt.bits()
}

/// `ADD Xd, Xn, Xm` (shifted register form, no shift; register 31 is `XZR`).
pub const fn add_reg(rd: Reg, rn: Reg, rm: Reg) -> u32 {
    0x8b00_0000 | (rm.bits() << 16) | (rn.bits() << 5) | rd.bits()
}

/// `CMP Xn, Xm`, i.e. `SUBS XZR, Xn, Xm` (no shift).
pub const fn cmp_reg(rn: Reg, rm: Reg) -> u32 {
    0xeb00_001f | (rm.bits() << 16) | (rn.bits() << 5)
}

/// `DSB <option>`.
pub const fn dsb(option: Barrier) -> u32 {
    0xd503_309f | ((option as u32) << 8)
}

/// `DMB <option>`.
pub const fn dmb(option: Barrier) -> u32 {
    0xd503_30bf | ((option as u32) << 8)
}

/// `ISB`.
pub const fn isb() -> u32 {
    super::ISB
}

/// `NOP`.
pub const fn nop() -> u32 {
    super::NOP
}

const fn sys(op1: u32, crm: u32, op2: u32, rt: Reg) -> u32 {
    0xd508_7000 | (op1 << 16) | (crm << 8) | (op2 << 5) | rt.bits()
}

/// `DC <op>, Xt`.
pub const fn dc(op: DcOp, rt: Reg) -> u32 {
    match op {
        DcOp::Cvau => sys(3, 11, 1, rt),
        DcOp::Cvac => sys(3, 10, 1, rt),
        DcOp::Civac => sys(3, 14, 1, rt),
    }
}

/// `IC IVAU, Xt`, `IC IALLU` or `IC IALLUIS` (the last two take no register; `rt` is ignored
/// and 31 encoded).
pub const fn ic(op: IcOp, rt: Reg) -> u32 {
    match op {
        IcOp::Ivau => sys(3, 5, 1, rt),
        IcOp::Iallu => sys(0, 5, 0, Reg::ZR_SP),
        IcOp::Ialluis => sys(0, 1, 0, Reg::ZR_SP),
    }
}

const fn exception(base: u32, imm16: u16) -> u32 {
    base | ((imm16 as u32) << 5)
}

/// `BRK #imm16`.
pub const fn brk(imm16: u16) -> u32 {
    exception(0xd420_0000, imm16)
}

/// `SVC #imm16`.
pub const fn svc(imm16: u16) -> u32 {
    exception(0xd400_0001, imm16)
}

/// `HVC #imm16`.
pub const fn hvc(imm16: u16) -> u32 {
    exception(0xd400_0002, imm16)
}

/// `SMC #imm16`.
pub const fn smc(imm16: u16) -> u32 {
    exception(0xd400_0003, imm16)
}
