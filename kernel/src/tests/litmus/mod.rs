//! Catalogue mirrors (`lit-*`): kernel tests that run shapes of the herd7 instruction-fetch
//! catalogue (`aarch64-ifetch`) on two cores, many times, for the coherence sanitizer to judge.
//!
//! Each mirror names the catalogue test it mirrors and that test's verdict (`Allowed`: the stale
//! outcome can happen on hardware; `Forbidden`: it cannot), and logs both at start. Core 0 runs
//! the producer thread (`P0`), core 1 the consumer (`P1`; the single-core `SM` shapes run there
//! too); other cores only take part in the barriers. The consumer's code is a template
//! (`shapes.rs`) copied into the arena's slot area and run from its executable view; the
//! producer rewrites its `B` with a `NOP` through the writable view, as the catalogue does, so
//! that the sanitizer reports a missing step as `stale` (both words in the CMODX set).
//!
//! One iteration: core 0 puts the old words back and resets the flag, then `patch::install`
//! makes them fresh on every core (clean and invalidate, and an IPI whose exception return is
//! each other core's context synchronization); a barrier; each participating core marks the
//! iteration (`ITERATION`); the consumer waits a few hundred cycles (a register count-down,
//! varied per iteration, so that it reads the flag before, during or after the producer's
//! sequence), then both run the shape, straight-line: no loop or extra barrier inside it that
//! could add an ordering the catalogue test does not have; the consumer reports with `OUTCOME`
//! whether the `exists` clause's other conditions held (for example it read the flag as
//! written); a barrier.
//!
//! The host (`xtask/src/litmus.rs`) keeps only the qualifying iterations: an `Allowed` mirror
//! agrees with the catalogue when the sanitizer reported the rewritten word stale in at least
//! one of them; a `Forbidden` mirror when at least 50 qualified and none was reported.
//!
//! What they can catch: a sanitizer model that is too strict (a `Forbidden` shape reported) or
//! too lax (an `Allowed` shape never reported), per catalogue test, under the `CTR_EL0.{IDC,DIC}`
//! setting the catalogue test assumes (the plugin's `idc=`/`dic=`). What they cannot: whether
//! hardware behaves as the catalogue says (plain runs only show what QEMU fetched, logged as
//! "ran the old word", which is QEMU's own timing), nor outcomes the iterations never produced
//! (an `Allowed` verdict needs at least one qualifying iteration under the sanitizer).

mod shapes;
mod table;

use super::{Ctx, Failed, TestResult, check};
use crate::arch::markers;
use crate::patch::negative::Scratch;
use crate::sync::Barrier;
use core::sync::atomic::{AtomicU64, Ordering};
use shapes::Producer;

/// Iterations per run unless the command line says `iters=N`.
const DEFAULT_ITERS: u64 = 200;
/// The core that runs the producer thread.
const PRODUCER: usize = 0;
/// The core that runs the consumer thread (and the single-core shapes).
const CONSUMER: usize = 1;
/// Bound on every barrier wait.
const WAIT_US: u64 = 20_000_000;

/// Where a consumer template lies in kernel read-only data.
pub struct Template {
    start: *const u8,
    end: *const u8,
}

impl Template {
    fn words(&self) -> &'static [u32] {
        // SAFETY: `start` and `end` bracket one template in read-only data (shapes.rs), 64-byte
        // aligned, a whole number of words, start before end.
        unsafe {
            let len = self.end.offset_from(self.start) as usize;
            core::slice::from_raw_parts(self.start.cast::<u32>(), len / 4)
        }
    }
}

/// The catalogue's verdict on a test's `exists` clause.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The stale outcome can happen.
    Allowed,
    /// It cannot.
    Forbidden,
}

/// What the producer's flag store writes, and what the consumer reads before it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// 0, then 1 (`MP.RF` shapes; unused by the others).
    One,
    /// A code pointer: the template's `L0`, then the rewritten word (`miniJit`).
    CodePointer,
}

/// One catalogue mirror.
pub struct Mirror {
    /// The kernel test's name.
    pub name: &'static str,
    /// The catalogue test's full name (with its `IDC1.`/`DIC1.` prefix where it has one).
    pub catalogue: &'static str,
    /// The catalogue's verdict.
    pub verdict: Verdict,
    /// The consumer thread.
    pub consumer: fn() -> Template,
    /// The producer thread (none for single-core shapes).
    pub producer: Option<Producer>,
    /// The flag's values.
    pub flag: Flag,
}

static FLAG: AtomicU64 = AtomicU64::new(0);
static START: Barrier = Barrier::new();
static RESET: Barrier = Barrier::new();
static DONE: Barrier = Barrier::new();

core::arch::global_asm!(
    ".pushsection .text.graft_litmus, \"ax\"",
    ".balign 4",
    ".global graft_lit_delay",
    "graft_lit_delay:",
    "    cbz x0, 2f",
    "1:  subs x0, x0, #1",
    "    b.ne 1b",
    "2:  ret",
    ".popsection",
);

unsafe extern "C" {
    /// Counts `x0` down to zero in registers: a delay with no memory access.
    fn graft_lit_delay(n: u64);
}

/// The consumer's count-down before iteration `i`: spread from none to a few thousand cycles.
fn delay(i: u64) -> u64 {
    const STEPS: [u64; 8] = [0, 40, 400, 100, 2000, 10, 800, 4000];
    STEPS[(i % 8) as usize]
}

/// The arena addresses of one mirror's template.
#[derive(Clone, Copy)]
struct Layout {
    exec: usize,
    write: usize,
    len: usize,
    /// Offsets of the rewritten word, the second rewritten word (0: none) and `L0` (0: none).
    m0: usize,
    m1: usize,
    l0: usize,
    /// The words the producer rewrites, as the template has them.
    old0: u32,
    old1: u32,
}

impl Layout {
    fn of(t: &Template) -> Self {
        let words = t.words();
        let Scratch { exec, write } = Scratch::get();
        let (m0, m1, l0) = (words[0] as usize, words[1] as usize, words[2] as usize);
        Self {
            exec,
            write,
            len: words.len() * 4,
            m0,
            m1,
            l0,
            old0: words[m0 / 4],
            old1: words[m1 / 4],
        }
    }

    /// The flag's value before the producer writes it, and the value it writes.
    fn flag_values(&self, flag: Flag) -> (u64, u64) {
        match flag {
            Flag::One => (0, 1),
            Flag::CodePointer => ((self.exec + self.l0) as u64, (self.exec + self.m0) as u64),
        }
    }

    /// Puts the old words back (core 0, nobody runs the template) and makes them fresh
    /// everywhere.
    fn reset(&self) -> TestResult {
        // No core runs the template between the barriers around a reset.
        let scratch = Scratch::get();
        scratch.write_words(self.m0 / 4, &[self.old0]);
        if self.m1 != 0 {
            scratch.write_words(self.m1 / 4, &[self.old1]);
        }
        scratch.install(self.len).map_err(|_| {
            defmt::error!("litmus: a core did not take the reset's IPI");
            Failed
        })
    }
}

fn wait(b: &Barrier, ctx: &Ctx) -> TestResult {
    b.wait(ctx.cores, WAIT_US).map_err(|arrived| {
        defmt::error!("litmus: barrier timed out, arrived {=u64:#b}", arrived);
        Failed
    })
}

/// Runs one mirror on every core.
pub fn run(m: &Mirror, ctx: &Ctx) -> TestResult {
    let iters = match ctx.cmdline.number("iters") {
        Some(Ok(n)) if n > 0 => n,
        _ => DEFAULT_ITERS,
    };
    let template = (m.consumer)();
    let layout = Layout::of(&template);
    let (before, after) = layout.flag_values(m.flag);
    if ctx.core == 0 {
        let verdict = match m.verdict {
            Verdict::Allowed => "Allowed",
            Verdict::Forbidden => "Forbidden",
        };
        defmt::info!(
            "litmus {=str}: mirrors {=str} ({=str}); rewritten word at {=usize:#x}, run by core {=usize}",
            m.name,
            m.catalogue,
            verdict,
            layout.exec + layout.m0,
            CONSUMER
        );
        crate::report::emit(&protocol::Record::LitmusWatch {
            va: (layout.exec + layout.m0) as u64,
            core: CONSUMER as u8,
        });
        // Nothing runs the template before the barrier below.
        Scratch::set_up().write_words(0, template.words());
        // Warm-up: the consumer runs the rewritten words once, so the sanitizer knows their
        // old value (a word never run before counts as outside the CMODX set).
        FLAG.store(after, Ordering::Relaxed);
        layout.reset()?;
    }
    wait(&START, ctx)?;
    // SAFETY: the template was installed on every core (install's IPIs) before the barrier; its
    // entry follows the 16-byte header and follows the C calling convention.
    let consumer: extern "C" fn(*const AtomicU64, usize, usize, u32) -> u64 =
        unsafe { core::mem::transmute(layout.exec + 16) };
    let (rx, rw) = (layout.exec + layout.m0, layout.write + layout.m0);
    if ctx.core == CONSUMER {
        consumer(&FLAG, rx, rw, layout.old0);
    }
    wait(&DONE, ctx)?;
    let new = patcher::insn::nop();
    let (mut qualifying, mut new_in_qualifying) = (0u64, 0u64);
    for i in 0..iters {
        if ctx.core == 0 {
            FLAG.store(before, Ordering::Relaxed);
            layout.reset()?;
        }
        wait(&RESET, ctx)?;
        if ctx.core == PRODUCER
            && let Some(p) = m.producer
        {
            markers::iteration(i as usize);
            // SAFETY: the producer writes the NOP over a B of the slot area (both CMODX) and
            // the flag; the addresses are the template's in the arena's two views.
            unsafe { p(new, rw, rx, FLAG.as_ptr(), layout.write + layout.m1, after) };
        } else if ctx.core == CONSUMER {
            markers::iteration(i as usize);
            // SAFETY: a register count-down.
            unsafe { graft_lit_delay(delay(i)) };
            let r = consumer(&FLAG, rx, rw, new);
            markers::outcome((r & 1) as usize);
            check!(r <= 3, "litmus: iteration {=u64} returned {=u64}", i, r);
            if r & 1 == 1 {
                qualifying += 1;
                new_in_qualifying += r >> 1;
            }
        }
        wait(&DONE, ctx)?;
    }
    if ctx.core == CONSUMER {
        defmt::info!(
            "litmus {=str}: {=u64} iterations, {=u64} qualifying; QEMU ran the old word in {=u64} of those",
            m.name,
            iters,
            qualifying,
            qualifying - new_in_qualifying
        );
    }
    Ok(())
}
