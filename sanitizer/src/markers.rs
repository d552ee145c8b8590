//! The marker protocol: unallocated `HINT` instructions that talk to the sanitizer.
//!
//! A marker is `HINT #imm` with `imm` from the table below, arguments in `x0`/`x1`. The
//! Arm ARM (DDI 0487, C6.2 "HINT") makes every unallocated hint execute as a `NOP`, and
//! QEMU 10.0.2's decoder (`target/arm/tcg/a64.decode`) ends the hint group with a catch-all
//! `NOP 1101 0101 0000 0011 0010 ---- --- 11111`, so a marker costs nothing on hardware and
//! in plain QEMU. The immediates sit in `CRm = 0b1110` (112..=119): allocated hints stop at
//! `CHKFEAT` (`#40`) in QEMU 10.0.2 and in the `CRm <= 0b0110` rows of the Arm ARM, so this
//! row is far from anything Arm has allocated so far. Revisit if a future Arm ARM uses it.
//!
//! This module is dependency-free on purpose: the kernel may mirror the numbers with its own
//! `hint #N` asm (`const` operands), and nothing here needs `std`.

/// Encoding of `HINT #imm`: `0xD503201F | imm << 5` (`imm` is `CRm:op2`, 7 bits).
pub const fn hint(imm: u32) -> u32 {
    0xD503_201F | ((imm & 0x7F) << 5)
}

/// `hint #112`: the code in `[x0, x0 + x1)` (executable-alias virtual addresses) is
/// published. From now on a *stale* execution of it by any core is a hazard.
pub const MARK_PUBLISHED: u32 = 112;
/// `hint #113`: the range `[x0, x0 + x1)` is being rewritten again (a new branch flip in
/// flight): stale executions of it are expected, not hazards, until it is published again.
pub const MARK_UNPUBLISHED: u32 = 113;
/// `hint #114`: this core starts iteration `x0` of a litmus-style test; reports from this core
/// carry that number until the next `ITERATION`.
pub const ITERATION: u32 = 114;
/// `hint #115`: the outcome of this core's current iteration is `x0` (test-defined, for example
/// "the consumer saw the flag"); the sanitizer echoes it as an `outcome` line so that the host
/// can keep only the iterations where the litmus clause held.
pub const OUTCOME: u32 = 115;
/// `hint #116`: this core believes it is core `x0`. The sanitizer checks that against the vCPU
/// index QEMU gives its callbacks and counts mismatches (`attribution-errors` in the summary).
pub const CORE_ID: u32 = 116;
/// `hint #117`: track writes to the *physical* range `[x0, x0 + x1)` as potential code from now
/// on (for example a code arena whose slots have never been executed yet).
pub const TRACK_CODE: u32 = 117;

/// The marker an instruction word encodes, if any.
pub const fn marker_of(word: u32) -> Option<u32> {
    if word & 0xFFFF_F01F != 0xD503_201F {
        return None;
    }
    let imm = (word >> 5) & 0x7F;
    match imm {
        MARK_PUBLISHED | MARK_UNPUBLISHED | ITERATION | OUTCOME | CORE_ID | TRACK_CODE => Some(imm),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_assembler() {
        // `hint #112` assembled by LLVM: d5032e1f.
        assert_eq!(hint(MARK_PUBLISHED), 0xD503_2E1F);
        assert_eq!(hint(0), 0xD503_201F, "hint #0 is NOP");
        assert_eq!(marker_of(hint(ITERATION)), Some(ITERATION));
        assert_eq!(marker_of(hint(CORE_ID)), Some(CORE_ID));
    }

    #[test]
    fn allocated_hints_are_not_markers() {
        for imm in [0, 1, 2, 3, 4, 5, 6, 7, 16, 20, 25, 32, 34, 40, 118, 127] {
            assert_eq!(marker_of(hint(imm)), None, "hint #{imm}");
        }
        assert_eq!(marker_of(0xD503_3FDF), None, "ISB is no marker");
    }
}
