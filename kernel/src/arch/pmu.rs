//! The PMU's retired-instruction counter: exact instruction counts under QEMU `-icount`.
//!
//! Event counter 0 counts `INST_RETIRED` (event 0x08) at EL1. aarch64-cpu has no PMU registers,
//! so each access is a small function here.

use core::arch::asm;

/// `INST_RETIRED`: architecturally executed instructions.
const INST_RETIRED: u64 = 0x08;

/// Starts counter 0 on this core counting retired instructions at EL1, from zero.
pub fn start_instructions() {
    // SAFETY: PMU configuration at EL1 affects only this core's counters; PMCR_EL0.E (bit 0)
    // enables counting, P (bit 1) resets the event counters.
    unsafe {
        asm!(
            "msr pmevtyper0_el0, {ev}",
            "mov {t}, #1",
            "msr pmcntenset_el0, {t}",
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #3",
            "msr pmcr_el0, {t}",
            "isb",
            ev = in(reg) INST_RETIRED,
            t = out(reg) _,
            options(nostack, preserves_flags),
        )
    };
}

/// Counter 0's value.
#[inline(always)]
pub fn instructions() -> u64 {
    let v: u64;
    // SAFETY: reading an event counter has no side effect.
    unsafe { asm!("mrs {}, pmevcntr0_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
