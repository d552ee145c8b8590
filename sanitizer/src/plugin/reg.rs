//! Guest registers read from callbacks: the `x` operands of `DC`/`IC`/markers, and `core-reg`,
//! read by every callback that needs its core under round-robin TCG.
//!
//! The crate's `RegisterDescriptor::read` allocates two buffers per read, which cost a fifth of a
//! sanitized run's time; here registers are looked up once and read into a buffer each host
//! thread keeps.

use std::cell::Cell;
use std::ffi::{CStr, c_int};

use qemu_plugin::sys::{
    GArray, GByteArray, qemu_plugin_get_registers, qemu_plugin_read_register,
    qemu_plugin_reg_descriptor, qemu_plugin_register,
};

// GLib, provided by the QEMU process that loads the plugin.
unsafe extern "C" {
    fn g_array_free(array: *mut GArray, free_segment: c_int) -> *mut u8;
    fn g_byte_array_new() -> *mut GByteArray;
}

thread_local! {
    /// This thread's read buffer, made on first use and kept for the thread's life (one per
    /// vCPU thread).
    static BUF: Cell<*mut GByteArray> = const { Cell::new(std::ptr::null_mut()) };
}

/// A register QEMU's gdbstub offers, by its opaque handle.
pub(super) struct Reg {
    handle: usize,
}

impl Reg {
    /// Finds each register in `names` (in any case). Call only from a vCPU callback: QEMU
    /// lists the registers of the current vCPU.
    pub(super) fn find<const N: usize>(names: [&str; N]) -> [Option<Self>; N] {
        // SAFETY: called from a vCPU callback, as QEMU requires; the result is a new GArray of
        // descriptors that the caller owns (not the interned names it points to).
        let array = unsafe { qemu_plugin_get_registers() };
        if array.is_null() {
            return names.map(|_| None);
        }
        // SAFETY: `array` is a live GArray of `len` descriptors, and each name is a NUL-ended
        // string QEMU keeps for its life.
        let found = unsafe {
            let descriptors = std::slice::from_raw_parts(
                (*array).data as *const qemu_plugin_reg_descriptor,
                (*array).len as usize,
            );
            names.map(|name| {
                descriptors
                    .iter()
                    .find(|d| {
                        !d.name.is_null()
                            && CStr::from_ptr(d.name)
                                .to_str()
                                .is_ok_and(|n| n.eq_ignore_ascii_case(name))
                    })
                    .map(|d| Self {
                        handle: d.handle as usize,
                    })
            })
        };
        // SAFETY: we own `array` and free it with its element storage, once.
        unsafe { g_array_free(array, 1) };
        found
    }

    /// The register's value (its low 8 bytes, little endian) on the current vCPU, or `None` if
    /// QEMU refuses the read (a callback registered without register access).
    pub(super) fn read(&self) -> Option<u64> {
        BUF.with(|cell| {
            let mut buf = cell.get();
            if buf.is_null() {
                // SAFETY: allocates an empty GByteArray, owned by this thread from now on.
                buf = unsafe { g_byte_array_new() };
                cell.set(buf);
            }
            // SAFETY: `buf` is this thread's live GByteArray; an empty length keeps its storage
            // (QEMU appends the register's bytes), and the handle came from QEMU's own list.
            let read = unsafe {
                (*buf).len = 0;
                qemu_plugin_read_register(self.handle as *mut qemu_plugin_register, buf)
            };
            if read <= 0 {
                return None;
            }
            // SAFETY: QEMU wrote `len` bytes at `data`; nothing else touches `buf` meanwhile.
            let bytes = unsafe { std::slice::from_raw_parts((*buf).data, (*buf).len as usize) };
            let mut w = [0u8; 8];
            let n = bytes.len().min(8);
            w[..n].copy_from_slice(&bytes[..n]);
            Some(u64::from_le_bytes(w))
        })
    }
}
