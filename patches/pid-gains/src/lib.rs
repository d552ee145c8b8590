//! The demo's PID law with new gains: a stiffer proportional term and a little more integral
//! action than the kernel's first version.

#![no_std]

use graft_patch::{clamp, control_law};

/// The loop period (10 kHz).
const DT: f32 = 1.0 / 10_000.0;
const KP: f32 = 0.08;
const KI: f32 = 5.0;
const KD: f32 = 0.000_02;
const UMAX: f32 = 1.0;

control_law!(|state, measured, setpoint| {
    let e = setpoint - measured;
    state.integral = clamp(state.integral + KI * DT * e, 0.0, UMAX);
    let derivative = (e - state.previous_error) / DT;
    state.previous_error = e;
    clamp(KP * e + state.integral + KD * derivative, 0.0, UMAX)
});
