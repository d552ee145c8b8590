//! The control laws the demo publishes: real assembled code, copied into arena slots.
//!
//! Each law is a position-independent function
//! `extern "C" fn(state: *mut LoopState, measured: f32, setpoint: f32) -> f32` assembled into
//! read-only data. Its parameters live in a block at its end, [`Params`], which the producer fills
//! for each version (new gains); the law records that version in the state it runs on, so the
//! loop knows which code ran. Two laws with different code: a PID and a PI with back-calculation
//! anti-windup (the "new control law" the demo switches to halfway through each strategy).

use core::arch::global_asm;

/// A control loop's state, shared by every version of the law (and with Rust patches).
pub use graft_patch::LoopState;

/// The parameter block at the end of every law (`adr x10, params; ldp s2, s3; ldp s4, s16`).
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

const PARAMS_LEN: usize = core::mem::size_of::<Params>();
const _: () = assert!(PARAMS_LEN == 24);

/// A law's entry.
pub use graft_patch::Law;

global_asm!(
    ".section .rodata.graft_laws, \"a\"",
    ".balign 8",
    // PID: u = clamp(kp*e + I + kd/dt*(e - e_prev)), I = clamp(I + ki*dt*e).
    ".global graft_law_pid",
    "graft_law_pid:",
    "    adr    x10, 9f",
    "    ldp    s2, s3, [x10]",
    "    ldp    s4, s16, [x10, #8]",
    "    movi   d17, #0",
    "    fsub   s5, s1, s0",
    "    ldr    s6, [x0]",
    "    fmadd  s6, s5, s3, s6",
    "    fmin   s6, s6, s16",
    "    fmax   s6, s6, s17",
    "    str    s6, [x0]",
    "    ldr    s7, [x0, #4]",
    "    str    s5, [x0, #4]",
    "    fsub   s7, s5, s7",
    "    fmul   s0, s5, s2",
    "    fadd   s0, s0, s6",
    "    fmadd  s0, s7, s4, s0",
    "    fmin   s0, s0, s16",
    "    fmax   s0, s0, s17",
    "    ldr    x9, [x10, #16]",
    "    str    x9, [x0, #8]",
    "    ret",
    "    .balign 8",
    "9:  .float 0, 0, 0, 0",
    "    .quad  0",
    ".global graft_law_pid_end",
    "graft_law_pid_end:",
    // PI with back-calculation: v = kp*e + I, u = clamp(v), I += ki*dt*e + kb*(u - v).
    ".balign 8",
    ".global graft_law_piaw",
    "graft_law_piaw:",
    "    adr    x11, 9f",
    "    ldp    s2, s3, [x11]",
    "    ldp    s4, s16, [x11, #8]",
    "    movi   d17, #0",
    "    fsub   s5, s1, s0",
    "    ldr    s6, [x0]",
    "    fmul   s7, s5, s2",
    "    fadd   s7, s7, s6",
    "    fmin   s0, s7, s16",
    "    fmax   s0, s0, s17",
    "    fsub   s18, s0, s7",
    "    fmadd  s6, s5, s3, s6",
    "    fmadd  s6, s18, s4, s6",
    "    str    s6, [x0]",
    "    str    s5, [x0, #4]",
    "    ldr    x12, [x11, #16]",
    "    str    x12, [x0, #8]",
    "    ret",
    "    .balign 8",
    "9:  .float 0, 0, 0, 0",
    "    .quad  0",
    ".global graft_law_piaw_end",
    "graft_law_piaw_end:",
);

unsafe extern "C" {
    static graft_law_pid: u8;
    static graft_law_pid_end: u8;
    static graft_law_piaw: u8;
    static graft_law_piaw_end: u8;
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

fn template(kind: Kind) -> &'static [u8] {
    // SAFETY: each pair of symbols brackets one law in read-only data, start before end.
    unsafe {
        let (start, end) = match kind {
            Kind::Pid => (&raw const graft_law_pid, &raw const graft_law_pid_end),
            Kind::PiAntiWindup => (&raw const graft_law_piaw, &raw const graft_law_piaw_end),
        };
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// The code of `kind` with `params` in its parameter block, zero padded to [`MAX_LEN`].
pub fn build(kind: Kind, params: Params) -> ([u8; MAX_LEN], usize) {
    let t = template(kind);
    assert!(
        t.len() <= MAX_LEN && t.len() >= PARAMS_LEN,
        "control law size"
    );
    let mut buf = [0u8; MAX_LEN];
    buf[..t.len()].copy_from_slice(t);
    let p = t.len() - PARAMS_LEN;
    for (i, f) in [params.kp, params.ki_dt, params.k3, params.umax]
        .iter()
        .enumerate()
    {
        buf[p + 4 * i..p + 4 * i + 4].copy_from_slice(&f.to_le_bytes());
    }
    buf[p + 16..p + 24].copy_from_slice(&params.version.to_le_bytes());
    (buf, t.len())
}
