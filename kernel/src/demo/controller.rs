//! The control laws the demo publishes: Rust functions, copied into arena slots as blocks.
//!
//! Each law is a function `extern "C" fn(state: *mut LoopState, measured: f32, setpoint: f32) ->
//! f32` (`graft_patch::Law`) in its own linker section, followed there by its parameter block,
//! [`Params`]: the linker gathers the two (`linker/common.ld`, `__graft_law_*`), and a version of
//! the law is that block copied with new parameters (new gains) written into it. The law reads its
//! parameters through an `ADR` of its own block (exact at any address, where an `ADRP`'s page
//! offset would be wrong at the in-place site's address), uses no other constant, calls nothing,
//! and records the version in the state it runs on, so the loop knows which code ran. The board's
//! verifier checks every block at its slot, like any patch. Two laws with different code: a PID
//! and a PI with back-calculation anti-windup (the "new control law" the demo switches to halfway
//! through each strategy).

use graft_patch::clamp;

/// A control loop's state, shared by every version of the law (and with Rust patches).
pub use graft_patch::LoopState;

/// The parameter block at the end of every law.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Proportional gain.
    pub kp: f32,
    /// Integral gain times the period.
    pub ki_dt: f32,
    /// PID: derivative gain over the period. PI-AW: back-calculation gain.
    pub k3: f32,
    /// Largest actuator output (the smallest is 0).
    pub umax: f32,
    /// The version, recorded in [`LoopState::version`] when the law runs.
    pub version: u64,
}

impl Params {
    /// What the template holds before a version is written in (never published as it is).
    const ZERO: Self = Self {
        kp: 0.0,
        ki_dt: 0.0,
        k3: 0.0,
        umax: 0.0,
        version: 0,
    };
}

const PARAMS_LEN: usize = core::mem::size_of::<Params>();
const _: () = assert!(PARAMS_LEN == 24);

/// A law's entry.
pub use graft_patch::Law;

/// The address of a law's own parameter block, by `ADR`: the one PC-relative reference a law
/// makes, exact wherever its block is copied.
macro_rules! params_of {
    ($params:path) => {{
        let p: *const Params;
        // SAFETY: computes an address; touches no memory, stack or flags.
        unsafe {
            core::arch::asm!(
                "adr {p}, {params}",
                p = out(reg) p,
                params = sym $params,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        p
    }};
}

#[unsafe(link_section = ".graft_law.pid.params")]
#[used]
static PID_PARAMS: Params = Params::ZERO;

/// PID: `u = clamp(kp*e + I + kd/dt*(e - e_prev))`, `I = clamp(I + ki*dt*e)`.
///
/// # Safety
/// `state` points at the calling loop's own state, valid for the call; runs only as a copy
/// with its parameter block ([`build`]).
#[unsafe(link_section = ".graft_law.pid.text")]
#[unsafe(no_mangle)]
unsafe extern "C" fn graft_law_pid(state: *mut LoopState, measured: f32, setpoint: f32) -> f32 {
    let params = params_of!(PID_PARAMS);
    // SAFETY: the block's own parameter block, copied with it.
    let p = unsafe { core::ptr::read_volatile(params) };
    // SAFETY: the caller's contract.
    let s = unsafe { &mut *state };
    let e = setpoint - measured;
    s.integral = clamp(s.integral + p.ki_dt * e, 0.0, p.umax);
    let d = e - s.previous_error;
    s.previous_error = e;
    let u = clamp(p.kp * e + s.integral + p.k3 * d, 0.0, p.umax);
    s.version = p.version;
    u
}

#[unsafe(link_section = ".graft_law.piaw.params")]
#[used]
static PIAW_PARAMS: Params = Params::ZERO;

/// PI with back-calculation: `v = kp*e + I`, `u = clamp(v)`, `I += ki*dt*e + kb*(u - v)`.
///
/// # Safety
/// As [`graft_law_pid`].
#[unsafe(link_section = ".graft_law.piaw.text")]
#[unsafe(no_mangle)]
unsafe extern "C" fn graft_law_piaw(state: *mut LoopState, measured: f32, setpoint: f32) -> f32 {
    let params = params_of!(PIAW_PARAMS);
    // SAFETY: the block's own parameter block, copied with it.
    let p = unsafe { core::ptr::read_volatile(params) };
    // SAFETY: the caller's contract.
    let s = unsafe { &mut *state };
    let e = setpoint - measured;
    let v = p.kp * e + s.integral;
    let u = clamp(v, 0.0, p.umax);
    s.integral += p.ki_dt * e + p.k3 * (u - v);
    s.previous_error = e;
    s.version = p.version;
    u
}

unsafe extern "C" {
    static __graft_law_pid: u8;
    static __graft_law_pid_end: u8;
    static __graft_law_piaw: u8;
    static __graft_law_piaw_end: u8;
}

/// Which law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Kind {
    /// Proportional, integral, derivative.
    Pid,
    /// Proportional and integral with back-calculation anti-windup.
    PiAntiWindup,
}

/// The longest law with its parameters, in bytes (fits the in-place site).
pub const MAX_LEN: usize = 128;

/// A law's block in the image (its code, then its parameter block) and where in it the
/// parameters are.
fn template(kind: Kind) -> (&'static [u8], usize) {
    // SAFETY: each pair of linker symbols brackets one law's code and parameter block in
    // read-only data, start before end; the parameter static lies between them.
    unsafe {
        let (start, end, params) = match kind {
            Kind::Pid => (
                &raw const __graft_law_pid,
                &raw const __graft_law_pid_end,
                (&raw const PID_PARAMS).cast::<u8>(),
            ),
            Kind::PiAntiWindup => (
                &raw const __graft_law_piaw,
                &raw const __graft_law_piaw_end,
                (&raw const PIAW_PARAMS).cast::<u8>(),
            ),
        };
        (
            core::slice::from_raw_parts(start, end.offset_from(start) as usize),
            params.offset_from(start) as usize,
        )
    }
}

/// The code of `kind` with `params` in its parameter block, zero padded to [`MAX_LEN`].
pub fn build(kind: Kind, params: Params) -> ([u8; MAX_LEN], usize) {
    let (t, at) = template(kind);
    assert!(
        t.len() <= MAX_LEN && at + PARAMS_LEN <= t.len(),
        "control law size"
    );
    let mut buf = [0u8; MAX_LEN];
    buf[..t.len()].copy_from_slice(t);
    for (i, f) in [params.kp, params.ki_dt, params.k3, params.umax]
        .iter()
        .enumerate()
    {
        buf[at + 4 * i..at + 4 * i + 4].copy_from_slice(&f.to_le_bytes());
    }
    buf[at + 16..at + 24].copy_from_slice(&params.version.to_le_bytes());
    (buf, t.len())
}
