//! What a site allows its patches beyond the fixed rules: budgets, argument objects, and the
//! (empty by default) exceptions to the system-instruction bans.

/// A pointer argument a site's consumers pass: `X<reg>` points at `len` bytes the block may
/// read (and write, if `writable`) for the duration of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgBound {
    /// The argument register, 0 to 7.
    pub reg: u8,
    /// Bytes from the pointer that belong to the call.
    pub len: u64,
    /// Whether the block may write them.
    pub writable: bool,
}

/// A system register, by its `MRS`/`MSR` encoding (`op0<0>:op1:CRn:CRm:op2`, bits 19:5 of the
/// instruction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysReg(pub u16);

impl SysReg {
    /// The register `S<op0>_<op1>_C<crn>_C<crm>_<op2>` (`op0` is 2 or 3).
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self(
            ((op0 as u16 & 1) << 14)
                | ((op1 as u16 & 7) << 11)
                | ((crn as u16 & 15) << 7)
                | ((crm as u16 & 15) << 3)
                | (op2 as u16 & 7),
        )
    }

    /// `CNTVCT_EL0`: the virtual count.
    pub const CNTVCT_EL0: Self = Self::new(3, 3, 14, 0, 2);
    /// `CNTFRQ_EL0`: the counter's frequency.
    pub const CNTFRQ_EL0: Self = Self::new(3, 3, 14, 0, 0);
    /// `SCTLR_EL1`.
    pub const SCTLR_EL1: Self = Self::new(3, 0, 1, 0, 0);
    /// `VBAR_EL1`.
    pub const VBAR_EL1: Self = Self::new(3, 0, 12, 0, 0);
    /// `TTBR0_EL1`.
    pub const TTBR0_EL1: Self = Self::new(3, 0, 2, 0, 0);

    /// Reads every patch may do: the generic timer's count and frequency, for timing. Reads
    /// only give a value the block cannot use as an address (it is untracked); the other
    /// registers are refused so that a patch cannot learn where the kernel keeps its state
    /// (`TPIDR*` hold per-core cell addresses here).
    pub const SAFE_READS: [Self; 2] = [Self::CNTVCT_EL0, Self::CNTFRQ_EL0];
}

/// A PSTATE field written by `MSR <field>, #imm`, as `op1 << 3 | op2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PstateField(pub u8);

impl PstateField {
    /// `DAIFSet`.
    pub const DAIFSET: Self = Self(0b011_110);
    /// `DAIFClr`.
    pub const DAIFCLR: Self = Self(0b011_111);
    /// `SPSel`.
    pub const SPSEL: Self = Self(0b000_101);
    /// `PAN`.
    pub const PAN: Self = Self(0b000_100);
    /// `UAO`.
    pub const UAO: Self = Self(0b000_011);
}

/// What one site allows ([`super::check_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy<'a> {
    /// The site's pointer arguments; none by default.
    pub args: &'a [ArgBound],
    /// Bytes of stack below the entry `SP` the block may use (its frame); 256 by default.
    pub stack_bytes: u32,
    /// The most instructions any path through the block may run (external calls count as one);
    /// 4096 by default.
    pub max_insns: u32,
    /// System registers the block may read besides [`SysReg::SAFE_READS`]; none by default.
    pub sysreg_reads: &'a [SysReg],
    /// System registers the block may write; none by default.
    pub sysreg_writes: &'a [SysReg],
    /// PSTATE fields the block may write; none by default.
    pub pstate_writes: &'a [PstateField],
    /// Whether the verifier runs after the shape rules: true except in
    /// [`Policy::UNVERIFIED_TEST_DOOR`].
    pub verify: bool,
}

impl Policy<'static> {
    /// No arguments, 256 bytes of stack, 4096 instructions, no system-register exception.
    pub const DEFAULT: Self = Self {
        args: &[],
        stack_bytes: 256,
        max_insns: 4096,
        sysreg_reads: &[],
        sysreg_writes: &[],
        pstate_writes: &[],
        verify: true,
    };

    /// The shape rules alone, no verifier: the test-only door through which the kernel's
    /// fault-containment tests (`patch-fault`, `patch-hang`) publish a `UDF`, a wild load or
    /// `B .`, to see them contained. Nothing that takes patches from outside uses it.
    pub const UNVERIFIED_TEST_DOOR: Self = Self {
        verify: false,
        ..Self::KERNEL_SITES
    };

    /// Every site of Graft's kernel, and what `cargo xtask patch check` checks with: the
    /// consumers' calling convention is `extern "C" fn(x0: *mut [u8; 16], ...)`, `X0` pointing
    /// at 16 writable bytes that belong to the call (the demo's `LoopState`, the stress tests'
    /// `inside` cell and its spare word). Everything else is [`Policy::DEFAULT`].
    pub const KERNEL_SITES: Self = Self {
        args: &[ArgBound {
            reg: 0,
            len: 16,
            writable: true,
        }],
        ..Self::DEFAULT
    };
}

impl Default for Policy<'static> {
    fn default() -> Self {
        Self::DEFAULT
    }
}
