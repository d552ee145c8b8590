//! What busy-waiting costs, per core: the retired-instruction count spent in wait loops after
//! their first check failed. The bench subtracts it from a producer's count, so that "producer
//! instructions" is Graft's own work, not how long the other cores took to answer (under
//! round-robin `-icount` the counter also advances while other vCPUs run, which happens only
//! while this one yields, in these loops).

use crate::arch::{cpu, pmu};
use boards::MAX_CORES;
use core::sync::atomic::{AtomicU64, Ordering};

static WAITED: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// Instructions `core` has spent waiting (zero unless its PMU counter was started).
pub fn waited(core: usize) -> u64 {
    WAITED[core].load(Ordering::Relaxed)
}

/// One wait, from its first failed check until it ends (on drop).
pub struct Waiting {
    start: u64,
}

impl Waiting {
    /// Starts counting this core's waiting.
    pub fn begin() -> Self {
        Self {
            start: pmu::instructions(),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let spent = pmu::instructions().wrapping_sub(self.start);
        WAITED[cpu::core_id()].fetch_add(spent, Ordering::Relaxed);
    }
}

/// Runs `f` and returns what it returned with the instructions this core ran in it, its waits
/// excluded (the PMU counter must be running).
pub fn own_instructions<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let me = cpu::core_id();
    let (insns, waited) = (pmu::instructions(), self::waited(me));
    let result = f();
    let spent = pmu::instructions().wrapping_sub(insns);
    let waited = self::waited(me).wrapping_sub(waited);
    (result, spent.saturating_sub(waited))
}
