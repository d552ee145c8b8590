//! The simulated plant: a first-order thermal model, one per control loop.
//!
//! `dT/dt = (T_ambient - T) / tau + gain * u`, with `u` in `[0, 1]` (heater duty), stepped once
//! per control period with explicit Euler (the period, 100 us, is far below `tau`).

/// Ambient temperature, degrees C.
pub const AMBIENT: f32 = 20.0;
/// Time constant, seconds.
const TAU: f32 = 0.2;
/// Heating at full duty, degrees C per second.
const GAIN: f32 = 500.0;

/// One heated body.
#[derive(Clone, Copy, Debug)]
pub struct Thermal {
    /// Its temperature, degrees C.
    pub temperature: f32,
}

impl Thermal {
    /// A body at ambient temperature.
    pub const fn new() -> Self {
        Self {
            temperature: AMBIENT,
        }
    }

    /// Advances `dt` seconds with duty `u`.
    pub fn step(&mut self, u: f32, dt: f32) {
        let t = self.temperature;
        self.temperature = t + dt * ((AMBIENT - t) / TAU + GAIN * u.clamp(0.0, 1.0));
    }
}
