//! A new control law: PI with back-calculation anti-windup. The unsaturated output `v` is
//! clamped to the actuator's range, and the integral is corrected by `KB * (u - v)`, so that it
//! stops growing while the actuator is saturated.

#![no_std]

use graft_patch::{clamp, control_law};

const DT: f32 = 1.0 / 10_000.0;
const KP: f32 = 0.06;
const KI: f32 = 5.0;
const KB: f32 = 0.5;
const UMAX: f32 = 1.0;

control_law!(|state, measured, setpoint| {
    let e = setpoint - measured;
    let v = KP * e + state.integral;
    let u = clamp(v, 0.0, UMAX);
    state.integral += KI * DT * e + KB * (u - v);
    state.previous_error = e;
    u
});
