//! Cross-core rendezvous with a bound: a barrier whose timeout names who did not arrive.

use crate::arch::cpu;
use core::sync::atomic::{AtomicU64, Ordering};

/// A reusable barrier for the cores in a fixed set.
pub struct Barrier {
    arrived: AtomicU64,
    generation: AtomicU64,
}

impl Barrier {
    /// A barrier no core has reached.
    pub const fn new() -> Self {
        Self {
            arrived: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// Waits until `count` cores called `wait` in this generation; `Err` carries the bit mask of
    /// cores that had arrived when `timeout_us` ran out.
    pub fn wait(&self, count: usize, timeout_us: u64) -> Result<(), u64> {
        let generation = self.generation.load(Ordering::Acquire);
        let me = 1u64 << cpu::core_id();
        let arrived = self.arrived.fetch_or(me, Ordering::AcqRel) | me;
        if arrived.count_ones() as usize == count {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.store(generation + 1, Ordering::Release);
            return Ok(());
        }
        let deadline = cpu::ticks() + cpu::us_to_ticks(timeout_us);
        while self.generation.load(Ordering::Acquire) == generation {
            if cpu::ticks() > deadline {
                return Err(self.arrived.load(Ordering::Relaxed));
            }
            cpu::relax();
        }
        Ok(())
    }
}
