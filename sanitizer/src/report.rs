//! Reports and their one-line, machine-readable form.
//!
//! Every line starts with `graft-sanitizer: ` and a keyword, then `key=value` fields separated
//! by single spaces, so the host tool can split them without a grammar:
//!
//! ```text
//! graft-sanitizer: hazard kind=unpredictable core=1 va=0x40201000 pa=0x40201000 writer-core=0 writer-pc=0x40200124 missing=clean iter=1 old=0xd2800029 new=0xd2800049 published=no
//! graft-sanitizer: stale kind=stale core=1 va=... (same fields; a stale execution outside a published range)
//! graft-sanitizer: outcome core=1 iter=3 value=1
//! graft-sanitizer: summary stale=0 unpredictable=1 hazards=1 attribution-errors=0 core-ids=2 unresolved-maintenance=0 late-code-stores=0
//! ```
//!
//! `iter=-` when the core never announced an iteration; `old=-` when the word's previous
//! contents were never seen (it was written before it was ever executed).

use std::fmt;

/// The stable prefix of every line the sanitizer prints.
pub const PREFIX: &str = "graft-sanitizer:";

/// What the executing core lacked for the word to be guaranteed fresh, in the order the
/// sequence needs them; a report names the first missing step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Missing {
    /// No `DC` cleaned the line after the write (needed unless `CTR_EL0.IDC = 1`).
    Clean,
    /// A `DC` cleaned the line, but it was not ordered after the write (another core's `DC`
    /// without the writer's data being observed through a barrier or dependency).
    CleanOrder,
    /// The clean (or, with `IDC = 1`, the write) was not completed and ordered before the `IC`
    /// (no `DSB` between them on one core, no release/acquire chain across cores), or, with
    /// `DIC = 1`, before the executing core's context synchronization.
    CleanCompletion,
    /// No `IC` invalidated the line for the executing core after the clean (with
    /// `ic-broadcast=off`: no `IC` issued *on* the executing core).
    Invalidate,
    /// The `IC` was not completed by a `DSB` on the core that issued it.
    InvalidateCompletion,
    /// No context synchronization event (`ISB`, exception entry, `ERET`) on the executing core
    /// ordered after the completion.
    ContextSync,
}

impl Missing {
    /// The word used in report lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Clean => "clean",
            Missing::CleanOrder => "clean-order",
            Missing::CleanCompletion => "clean-completion",
            Missing::Invalidate => "invalidate",
            Missing::InvalidateCompletion => "invalidate-completion",
            Missing::ContextSync => "context-sync",
        }
    }
}

/// The two kinds of report (docs/design.md section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Old and new word are both in the CMODX set: the core ran one of the two.
    Stale,
    /// The old or the new word is outside the CMODX set: the core may have run anything.
    Unpredictable,
}

/// One execution of a word that was not guaranteed fresh for the executing core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Executing core (vCPU index).
    pub core: usize,
    /// Virtual address it executed the word at.
    pub va: u64,
    /// Physical address of the word.
    pub pa: u64,
    /// Core that last wrote the word.
    pub writer_core: usize,
    /// Program counter of that write.
    pub writer_pc: u64,
    /// The first step the executing core lacked.
    pub missing: Missing,
    /// Stale or unpredictable.
    pub kind: Kind,
    /// True when this execution is a hazard (always for unpredictable; for stale, inside a
    /// published range).
    pub hazard: bool,
    /// The executing core's iteration number, if it announced one.
    pub iteration: Option<u64>,
    /// The word before the first unsynchronized write, if it was ever seen.
    pub old: Option<u32>,
    /// The word now in memory.
    pub new: u32,
    /// True if the executing address lies in a range marked published.
    pub published: bool,
    /// This report's number, counted from 1 in the order reports are made.
    pub id: u64,
    /// Earlier reports of the same iteration that cannot have been stale together with this
    /// one: had either fetch run the old word, the from-read order of that stale fetch would
    /// have made the other fresh (`SB-bnop-cachesyncs`, Forbidden, where each core's fetch alone
    /// may be stale but not both).
    pub excludes: Vec<u64>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.hazard { "hazard" } else { "stale" };
        let kind = match self.kind {
            Kind::Stale => "stale",
            Kind::Unpredictable => "unpredictable",
        };
        write!(
            f,
            "{PREFIX} {tag} kind={kind} core={} va={:#x} pa={:#x} writer-core={} writer-pc={:#x} missing={} iter={} old={} new={:#010x} published={} id={} excludes={}",
            self.core,
            self.va,
            self.pa,
            self.writer_core,
            self.writer_pc,
            self.missing.as_str(),
            self.iteration.map_or("-".to_string(), |i| i.to_string()),
            self.old.map_or("-".to_string(), |w| format!("{w:#010x}")),
            self.new,
            if self.published { "yes" } else { "no" },
            self.id,
            if self.excludes.is_empty() {
                "-".to_string()
            } else {
                self.excludes
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        )
    }
}

/// Counters printed once at exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Stale reports (hazard or not).
    pub stale: u64,
    /// Unpredictable reports.
    pub unpredictable: u64,
    /// Reports that are hazards.
    pub hazards: u64,
    /// `CORE_ID` markers whose claimed core differed from the vCPU index.
    pub attribution_errors: u64,
    /// `CORE_ID` markers seen.
    pub core_ids: u64,
    /// `DC`/`IC` by address whose virtual address had no known physical page (treated as
    /// identity-mapped).
    pub unresolved_maintenance: u64,
    /// Blocks translated from words a store had written but whose memory callback did not run
    /// within the wait (multi-threaded TCG): their fetches may have been followed too early.
    pub late_code_stores: u64,
}

impl Summary {
    /// Counts one report.
    pub fn count(&mut self, r: &Report) {
        match r.kind {
            Kind::Stale => self.stale += 1,
            Kind::Unpredictable => self.unpredictable += 1,
        }
        if r.hazard {
            self.hazards += 1;
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX} summary stale={} unpredictable={} hazards={} attribution-errors={} core-ids={} unresolved-maintenance={} late-code-stores={}",
            self.stale,
            self.unpredictable,
            self.hazards,
            self.attribution_errors,
            self.core_ids,
            self.unresolved_maintenance,
            self.late_code_stores
        )
    }
}

/// The line echoing an `OUTCOME` marker.
pub fn outcome_line(core: usize, iteration: Option<u64>, value: u64) -> String {
    let iter = iteration.map_or("-".to_string(), |i| i.to_string());
    format!("{PREFIX} outcome core={core} iter={iter} value={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_is_stable() {
        let r = Report {
            core: 1,
            va: 0x4020_1000,
            pa: 0x4020_1000,
            writer_core: 0,
            writer_pc: 0x4020_0124,
            missing: Missing::Clean,
            kind: Kind::Unpredictable,
            hazard: true,
            iteration: Some(1),
            old: Some(0xD280_0029),
            new: 0xD280_0049,
            published: false,
            id: 3,
            excludes: vec![1, 2],
        };
        assert_eq!(
            r.to_string(),
            "graft-sanitizer: hazard kind=unpredictable core=1 va=0x40201000 pa=0x40201000 \
             writer-core=0 writer-pc=0x40200124 missing=clean iter=1 old=0xd2800029 \
             new=0xd2800049 published=no id=3 excludes=1,2"
        );
        let mut s = Summary::default();
        s.count(&r);
        assert_eq!(
            s.to_string(),
            "graft-sanitizer: summary stale=0 unpredictable=1 hazards=1 attribution-errors=0 \
             core-ids=0 unresolved-maintenance=0 late-code-stores=0"
        );
        assert_eq!(
            outcome_line(1, None, 3),
            "graft-sanitizer: outcome core=1 iter=- value=3"
        );
    }
}
