//! Refused on purpose: indexes a table with the integral term, so an out-of-range index panics.
//! `cargo xtask patch build` must refuse it as a patch that can reach the panic handler.

#![no_std]

use graft_patch::control_law;

static GAINS: [f32; 4] = [0.01, 0.02, 0.04, 0.08];

control_law!(|state, measured, setpoint| {
    let e = setpoint - measured;
    let band = state.integral as usize;
    // The index is not bounded: rustc keeps the bounds check and its panic.
    GAINS[band] * e
});
