//! What `CTR_EL0` and `MIDR_EL1` say about how code must be synchronized.
//!
//! Read once per core at boot, merged across cores (a big.LITTLE board can mix them), and turned
//! into one [`SyncPolicy`]: which clean instruction, which strides, which steps may be elided.
//! Kept apart from the instructions themselves so that every decision is a host-testable
//! function of two register values.

/// Cache facts read from `CTR_EL0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheGeometry {
    /// Smallest data cache line in bytes (`4 << CTR_EL0.DminLine`): the stride of `DC`.
    pub dline: usize,
    /// Smallest instruction cache line in bytes (`4 << CTR_EL0.IminLine`): the stride of `IC`.
    pub iline: usize,
    /// `CTR_EL0.IDC`: cleaning the data cache to the Point of Unification is not required for
    /// instruction-to-data coherence.
    pub idc: bool,
    /// `CTR_EL0.DIC`: invalidating the instruction cache to the Point of Unification is not
    /// required for data-to-instruction coherence.
    pub dic: bool,
    /// Cache writeback granule in bytes (`4 << CTR_EL0.CWG`); 2 KiB, the architectural maximum,
    /// when the field reads 0 ("not provided").
    pub writeback_granule: usize,
}

/// The writeback granule assumed when `CTR_EL0.CWG` is 0: the largest the architecture allows.
pub const CWG_UNKNOWN_BYTES: usize = 2048;

/// Instruction-invalidate stride used under Neoverse-N1 erratum 1542419: one 4 KiB page, the
/// translation granule Graft maps code with (what Linux reports to user space as `IminLine`).
pub const N1_1542419_ISTRIDE: usize = 4096;

impl CacheGeometry {
    /// Decodes a raw `CTR_EL0` value.
    pub const fn from_ctr_el0(ctr: u64) -> Self {
        let imin = ctr & 0xf;
        let dmin = (ctr >> 16) & 0xf;
        let cwg = (ctr >> 24) & 0xf;
        Self {
            dline: 4 << dmin,
            iline: 4 << imin,
            idc: (ctr >> 28) & 1 == 1,
            dic: (ctr >> 29) & 1 == 1,
            writeback_granule: if cwg == 0 {
                CWG_UNKNOWN_BYTES
            } else {
                4 << cwg
            },
        }
    }

    /// The geometry that is safe on a system containing cores with both `self` and `other`:
    /// the smaller line sizes (a smaller stride never skips a line), an elision only where both
    /// allow it, and the larger writeback granule.
    pub const fn merge(self, other: Self) -> Self {
        Self {
            dline: min(self.dline, other.dline),
            iline: min(self.iline, other.iline),
            idc: self.idc && other.idc,
            dic: self.dic && other.dic,
            writeback_granule: if self.writeback_granule > other.writeback_granule {
                self.writeback_granule
            } else {
                other.writeback_granule
            },
        }
    }
}

const fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

/// The identification fields of a `MIDR_EL1` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Midr {
    /// Implementer code (`0x41` is Arm).
    pub implementer: u8,
    /// Major revision, the `r` of `rNpM`.
    pub variant: u8,
    /// Primary part number.
    pub part: u16,
    /// Minor revision, the `p` of `rNpM`.
    pub revision: u8,
}

/// Arm Limited's implementer code.
pub const IMPLEMENTER_ARM: u8 = 0x41;
/// Cortex-A53 part number.
pub const PART_CORTEX_A53: u16 = 0xd03;
/// Neoverse-N1 part number.
pub const PART_NEOVERSE_N1: u16 = 0xd0c;

impl Midr {
    /// Decodes a raw `MIDR_EL1` value.
    pub const fn from_raw(midr: u64) -> Self {
        Self {
            implementer: ((midr >> 24) & 0xff) as u8,
            variant: ((midr >> 20) & 0xf) as u8,
            part: ((midr >> 4) & 0xfff) as u16,
            revision: (midr & 0xf) as u8,
        }
    }

    /// Whether this is the Arm part `part` at a revision in `lo..=hi`, each given as
    /// `(variant, revision)`.
    const fn is_arm_in(self, part: u16, lo: (u8, u8), hi: (u8, u8)) -> bool {
        let rev = ((self.variant as u16) << 4) | self.revision as u16;
        let lo = ((lo.0 as u16) << 4) | lo.1 as u16;
        let hi = ((hi.0 as u16) << 4) | hi.1 as u16;
        self.implementer == IMPLEMENTER_ARM && self.part == part && rev >= lo && rev <= hi
    }
}

/// Errata that change the maintenance sequence, decided from `MIDR_EL1`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errata {
    /// Cortex-A53 r0p0..r0p2 (826319, 827319, 824069, 819472): clean with `DC CIVAC` instead of
    /// `DC CVAU`.
    pub clean_with_civac: bool,
    /// Neoverse-N1 r0p0..r3p0 erratum 1542419: a core may run stale instructions after another
    /// core's change even with `CTR_EL0.DIC` set. Treat DIC as 0 and invalidate page-sized.
    pub n1_1542419: bool,
}

impl Errata {
    /// No erratum applies.
    pub const NONE: Self = Self {
        clean_with_civac: false,
        n1_1542419: false,
    };

    /// The errata of the core whose `MIDR_EL1` reads `midr`.
    pub const fn from_midr_el1(midr: u64) -> Self {
        let m = Midr::from_raw(midr);
        Self {
            clean_with_civac: m.is_arm_in(PART_CORTEX_A53, (0, 0), (0, 2)),
            n1_1542419: m.is_arm_in(PART_NEOVERSE_N1, (0, 0), (3, 0)),
        }
    }

    /// The errata of a system containing cores with both `self` and `other`.
    pub const fn merge(self, other: Self) -> Self {
        Self {
            clean_with_civac: self.clean_with_civac || other.clean_with_civac,
            n1_1542419: self.n1_1542419 || other.n1_1542419,
        }
    }
}

/// The data-cache clean instruction a policy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanOp {
    /// `DC CVAU`: clean to the Point of Unification.
    Cvau,
    /// `DC CIVAC`: clean and invalidate to the Point of Coherency (Cortex-A53 errata).
    Civac,
}

/// The maintenance sequence to run after writing code, decided once from geometry and errata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Stride of the data-side clean, in bytes.
    pub dline: usize,
    /// Stride of the instruction-side invalidate, in bytes.
    pub iline: usize,
    /// The clean to issue per data line, or `None` when `IDC` makes it unnecessary (a
    /// `DSB ISHST` is still issued so the writes complete).
    pub clean: Option<CleanOp>,
    /// Whether to issue `IC IVAU` per instruction line; `false` when `DIC` makes it
    /// unnecessary (every core that runs the code still needs its context synchronization
    /// event).
    pub invalidate: bool,
}

impl SyncPolicy {
    /// The policy for `geometry` with `errata` applied.
    ///
    /// Erratum 1542419 is acted on only where `DIC` reads 1, as Linux does: with `DIC` 0 the
    /// core is already invalidated line by line. Where it applies, `DIC` is treated as 0 and the
    /// invalidate stride becomes [`N1_1542419_ISTRIDE`].
    pub const fn new(geometry: CacheGeometry, errata: Errata) -> Self {
        let n1 = errata.n1_1542419 && geometry.dic;
        Self {
            dline: geometry.dline,
            iline: if n1 {
                N1_1542419_ISTRIDE
            } else {
                geometry.iline
            },
            clean: if geometry.idc {
                None
            } else if errata.clean_with_civac {
                Some(CleanOp::Civac)
            } else {
                Some(CleanOp::Cvau)
            },
            invalidate: !geometry.dic || n1,
        }
    }

    /// The policy from raw `CTR_EL0` and `MIDR_EL1` values.
    pub const fn from_registers(ctr_el0: u64, midr_el1: u64) -> Self {
        Self::new(
            CacheGeometry::from_ctr_el0(ctr_el0),
            Errata::from_midr_el1(midr_el1),
        )
    }
}
