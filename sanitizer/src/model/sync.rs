//! Barriers, cache maintenance and context synchronization: the steps that make a word fresh.
//!
//! The rules these functions implement, and the catalogue tests behind them, are listed in the
//! parent module's documentation.

use super::{Cse, Ev, Inval, Model, WordWrite};
use crate::clock::Clock;
use crate::decode::{BarrierKind, DcOp, IcOp};
use crate::report::Missing;

impl Model {
    /// A `DMB` by `core`.
    pub fn dmb(&mut self, core: usize, kind: BarrierKind) {
        let c = &mut self.cores[core];
        let now = c.tick();
        let mut seen = c.seen;
        seen.join(&c.ctrl);
        let fr = c.fr;
        match kind {
            BarrierKind::Full => {
                for k in [&mut c.mem, &mut c.st, &mut c.cmo] {
                    k.join(&seen);
                    k.join(&fr);
                    k.raise(core, now);
                }
            }
            BarrierKind::Load => {
                c.mem.join_remote(&seen, core);
                c.st.join_remote(&seen, core);
            }
            // What is ordered before earlier stores (from-read) is ordered before later ones.
            BarrierKind::Store if !c.unfenced_dc => {
                c.st.join(&fr);
                c.st.raise(core, now);
            }
            BarrierKind::Store => c.st.join(&fr),
        }
    }

    /// A `DSB` by `core`; a full one completes this core's pending `DC`s and `IC`s.
    pub fn dsb(&mut self, core: usize, kind: BarrierKind) {
        let c = &mut self.cores[core];
        let now = c.tick();
        let mut all = c.seen;
        for k in [&c.mem, &c.st, &c.cmo, &c.isb, &c.ctrl] {
            all.join(k);
        }
        let fr = c.fr;
        match kind {
            BarrierKind::Full => {
                all.join(&fr);
                all.raise(core, now);
                c.relevant = now;
                (c.mem, c.st, c.cmo, c.isb) = (all, all, all, all);
                c.unfenced_dc = false;
                c.last_dsb_st = now;
                let pending = std::mem::take(&mut c.pending);
                let done = Ev { core, ts: now };
                for line in pending {
                    let Some(l) = self.lines.get_mut(&line) else {
                        continue;
                    };
                    for w in &mut l.writes {
                        for (e, d) in w.sync.cleans.iter_mut() {
                            if e.core == core && d.is_none() {
                                *d = Some(done);
                            }
                        }
                        let loose = w.sync.loose_invals.iter_mut().map(|(_, i, _)| i);
                        for i in w.sync.invals.iter_mut().map(|(_, i)| i).chain(loose) {
                            if i.ic.core == core && i.done.is_none() {
                                i.done = Some(done);
                            }
                        }
                    }
                }
            }
            BarrierKind::Load => {
                for k in [&mut c.mem, &mut c.st, &mut c.cmo, &mut c.isb] {
                    k.join_remote(&all, core);
                }
            }
            // A `DSB ST` completes earlier stores before anything later: what is ordered before
            // them (from-read) is too.
            BarrierKind::Store if !c.unfenced_dc => {
                for k in [&mut c.mem, &mut c.st, &mut c.cmo, &mut c.isb] {
                    k.join(&fr);
                    k.raise(core, now);
                }
                c.last_dsb_st = now;
            }
            BarrierKind::Store => {
                for k in [&mut c.mem, &mut c.st, &mut c.cmo, &mut c.isb] {
                    k.join(&fr);
                }
            }
        }
    }

    /// True if write `w` is ordered before `core`'s next maintenance instruction.
    fn write_ordered(&self, w: &WordWrite, core: usize, same_core_free: bool) -> bool {
        let c = &self.cores[core];
        (same_core_free && (w.core == core || w.loaded_by & (1 << core) != 0))
            || c.cmo.covers(w.core, w.ts)
            || c.addr.is_some_and(|a| a.covers(w.core, w.ts))
    }

    /// A `DC` by `core` of the line holding `pa`.
    pub fn dc(&mut self, core: usize, pa: u64, op: DcOp) {
        let ts = self.cores[core].tick();
        self.cores[core].relevant = ts;
        let line = self.line_of(pa);
        if op == DcOp::Clean {
            self.cores[core].unfenced_dc = true;
            if let Some(l) = self.lines.get(&line) {
                // The clean covers each written word of the line that is ordered before it.
                let ordered: Vec<bool> = l
                    .writes
                    .iter()
                    .map(|w| self.write_ordered(w, core, true))
                    .collect();
                let l = self.lines.get_mut(&line).expect("present");
                for (w, ordered) in l.writes.iter_mut().zip(ordered) {
                    if ordered {
                        w.sync.cleans.push((Ev { core, ts }, None));
                    } else {
                        w.sync.clean_unordered = true;
                    }
                }
                self.cores[core].pending.push(line);
            }
        }
        self.cores[core].addr = None;
    }

    fn ic_line(&mut self, core: usize, line: u64, ts: u32, targets: &[usize], all: bool) {
        let Some(l) = self.lines.get(&line) else {
            return;
        };
        let c = &self.cores[core];
        let ordered: Vec<bool> = l
            .writes
            .iter()
            .map(|w| {
                if self.cfg.idc {
                    self.write_ordered(w, core, false)
                } else {
                    w.sync.cleans.iter().any(|(e, _)| {
                        c.cmo.covers(e.core, e.ts) || c.addr.is_some_and(|a| a.covers(e.core, e.ts))
                    })
                }
            })
            .collect();
        let mask = targets.iter().fold(0u64, |m, &t| m | 1 << t);
        let l = self.lines.get_mut(&line).expect("present");
        for (w, ordered) in l.writes.iter_mut().zip(ordered) {
            if ordered {
                w.sync.invals.push((
                    mask,
                    Inval {
                        ic: Ev { core, ts },
                        done: None,
                    },
                ));
            } else {
                w.sync.ic_unordered = true;
                w.sync.loose_invals.push((
                    mask,
                    Inval {
                        ic: Ev { core, ts },
                        done: None,
                    },
                    all,
                ));
            }
        }
        self.cores[core].pending.push(line);
    }

    /// An `IC` by `core`; `pa` is the line's physical address for `IC IVAU`.
    pub fn ic(&mut self, core: usize, op: IcOp, pa: u64) {
        let ts = self.cores[core].tick();
        self.cores[core].relevant = ts;
        let targets: Vec<usize> = if self.cfg.ic_broadcast && op != IcOp::AllLocal {
            (0..self.cfg.cores).collect()
        } else {
            vec![core]
        };
        let lines: Vec<u64> = match op {
            IcOp::Ivau => vec![self.line_of(pa)],
            _ => self.lines.keys().copied().collect(),
        };
        let all = op != IcOp::Ivau;
        for line in lines {
            self.ic_line(core, line, ts, &targets, all);
        }
        self.cores[core].addr = None;
    }

    /// True if written word `w` would be fresh for `core` after a context synchronization
    /// event.
    fn syncs(&self, w: &WordWrite, core: usize, cse: Cse, isb: &Clock) -> bool {
        let ordered = |e: Ev| match cse {
            Cse::Isb => isb.covers(e.core, e.ts),
            Cse::Exception => true,
        };
        let p = &w.sync;
        if !self.cfg.dic {
            return p
                .invals
                .iter()
                .filter(|(mask, _)| mask & (1 << core) != 0)
                .any(|(_, i)| i.done.is_some_and(ordered));
        }
        if !self.cfg.idc {
            return match cse {
                Cse::Isb => p.cleans.iter().any(|&(e, _)| ordered(e)),
                Cse::Exception => p.cleans.iter().any(|(_, d)| d.is_some()),
            };
        }
        match cse {
            Cse::Isb => isb.covers(w.core, w.ts),
            Cse::Exception => self.cores[w.core].last_dsb_st >= w.ts,
        }
    }

    /// A context synchronization event on `core`.
    pub fn cse(&mut self, core: usize, cse: Cse) {
        let c = &mut self.cores[core];
        c.tick();
        let ctrl = c.ctrl;
        for k in [&mut c.mem, &mut c.st, &mut c.cmo, &mut c.isb] {
            k.join(&ctrl);
        }
        let isb = c.isb;
        // Later fetches are ordered after what this event is ordered after.
        c.fetch = isb;
        let bit = 1u64 << core;
        let fresh: Vec<(u64, u64)> = self
            .lines
            .iter()
            .flat_map(|(&k, l)| l.writes.iter().map(move |w| (k, w)))
            .filter(|(_, w)| w.sync.fresh & bit == 0 && self.syncs(w, core, cse, &isb))
            .map(|(k, w)| (k, w.pa))
            .collect();
        for w in self.lines.values_mut().flat_map(|l| l.writes.iter_mut()) {
            w.sync.cse_since_write |= bit;
        }
        let all = self.all_mask();
        for (k, pa) in fresh {
            let l = self.lines.get_mut(&k).expect("present");
            let i = l.writes.iter().position(|w| w.pa == pa).expect("present");
            l.writes[i].sync.fresh |= bit;
            if l.writes[i].sync.fresh == all {
                self.retire(k, pa);
            }
        }
        if self.lines.is_empty() {
            self.cells.clear();
            self.readers.clear();
            self.data_readers.clear();
        }
    }

    /// Forgets the write of word `pa` (in `line`), now fresh for every core: its value is the
    /// word's known one.
    pub(super) fn retire(&mut self, line: u64, pa: u64) {
        let Some(l) = self.lines.get_mut(&line) else {
            return;
        };
        let Some(i) = l.writes.iter().position(|w| w.pa == pa) else {
            return;
        };
        let w = l.writes.swap_remove(i);
        self.first.set(None);
        self.known.insert(w.pa, w.new);
        if l.writes.is_empty() {
            self.lines.remove(&line);
        }
        if self.lines.is_empty() {
            self.cells.clear();
            self.readers.clear();
            self.data_readers.clear();
        }
    }

    pub(super) fn missing(&self, w: &WordWrite, core: usize) -> Missing {
        let l = &w.sync;
        if !self.cfg.idc && l.cleans.is_empty() {
            return if l.clean_unordered {
                Missing::CleanOrder
            } else {
                Missing::Clean
            };
        }
        if !self.cfg.dic {
            let mine = || l.invals.iter().filter(|(mask, _)| mask & (1 << core) != 0);
            return if mine().any(|(_, i)| i.done.is_some()) {
                Missing::ContextSync
            } else if mine().next().is_some() {
                Missing::InvalidateCompletion
            } else if l.ic_unordered {
                Missing::CleanCompletion
            } else {
                Missing::Invalidate
            };
        }
        // With DIC = 1 the clean (or the write) must be ordered before the executing core's
        // context synchronization: if it had one since the write, that order was missing.
        if l.cse_since_write & (1 << core) != 0 {
            Missing::CleanCompletion
        } else {
            Missing::ContextSync
        }
    }
}
