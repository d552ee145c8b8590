//! Refused on purpose: calls `graft_kernel_main`-style internals the kernel does not export.
//! `cargo xtask patch build` must fail at the link, naming the symbol.

#![no_std]

use graft_patch::control_law;

unsafe extern "C" {
    /// A kernel symbol that exists in the image but is not in its export table.
    safe fn graft_not_exported(x: f32) -> f32;
}

control_law!(|state, measured, setpoint| {
    let _ = state;
    graft_not_exported(setpoint - measured)
});
