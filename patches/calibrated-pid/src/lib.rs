//! A PID whose gains come from a calibration table shipped in the patch: one (kp, ki, kd) record
//! per operating point, read-only data that makes the block a full 4 KiB slot. It is the example
//! the slot size, the chunked transfer and the signature are tested with at their limit.
//!
//! The law reads the gains of the operating point this build selects (`POINT`) through volatile
//! reads, so the whole table stays in the block, as it would for a law that picks the point at
//! run time. A law that did pick it at run time (an index computed from a measurement) would be
//! refused: the verifier proves every load's address, and does not track the range of an index
//! (README, "What the verifier guarantees").

#![no_std]

use graft_patch::{clamp, control_law};

/// The loop period (10 kHz).
const DT: f32 = 1.0 / 10_000.0;

/// The actuator's calibrated range: duty from, duty to.
static LIMITS: [f32; 2] = [0.0, 1.0];

/// One operating point's gains.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gains {
    kp: f32,
    ki: f32,
    kd: f32,
}

/// Operating points in the table: as many as fit the slot with the code beside them (the block
/// is 4,092 bytes of a 4,096-byte slot; one more point would not fit).
const POINTS: usize = 330;
/// The point this build runs at.
const POINT: usize = 160;

/// The calibration: gains that soften as the operating point rises.
static CALIBRATION: [Gains; POINTS] = {
    let mut t = [Gains {
        kp: 0.0,
        ki: 0.0,
        kd: 0.0,
    }; POINTS];
    let mut i = 0;
    while i < POINTS {
        let x = i as f32 / POINTS as f32;
        t[i] = Gains {
            kp: 0.09 - 0.04 * x,
            ki: 6.0 - 2.0 * x,
            kd: 0.000_02,
        };
        i += 1;
    }
    t
};

control_law!(|state, measured, setpoint| {
    // SAFETY: an in-bounds element of a static (POINT < POINTS, checked below at compile time).
    let g = unsafe { core::ptr::read_volatile(&raw const CALIBRATION[POINT]) };
    // SAFETY: as above, a whole static.
    let [lo, hi] = unsafe { core::ptr::read_volatile(&raw const LIMITS) };
    let e = setpoint - measured;
    state.integral = clamp(state.integral + g.ki * DT * e, lo, hi);
    let derivative = (e - state.previous_error) / DT;
    state.previous_error = e;
    clamp(g.kp * e + state.integral + g.kd * derivative, lo, hi)
});

const _: () = assert!(POINT < POINTS);
