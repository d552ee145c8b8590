//! The coherence model: a pure state machine over stores, loads, barriers, cache maintenance,
//! context synchronization and instruction execution, keyed by physical address.
//!
//! # The rules, and where they come from
//!
//! A word written by a store is *fresh* for core `e` once this chain holds (docs/design.md section 1,
//! and the herd7 instruction-fetch catalogue, `aarch64-ifetch`):
//!
//! 1. **clean** (`CTR_EL0.IDC = 0`): a `DC CVAU`/`CVAC`/`CIVAC`/`CVAP` of the line that is
//!    *ordered after* every write to it. The writer's own `DC` of the same line is ordered
//!    after its earlier stores (program order to the same line). Another core's `DC` needs the
//!    write to reach it through observed ordering: `STR; DMB ST; STR flag` then
//!    `LDR flag; DMB ISH; DC` is ordered; with `DMB LD` it is not (catalogue
//!    `MP.RF+dmb.st+dmb.ld-dc-dsb-ic-dsb-isb`, Allowed, against its `DMB ISH` twin, Forbidden).
//! 2. **invalidate** (`DIC = 0`): an `IC IVAU` (or `IC IALLUIS`) ordered after the clean (with
//!    `IDC = 1`: after the writes). On one core that takes a `DSB` or `DMB` between `DC` and
//!    `IC`; across cores a release/acquire chain or an address dependency from the load that
//!    observed it (`MP.RF+dc-dmb+addr-ic-dsb-isb`, Forbidden). With `ic-broadcast=on` it
//!    invalidates for every core, with `off` only for the issuer. **Completion**: the issuer's
//!    next full `DSB`.
//! 3. **context synchronization** on `e`: an `ISB` ordered after that completion (with
//!    `DIC = 1`: after the clean, or the write when `IDC = 1` too, which then needs a `DSB`
//!    between write and `ISB` on one core: `SM.B+dsb.ish-isb` Forbidden, `SM.B+isb` Allowed).
//!    The model is stricter than herd7 in one place: a core that did the whole sequence itself
//!    still needs its `ISB` (`SM.B+dc.cvau-dsb.ish-ic.vau-dsb.ish`, Forbidden in herd7), as the
//!    Arm ARM and docs/design.md section 1 require. Exception entry, `ERET` and `SVC`/`HVC`/`SMC`
//!    count as context synchronization once the completion has happened (in QEMU's execution
//!    order): an exception is taken at a precise point, unlike an `ISB`, which a core may
//!    perform before an earlier load is satisfied.
//! 4. **or an earlier fetch**: a fetch that follows, in program order, one that read from a
//!    write ordered after the invalidation's completing `DSB` needs no context synchronization
//!    (herd7's `IC-ob`: `MP.FF+dc.cvau-dsb.ish-ic.ivau-dsb.ish+po`, `coFF+cachesync`,
//!    Forbidden); with `DIC = 1`, one that follows a fetch ordered after the write itself
//!    (`DIC1.MP.FF+dmb.st+po`, Forbidden, against `IDC1.MP.FF+dmb.st+po`, Allowed).
//!
//! # Ordering between cores
//!
//! Each core keeps vector clocks ([`Clock`]) of the events ordered before its later loads and
//! stores (`mem`), stores (`st`), cache maintenance (`cmo`) and `ISB` (`isb`). A store carries
//! the clock of what is ordered before it (everything for `STLR`); a load that reads it joins
//! that clock into `seen`, and into more clocks depending on what orders the load:
//!
//! | reader shape | orders the observed events before |
//! | --- | --- |
//! | `LDAR`/`LDAPR` (acquire) | later loads and stores only: acquire then `ISB` is not enough |
//! | `DMB ISH`/`SY` after the load | later loads, stores, `DC`/`IC`; not an `ISB` |
//! | `DMB LD` | later loads and stores; not `DC`/`IC` (catalogue: Allowed) |
//! | `DSB` (any but `ST`) | everything, `ISB` included (`+dsb.ld-isb`, Forbidden) |
//! | load feeding a `CBZ`/`B.cond` | later stores; after the next `ISB` everything (`ctrlisb`) |
//! | load feeding a `DC`/`IC` address | that maintenance instruction |
//! | `LDR x; BR x` (address into a branch) | nothing: `miniJit01` is Allowed |
//!
//! Executing a written word joins the writer's clock, and the write itself, like a load (an
//! instruction fetch reads from the write: `MP.FF+dc.cvau-dsb.ish+ic.vau-dsb.ish-isb` and
//! `WRC-inst+po+dsb-cachesyncisb`, Forbidden). So does a data load of a written code word, and
//! a `DC` of the line after such a load is ordered after the write (`2SM.B+cachesync-isb`,
//! Forbidden). A fetch of a word's current value is also remembered until the word is next
//! written: that store is then ordered after what the fetch was ordered after (from-read,
//! `SB-bnop-cachesyncs`, Forbidden), and the store's core's barriers carry it on. A load whose
//! value the model cannot follow only loses information, so the model then reports more, never
//! less.
//!
//! Progress is kept per written word, not per line: a write to one word of a line leaves the
//! clean and invalidation of the line's other written words in place (`MP.FF+dc-dsb+ic-dsb-isb`,
//! Forbidden, whose two words share a line).
//!
//! Each report carries a number, and names the earlier reports of its iteration it cannot have
//! been stale together with: had one of the two fetches run the old word, it read from before
//! the write it missed, which would have ordered enough before the other fetch to make that one
//! fresh. A litmus outcome that needs both is then not shown by them.
//!
//! # Choices where the sources leave room (each one errs towards reporting)
//!
//! - Only a full `DSB` (`ISH`, `SY`, `OSH`, `NSH`) completes `DC`/`IC`; `DSB ST` completes
//!   stores (what `IDC = 1` code uses between the write and the `IC`) but not a `DC` issued
//!   since the last full `DSB`; `DMB ST` orders neither a `DC`.
//! - A `DMB` never orders a later `ISB`; an acquire orders later loads and stores, not `DC`/`IC`.
//! - `DC IVAC` (invalidate without clean), set/way operations and `DC ZVA` are not cleans;
//!   `IC IALLU` is local even with `ic-broadcast=on`.
//! - A rewrite with the same value, or a word of a written line that was not itself written,
//!   is not reported. Each (core, write) pair is reported once.
//! - A word's *old* value is the one last translated; a word written before it was ever
//!   executed has no known old value and counts as outside the CMODX set.

use std::collections::{HashMap, HashSet};

mod sync;

use crate::clock::{Clock, MAX_CORES};
use crate::decode::is_cmodx;
use crate::report::{Kind, Report, Summary};

/// The model's configuration (plugin arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of cores (vCPUs), at most [`MAX_CORES`].
    pub cores: usize,
    /// `IC IVAU`/`IC IALLUIS` reach every core (`true`) or only the issuer.
    pub ic_broadcast: bool,
    /// `CTR_EL0.IDC`: no clean needed.
    pub idc: bool,
    /// `CTR_EL0.DIC`: no invalidate needed.
    pub dic: bool,
    /// Cache line size in bytes (both D and I side), a power of two.
    pub line: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cores: 2,
            ic_broadcast: true,
            idc: false,
            dic: false,
            line: 64,
        }
    }
}

/// How a load is ordered by what follows it in its block (see [`crate::decode::LoadDeps`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadKind {
    /// Load-acquire.
    pub acquire: bool,
    /// Its value decides a conditional branch.
    pub ctrl: bool,
    /// Its value is the address of the next `DC`/`IC`.
    pub addr_cmo: bool,
}

/// A context synchronization event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cse {
    /// `ISB`: counts for completions ordered before it.
    Isb,
    /// Exception entry, `ERET`, `SVC`/`HVC`/`SMC`: counts for completions already done.
    Exception,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ev {
    core: usize,
    ts: u32,
}

#[derive(Clone, Copy, Debug)]
struct Inval {
    ic: Ev,
    done: Option<Ev>,
}

#[derive(Clone, Debug)]
struct WordWrite {
    pa: u64,
    /// The word had been translated (or lies in a tracked range) when written: a data word
    /// beside code is not a code write that stands between its core's other events.
    code: bool,
    core: usize,
    pc: u64,
    ts: u32,
    /// What is ordered before the write, and the write itself: what a core that read this write (by fetch or load) has
    /// observed. The write is included only when no earlier relevant event of its core (code
    /// write, `DC`, `IC`, full `DSB`) lies between what the rest covers and it, since a clock
    /// covers a prefix of each core's events.
    obs: Clock,
    /// Cores that loaded this write as data: their later `DC` of the line is ordered after it.
    loaded_by: u64,
    old: Option<u32>,
    new: u32,
    all_cmodx: bool,
    /// Some earlier value since the last fresh point differs from `new`.
    changed: bool,
    /// How far this word's synchronization got. Kept per word, not per line: a later write to
    /// another word of the line does not undo the clean or invalidation that already covered
    /// this one (`MP.FF+dc-dsb+ic-dsb-isb`, Forbidden, whose two words share a line).
    sync: Progress,
}

/// The steps taken for one written word since its write.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// Every `DC` of the line ordered after the write, and its completion (a full `DSB` of the
    /// cleaning core). Any one of them counts.
    cleans: Vec<(Ev, Option<Ev>)>,
    clean_unordered: bool,
    ic_unordered: bool,
    /// Every `IC` of the line ordered after a clean of the word (with `IDC = 1`: after the
    /// write): which cores it invalidates for (a bit mask) and whether it completed. An
    /// invalidation by one core never cancels another's: the word is invalidated for a core
    /// once any of them completed.
    invals: Vec<(u64, Inval)>,
    /// The `IC`s of the line (or of every line) not ordered after a clean of the word (with
    /// `IDC = 1`: after the write), as `invals`, and whether each covered every line. Such an
    /// `IC` still counts when another core's stale fetch would have ordered the clean before
    /// it (see [`Model::exclusive`]).
    loose_invals: Vec<(u64, Inval, bool)>,
    fresh: u64,
    /// Cores that had a context synchronization event since the write, which did not make the
    /// word fresh (so what was missing came before it).
    cse_since_write: u64,
}

/// The written words of one cache line that are not yet fresh for every core.
#[derive(Clone, Debug, Default)]
struct Line {
    writes: Vec<WordWrite>,
}

#[derive(Clone, Debug, Default)]
struct Core {
    now: u32,
    seen: Clock,
    mem: Clock,
    st: Clock,
    cmo: Clock,
    isb: Clock,
    ctrl: Clock,
    /// What is ordered before this core's instruction fetches: `isb` as it was at the core's
    /// last context synchronization event.
    fetch: Clock,
    /// What the core's fetches so far read from (the writes, and what was ordered before them).
    /// A later fetch in program order cannot read from before a write whose completed
    /// invalidation this covers (herd7's `IC-ob`), nor, with `DIC = 1`, from before a write it
    /// covers (`Instr-read-ordered-before` holds `ca` then).
    fetched: Clock,
    /// What is ordered before this core's stores through from-read: the clocks of fetches that
    /// read a word before this core overwrote it. Barriers order it like the stores themselves.
    fr: Clock,
    addr: Option<Clock>,
    unfenced_dc: bool,
    last_dsb_st: u32,
    /// Timestamp of this core's latest code write, `DC`, `IC` or full `DSB`.
    relevant: u32,
    pending: Vec<u64>,
    iteration: Option<u64>,
}

impl Core {
    fn tick(&mut self) -> u32 {
        self.now += 1;
        self.now
    }
}

/// What a report's fetch was ordered after, for [`Model::exclusive`].
#[derive(Clone, Debug)]
struct Snapshot {
    id: u64,
    core: usize,
    iteration: Option<u64>,
    /// The write the fetch may have missed.
    write: Ev,
    /// What was ordered before the fetch (the core's fetch clock).
    fetch: Clock,
    /// Events any one of which, ordered before the fetch, would have made it fresh (empty when
    /// no ordering could have: a step was missing, not just its order).
    needs: Vec<Ev>,
    /// The fetched word's line.
    line: u64,
    /// The completed cleans of the write (with `IDC = 1`: the write itself), as (clean, its
    /// completion).
    cleans: Vec<(Ev, Ev)>,
    /// Completed `IC`s for this core that lacked only their order after a clean, ordered
    /// before the fetch: (the `IC`, whether it covered every line, the line it covered).
    loose: Vec<(Ev, bool, u64)>,
}

/// How many recent reports are compared with a new one.
const RECENT: usize = 64;

/// The whole model. Not thread-safe: the plugin keeps it behind one lock.
#[derive(Debug)]
pub struct Model {
    cfg: Config,
    cores: Vec<Core>,
    lines: HashMap<u64, Line>,
    known: HashMap<u64, u32>,
    /// Words translated as code at least once: only a store to one of them (or to a tracked
    /// range) is a code write that can stand between a store and what orders it.
    translated: HashSet<u64>,
    code_pages: HashSet<u64>,
    ranges: Vec<(u64, u64)>,
    cells: HashMap<u64, Clock>,
    /// Per code word, the join of the fetch clocks of the cores that ran its current value
    /// while some write awaited synchronization (kept only when it can order a pending step).
    readers: HashMap<u64, Clock>,
    /// Per 8-byte granule of data, the join of what was ordered before the loads that read its
    /// current value (kept only when it can order a pending step): the next store to it by
    /// another core is ordered after them (from-read, SB.RF+dmb+dmb.ish-cachesync-isb).
    data_readers: HashMap<u64, (u64, Clock)>,
    published: Vec<(u64, u64)>,
    reported: HashSet<(usize, u64, u32)>,
    /// Cache of [`Model::first_pending`], cleared when the pending writes change.
    first: std::cell::Cell<Option<[u32; MAX_CORES]>>,
    /// The latest reports, with what decides whether two of them can be stale together.
    recent: Vec<Snapshot>,
    /// Counters for the exit line.
    pub summary: Summary,
}

impl Model {
    /// A model with nothing written.
    pub fn new(cfg: Config) -> Self {
        assert!(
            cfg.cores >= 1 && cfg.cores <= MAX_CORES,
            "1..={MAX_CORES} cores"
        );
        assert!(cfg.line.is_power_of_two() && cfg.line >= 4);
        Self {
            cfg,
            cores: vec![Core::default(); cfg.cores],
            lines: HashMap::new(),
            known: HashMap::new(),
            translated: HashSet::new(),
            code_pages: HashSet::new(),
            ranges: Vec::new(),
            cells: HashMap::new(),
            readers: HashMap::new(),
            data_readers: HashMap::new(),
            published: Vec::new(),
            reported: HashSet::new(),
            recent: Vec::new(),
            first: std::cell::Cell::new(None),
            summary: Summary::default(),
        }
    }

    fn line_of(&self, pa: u64) -> u64 {
        pa & !(self.cfg.line - 1)
    }

    fn all_mask(&self) -> u64 {
        (1u64 << self.cfg.cores) - 1
    }

    fn covers_pending(&self, rel: &Clock) -> bool {
        let first = self.first_pending();
        first
            .iter()
            .enumerate()
            .any(|(k, &ts)| ts != u32::MAX && rel.covers(k, ts))
    }

    /// Per core, the earliest timestamp of its pending writes (`u32::MAX`: none), cached: the
    /// plugin asks on every fetch of a checked block.
    fn first_pending(&self) -> [u32; MAX_CORES] {
        if let Some(f) = self.first.get() {
            return f;
        }
        let mut first = [u32::MAX; MAX_CORES];
        for w in self.lines.values().flat_map(|l| &l.writes) {
            first[w.core] = first[w.core].min(w.ts);
        }
        self.first.set(Some(first));
        first
    }

    /// True if a store by `core` now (a release if `release`) could carry ordering that
    /// matters to a pending line; a store that cannot only needs to erase older knowledge.
    /// The direct definition, kept as the tests' oracle for [`Model::store_matters_both`].
    #[cfg(test)]
    pub fn store_matters(&self, core: usize, release: bool) -> bool {
        let c = &self.cores[core];
        let mut rel = c.mem;
        rel.join(&c.st);
        if release {
            for k in [&c.seen, &c.cmo, &c.isb, &c.ctrl, &c.fr] {
                rel.join(k);
            }
            rel.raise(core, c.now);
        }
        self.covers_pending(&rel)
    }

    /// Whether a store by `core` now could carry ordering that matters to a pending line, for a
    /// plain store and for a release (a store that cannot only needs to erase older knowledge).
    /// One pass over the pending writes: the plugin asks both after every event.
    pub fn store_matters_both(&self, core: usize) -> (bool, bool) {
        let first = self.first_pending();
        let covers = |rel: &Clock| {
            first
                .iter()
                .enumerate()
                .any(|(k, &ts)| ts != u32::MAX && rel.covers(k, ts))
        };
        let c = &self.cores[core];
        let mut rel = c.mem;
        rel.join(&c.st);
        let plain = covers(&rel);
        for k in [&c.seen, &c.cmo, &c.isb, &c.ctrl, &c.fr] {
            rel.join(k);
        }
        rel.raise(core, c.now);
        (plain, plain || covers(&rel))
    }

    /// True if the ordering of the store at `pa` is remembered for its readers.
    pub fn is_cell(&self, pa: u64) -> bool {
        self.cells.contains_key(&pa)
    }

    /// True if some store's ordering is remembered (loads need to be followed), or some load's
    /// for the store that will overwrite what it read.
    pub fn has_cells(&self) -> bool {
        !self.cells.is_empty() || !self.data_readers.is_empty()
    }

    /// True if loads of the 8-byte granule at `pa` are remembered for its next store.
    pub fn is_read_cell(&self, pa: u64) -> bool {
        self.data_readers.contains_key(&(pa & !7))
    }

    /// The tracked physical ranges (`TRACK_CODE`, `track=`), end exclusive.
    pub fn tracked_ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The 4 KiB physical pages holding words that await synchronization.
    pub fn pending_pages(&self) -> Vec<u64> {
        let mut p: Vec<u64> = self.lines.keys().map(|l| l >> 12).collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// True while some written line is not yet fresh for every core: only then do loads and
    /// stores of data need to be followed (earlier events cannot order later ones).
    pub fn open(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Records that the word at `pa` was translated as code holding `word`.
    pub fn note_code(&mut self, pa: u64, word: u32) {
        self.known.insert(pa, word);
        self.translated.insert(pa);
        self.code_pages.insert(pa >> 12);
    }

    /// Tracks writes to the physical range `[pa, pa + len)` as potential code.
    pub fn track_range(&mut self, pa: u64, len: u64) {
        self.ranges.push((pa, pa.saturating_add(len)));
    }

    /// True if a store to `pa` may write code.
    pub fn is_code(&self, pa: u64) -> bool {
        self.code_pages.contains(&(pa >> 12))
            || self.ranges.iter().any(|&(s, e)| (s..e).contains(&pa))
    }

    /// The word at `pa` as the model last saw it (a pending write, else the translated word).
    pub fn current_word(&self, pa: u64) -> Option<u32> {
        let pa = pa & !3;
        self.lines
            .get(&self.line_of(pa))
            .and_then(|l| l.writes.iter().find(|w| w.pa == pa).map(|w| w.new))
            .or_else(|| self.known.get(&pa).copied())
    }

    /// A store by `core` at `pc` of `bytes` (little-endian, as stored) at `pa`. Bytes of a
    /// partly written word that the model never saw count as zero.
    pub fn store(&mut self, core: usize, pc: u64, pa: u64, bytes: &[u8], release: bool) {
        let len = bytes.len() as u64;
        let word_at = |m: &Self, word: u64| {
            let mut b = m.current_word(word).unwrap_or(0).to_le_bytes();
            for (i, byte) in b.iter_mut().enumerate() {
                let a = word + i as u64;
                if (pa..pa + len).contains(&a) {
                    *byte = bytes[(a - pa) as usize];
                }
            }
            u32::from_le_bytes(b)
        };
        let c = &mut self.cores[core];
        let mut rel = c.mem;
        rel.join(&c.st);
        if release {
            for k in [&c.seen, &c.cmo, &c.isb, &c.ctrl, &c.fr] {
                rel.join(k);
            }
            rel.raise(core, c.now);
        }
        let ts = c.tick();
        let blocked = c.relevant > rel.0[core];
        let mut obs = rel;
        // The write joins what its readers learn unless an earlier event of its core that the
        // synchronization state still refers to lies between what `rel` covers and it (a clock
        // covers a prefix of each core's events). Events no pending write refers to any more,
        // such as a write since overwritten and synchronized, cannot be ordered wrongly.
        if !blocked || !self.pending_event_between(core, rel.0[core], (pa & !3, pa + len.max(1))) {
            obs.raise(core, ts);
        }
        // Remember what a reader of this store learns, if that can matter: only a clock that
        // covers some pending write can order a later step of its synchronization.
        let keep = self.covers_pending(&rel);
        let mut a = pa & !7;
        while !self.data_readers.is_empty() && a < pa + len.max(1) {
            // From-read: loads that read the value this store replaces were ordered before it,
            // and so is what was ordered before them; this core's barriers carry it on.
            if let Some((reader, r)) = self.data_readers.remove(&a)
                && reader & !(1u64 << core) != 0
            {
                self.cores[core].fr.join(&r);
            }
            a += 8;
        }
        let mut a = pa;
        while a < pa + len.max(1) {
            if keep {
                self.cells.insert(a, rel);
            } else {
                self.cells.remove(&a);
            }
            a += 8;
        }
        if !self.is_code(pa) {
            return;
        }
        // A store to a word that was never code (data beside code on its page) cannot be
        // mistaken for a published write; one to a translated word or a tracked range can.
        let w0 = pa & !3;
        let is_code_word = |m: &Self, a: u64| {
            m.translated.contains(&a) || m.ranges.iter().any(|&(s, e)| (s..e).contains(&a))
        };
        if (w0..pa + len.max(1))
            .step_by(4)
            .any(|a| is_code_word(self, a))
        {
            self.cores[core].relevant = ts;
        }
        let mut word = pa & !3;
        while word < pa + len.max(1) {
            let new = word_at(self, word);
            let line = self.line_of(word);
            let prev = self.known.get(&word).copied();
            self.first.set(None);
            let l = self.lines.entry(line).or_default();
            let (old, all, changed) = match l.writes.iter().position(|w| w.pa == word) {
                Some(i) => {
                    let w = l.writes.swap_remove(i);
                    (w.old, w.all_cmodx, w.changed || w.new != new)
                }
                None => (prev, prev.is_some_and(is_cmodx), prev != Some(new)),
            };
            // A new write of the word undoes every step taken for it so far (the other words of
            // the line keep theirs).
            let code = is_code_word(self, word);
            let l = self.lines.entry(line).or_default();
            l.writes.push(WordWrite {
                code,
                pa: word,
                core,
                pc,
                ts,
                obs,
                loaded_by: 0,
                old,
                new,
                all_cmodx: all && is_cmodx(new),
                changed,
                sync: Progress::default(),
            });
            // From-read: a core that ran the word's previous value did so before this store, so
            // what was ordered before that fetch is ordered before this store, and before what
            // this core's barriers order after it (SB-bnop-cachesyncs, Forbidden: a core that
            // ran the old branch before the other overwrote it had already synchronized its own
            // write for the other's later ISB).
            if let Some(r) = self.readers.remove(&word) {
                self.cores[core].fr.join(&r);
            }
            word += 4;
        }
    }

    /// A load by `core` of `pa`.
    pub fn load(&mut self, core: usize, pa: u64, kind: LoadKind) {
        let mem = self.cores[core].mem;
        if self.covers_pending(&mem) {
            let e = self.data_readers.entry(pa & !7).or_default();
            e.0 |= 1 << core;
            e.1.join(&mem);
        }
        // A load of a word whose write awaits synchronization reads that write (QEMU's memory
        // is coherent): like a fetch of it, it observes the write (2SM.B+cachesync-isb).
        let word = pa & !3;
        let line = self.line_of(word);
        let from_code = self
            .lines
            .get_mut(&line)
            .and_then(|l| l.writes.iter_mut().find(|w| w.pa == word))
            .filter(|w| w.core != core)
            .map(|w| {
                w.loaded_by |= 1 << core;
                w.obs
            });
        let Some(obs) = from_code.or_else(|| self.cells.get(&pa).copied()) else {
            if kind.addr_cmo {
                self.cores[core].addr = None;
            }
            return;
        };
        let c = &mut self.cores[core];
        c.seen.join(&obs);
        if kind.acquire {
            c.mem.join(&obs);
        }
        if kind.ctrl {
            c.ctrl.join(&obs);
            c.st.join(&obs);
        }
        if kind.addr_cmo {
            c.addr = Some(obs);
        }
    }

    /// True if some write awaiting synchronization, or a step taken for one, is an event of
    /// `core` later than `after`; writes to the words of `skip` (about to be overwritten) do
    /// not count.
    fn pending_event_between(&self, core: usize, after: u32, skip: (u64, u64)) -> bool {
        let late = |e: &Ev| e.core == core && e.ts > after;
        self.lines.values().flat_map(|l| &l.writes).any(|w| {
            (w.code && w.core == core && w.ts > after && !(skip.0..skip.1).contains(&w.pa))
                || w.sync
                    .cleans
                    .iter()
                    .any(|(e, d)| late(e) || d.as_ref().is_some_and(late))
                || w.sync
                    .invals
                    .iter()
                    .any(|(_, i)| late(&i.ic) || i.done.as_ref().is_some_and(late))
        })
    }

    /// True if `va` lies in a range marked published.
    pub fn is_published(&self, va: u64) -> bool {
        self.published.iter().any(|&(s, e)| (s..e).contains(&va))
    }

    /// Marks `[va, va + len)` published (`true`) or in flight again (`false`).
    pub fn set_published(&mut self, va: u64, len: u64, published: bool) {
        let end = va.saturating_add(len);
        let mut out = Vec::new();
        for &(s, e) in &self.published {
            if e <= va || s >= end {
                out.push((s, e));
            } else {
                if s < va {
                    out.push((s, va));
                }
                if e > end {
                    out.push((end, e));
                }
            }
        }
        if published {
            out.push((va, end));
        }
        self.published = out;
    }

    /// Sets the iteration number reports from `core` carry.
    pub fn set_iteration(&mut self, core: usize, iteration: u64) {
        self.cores[core].iteration = Some(iteration);
    }

    /// The iteration `core` announced last.
    pub fn iteration(&self, core: usize) -> Option<u64> {
        self.cores[core].iteration
    }

    /// True if some word in the line holding `pa` awaits synchronization.
    pub fn is_pending(&self, pa: u64) -> bool {
        self.lines.contains_key(&self.line_of(pa))
    }

    /// `core` executes the word at `va` (physical `pa`); returns a report the first time a
    /// given write is executed while not fresh for that core.
    pub fn exec(&mut self, core: usize, va: u64, pa: u64) -> Option<Report> {
        let line = self.line_of(pa);
        let word = pa & !3;
        // Remember who ran the word's current value, for the from-read order of the next store
        // to it (only a clock covering a pending write can matter).
        let f = self.cores[core].fetch;
        if self.covers_pending(&f) {
            self.readers.entry(word).or_default().join(&f);
        }
        let fetched = self.cores[core].fetched;
        let cfg = self.cfg;
        {
            let w = self
                .lines
                .get_mut(&line)
                .and_then(|l| l.writes.iter_mut().find(|w| w.pa == word))?;
            // An earlier fetch of this core read from a write ordered after this word's
            // completed synchronization: this later fetch cannot read from before it
            // (MP.FF+dmb.st+po with DIC = 1, coFF+cachesync: Forbidden). Checked before this
            // fetch's own read is joined.
            if w.sync.fresh & (1 << core) == 0 && Self::ordered_by_fetches(&cfg, w, core, &fetched)
            {
                w.sync.fresh |= 1 << core;
            }
            let (obs, done) = (w.obs, w.sync.fresh == self.all_mask());
            let c = &mut self.cores[core];
            c.fetched.join(&obs);
            // The fetch read the latest write (QEMU runs what memory holds), so in this
            // execution the fetch observed it, and a fetch is ordered before every later event
            // of its core (herd7's f-ob): what preceded that write is ordered before them
            // (MP.FF+dmb.st+cachesync-isb, Forbidden: having run the new second word, the
            // consumer's own maintenance covers the first; WRC-mmrb-1, Forbidden: the writer
            // ran its own write, then stored the flag). Whether the fetch itself was guaranteed
            // is reported below; this only follows the execution that happened.
            for k in [&mut c.mem, &mut c.st, &mut c.cmo, &mut c.isb] {
                k.join(&obs);
            }
            if done {
                self.retire(line, word);
                return None;
            }
        }
        let w = self
            .lines
            .get(&line)
            .and_then(|l| l.writes.iter().find(|w| w.pa == word))?;
        if w.sync.fresh & (1 << core) != 0 {
            return None;
        }
        if !w.changed || !self.reported.insert((core, w.pa, w.ts)) {
            return None;
        }
        let kind = if w.all_cmodx {
            Kind::Stale
        } else {
            Kind::Unpredictable
        };
        let published = self.is_published(va);
        let needs: Vec<Ev> = if !self.cfg.dic {
            w.sync
                .invals
                .iter()
                .filter(|(mask, _)| mask & (1 << core) != 0)
                .filter_map(|(_, i)| i.done)
                .collect()
        } else if !self.cfg.idc {
            w.sync.cleans.iter().map(|&(e, _)| e).collect()
        } else {
            vec![Ev {
                core: w.core,
                ts: w.ts,
            }]
        };
        let fetch = self.cores[core].fetch;
        let cleans = if self.cfg.idc {
            let e = Ev {
                core: w.core,
                ts: w.ts,
            };
            vec![(e, e)]
        } else {
            w.sync
                .cleans
                .iter()
                .filter_map(|&(e, d)| d.map(|d| (e, d)))
                .collect()
        };
        let loose = w
            .sync
            .loose_invals
            .iter()
            .filter(|(mask, i, _)| {
                mask & (1 << core) != 0 && i.done.is_some_and(|d| fetch.covers(d.core, d.ts))
            })
            .map(|&(_, i, all)| (i.ic, all, line))
            .collect();
        let snap = Snapshot {
            id: self.summary.stale + self.summary.unpredictable + 1,
            core,
            iteration: self.cores[core].iteration,
            write: Ev {
                core: w.core,
                ts: w.ts,
            },
            fetch,
            needs,
            line,
            cleans,
            loose,
        };
        let excludes = self
            .recent
            .iter()
            .filter(|r| Self::exclusive(r, &snap))
            .map(|r| r.id)
            .collect();
        let id = snap.id;
        let report = Report {
            core,
            va,
            pa,
            writer_core: w.core,
            writer_pc: w.pc,
            missing: self.missing(w, core),
            kind,
            hazard: kind == Kind::Unpredictable || published,
            iteration: self.cores[core].iteration,
            old: w.old,
            new: w.new,
            published,
            id,
            excludes,
        };
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push(snap);
        self.summary.count(&report);
        Some(report)
    }

    /// True if `fetched` (what earlier fetches of `core` read from) orders write `w`'s
    /// synchronization before `core`'s later fetches, without a context synchronization event:
    /// herd7's `IC-ob`, `[Instr R]; po; [Instr R]; IC-after; [IC]; po; [dsb.full]; po; [~Imp]`,
    /// makes a fetch that follows one ordered after the invalidation's completion read after
    /// the invalidation; with `DIC = 1` the same holds for the write itself (`ca`).
    fn ordered_by_fetches(cfg: &Config, w: &WordWrite, core: usize, fetched: &Clock) -> bool {
        if cfg.dic {
            return fetched.covers(w.core, w.ts);
        }
        w.sync
            .invals
            .iter()
            .filter(|(mask, _)| mask & (1 << core) != 0)
            .filter_map(|(_, i)| i.done)
            .any(|d| fetched.covers(d.core, d.ts))
    }

    /// True if the fetches of reports `a` and `b` cannot both have run the old word: had one
    /// been stale, it read from before the write it missed (from-read), so what was ordered
    /// before it is ordered before whatever that write is ordered before; if the other fetch
    /// is among those and that ordering covers what it needed, it was fresh.
    fn exclusive(a: &Snapshot, b: &Snapshot) -> bool {
        if a.core == b.core || (a.iteration.is_some() && a.iteration != b.iteration) {
            return false;
        }
        let implies_fresh = |stale: &Snapshot, other: &Snapshot| {
            if !other.fetch.covers(stale.write.core, stale.write.ts) {
                return false;
            }
            let mut k = other.fetch;
            k.join(&stale.fetch);
            if other.needs.iter().any(|e| k.covers(e.core, e.ts)) {
                return true;
            }
            // An `IC` of both words' lines that follows, on its core, a completed clean of the
            // stale fetch's write is ordered after that fetch (herd7's IC-ca: a fetch before
            // the invalidation that read from before a cleaned write would order the `IC`
            // before the clean), so what preceded the stale fetch, a completed clean of the
            // other word included, precedes the `IC`, which then counts for the other fetch
            // (SB-bnop-cachesyncs3, Forbidden: P1's local IC IALLU after its clean of P0's
            // word; SB-bnop-cachesyncs1-reordered, Allowed: its IC of P0's word comes before).
            other.loose.iter().any(|&(ic, all, line)| {
                (all || line == stale.line)
                    && stale
                        .cleans
                        .iter()
                        .any(|(_, d)| d.core == ic.core && d.ts <= ic.ts)
                    && other
                        .cleans
                        .iter()
                        .any(|(_, d)| stale.fetch.covers(d.core, d.ts))
            })
        };
        implies_fresh(a, b) || implies_fresh(b, a)
    }
}
