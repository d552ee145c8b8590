//! What the demo measures, per strategy, and the summary it prints.

use crate::arch::cpu;
use crate::patch::sites::STRATEGIES;
use boards::MAX_CORES;
use core::sync::atomic::{AtomicUsize, Ordering};

/// One loop's figures for one strategy.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseStats {
    /// Iterations run.
    pub iterations: u64,
    /// Deadlines missed (a step ending after the next tick was due, or a skipped period).
    pub misses: u64,
    /// Iterations that ran a version older than one already published.
    pub stale: u64,
    /// Iterations a publication touched (an IPI, new code, a synchronization), and their
    /// response times (tick due to step done, counter ticks).
    pub disturbed: u64,
    disturbed_sum: u64,
    disturbed_max: u64,
    /// Iterations no publication touched.
    pub quiet: u64,
    quiet_sum: u64,
    error_sum: f32,
    error_max: f32,
}

impl PhaseStats {
    /// Adds one iteration.
    pub fn record(&mut self, response: u64, disturbed: bool, misses: u64, error: f32) {
        self.iterations += 1;
        self.misses += misses;
        if disturbed {
            self.disturbed += 1;
            self.disturbed_sum += response;
            self.disturbed_max = self.disturbed_max.max(response);
        } else {
            self.quiet += 1;
            self.quiet_sum += response;
        }
        self.error_sum += error;
        self.error_max = self.error_max.max(error);
    }

    fn merge(&mut self, o: &PhaseStats) {
        self.iterations += o.iterations;
        self.misses += o.misses;
        self.stale += o.stale;
        self.disturbed += o.disturbed;
        self.disturbed_sum += o.disturbed_sum;
        self.disturbed_max = self.disturbed_max.max(o.disturbed_max);
        self.quiet += o.quiet;
        self.quiet_sum += o.quiet_sum;
        self.error_sum += o.error_sum;
        self.error_max = self.error_max.max(o.error_max);
    }
}

static FILED: AtomicUsize = AtomicUsize::new(0);
static FIGURES: [spin::Mutex<[PhaseStats; STRATEGIES]>; MAX_CORES] = [const {
    spin::Mutex::new(
        [PhaseStats {
            iterations: 0,
            misses: 0,
            stale: 0,
            disturbed: 0,
            disturbed_sum: 0,
            disturbed_max: 0,
            quiet: 0,
            quiet_sum: 0,
            error_sum: 0.0,
            error_max: 0.0,
        }; STRATEGIES],
    )
}; MAX_CORES];

/// A loop hands in its figures when it stops.
pub fn file(core: usize, figures: [PhaseStats; STRATEGIES]) {
    *FIGURES[core].lock() = figures;
    FILED.fetch_add(1, Ordering::Release);
}

/// How many loops have filed.
pub fn filed() -> usize {
    FILED.load(Ordering::Acquire)
}

/// The whole run's result.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Deadline misses, all loops, all strategies.
    pub misses: u64,
    /// Iterations that ran an outdated version.
    pub stale: u64,
    /// Strategies in which some loop never ran or no patch was applied.
    pub idle: u64,
}

fn ns(ticks: u64) -> u64 {
    ticks * 1_000_000_000 / cpu::tick_hz().max(1)
}

/// Merges every loop's figures and logs the table.
pub fn summarize(patches: &[u64; STRATEGIES], cores: usize) -> Summary {
    let mut s = Summary::default();
    crate::patch::sites::announce();
    defmt::info!(
        "demo summary (virtual time, -icount shift=0: 1 instruction = 1 ns); {=usize} loops at {=u64} Hz, patches at {=u64} Hz",
        cores - 1,
        super::LOOP_HZ,
        super::PUBLISH_HZ
    );
    for (phase, site) in crate::patch::sites::strategies().iter().enumerate() {
        let mut all = PhaseStats::default();
        for figures in &FIGURES[1..cores] {
            all.merge(&figures.lock()[phase]);
        }
        let quiet_mean = all.quiet_sum / all.quiet.max(1);
        let extra_max = all.disturbed_max.saturating_sub(quiet_mean);
        let extra_mean = (all.disturbed_sum / all.disturbed.max(1)).saturating_sub(quiet_mean);
        let mean_error = all.error_sum / all.iterations.max(1) as f32;
        defmt::info!(
            "demo-result strategy={=str} patches={=u64} iterations={=u64} misses={=u64} extra_max_ns={=u64} extra_mean_ns={=u64} mean_abs_error_c={=f32} max_abs_error_c={=f32}",
            site.name,
            patches[phase],
            all.iterations,
            all.misses,
            ns(extra_max),
            ns(extra_mean),
            mean_error,
            all.error_max
        );
        crate::report::emit(&protocol::Record::DemoResult {
            strategy: protocol::record::Name::new(site.strategy()),
            patches: patches[phase],
            iterations: all.iterations,
            misses: all.misses,
            extra_max_ns: ns(extra_max),
            extra_mean_ns: ns(extra_mean),
            mean_abs_error_c: mean_error,
            max_abs_error_c: all.error_max,
        });
        s.misses += all.misses;
        s.stale += all.stale;
        if patches[phase] == 0 || all.iterations == 0 {
            s.idle += 1;
        }
    }
    s
}
