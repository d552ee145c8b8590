//! Refused on purpose: counts its calls in a writable static. A block is code and read-only
//! data; `cargo xtask patch build` must refuse the writable section, naming it.

#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};
use graft_patch::control_law;

static CALLS: AtomicU32 = AtomicU32::new(0);

control_law!(|state, measured, setpoint| {
    let _ = state;
    CALLS.fetch_add(1, Ordering::Relaxed);
    (setpoint - measured) * 0.05
});
