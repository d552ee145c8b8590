//! What a Graft patch is written against.
//!
//! A patch is a `no_std` crate holding one new version of one site's function. It names its entry
//! with [`control_law!`], which gives it the site's calling convention and the symbol
//! `cargo xtask patch build` links first in the block. It may use `core`, the kernel's exported
//! helpers and statics in [`kernel`], and nothing else outside itself: the build links it against
//! the running image's export table only (another symbol is an undefined-symbol error), and the
//! verifier (`patcher::check`) then allows only branches to exported functions, reads of exported
//! statics and of the block itself, and accesses to the site's argument (the [`LoopState`]).
//!
//! What a patch cannot have: writable statics (a block is code and read-only data), a reachable
//! panic (the handler never returns: the build refuses a block that links it), unbounded loops,
//! or more than the site's stack and instruction budgets. The kernel's demo uses this crate's
//! [`LoopState`] too, so a patch and the loop it replaces agree on the layout.

#![no_std]
#![warn(missing_docs)]

/// A control loop's state, shared by every version of its law: the site's argument (`X0`), 16
/// writable bytes that belong to the call.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopState {
    /// Integral term.
    pub integral: f32,
    /// Previous error (a derivative term's memory).
    pub previous_error: f32,
    /// The version of the law that ran last: every law writes its own.
    pub version: u64,
}

const _: () = assert!(core::mem::size_of::<LoopState>() == 16);
const _: () = assert!(core::mem::offset_of!(LoopState, previous_error) == 4);
const _: () = assert!(core::mem::offset_of!(LoopState, version) == 8);

/// A control law's entry: `extern "C" fn(state, measured, setpoint) -> actuator output`.
pub type Law = unsafe extern "C" fn(state: *mut LoopState, measured: f32, setpoint: f32) -> f32;

/// The symbol of a patch's entry, first in its block.
pub const ENTRY: &str = "graft_patch_entry";

/// This build's version of the patch: `GRAFT_PATCH_VERSION` at build time (`cargo xtask patch
/// build --version N` sets it), 1 without it. A law records it in [`LoopState::version`].
pub const VERSION: u64 = match option_env!("GRAFT_PATCH_VERSION") {
    Some(s) => parse_u64(s),
    None => 1,
};

const fn parse_u64(s: &str) -> u64 {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "GRAFT_PATCH_VERSION is empty");
    let mut v = 0u64;
    let mut i = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "GRAFT_PATCH_VERSION is not a number");
        v = v * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    v
}

/// Clamps `x` to `[lo, hi]` with `FMIN`/`FMAX` (no branch, no panic: `f32::clamp` asserts
/// `lo <= hi`, which a patch cannot afford).
#[inline(always)]
pub fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    x.min(hi).max(lo)
}

/// The kernel's exports for patches, as the kernel defines them (`kernel/src/patch/exports.rs`
/// lists the same names in the image's `.graft_exports` table).
pub mod kernel {
    unsafe extern "C" {
        /// Clamps `x` to `[lo, hi]` (an exported helper function).
        pub safe fn graft_clamp(x: f32, lo: f32, hi: f32) -> f32;
        /// The actuator's largest output, the same on every loop (an exported static).
        pub safe static GRAFT_ACTUATOR_MAX: f32;
    }
}

/// Declares a patch's entry: `control_law!(|state, measured, setpoint| body)` with `state:
/// &mut LoopState`, `measured` and `setpoint` in degrees, the body returning the actuator
/// output. The law's version is recorded in the state after the body runs.
#[macro_export]
macro_rules! control_law {
    (|$state:ident, $measured:ident, $setpoint:ident| $body:block) => {
        /// The patch's entry (the site's ABI).
        ///
        /// # Safety
        /// `state` points at the calling loop's own [`LoopState`]($crate::LoopState), valid
        /// for the call.
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text.graft_patch_entry")]
        pub unsafe extern "C" fn graft_patch_entry(
            state: *mut $crate::LoopState,
            $measured: f32,
            $setpoint: f32,
        ) -> f32 {
            // SAFETY: the caller's contract above.
            let $state: &mut $crate::LoopState = unsafe { &mut *state };
            let out: f32 = $body;
            $state.version = $crate::VERSION;
            out
        }
    };
}

#[cfg(feature = "patch")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Never reached by a patch that `cargo xtask patch build` accepts: it refuses any block
    // that links this handler.
    loop {
        core::hint::spin_loop();
    }
}
