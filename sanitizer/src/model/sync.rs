//! Barriers, cache maintenance and context synchronization: the steps that make a word fresh.
//!
//! The rules these functions implement, and the catalogue tests behind them, are listed in the
//! parent module's documentation.

use super::{Cse, Ev, Inval, Line, Model};
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
        match kind {
            BarrierKind::Full => {
                for k in [&mut c.mem, &mut c.st, &mut c.cmo] {
                    k.join(&seen);
                    k.raise(core, now);
                }
            }
            BarrierKind::Load => {
                c.mem.join_remote(&seen, core);
                c.st.join_remote(&seen, core);
            }
            BarrierKind::Store if !c.unfenced_dc => c.st.raise(core, now),
            BarrierKind::Store => {}
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
        match kind {
            BarrierKind::Full => {
                all.raise(core, now);
                (c.mem, c.st, c.cmo, c.isb) = (all, all, all, all);
                c.unfenced_dc = false;
                c.last_dsb_st = now;
                let pending = std::mem::take(&mut c.pending);
                let done = Ev { core, ts: now };
                for line in pending {
                    if let Some(l) = self.lines.get_mut(&line) {
                        if l.clean.is_some_and(|e| e.core == core) && l.clean_done.is_none() {
                            l.clean_done = Some(done);
                        }
                        for (_, i) in l.invals.iter_mut() {
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
            BarrierKind::Store if !c.unfenced_dc => {
                for k in [&mut c.mem, &mut c.st, &mut c.cmo, &mut c.isb] {
                    k.raise(core, now);
                }
                c.last_dsb_st = now;
            }
            BarrierKind::Store => {}
        }
    }

    fn writes_ordered(&self, l: &Line, core: usize, same_core_free: bool) -> bool {
        let c = &self.cores[core];
        l.writes.iter().all(|w| {
            (same_core_free && w.core == core)
                || c.cmo.covers(w.core, w.ts)
                || c.addr.is_some_and(|a| a.covers(w.core, w.ts))
        })
    }

    /// A `DC` by `core` of the line holding `pa`.
    pub fn dc(&mut self, core: usize, pa: u64, op: DcOp) {
        let ts = self.cores[core].tick();
        let line = self.line_of(pa);
        if op == DcOp::Clean {
            self.cores[core].unfenced_dc = true;
            if let Some(l) = self.lines.get(&line) {
                let ordered = self.writes_ordered(l, core, true);
                let l = self.lines.get_mut(&line).expect("present");
                if ordered {
                    l.clean = Some(Ev { core, ts });
                    l.clean_done = None;
                    self.cores[core].pending.push(line);
                } else {
                    l.clean_unordered = true;
                }
            }
        }
        self.cores[core].addr = None;
    }

    fn ic_line(&mut self, core: usize, line: u64, ts: u32, targets: &[usize]) {
        let Some(l) = self.lines.get(&line) else {
            return;
        };
        let ordered = if self.cfg.idc {
            self.writes_ordered(l, core, false)
        } else {
            let c = &self.cores[core];
            l.clean.is_some_and(|e| {
                c.cmo.covers(e.core, e.ts) || c.addr.is_some_and(|a| a.covers(e.core, e.ts))
            })
        };
        let l = self.lines.get_mut(&line).expect("present");
        if !ordered {
            l.ic_unordered = true;
            return;
        }
        let mask = targets.iter().fold(0u64, |m, &t| m | 1 << t);
        l.invals.push((
            mask,
            Inval {
                ic: Ev { core, ts },
                done: None,
            },
        ));
        self.cores[core].pending.push(line);
    }

    /// An `IC` by `core`; `pa` is the line's physical address for `IC IVAU`.
    pub fn ic(&mut self, core: usize, op: IcOp, pa: u64) {
        let ts = self.cores[core].tick();
        let targets: Vec<usize> = if self.cfg.ic_broadcast && op != IcOp::AllLocal {
            (0..self.cfg.cores).collect()
        } else {
            vec![core]
        };
        let lines: Vec<u64> = match op {
            IcOp::Ivau => vec![self.line_of(pa)],
            _ => self.lines.keys().copied().collect(),
        };
        for line in lines {
            self.ic_line(core, line, ts, &targets);
        }
        self.cores[core].addr = None;
    }

    /// True if line `l` would be fresh for `core` after a context synchronization event.
    fn syncs(&self, l: &Line, core: usize, cse: Cse, isb: &Clock) -> bool {
        let ordered = |e: Ev| match cse {
            Cse::Isb => isb.covers(e.core, e.ts),
            Cse::Exception => true,
        };
        if !self.cfg.dic {
            return l
                .invals
                .iter()
                .filter(|(mask, _)| mask & (1 << core) != 0)
                .any(|(_, i)| i.done.is_some_and(ordered));
        }
        if !self.cfg.idc {
            return match cse {
                Cse::Isb => l.clean.is_some_and(ordered),
                Cse::Exception => l.clean_done.is_some(),
            };
        }
        l.writes.iter().all(|w| match cse {
            Cse::Isb => isb.covers(w.core, w.ts),
            Cse::Exception => self.cores[w.core].last_dsb_st >= w.ts,
        })
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
        let bit = 1u64 << core;
        let fresh: Vec<u64> = self
            .lines
            .iter()
            .filter(|(_, l)| l.fresh & bit == 0 && self.syncs(l, core, cse, &isb))
            .map(|(&k, _)| k)
            .collect();
        for l in self.lines.values_mut() {
            l.cse_since_write |= bit;
        }
        let all = self.all_mask();
        for k in fresh {
            let l = self.lines.get_mut(&k).expect("present");
            l.fresh |= bit;
            if l.fresh == all {
                for w in &l.writes {
                    self.known.insert(w.pa, w.new);
                }
                self.lines.remove(&k);
            }
        }
        if self.lines.is_empty() {
            self.cells.clear();
        }
    }

    pub(super) fn missing(&self, l: &Line, core: usize) -> Missing {
        if !self.cfg.idc && l.clean.is_none() {
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
