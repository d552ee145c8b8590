//! Patch payloads for tests and the demo: real assembled code, copied into arena slots.
//!
//! Each template is a position-independent function `extern "C" fn(inside: *mut u64) -> Answer`
//! assembled into read-only data (never executed in place). On entry it records its own address
//! in `*inside` (the stress tests use it to prove no slot is reused while a core is in it), then
//! it checksums its own code words, clears `*inside` and returns its version (a literal in its
//! pool, written by the producer for each publication) with the checksum. Two templates with
//! different code alternate, so a mix of old and new words shows up as a wrong checksum.

use core::arch::global_asm;

/// What a payload returns (in `x0`, `x1`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The version the producer wrote into the block.
    pub version: u64,
    /// The checksum of the block's code words, computed by the block itself.
    pub checksum: u64,
}

/// A payload's entry: `inside` is the calling core's marker cell.
pub type Entry = unsafe extern "C" fn(inside: *mut u64) -> Answer;

global_asm!(
    ".section .rodata.graft_payloads, \"a\"",
    ".balign 8",
    ".global graft_payload_a",
    "graft_payload_a:",
    "    adr     x9, graft_payload_a",
    "    str     x9, [x0]",
    "    adr     x12, 2f",
    "    mov     x1, #0",
    "1:  ldr     w11, [x9], #4",
    "    ror     x1, x1, #59",
    "    add     x1, x1, x11",
    "    cmp     x9, x12",
    "    b.lo    1b",
    "    str     xzr, [x0]",
    "    ldr     x0, 2f",
    "    ret",
    "    .balign 8",
    "2:  .quad   0",
    ".global graft_payload_a_end",
    "graft_payload_a_end:",
    ".balign 8",
    ".global graft_payload_b",
    "graft_payload_b:",
    "    adr     x10, graft_payload_b",
    "    str     x10, [x0]",
    "    adr     x13, 2f",
    "    mov     x1, #0x5a5a",
    "1:  ldr     w14, [x10], #4",
    "    eor     x1, x1, x14",
    "    ror     x1, x1, #61",
    "    cmp     x10, x13",
    "    b.lo    1b",
    "    str     xzr, [x0]",
    "    ldr     x0, 2f",
    "    nop",
    "    ret",
    "    .balign 8",
    "2:  .quad   0",
    ".global graft_payload_b_end",
    "graft_payload_b_end:",
);

unsafe extern "C" {
    static graft_payload_a: u8;
    static graft_payload_a_end: u8;
    static graft_payload_b: u8;
    static graft_payload_b_end: u8;
}

/// The longest template, in bytes.
pub const MAX_LEN: usize = 128;

/// The template used for `version` (they alternate).
pub fn template(version: u64) -> &'static [u8] {
    // SAFETY: each pair of symbols brackets one template in read-only data, start before end.
    unsafe {
        let (start, end) = if version.is_multiple_of(2) {
            (&raw const graft_payload_a, &raw const graft_payload_a_end)
        } else {
            (&raw const graft_payload_b, &raw const graft_payload_b_end)
        };
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The block for `version`: the template with `version` in its literal (the last 8 bytes).
pub fn build(version: u64) -> ([u8; MAX_LEN], usize) {
    let t = template(version);
    assert!(t.len() <= MAX_LEN && t.len() >= 8, "payload template size");
    let mut buf = [0u8; MAX_LEN];
    buf[..t.len()].copy_from_slice(t);
    buf[t.len() - 8..t.len()].copy_from_slice(&version.to_le_bytes());
    (buf, t.len())
}

/// The checksum the block for `version` must return: the template's algorithm, in Rust, over its
/// code words (everything before the literal).
pub fn expected_checksum(version: u64) -> u64 {
    let t = template(version);
    let words = t[..t.len() - 8]
        .chunks(4)
        .map(|w| u64::from(u32::from_le_bytes(w.try_into().unwrap())));
    if version.is_multiple_of(2) {
        words.fold(0u64, |acc, w| acc.rotate_right(59).wrapping_add(w))
    } else {
        words.fold(0x5a5a_u64, |acc, w| (acc ^ w).rotate_right(61))
    }
}
