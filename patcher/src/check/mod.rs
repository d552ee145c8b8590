//! Validation of a code block before any byte of it is written.
//!
//! A patch is position-independent code that will run from one arena slot. Before it is
//! copied, [`check_block`] proves the shape rules that can be proved from the bytes: it is not
//! empty, fits the slot, is word-aligned, cannot run off its end, and every PC-relative
//! reference lands inside the block or on something the caller explicitly allowed (a function
//! to call, a continuation to jump back to, a data range to read). A block that passes becomes
//! a [`Checked`] value, the only thing the arena accepts, so "checked before written" is a type
//! rule rather than a convention.
//!
//! Then [`verify`] proves, by a small abstract interpretation of every path from the first word,
//! the rules that need the registers: an allow-list of instructions (no exception-generating,
//! system-register, PSTATE, wait or global maintenance instruction), memory accesses only inside
//! the stack budget, the site's declared argument objects or the block (and allowed data), `SP`
//! only moved by balanced adjustments, `RET` only through the link register the block was entered
//! with (and with `X19`-`X29`, `D8`-`D15` and `SP` as they were), and every path no longer than the
//! instruction budget. [`Policy`] states those budgets and exceptions; `verify`'s documentation
//! says exactly what is tracked.
//!
//! Literal pools are supported: words read by an in-block `LDR (literal)` are data, exempt from
//! decoding, but then no direct branch may target them and no instruction may fall into them.
//! Register branches (`BR`, `BLR`, `RET`) cannot be followed; `ADRP` is checked to page
//! granularity only (its page must overlap the block or an allowed data range).

#![forbid(unsafe_code)]

mod classify;
mod display;
pub mod memo;
mod policy;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_memo;
#[cfg(test)]
mod tests_verify;
pub mod verify;

pub use memo::Memo;
pub use policy::{ArgBound, Policy, PstateField, SysReg};

use core::ops::Range;

use crate::insn::{Cond, Insn, PcRefKind, decode};

/// The largest block [`check_block`] accepts, whatever the slot: 64 KiB (it keeps a bit per
/// word on the stack).
pub const MAX_BLOCK_BYTES: usize = 64 * 1024;
const MAX_WORDS: usize = MAX_BLOCK_BYTES / 4;

/// What a block may refer to outside itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Externals<'a> {
    /// Exact addresses a direct branch or call may go to (helper functions, the continuation in
    /// the patched function). An `ADR` may also take them.
    pub branch_targets: &'a [u64],
    /// Address ranges that `ADR`, `ADRP` and literal loads may refer to (data cells, tables).
    pub data: &'a [Range<u64>],
}

impl Externals<'_> {
    /// Nothing outside the block is allowed.
    pub const NONE: Externals<'static> = Externals {
        branch_targets: &[],
        data: &[],
    };
}

/// Why a block was refused. Nothing has been written when this is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The block has no bytes.
    Empty,
    /// The block is larger than the slot (or than [`MAX_BLOCK_BYTES`]).
    TooLarge {
        /// Bytes in the block.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// The execution address is not a multiple of 4.
    MisalignedAddress {
        /// The address given.
        addr: u64,
    },
    /// The length is not a multiple of 4.
    MisalignedLength {
        /// The length given.
        len: usize,
    },
    /// The block would pass the top of the address space.
    AddressOverflow,
    /// A PC-relative reference leaves the block to somewhere not allowed.
    Escapes {
        /// Byte offset of the instruction in the block.
        offset: usize,
        /// The instruction.
        word: u32,
        /// What it does with its target.
        kind: PcRefKind,
        /// The target address (for `ADRP`, its page).
        target: u64,
    },
    /// A direct branch inside the block targets a literal-pool word.
    BranchIntoData {
        /// Byte offset of the branch.
        offset: usize,
        /// Byte offset of the data word it targets.
        target_offset: usize,
    },
    /// Execution can run from an instruction into a literal-pool word (or the block starts
    /// with one).
    FallsIntoData {
        /// Byte offset of the data word.
        offset: usize,
    },
    /// The last instruction can continue to the next word, which is outside the block.
    FallsThrough {
        /// The last instruction.
        word: u32,
    },
    /// An exception-generating or debug instruction: `SVC`, `HVC`, `SMC`, `BRK`, `HLT`, `UDF`,
    /// `DCPS1-3`, `ERET`, `ERETAA/AB`, `DRPS`.
    Exception {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// An unallocated encoding, or one not on the verifier's allow-list.
    Unlisted {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// A system-register write (`MSR <reg>, Xt`, `SYS`, `SYSL`) the policy does not list.
    SysRegWrite {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// A write to a PSTATE field (`MSR DAIFSet, #imm`, `SPSel`, `PAN`, ...) the policy does
    /// not list.
    PstateWrite {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// A system-register read outside [`SysReg::SAFE_READS`] and the policy's list.
    SysRegRead {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// `WFI`, `WFE`, `WFIT`, `WFET`, `SEV` or `SEVL`.
    Wait {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// Cache maintenance other than `DC CVAU/CVAC/CIVAC` and `IC IVAU` by address, `TLBI`, `AT`.
    Maintenance {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// A branch through a register (`BR`, `BLR`, `BRAA`, `RETAA`, ...).
    IndirectBranch {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// A return (or a tail branch out of the block) that would not return to the caller as
    /// it was entered.
    BadReturn {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
        /// What is wrong.
        why: ReturnFault,
    },
    /// A write to `SP` other than an adjustment by a constant that keeps it 16-byte aligned
    /// and within the stack budget.
    SpWrite {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
    },
    /// A load, store, atomic or cache operation by address that the verifier cannot prove
    /// inside the stack frame, an argument object, the block or allowed data.
    UnprovenAccess {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
        /// Why not.
        why: AccessFault,
    },
    /// A path runs more instructions than the policy's budget: a loop the verifier cannot bound
    /// (or a block too long). The instruction is the last backward branch on that path, or the
    /// one past the budget when there was none.
    OverBudget {
        /// Byte offset of the instruction.
        offset: usize,
        /// The instruction.
        word: u32,
        /// The budget, in instructions.
        budget: u32,
    },
    /// The block has more distinct paths or states than the verifier explores; refused rather
    /// than guessed.
    TooComplex {
        /// Byte offset of the instruction where the analysis gave up.
        offset: usize,
        /// The instruction.
        word: u32,
    },
}

/// Why a return was refused ([`CheckError::BadReturn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnFault {
    /// `RET` through a register other than `X30`.
    NotX30,
    /// `X30` no longer holds the return address the block was entered with (overwritten, by
    /// `BL` or otherwise, and not restored from the stack).
    LinkClobbered,
    /// This callee-saved register (`X19`-`X29`) does not hold its entry value.
    CalleeSaved(u8),
    /// This callee-saved FP register (`D8`-`D15`: the low 64 bits of `V8`-`V15`) does not hold
    /// its entry value.
    CalleeSavedFp(u8),
    /// `SP` is not back where it was on entry: this many bytes below.
    Unbalanced(u32),
}

/// Why a memory access was refused ([`CheckError::UnprovenAccess`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessFault {
    /// The base register does not hold an address the verifier knows.
    UnknownBase,
    /// The address is known but the access leaves the object (the frame below the current
    /// `SP` and above the entry `SP`, an argument's bounds, the block, allowed data).
    OutOfBounds,
    /// A write to something readable only (the block, allowed data, a read-only argument).
    ReadOnly,
    /// An exclusive, ordered or atomic access that is not naturally aligned (argument objects
    /// are taken to be 8-byte aligned, the entry `SP` 16-byte aligned).
    Misaligned,
}

impl CheckError {
    /// The offset and word of the instruction refused, for errors that name one.
    pub const fn instruction(&self) -> Option<(usize, u32)> {
        match *self {
            Self::Escapes { offset, word, .. }
            | Self::Exception { offset, word }
            | Self::Unlisted { offset, word }
            | Self::SysRegWrite { offset, word }
            | Self::PstateWrite { offset, word }
            | Self::SysRegRead { offset, word }
            | Self::Wait { offset, word }
            | Self::Maintenance { offset, word }
            | Self::IndirectBranch { offset, word }
            | Self::BadReturn { offset, word, .. }
            | Self::SpWrite { offset, word }
            | Self::UnprovenAccess { offset, word, .. }
            | Self::OverBudget { offset, word, .. }
            | Self::TooComplex { offset, word } => Some((offset, word)),
            _ => None,
        }
    }
}

/// A block that passed [`check_block`], for the execution address it was checked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked<'a> {
    code: &'a [u8],
    exec_addr: u64,
    insns: u32,
}

impl<'a> Checked<'a> {
    /// The block's bytes.
    pub const fn code(&self) -> &'a [u8] {
        self.code
    }

    /// The execution address the block was checked for; it may run only there.
    pub const fn exec_addr(&self) -> u64 {
        self.exec_addr
    }

    /// The most instructions any path through the block runs (a call to an exported helper
    /// counts as one).
    pub const fn worst_case_insns(&self) -> u32 {
        self.insns
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.code.len()
    }

    /// Always `false`: an empty block never passes.
    pub const fn is_empty(&self) -> bool {
        self.code.is_empty()
    }
}

/// The words of a block that are data (one bit per word), from [`check_shape`]: literal-pool
/// words, and words no path from the entry reaches.
pub struct DataWords([u64; MAX_WORDS / 64]);

impl DataWords {
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Whether word `i` is data.
    pub fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

pub(crate) fn word_at(code: &[u8], i: usize) -> u32 {
    let b = &code[i * 4..i * 4 + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Whether control cannot continue to the next word after `insn`.
fn ends_flow(insn: Insn, word: u32) -> bool {
    match insn {
        Insn::B { .. } | Insn::Br { .. } | Insn::Ret { .. } | Insn::Brk(_) => true,
        Insn::BCond { cond, .. } => matches!(cond, Cond::Al | Cond::Nv),
        // RETAASPPC / RETABSPPC return; AUTI*SPPC continue.
        Insn::PacLabel { word, .. } => word >> 24 == 0x55,
        _ => {
            // ERET, RETAA, RETAB; BRAAZ/BRABZ, BRAA/BRAB (any register); UDF.
            matches!(word, 0xd69f_03e0 | 0xd65f_0bff | 0xd65f_0fff)
                || word & 0xffff_f81f == 0xd61f_081f
                || word & 0xffff_f800 == 0xd71f_0800
                || word >> 16 == 0
        }
    }
}

/// Whether `start..start + len` (`len` > 0) lies inside one of `ranges`.
fn inside(ranges: &[Range<u64>], start: u64, len: u64) -> bool {
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    ranges.iter().any(|r| r.start <= start && end <= r.end)
}

/// Whether `start..start + len` overlaps one of `ranges`.
fn overlaps(ranges: &[Range<u64>], start: u64, len: u64) -> bool {
    let end = start.saturating_add(len);
    ranges.iter().any(|r| r.start < end && start < r.end)
}

/// Checks `code`, to be run at `exec_addr` from a slot of `max_len` bytes, against the rules in
/// the module documentation: its shape ([`check_shape`]), then [`verify::verify`] with `policy`.
pub fn check_block<'a>(
    code: &'a [u8],
    exec_addr: u64,
    max_len: usize,
    ext: &Externals<'_>,
    policy: &Policy<'_>,
) -> Result<Checked<'a>, CheckError> {
    let data = check_shape(code, exec_addr, max_len, ext)?;
    if !policy.verify {
        // The test door: shape only; the budget stands for the unknown count.
        return Ok(Checked {
            code,
            exec_addr,
            insns: policy.max_insns,
        });
    }
    let insns = verify::verify(code, exec_addr, &data, ext, policy)?;
    Ok(Checked {
        code,
        exec_addr,
        insns,
    })
}

/// The words a path from a block's entry reaches, by falling through or by a direct branch or
/// call inside the block, and the literal-pool words their literal loads read. Only the reached
/// words are instructions: the verifier refuses every register-indirect branch but `RET`, so no
/// other word can run, and the rest (read-only data after the code, padding, a law's parameter
/// block) is data, which also lets [`Memo`] answer a block that differs from an accepted one in
/// such words only.
struct Reach {
    words: DataWords,
    data: DataWords,
}

impl Reach {
    /// One forward sweep, decoding each reached word once: exact when every backward branch
    /// targets a word already reached (loops entered from above, as compilers lay them out).
    /// None when one does not; [`Reach::worklist`] then finds the rest.
    fn forward(code: &[u8], exec_addr: u64) -> Option<Self> {
        let mut r = Self::new();
        for i in 0..code.len() / 4 {
            if !r.words.contains(i) {
                continue;
            }
            for next in r.step(code, exec_addr, i).into_iter().flatten() {
                if next <= i && !r.words.contains(next) {
                    return None;
                }
                r.words.insert(next);
            }
        }
        Some(r)
    }

    /// Every path, with a worklist: for any block [`Reach::forward`] cannot sweep.
    fn worklist(code: &[u8], exec_addr: u64) -> Self {
        let mut r = Self::new();
        let mut todo = [0u16; MAX_WORDS];
        let mut pending = 1;
        while pending > 0 {
            pending -= 1;
            let i = todo[pending] as usize;
            for next in r.step(code, exec_addr, i).into_iter().flatten() {
                if !r.words.contains(next) {
                    r.words.insert(next);
                    todo[pending] = next as u16;
                    pending += 1;
                }
            }
        }
        r
    }

    /// Word 0 reached, nothing else known.
    fn new() -> Self {
        let mut words = DataWords([0; MAX_WORDS / 64]);
        words.insert(0);
        Self {
            words,
            data: DataWords([0; MAX_WORDS / 64]),
        }
    }

    /// Decodes reached word `i`: notes the literal it loads, and returns where control goes
    /// next inside the block (a direct branch's or call's target, the next word).
    fn step(&mut self, code: &[u8], exec_addr: u64, i: usize) -> [Option<usize>; 2] {
        let words = code.len() / 4;
        let end = exec_addr + code.len() as u64;
        let word = word_at(code, i);
        let insn = decode(word);
        let pc = exec_addr + 4 * i as u64;
        let r = insn.pc_ref();
        if let (Insn::LdrLiteral { .. }, Some(r)) = (insn, r)
            && let PcRefKind::Load { size } = r.kind
        {
            let target = pc.wrapping_add_signed(r.offset);
            if inside(core::slice::from_ref(&(exec_addr..end)), target, size) {
                let first = (target - exec_addr) as usize / 4;
                for w in first..first + (size as usize).div_ceil(4) {
                    self.data.insert(w);
                }
            }
        }
        let branch = r
            .filter(|r| matches!(r.kind, PcRefKind::Branch | PcRefKind::Call))
            .map(|r| pc.wrapping_add_signed(r.offset))
            .filter(|t| (exec_addr..end).contains(t))
            .map(|t| ((t - exec_addr) / 4) as usize);
        let fall = (!ends_flow(insn, word) && i + 1 < words).then_some(i + 1);
        [branch, fall]
    }
}

/// The shape rules alone (size, alignment, falling off the end, PC-relative references), for
/// fixed code that is not a patch (the flush stub) and for the first half of [`check_block`].
/// Returns the block's data words (literal pools, and what no path reaches).
pub fn check_shape(
    code: &[u8],
    exec_addr: u64,
    max_len: usize,
    ext: &Externals<'_>,
) -> Result<DataWords, CheckError> {
    let len = code.len();
    if len == 0 {
        return Err(CheckError::Empty);
    }
    let max = max_len.min(MAX_BLOCK_BYTES);
    if len > max {
        return Err(CheckError::TooLarge { len, max });
    }
    if !exec_addr.is_multiple_of(4) {
        return Err(CheckError::MisalignedAddress { addr: exec_addr });
    }
    if !len.is_multiple_of(4) {
        return Err(CheckError::MisalignedLength { len });
    }
    let Some(end) = exec_addr.checked_add(len as u64) else {
        return Err(CheckError::AddressOverflow);
    };
    let block_range = exec_addr..end;
    let block = core::slice::from_ref(&block_range);
    let words = len / 4;
    let pc_of = |i: usize| exec_addr + 4 * i as u64;
    // Byte offset in the block of `target`, if it is inside.
    let in_block = |target: u64| {
        (exec_addr..end)
            .contains(&target)
            .then(|| (target - exec_addr) as usize)
    };

    // Pass 1: the words a path from the entry reaches (the only instructions: see [`Reach`]),
    // and the literal-pool words their literal loads read.
    let Reach {
        words: reach,
        mut data,
    } = Reach::forward(code, exec_addr).unwrap_or_else(|| Reach::worklist(code, exec_addr));

    // Pass 2: every reachable instruction's reference, and how control flows into data or past
    // the end.
    if data.contains(0) {
        return Err(CheckError::FallsIntoData { offset: 0 });
    }
    for i in (0..words).filter(|&i| reach.contains(i) && !data.contains(i)) {
        let word = word_at(code, i);
        let insn = decode(word);
        if !ends_flow(insn, word) {
            if i + 1 == words {
                return Err(CheckError::FallsThrough { word });
            }
            if data.contains(i + 1) {
                return Err(CheckError::FallsIntoData {
                    offset: (i + 1) * 4,
                });
            }
        }
        let Some(r) = insn.pc_ref() else {
            continue;
        };
        let escapes = |target| CheckError::Escapes {
            offset: i * 4,
            word,
            kind: r.kind,
            target,
        };
        match r.kind {
            PcRefKind::Branch | PcRefKind::Call => {
                let target = pc_of(i).wrapping_add_signed(r.offset);
                match in_block(target) {
                    Some(t) if data.contains(t / 4) => {
                        return Err(CheckError::BranchIntoData {
                            offset: i * 4,
                            target_offset: t,
                        });
                    }
                    Some(_) => {}
                    None if ext.branch_targets.contains(&target) => {}
                    None => return Err(escapes(target)),
                }
            }
            PcRefKind::Address => {
                let target = pc_of(i).wrapping_add_signed(r.offset);
                let ok = in_block(target).is_some()
                    || inside(ext.data, target, 1)
                    || ext.branch_targets.contains(&target);
                if !ok {
                    return Err(escapes(target));
                }
            }
            PcRefKind::Load { size } => {
                let target = pc_of(i).wrapping_add_signed(r.offset);
                if !inside(block, target, size) && !inside(ext.data, target, size) {
                    return Err(escapes(target));
                }
            }
            PcRefKind::Page => {
                let page = (pc_of(i) & !0xfff).wrapping_add_signed(r.offset);
                if !overlaps(block, page, 4096) && !overlaps(ext.data, page, 4096) {
                    return Err(escapes(page));
                }
            }
        }
    }
    // What no path reaches is data too (read-only data after the code, padding).
    for i in (0..words).filter(|&i| !reach.contains(i)) {
        data.insert(i);
    }
    Ok(data)
}
