//! A PID that uses the running kernel: it calls the exported helper `graft_clamp` and reads the
//! exported static `GRAFT_ACTUATOR_MAX` (the actuator's limit, the same for every loop), so the
//! patch follows the kernel's limit instead of carrying its own copy.

#![no_std]

use graft_patch::control_law;
use graft_patch::kernel::{GRAFT_ACTUATOR_MAX, graft_clamp};

const DT: f32 = 1.0 / 10_000.0;
const KP: f32 = 0.05;
const KI: f32 = 4.0;
const KD: f32 = 0.000_03;

control_law!(|state, measured, setpoint| {
    let umax = GRAFT_ACTUATOR_MAX;
    let e = setpoint - measured;
    state.integral = graft_clamp(state.integral + KI * DT * e, 0.0, umax);
    let derivative = (e - state.previous_error) / DT;
    state.previous_error = e;
    graft_clamp(KP * e + state.integral + KD * derivative, 0.0, umax)
});
