//! The kernel's build id: the descriptor of the `.note.gnu.build-id` note the linker writes
//! (`--build-id=sha1`, `kernel/build.rs`), which the linker script keeps in read-only data.

use protocol::record::{BUILD_ID_BYTES, build_id_from_note};

unsafe extern "C" {
    static __build_id_note: u8;
    static __build_id_note_end: u8;
}

/// The build id, or zeros if the image carries no note of the expected shape (the host then
/// sees an id that matches no ELF and says so).
pub fn get() -> [u8; BUILD_ID_BYTES] {
    // SAFETY: linker-defined symbols bounding the note in the image's read-only data, which is
    // mapped for the whole run and never written.
    let note: &[u8] = unsafe {
        let start = &raw const __build_id_note;
        let end = &raw const __build_id_note_end;
        core::slice::from_raw_parts(start, (end as usize).saturating_sub(start as usize))
    };
    build_id_from_note(note).unwrap_or([0; BUILD_ID_BYTES])
}
