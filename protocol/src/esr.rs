//! `ESR_EL1` decoding for exception reports: the class, and the fault status of aborts.

/// The exception class field, `ESR_EL1[31:26]`.
pub fn class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// The instruction/data fault status code of an abort, `ESR_EL1[5:0]`.
pub fn fault_status(esr: u64) -> u8 {
    (esr & 0x3f) as u8
}

/// Exception class numbers the kernel acts on.
pub mod ec {
    /// Unknown reason: among others, an undefined instruction.
    pub const UNKNOWN: u8 = 0x00;
    /// Instruction abort taken without a change of exception level.
    pub const INSTRUCTION_ABORT_SAME_EL: u8 = 0x21;
    /// Data abort taken without a change of exception level.
    pub const DATA_ABORT_SAME_EL: u8 = 0x25;
    /// `BRK` instruction.
    pub const BRK: u8 = 0x3c;
}

/// A short name for an exception class, as the Arm ARM calls it.
pub fn class_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (undefined instruction)",
        0x01 => "trapped WFI/WFE",
        0x07 => "SIMD/FP access trap",
        0x0e => "illegal execution state",
        0x15 => "SVC in AArch64",
        0x16 => "HVC in AArch64",
        0x17 => "SMC in AArch64",
        0x18 => "trapped MSR/MRS/system instruction",
        0x20 => "instruction abort from a lower EL",
        0x21 => "instruction abort, same EL",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower EL",
        0x25 => "data abort, same EL",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "other",
    }
}

/// Whether an abort's fault status is a permission fault (at any level).
pub fn is_permission_fault(fsc: u8) -> bool {
    (0x0c..=0x0f).contains(&fsc)
}

/// Whether an abort's write-not-read bit is set (data aborts only).
pub fn is_write(esr: u64) -> bool {
    esr & (1 << 6) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_permission_fault_on_write() {
        // Data abort, same EL, IL=1, WnR=1, DFSC=0b001111 (permission fault, level 3).
        let esr = (0x25u64 << 26) | (1 << 25) | (1 << 6) | 0x0f;
        assert_eq!(class(esr), ec::DATA_ABORT_SAME_EL);
        assert!(is_permission_fault(fault_status(esr)));
        assert!(is_write(esr));
        assert_eq!(class_name(class(esr)), "data abort, same EL");
    }

    #[test]
    fn translation_faults_are_not_permission_faults() {
        assert!(!is_permission_fault(0x07));
        assert!(is_permission_fault(0x0d));
    }

    #[test]
    fn undefined_instruction_has_class_zero() {
        assert_eq!(class(0x0200_0000), ec::UNKNOWN);
        assert_eq!(class_name(0), "unknown reason (undefined instruction)");
    }
}
