//! A64 instruction words: the ones the patcher emits, and the ones it must recognize.
//!
//! Encoders (`encode`) take byte offsets relative to the instruction's own address and refuse,
//! with an [`EncodeError`], anything they cannot represent exactly: a branch that does not
//! reach is an error, never a truncated immediate. The decoder (`decode`) recognizes the same
//! instructions plus every PC-relative form, which is what [`check`](crate::check) needs to prove
//! a block does not reach outside itself, and [`is_cmodx_safe`] classifies words for the
//! concurrent-modification rule.

#![forbid(unsafe_code)]

mod decode;
mod encode;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_decode;

pub use decode::{PcRef, PcRefKind, decode, is_cmodx_safe};
pub use encode::*;

/// `NOP`.
pub const NOP: u32 = 0xd503_201f;
/// `ISB` (option `SY`).
pub const ISB: u32 = 0xd503_3fdf;

/// A general-purpose register number, 0 to 31. Number 31 is `XZR`/`WZR` or `SP` depending on
/// the instruction, as in the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reg(u8);

impl Reg {
    /// The link register, `X30`.
    pub const LR: Self = Self(30);
    /// Register number 31: `XZR` in most instructions, `SP` in `ADD (immediate)`.
    pub const ZR_SP: Self = Self(31);

    /// Register `n`, or `None` when `n > 31`.
    pub const fn new(n: u8) -> Option<Self> {
        if n <= 31 { Some(Self(n)) } else { None }
    }

    /// `X<n>`/`W<n>` for `n` in 0..=30.
    ///
    /// # Panics
    ///
    /// When `n > 30` (at compile time in a `const`).
    pub const fn x(n: u8) -> Self {
        assert!(n <= 30, "X register number out of range");
        Self(n)
    }

    /// The register number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// From the low five bits of `field` (decoding cannot fail).
    pub(crate) const fn from_field(field: u32) -> Self {
        Self((field & 31) as u8)
    }

    pub(crate) const fn bits(self) -> u32 {
        self.0 as u32
    }
}

/// Operand width of an integer instruction (`sf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 32-bit (`W` registers).
    W,
    /// 64-bit (`X` registers).
    X,
}

impl Width {
    pub(crate) const fn sf(self) -> u32 {
        match self {
            Self::W => 0,
            Self::X => 1,
        }
    }

    pub(crate) const fn from_sf(bit: u32) -> Self {
        if bit & 1 == 1 { Self::X } else { Self::W }
    }
}

/// A condition code for `B.cond`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)] // The Arm ARM's mnemonics are their own documentation.
pub enum Cond {
    Eq = 0,
    Ne,
    Cs,
    Cc,
    Mi,
    Pl,
    Vs,
    Vc,
    Hi,
    Ls,
    Ge,
    Lt,
    Gt,
    Le,
    Al,
    Nv,
}

impl Cond {
    /// Every condition, in encoding order.
    pub const ALL: [Self; 16] = [
        Self::Eq,
        Self::Ne,
        Self::Cs,
        Self::Cc,
        Self::Mi,
        Self::Pl,
        Self::Vs,
        Self::Vc,
        Self::Hi,
        Self::Ls,
        Self::Ge,
        Self::Lt,
        Self::Gt,
        Self::Le,
        Self::Al,
        Self::Nv,
    ];
}

/// The shareability domain and access type of a `DSB` or `DMB` (its `CRm` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)] // The Arm ARM's option names are their own documentation.
pub enum Barrier {
    OshLd = 1,
    OshSt = 2,
    Osh = 3,
    NshLd = 5,
    NshSt = 6,
    Nsh = 7,
    IshLd = 9,
    IshSt = 10,
    Ish = 11,
    Ld = 13,
    St = 14,
    Sy = 15,
}

impl Barrier {
    /// Every named option.
    pub const ALL: [Self; 12] = [
        Self::OshLd,
        Self::OshSt,
        Self::Osh,
        Self::NshLd,
        Self::NshSt,
        Self::Nsh,
        Self::IshLd,
        Self::IshSt,
        Self::Ish,
        Self::Ld,
        Self::St,
        Self::Sy,
    ];

    /// The option whose `CRm` is `crm`, if it is a named one.
    pub const fn from_crm(crm: u32) -> Option<Self> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i] as u32 == crm {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }
}

/// A data cache maintenance operation by address (`DC <op>, Xt`). Only the non-destructive ones:
/// the patcher never discards data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcOp {
    /// Clean to the Point of Unification.
    Cvau,
    /// Clean to the Point of Coherency.
    Cvac,
    /// Clean and invalidate to the Point of Coherency.
    Civac,
}

/// An instruction cache maintenance operation (`IC <op>{, Xt}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcOp {
    /// Invalidate by address to the Point of Unification (register operand).
    Ivau,
    /// Invalidate all, this core, to the Point of Unification (no operand; register 31).
    Iallu,
    /// Invalidate all, Inner Shareable, to the Point of Unification (no operand; register 31).
    Ialluis,
}

/// The register loaded by a literal load (`LDR (literal)` family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteralKind {
    /// `LDR Wt`: 4 bytes.
    W,
    /// `LDR Xt`: 8 bytes.
    X,
    /// `LDRSW Xt`: 4 bytes, sign-extended.
    Sw,
    /// `PRFM`: a hint, no access.
    Prfm,
    /// `LDR St`/`Dt`/`Qt`: 4, 8 or 16 bytes into a SIMD&FP register.
    Simd(u8),
}

impl LiteralKind {
    /// Bytes read from the literal's address (0 for `PRFM`).
    pub const fn access_size(self) -> u64 {
        match self {
            Self::W | Self::Sw => 4,
            Self::X => 8,
            Self::Prfm => 0,
            Self::Simd(n) => n as u64,
        }
    }
}

/// A decoded instruction. Offsets are in bytes relative to the instruction's address, except
/// `Adrp`'s, which is in 4 KiB pages relative to the instruction's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // Fields are the encoding's operands, named as in the Arm ARM.
pub enum Insn {
    B {
        offset: i64,
    },
    Bl {
        offset: i64,
    },
    /// `B.cond`, or `BC.cond` (FEAT_HBC) when `consistent` is set.
    BCond {
        cond: Cond,
        offset: i64,
        consistent: bool,
    },
    /// `CBZ`, or `CBNZ` when `nonzero` is set.
    Cbz {
        width: Width,
        rt: Reg,
        offset: i64,
        nonzero: bool,
    },
    /// `TBZ`, or `TBNZ` when `nonzero` is set.
    Tbz {
        rt: Reg,
        bit: u8,
        offset: i64,
        nonzero: bool,
    },
    Br {
        rn: Reg,
    },
    Blr {
        rn: Reg,
    },
    Ret {
        rn: Reg,
    },
    Nop,
    Isb,
    Dsb(Barrier),
    Dmb(Barrier),
    LdrLiteral {
        kind: LiteralKind,
        rt: Reg,
        offset: i64,
    },
    Adr {
        rd: Reg,
        offset: i64,
    },
    Adrp {
        rd: Reg,
        pages: i64,
    },
    AddImm {
        width: Width,
        rd: Reg,
        rn: Reg,
        imm12: u16,
        shift12: bool,
    },
    /// `MOVZ`, with `shift` in bits (0, 16, 32, 48).
    Movz {
        width: Width,
        rd: Reg,
        imm16: u16,
        shift: u8,
    },
    /// `MOVK`, with `shift` in bits (0, 16, 32, 48).
    Movk {
        width: Width,
        rd: Reg,
        imm16: u16,
        shift: u8,
    },
    Dc {
        op: DcOp,
        rt: Reg,
    },
    Ic {
        op: IcOp,
        rt: Reg,
    },
    Brk(u16),
    Svc(u16),
    Hvc(u16),
    Smc(u16),
    /// A FEAT_PAuth_LR instruction (`AUTIASPPC`, `AUTIBSPPC`, `RETAASPPC`, `RETABSPPC`) whose
    /// modifier is the address `offset` bytes from it: position-dependent, so `check` must see
    /// it.
    PacLabel {
        offset: i64,
        word: u32,
    },
    /// `LDR Xt, [Xn, #offset]` (unsigned offset, a multiple of 8).
    LdrImm {
        rt: Reg,
        rn: Reg,
        offset: u16,
    },
    /// `STLR Xt, [Xn]`.
    Stlr {
        rt: Reg,
        rn: Reg,
    },
    /// `ADD Xd, Xn, Xm` (shifted register, no shift).
    AddReg {
        rd: Reg,
        rn: Reg,
        rm: Reg,
    },
    /// `CMP Xn, Xm` (`SUBS XZR, Xn, Xm`, no shift).
    CmpReg {
        rn: Reg,
        rm: Reg,
    },
    /// Anything else, kept as its word.
    Other(u32),
}

/// Why an instruction could not be encoded. Never a silent truncation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The offset is not a multiple of `align` bytes.
    Misaligned {
        /// The offset asked for.
        offset: i64,
        /// The alignment the encoding requires.
        align: i64,
    },
    /// The offset is outside `min..=max`.
    OutOfRange {
        /// The offset asked for.
        offset: i64,
        /// Smallest encodable offset.
        min: i64,
        /// Largest encodable offset.
        max: i64,
    },
    /// An immediate does not fit its field.
    ImmediateTooLarge {
        /// The value asked for.
        value: u64,
        /// Largest encodable value.
        max: u64,
    },
    /// A `MOVZ`/`MOVK` shift that is not 0, 16 (or, for `X`, 32, 48).
    BadShift(u8),
    /// A `TBZ`/`TBNZ` bit number above 63.
    BadBit(u8),
    /// Register 31 where it would mean something other than asked (e.g. `BR XZR`).
    BadRegister(u8),
}
