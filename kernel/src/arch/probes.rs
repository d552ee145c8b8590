//! Tiny assembled functions that tests copy, call or fault on.
//!
//! They are real machine code from the assembler, not hand-typed words, and each is a named
//! symbol so that reports resolve to it.

use core::arch::global_asm;

global_asm!(
    ".section .text.probes, \"ax\"",
    ".balign 4",
    // Returns 42; position independent, so a copy runs anywhere.
    ".global graft_probe_answer",
    "graft_probe_answer:",
    "    mov x0, #42",
    "    ret",
    ".global graft_probe_answer_end",
    "graft_probe_answer_end:",
    // An undefined instruction (permanently undefined, UDF #0).
    ".global graft_probe_udf",
    "graft_probe_udf:",
    "    udf #0",
    "    ret",
);

unsafe extern "C" {
    static graft_probe_answer: u8;
    static graft_probe_answer_end: u8;
    fn graft_probe_udf();
}

/// The machine code of a function returning 42.
pub fn answer_code() -> &'static [u8] {
    // SAFETY: the two symbols bracket the probe's instructions in the read-only text section.
    unsafe {
        let start = &raw const graft_probe_answer;
        let end = &raw const graft_probe_answer_end;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The address of the undefined instruction in [`run_undefined`].
pub fn undefined_address() -> usize {
    graft_probe_udf as *const () as usize
}

/// Executes an undefined instruction.
pub fn run_undefined() {
    // SAFETY: the probe is a valid function that takes nothing; it raises an exception, which the
    // vector table handles (the run ends or a test's trap resumes after it).
    unsafe { graft_probe_udf() }
}

/// Calls the code at `addr` as `extern "C" fn() -> u64`.
///
/// # Safety
///
/// `addr` must hold a function of that type, visible to instruction fetch on this core (its
/// writes cleaned and invalidated, and a context synchronization since), or the call must be
/// guarded by a fault trap that resumes at the caller.
pub unsafe fn call_at(addr: usize) -> u64 {
    // SAFETY: the caller vouches for `addr` as above.
    unsafe {
        let f: extern "C" fn() -> u64 = core::mem::transmute(addr);
        f()
    }
}
