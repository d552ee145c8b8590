//! Per-core generic-timer ticks (the EL1 virtual timer), counted per core.

use crate::arch::cpu;
use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, Readable, Writeable};
use boards::MAX_CORES;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[repr(align(64))]
struct PerCore {
    period: AtomicU64,
    ticks: AtomicU64,
    /// When the last tick was due (counter value), so a loop can measure its response time.
    due: AtomicU64,
}

static CORES: [PerCore; MAX_CORES] = [const {
    PerCore {
        period: AtomicU64::new(0),
        ticks: AtomicU64::new(0),
        due: AtomicU64::new(0),
    }
}; MAX_CORES];

/// Starts ticking this core at `hz` interrupts per second.
pub fn start(hz: u64) {
    let period = (cpu::tick_hz() / hz.max(1)).max(1);
    CORES[cpu::core_id()]
        .period
        .store(period, Ordering::Relaxed);
    CNTV_CVAL_EL0.set(cpu::ticks() + period);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
}

/// Stops this core's ticks.
pub fn stop() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR);
}

/// Ticks taken so far by `core`.
pub fn ticks(core: usize) -> u64 {
    CORES[core].ticks.load(Ordering::Relaxed)
}

/// When `core`'s last tick was due, in counter ticks.
pub fn last_due(core: usize) -> u64 {
    CORES[core].due.load(Ordering::Acquire)
}

/// Sleeps until `core`'s next tick after `last` (updated); how many ticks passed (more than 1:
/// periods were skipped), or None once `stop` is set (whoever sets it wakes the core).
///
/// IRQs are masked from the check to the `WFI`, so a tick (or the wake-up that comes with `stop`)
/// landing between them stays pending and ends the `WFI` rather than being slept through; it is
/// taken when they are unmasked after it.
pub fn wait_tick(core: usize, last: &mut u64, stop: &AtomicBool) -> Option<u64> {
    loop {
        let saved = cpu::irq_save();
        let now = ticks(core);
        if stop.load(Ordering::Acquire) {
            cpu::irq_restore(saved);
            return None;
        }
        if now != *last {
            cpu::irq_restore(saved);
            let passed = now - *last;
            *last = now;
            return Some(passed);
        }
        cpu::wfi();
        cpu::irq_restore(saved);
    }
}

/// This core's tick period, in counter ticks.
pub fn period() -> u64 {
    CORES[cpu::core_id()].period.load(Ordering::Relaxed)
}

/// The timer interrupt: count it and arm the next deadline one period after the last.
pub fn handle() {
    let me = &CORES[cpu::core_id()];
    me.due.store(CNTV_CVAL_EL0.get(), Ordering::Relaxed);
    me.ticks.fetch_add(1, Ordering::Release);
    // From the previous deadline, not from now: late interrupts do not stretch the period.
    CNTV_CVAL_EL0.set(CNTV_CVAL_EL0.get() + me.period.load(Ordering::Relaxed));
}
