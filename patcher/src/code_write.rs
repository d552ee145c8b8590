//! The crate's raw memory writes: code into arena slots and patch sites, through the write alias.
//!
//! Kept apart so that the arena and the strategies are safe code. Words are written one by one with
//! volatile 32-bit stores: each instruction word lands as a single-copy-atomic write, and the
//! compiler can neither drop nor merge the stores into accesses the maintenance that follows
//! would not cover.

/// Copies `code` (a whole number of little-endian instruction words) to `dst`.
///
/// # Safety
///
/// 1. `dst` is valid for writes of `code.len()` bytes and aligned to 4.
/// 2. Nothing else reads or writes those bytes as data while this runs (instruction fetch
///    through another alias may; that is what the state machine and the strategies govern).
/// 3. `code.len()` is a multiple of 4.
pub(crate) unsafe fn copy_code(dst: *mut u32, code: &[u8]) {
    for (i, w) in code.chunks_exact(4).enumerate() {
        let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        // SAFETY: `i < code.len() / 4`, so `dst + i` is inside the region duty 1 makes valid and
        // aligned; duty 2 rules out a data race; duty 3 means no byte is left out.
        unsafe { dst.add(i).write_volatile(word) };
    }
}

/// Writes one instruction word with a single aligned 32-bit store (single-copy atomic, as the
/// concurrent-modification rule requires).
///
/// # Safety
///
/// 1. `dst` is valid for writes of 4 bytes and aligned to 4.
/// 2. No other write to the word races with this one.
pub(crate) unsafe fn write_word(dst: *mut u32, word: u32) {
    // SAFETY: duty 1 makes the access valid and aligned; duty 2 rules out a racing write (a
    // concurrent instruction fetch through another alias is not a data access).
    unsafe { dst.write_volatile(word) }
}

/// Reads one instruction word through the write alias.
///
/// # Safety
///
/// 1. `src` is valid for reads of 4 bytes and aligned to 4.
/// 2. No write to the word races with this read.
pub(crate) unsafe fn read_word(src: *const u32) -> u32 {
    // SAFETY: duty 1 makes the access valid and aligned; duty 2 rules out a data race.
    unsafe { src.read_volatile() }
}
