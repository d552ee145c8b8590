//! Stop-the-world: park every other core, edit anything in place, release.
//!
//! The baseline, like Linux's `stop_machine`: every other online core is sent into a rendezvous
//! and spins there with interrupts masked; once all are parked the publisher may rewrite any
//! instructions in place (no CMODX restriction, since no core is executing them), runs the full
//! maintenance, and releases the cores, each of which runs `ISB` before it returns to the code.
//! Costly for everyone, which is why the other strategies exist; needed for arbitrary edits.
//!
//! Every wait is bounded on the publisher's side: if a core does not park in time, nothing is
//! written, everyone parked is released, and the error names the missing cores. A parked core
//! waits only for the publisher's release, which always comes. Each core records the
//! generation it is parked for in its own cell, so a late handler from an earlier, abandoned
//! rendezvous is never mistaken for a parked core.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{Env, IndirectSite, PublishError, Strategy};
use crate::arena::CodeBlock;
use crate::cache::{CodeSync, Maintenance};
use crate::code_write;
use crate::platform::{CoreId, CoreSet, IpiWork, MAX_CORES, Platform};

#[cfg(test)]
#[path = "tests/stop_world.rs"]
mod tests;

#[repr(C, align(128))]
struct Cell(AtomicU64);

const _: () = assert!(core::mem::size_of::<Cell>() == 128);

/// The rendezvous: the IPI work every parked core runs, in a `static`.
pub struct Rendezvous<M: 'static, const N: usize> {
    sync: CodeSync<M>,
    generation: Cell,
    released: Cell,
    parked: [Cell; N],
    serial: spin::Mutex<()>,
}

impl<M: Maintenance, const N: usize> Rendezvous<M, N> {
    /// A rendezvous whose cores synchronize with `sync`'s backend on release.
    pub const fn new(sync: CodeSync<M>) -> Self {
        assert!(
            N <= MAX_CORES,
            "Rendezvous: more cores than a CoreSet can name"
        );
        Self {
            sync,
            generation: Cell(AtomicU64::new(0)),
            released: Cell(AtomicU64::new(0)),
            parked: [const { Cell(AtomicU64::new(0)) }; N],
            serial: spin::Mutex::new(()),
        }
    }

    fn not_parked(&self, targets: CoreSet, g: u64) -> CoreSet {
        let mut set = CoreSet::EMPTY;
        for c in targets.iter() {
            if c.index() >= N || self.parked[c.index()].0.load(Ordering::Acquire) != g {
                set = set.with(c);
            }
        }
        set
    }
}

impl<M: Maintenance + Sync, const N: usize> IpiWork for Rendezvous<M, N> {
    fn run(&self, core: CoreId) {
        let Some(cell) = self.parked.get(core.index()) else {
            return;
        };
        let g = self.generation.0.load(Ordering::Acquire);
        cell.0.store(g, Ordering::Release);
        while self.released.0.load(Ordering::Acquire) < g {
            self.sync.backend().relax();
        }
        cell.0.store(0, Ordering::Release);
        // The edit is complete (its maintenance finished before the release): fetch anew.
        self.sync.backend().isb();
    }
}

/// A range of code words that may be rewritten in place while the world is stopped.
pub struct InPlaceSite {
    write_va: usize,
    exec_va: usize,
    words: usize,
}

impl InPlaceSite {
    /// `words` instruction words at `write_va` (writable alias) / `exec_va` (executable).
    ///
    /// # Safety
    ///
    /// For the rest of the program both ranges are mapped (the write alias as writable Normal
    /// memory), map the same memory, and are written only through [`StopTheWorld`].
    pub unsafe fn new(write_va: usize, exec_va: usize, words: usize) -> Result<Self, PublishError> {
        for addr in [write_va, exec_va] {
            if !addr.is_multiple_of(4) {
                return Err(PublishError::Misaligned { addr });
            }
        }
        Ok(Self {
            write_va,
            exec_va,
            words,
        })
    }
}

/// # Example
///
/// On one core (no one to stop), an in-place edit followed by full maintenance:
///
/// ```
/// use patcher::example::ExampleWorld;
/// use patcher::insn;
/// use patcher::strategy::{InPlaceSite, Rendezvous, StopTheWorld};
///
/// let w = ExampleWorld::new(1);
/// let rv: &'static Rendezvous<_, 4> = Box::leak(Box::new(Rendezvous::new(*w.sync)));
/// let code: &'static mut [u32; 2] = Box::leak(Box::new([insn::nop(), insn::nop()]));
/// // SAFETY: leaked memory written only through this site; the fakes never run it.
/// let site = unsafe { InPlaceSite::new(code.as_mut_ptr() as usize, 0x8000_1000, 2) }.unwrap();
/// let ret = insn::ret(insn::Reg::LR).unwrap();
/// StopTheWorld::new(rv).patch_in_place(&w.env(), &site, &[insn::nop(), ret]).unwrap();
/// ```
///
/// The stop-the-world strategy.
pub struct StopTheWorld<M: 'static, const N: usize> {
    rv: &'static Rendezvous<M, N>,
}

impl<W: Maintenance + Sync, const N: usize> StopTheWorld<W, N> {
    /// The strategy, with its rendezvous.
    pub const fn new(rv: &'static Rendezvous<W, N>) -> Self {
        Self { rv }
    }

    /// Stops every other online core, runs `edit` (which may write only memory the stopped
    /// cores are not using as data), releases them; returns `edit`'s value.
    ///
    /// `edit` must not rewrite code a stopped core may resume or return into; use
    /// [`stopped_outside`](Self::stopped_outside) for edits of code.
    pub fn stopped<P: Platform + ?Sized, M: Maintenance, R>(
        &self,
        env: &Env<'_, P, M>,
        edit: impl FnOnce() -> R,
    ) -> Result<R, PublishError> {
        self.stopped_outside(env, None, edit)
    }

    /// [`stopped`](Self::stopped), but when `code` (`(start, len)` of executable addresses) is
    /// given, the edit runs only if no stopped core was interrupted inside it or would return
    /// into it (its `ELR` and link register, from [`Platform::interrupted_at`]); otherwise the
    /// cores are released with nothing done and the error names the core and where it was.
    ///
    /// Only the interrupted function and its direct caller are seen: code rewritten in place
    /// must be a leaf, or call only functions that cannot be interrupted (IRQs masked).
    pub fn stopped_outside<P: Platform + ?Sized, M: Maintenance, R>(
        &self,
        env: &Env<'_, P, M>,
        code: Option<(u64, u64)>,
        edit: impl FnOnce() -> R,
    ) -> Result<R, PublishError> {
        let _serial = self.rv.serial.lock();
        let g = self.rv.generation.0.fetch_add(1, Ordering::AcqRel) + 1;
        let targets = env.others();
        let result = match env.platform.ipi_send(targets, self.rv) {
            Err(e) => Err(PublishError::Ipi(e)),
            Ok(()) => {
                if !env.platform.wait_for(env.timeout, &mut || {
                    self.rv.not_parked(targets, g).is_empty()
                }) {
                    Err(PublishError::Timeout {
                        missing: self.rv.not_parked(targets, g),
                    })
                } else if let Some(e) = code.and_then(|(start, len)| {
                    targets
                        .iter()
                        .find_map(|core| match env.platform.interrupted_at(core) {
                            None => Some(PublishError::PositionUnknown { core }),
                            Some(at) if at.within(start, len) => {
                                Some(PublishError::InsideSite { core, at })
                            }
                            Some(_) => None,
                        })
                }) {
                    Err(e)
                } else {
                    Ok(edit())
                }
            }
        };
        // Release in every case: a parked core waits for nothing else.
        self.rv.released.0.store(g, Ordering::Release);
        env.sync.backend().isb();
        result
    }

    /// Rewrites `site` with `words` (exactly as many as the site has) while every other core
    /// is parked, with the full maintenance before the release. Nothing is written when the
    /// lengths differ, the cores do not all park, or a parked core was interrupted inside the
    /// site ([`PublishError::InsideSite`]: the caller may try again).
    pub fn patch_in_place<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &InPlaceSite,
        words: &[u32],
    ) -> Result<(), PublishError> {
        if words.len() != site.words {
            return Err(PublishError::LengthMismatch {
                expected: site.words,
                found: words.len(),
            });
        }
        self.write_in_place(env, site, |i| words[i])
    }

    /// Writes `word(i)` for every word `i` of `site` while the world is stopped (see
    /// [`patch_in_place`](Self::patch_in_place)).
    fn write_in_place<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &InPlaceSite,
        word: impl Fn(usize) -> u32,
    ) -> Result<(), PublishError> {
        let code = (site.exec_va as u64, (site.words * 4) as u64);
        self.stopped_outside(env, Some(code), || {
            for i in 0..site.words {
                // SAFETY: `InPlaceSite::new`'s contract: the word is mapped writable and written
                // only here, under the rendezvous' serial lock.
                unsafe {
                    code_write::write_word((site.write_va as *mut u32).wrapping_add(i), word(i))
                };
            }
            // SAFETY: `InPlaceSite::new`'s contract: both aliases are mapped.
            unsafe {
                env.sync
                    .sync_range(site.write_va, site.exec_va, site.words * 4)
            };
        })
    }
}

/// Stop-the-world bound to an in-place site, for the one publication path: a publication copies
/// the block's words into the site (the rest of the site filled with `UDF`) while every other
/// core is parked, and is postponed, within the timeout, while a parked core was interrupted
/// inside the site. Consumers run the site, never the block's slot.
pub struct InPlace<W: 'static, const N: usize> {
    stw: StopTheWorld<W, N>,
    site: &'static InPlaceSite,
    postponed: AtomicU64,
}

impl<W: Maintenance + Sync, const N: usize> InPlace<W, N> {
    /// `site`, rewritten through the rendezvous `rv`.
    pub const fn new(rv: &'static Rendezvous<W, N>, site: &'static InPlaceSite) -> Self {
        Self {
            stw: StopTheWorld::new(rv),
            site,
            postponed: AtomicU64::new(0),
        }
    }

    /// Publications postponed so far because a stopped core was inside the site.
    pub fn postponed(&self) -> u64 {
        self.postponed.load(Ordering::Relaxed)
    }

    /// The site.
    pub const fn site(&self) -> &'static InPlaceSite {
        self.site
    }
}

impl<P, M, W, const N: usize> crate::publish::Publish<P, M> for InPlace<W, N>
where
    P: Platform + ?Sized,
    M: Maintenance,
    W: Maintenance + Sync,
{
    fn publish(&self, env: &Env<'_, P, M>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        let words = block.len() / 4;
        if words > self.site.words {
            return Err(PublishError::LengthMismatch {
                expected: self.site.words,
                found: words,
            });
        }
        let word = |i: usize| {
            if i < words {
                // SAFETY: a live block's write alias is mapped and holds `len` bytes.
                unsafe { code_write::read_word((block.write_addr() as *const u32).wrapping_add(i)) }
            } else {
                0
            }
        };
        let mut last = Ok(());
        env.platform.wait_for(env.timeout, &mut || {
            last = self.stw.write_in_place(env, self.site, word);
            let inside = matches!(last, Err(PublishError::InsideSite { .. }));
            if inside {
                self.postponed.fetch_add(1, Ordering::Relaxed);
            }
            !inside
        });
        last
    }

    fn runs_in_slot(&self) -> bool {
        false
    }
}

impl<W: Maintenance + Sync, const N: usize> Strategy for StopTheWorld<W, N> {
    type Site = IndirectSite;

    /// The baseline for pointer publication: full maintenance and the pointer store while the
    /// world is stopped.
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &IndirectSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        let _claim = site.claim()?;
        self.stopped(env, || {
            block.sync(env.sync);
            site.store_release(block.exec_addr(), env.sync.backend());
        })
    }
}
