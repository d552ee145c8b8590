//! Host tests: the exact order of maintenance, barriers, IPIs and the publishing store that
//! each strategy emits, its failure paths, and an oracle that the naive control must fail.

use core::time::Duration;
use std::boxed::Box;
use std::vec::Vec;

use super::*;
use crate::arena::{Arena, CodeBlock, Region};
use crate::cache::fake::FakeCache;
use crate::cache::{CodeSync, Op, SyncPolicy};
use crate::check::{Externals, Policy, check_block};
use crate::insn;
use crate::platform::fake::FakePlatform;
use crate::platform::{CoreId, CoreSet, IpiError};
use crate::record::{Event, Recorder};

use Event::{Cache, IpiAck, IpiEnter, IpiSend, Mark, StoreRelease};
use Op::{DcCvau, DmbIsh, DsbIsh, IcIvau, Isb};

/// Cortex-A72-like CTR_EL0: 64-byte lines, no IDC, no DIC.
const CTR: u64 = 0x8444_c004;
const EXEC: usize = 0x8000_0000;
const SLOT: usize = 64;
const T: Duration = Duration::from_millis(1);

type Sync = CodeSync<FakeCache<'static>>;

/// A leaked recorder, maintenance fake and arena holding one written, live block.
struct World {
    rec: &'static Recorder,
    sync: &'static Sync,
    block: CodeBlock<'static>,
}

fn world() -> World {
    let rec: &'static Recorder = Box::leak(Box::new(Recorder::new()));
    let sync: &'static Sync = Box::leak(Box::new(CodeSync::new(
        FakeCache::new(rec, CTR, 0),
        SyncPolicy::from_registers(CTR, 0),
    )));
    let mem: &'static mut [u32] = Box::leak(std::vec![0u32; 2 * SLOT / 4].into_boxed_slice());
    let region = Region {
        write_base: mem.as_mut_ptr() as usize,
        exec_base: EXEC,
        slot_size: SLOT,
        slot_count: 2,
    };
    // SAFETY: the write alias is leaked memory used only through this arena; the exec alias is
    // seen only by the fake backend.
    let arena: &'static Arena<2> = Box::leak(Box::new(unsafe { Arena::new(region) }.unwrap()));
    let mut w = arena.alloc().unwrap();
    let code: &'static [u8] = Box::leak(
        [insn::nop(), insn::ret(insn::Reg::LR).unwrap()]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    );
    w.write(
        &check_block(
            code,
            w.exec_addr(),
            SLOT,
            &Externals::NONE,
            &Policy::DEFAULT,
        )
        .unwrap(),
    )
    .unwrap();
    let block = w.publish().unwrap();
    rec.clear();
    World { rec, sync, block }
}

impl World {
    fn env<'a>(
        &'a self,
        p: &'a FakePlatform<'static>,
    ) -> Env<'a, FakePlatform<'static>, FakeCache<'static>> {
        Env {
            platform: p,
            sync: self.sync,
            timeout: T,
        }
    }

    fn events(&self) -> Vec<Event> {
        self.rec.events().iter().copied().collect()
    }

    /// The block's full maintenance: one line on each side.
    fn full_sync(&self) -> [Event; 4] {
        [
            Cache(DcCvau(self.block.write_addr() & !63)),
            Cache(DsbIsh),
            Cache(IcIvau(EXEC)),
            Cache(DsbIsh),
        ]
    }
}

const fn cores(list: &[u8]) -> CoreSet {
    let mut s = CoreSet::EMPTY;
    let mut i = 0;
    while i < list.len() {
        s = s.with(CoreId(list[i]));
        i += 1;
    }
    s
}

fn ipi_round(targets: &[u8]) -> Vec<Event> {
    let mut v = std::vec![IpiSend(cores(targets))];
    for &c in targets {
        v.extend([IpiEnter(CoreId(c)), IpiAck(CoreId(c))]);
    }
    v
}

/// The oracle for pointer-publishing strategies: before the store-release of the block's
/// address, the block was cleaned, a DSB completed it, it was invalidated, a DSB completed
/// that, and after that every other online core took an IPI and the publisher ran an ISB.
fn oracle(ev: &[Event], w: &World, others: &[u8]) -> Result<(), &'static str> {
    let store = ev
        .iter()
        .position(|e| matches!(e, StoreRelease { value, .. } if *value == EXEC as u64))
        .ok_or("no publishing store")?;
    let ev = &ev[..store];
    let clean = ev
        .iter()
        .position(|e| *e == Cache(DcCvau(w.block.write_addr() & !63)))
        .ok_or("block not cleaned")?;
    let dsb1 = clean
        + ev[clean..]
            .iter()
            .position(|e| *e == Cache(DsbIsh))
            .ok_or("clean not completed")?;
    let inval = dsb1
        + ev[dsb1..]
            .iter()
            .position(|e| *e == Cache(IcIvau(EXEC)))
            .ok_or("block not invalidated")?;
    let dsb2 = inval
        + ev[inval..]
            .iter()
            .position(|e| *e == Cache(DsbIsh))
            .ok_or("invalidate not completed")?;
    for &c in others {
        if !ev[dsb2..].contains(&IpiEnter(CoreId(c))) {
            return Err("a consumer had no context synchronization event");
        }
    }
    if !ev[dsb2..].contains(&Cache(Isb)) {
        return Err("the publisher did not synchronize itself");
    }
    Ok(())
}

/// The negative control: store the pointer and nothing else.
struct Naive;

impl Strategy for Naive {
    type Site = IndirectSite;
    fn publish<P: Platform + ?Sized, M: Maintenance>(
        &self,
        env: &Env<'_, P, M>,
        site: &IndirectSite,
        block: &CodeBlock<'static>,
    ) -> Result<(), PublishError> {
        site.store_release(block.exec_addr(), env.sync.backend());
        Ok(())
    }
}

#[test]
fn ipi_sync_order() {
    let w = world();
    let p = FakePlatform::new(w.rec, 4);
    let site = IndirectSite::new(0x1234);
    IpiSync.publish(&w.env(&p), &site, &w.block).unwrap();
    let mut want: Vec<Event> = w.full_sync().into();
    want.extend(ipi_round(&[1, 2, 3]));
    want.extend([
        Cache(Isb),
        StoreRelease {
            cell: site.cell_addr(),
            value: EXEC as u64,
        },
    ]);
    assert_eq!(w.events(), want);
    assert_eq!(site.target(), EXEC as u64);
    assert_eq!(oracle(&w.events(), &w, &[1, 2, 3]), Ok(()));
}

#[test]
fn ipi_sync_skips_offline_cores_and_the_caller() {
    let w = world();
    let p = FakePlatform::new(w.rec, 4)
        .calling_from(CoreId(2))
        .with_online(cores(&[0, 2]));
    let site = IndirectSite::new(0);
    IpiSync.publish(&w.env(&p), &site, &w.block).unwrap();
    assert_eq!(w.events()[4..7], ipi_round(&[0])[..]);
}

#[test]
fn ipi_sync_timeout_publishes_nothing() {
    let w = world();
    let p = FakePlatform::new(w.rec, 4).with_unresponsive(cores(&[2]));
    let site = IndirectSite::new(0x1234);
    assert_eq!(
        IpiSync.publish(&w.env(&p), &site, &w.block),
        Err(PublishError::Ipi(IpiError::Timeout {
            missing: cores(&[2])
        }))
    );
    assert_eq!(site.target(), 0x1234);
    assert!(!w.events().iter().any(|e| matches!(e, StoreRelease { .. })));
}

#[test]
fn ipi_sync_remote_invalidates_on_each_core() {
    let w = world();
    let work: &'static RemoteInvalidate<FakeCache<'static>> =
        Box::leak(Box::new(RemoteInvalidate::new(*w.sync)));
    let p = FakePlatform::new(w.rec, 3);
    let site = IndirectSite::new(0);
    IpiSyncRemote::new(work)
        .publish(&w.env(&p), &site, &w.block)
        .unwrap();
    let mut want: Vec<Event> = w.full_sync().into();
    want.push(IpiSend(cores(&[1, 2])));
    for c in [1, 2] {
        want.extend([
            IpiEnter(CoreId(c)),
            Cache(DmbIsh),
            Cache(IcIvau(EXEC)),
            Cache(DsbIsh),
            IpiAck(CoreId(c)),
        ]);
    }
    want.extend([
        Cache(Isb),
        StoreRelease {
            cell: site.cell_addr(),
            value: EXEC as u64,
        },
    ]);
    assert_eq!(w.events(), want);
}

#[test]
fn branch_flip_order_and_word() {
    let w = world();
    let p = FakePlatform::new(w.rec, 3);
    let word: &'static mut u32 = Box::leak(Box::new(insn::nop()));
    let site_w = word as *mut u32 as usize;
    let site_x = EXEC + 0x1_0000 + 0x44;
    // SAFETY: leaked memory written only through this site; the exec alias is fake.
    let site = unsafe { FlipSite::new(site_w, site_x) }.unwrap();
    BranchFlip.publish(&w.env(&p), &site, &w.block).unwrap();
    assert_eq!(site.word(), insn::b(EXEC as i64 - site_x as i64).unwrap());
    let mut want: Vec<Event> = w.full_sync().into();
    // Every core synchronizes once the block is fresh, before the branch can lead to it.
    want.extend(ipi_round(&[1, 2]));
    want.extend([
        Cache(DcCvau(site_w & !63)),
        Cache(DsbIsh),
        Cache(IcIvau(site_x & !63)),
        Cache(DsbIsh),
    ]);
    want.extend(ipi_round(&[1, 2]));
    want.push(Cache(Isb));
    assert_eq!(w.events(), want);
    // And back to NOP: the old word is returned.
    assert_eq!(
        BranchFlip.flip(&w.env(&p), &site, insn::nop()),
        Ok(insn::b(EXEC as i64 - site_x as i64).unwrap())
    );
    assert_eq!(site.word(), insn::nop());
}

#[test]
fn branch_flip_refuses_before_writing() {
    let w = world();
    let p = FakePlatform::new(w.rec, 2);
    let ldr = insn::ldr_literal(insn::Width::X, insn::Reg::x(0), 8).unwrap();
    let word: &'static mut u32 = Box::leak(Box::new(ldr));
    // SAFETY: as above.
    let site = unsafe { FlipSite::new(word as *mut u32 as usize, EXEC) }.unwrap();
    assert_eq!(
        BranchFlip.flip(&w.env(&p), &site, insn::nop()),
        Err(PublishError::NotCmodxSafe {
            old: ldr,
            new: insn::nop()
        })
    );
    let nop: &'static mut u32 = Box::leak(Box::new(insn::nop()));
    // SAFETY: as above.
    let site = unsafe { FlipSite::new(nop as *mut u32 as usize, EXEC) }.unwrap();
    assert_eq!(
        BranchFlip.flip(&w.env(&p), &site, ldr),
        Err(PublishError::NotCmodxSafe {
            old: insn::nop(),
            new: ldr
        })
    );
    assert!(matches!(
        BranchFlip.branch_to(&w.env(&p), &site, EXEC as u64 + (1 << 28)),
        Err(PublishError::Encode(insn::EncodeError::OutOfRange { .. }))
    ));
    assert_eq!(site.word(), insn::nop());
    assert_eq!(w.events(), []);
    // SAFETY: never used: a misaligned site is refused.
    let misaligned = unsafe { FlipSite::new(2, EXEC) };
    assert_eq!(misaligned.err(), Some(PublishError::Misaligned { addr: 2 }));
}

#[test]
fn flush_then_redirect_per_consumer() {
    let w = world();
    let p = FakePlatform::new(w.rec, 3).with_poll_budget(3);
    const STUB: u64 = 0x9000_0000;
    let site = ConsumerCells::<[_; 2]>::new(0x1000);
    let cells = site.cells();
    let ftr = FlushThenRedirect::new(STUB);
    ftr.redirect(&w.env(&p), &site, &w.block).unwrap();
    let cell = |i: usize| &cells[i] as *const ConsumerCell as usize;
    assert_eq!(
        w.events(),
        [
            Cache(DcCvau(w.block.write_addr() & !63)),
            Cache(DsbIsh),
            StoreRelease {
                cell: cell(0),
                value: STUB
            },
            StoreRelease {
                cell: cell(1),
                value: STUB
            },
        ]
    );
    let get = |a: &core::sync::atomic::AtomicU64| a.load(core::sync::atomic::Ordering::Relaxed);
    // One record for every consumer; each cell only says where it is.
    let r = site.publication();
    assert_eq!(
        [
            get(&r.block),
            get(&r.inval_start),
            get(&r.inval_end),
            get(&r.stride)
        ],
        [EXEC as u64, EXEC as u64, EXEC as u64 + 8, 64]
    );
    for c in cells {
        assert_eq!(get(&c.publication), r as *const Publication as u64);
    }
    assert_eq!(
        ftr.wait_acknowledged(&w.env(&p), &site, &w.block),
        Err(PublishError::Unsynchronized {
            missing: cores(&[0, 1])
        })
    );
    // Republishing before the acknowledgements is refused with nothing written (a consumer in
    // the stub would otherwise read one publication's range and another's block).
    w.rec.clear();
    assert_eq!(
        ftr.redirect(&w.env(&p), &site, &w.block),
        Err(PublishError::Pending {
            consumers: cores(&[0, 1])
        })
    );
    assert_eq!(w.events(), []);
    // SAFETY: the pending range is the block, mapped (and only seen by the fake).
    let to = unsafe { FlushThenRedirect::stub_model(&cells[1], w.sync.backend()) };
    assert_eq!(to, EXEC as u64);
    assert_eq!(
        w.events(),
        [
            Cache(DmbIsh),
            Cache(IcIvau(EXEC)),
            Cache(DsbIsh),
            Cache(Isb),
            StoreRelease {
                cell: cell(1),
                value: EXEC as u64
            },
        ]
    );
    assert_eq!(
        ftr.wait_acknowledged(&w.env(&p), &site, &w.block),
        Err(PublishError::Unsynchronized {
            missing: cores(&[0])
        })
    );
    // The record is shared: a consumer that no longer consumes, but was sent to the stub and
    // has not run it, still holds the next publication back.
    site.set_consumers(1, 2);
    assert_eq!(
        ftr.redirect(&w.env(&p), &site, &w.block),
        Err(PublishError::Pending {
            consumers: cores(&[0])
        })
    );
    // SAFETY: as above.
    unsafe { FlushThenRedirect::stub_model(&cells[0], w.sync.backend()) };
    site.set_consumers(0, 2);
    assert_eq!(ftr.wait_acknowledged(&w.env(&p), &site, &w.block), Ok(()));
}

/// After a publication that saw every acknowledgement, the next one writes the record once and
/// two words per consumer, looking at no cell first; after one that did not, it looks at the
/// cells the last one sent to the stub, and refuses while one is still there.
#[test]
fn flush_then_redirect_remembers_a_complete_publication() {
    let w = world();
    const STUB: u64 = 0x9000;
    let site: &'static ConsumerCells<[ConsumerCell; 3]> =
        Box::leak(Box::new(ConsumerCells::new(0x1000)));
    let sync = w.sync;
    // Every poll, each consumer on the stub runs it.
    let tick: &'static (dyn Fn() + core::marker::Sync) = Box::leak(Box::new(move || {
        for c in site.cells() {
            if c.target.load(core::sync::atomic::Ordering::Acquire) == STUB {
                // SAFETY: the pending range is the world's block, seen only by the fake.
                unsafe { FlushThenRedirect::stub_model(c, sync.backend()) };
            }
        }
    }));
    let p = FakePlatform::new(w.rec, 4).with_on_poll(tick);
    let ftr = FlushThenRedirect::new(STUB);
    ftr.publish(&w.env(&p), site, &w.block).unwrap();
    // A consumer that would still be on the stub, if anyone looked, is not looked at: only the
    // producer sends cells to the stub, and it saw each leave. (Put there behind its back.)
    site.cells()[1]
        .target
        .store(STUB, core::sync::atomic::Ordering::Relaxed);
    assert_eq!(ftr.redirect(&w.env(&p), site, &w.block), Ok(()));
    // That redirect was not followed by a complete wait: the next one looks, and refuses.
    assert_eq!(
        ftr.redirect(&w.env(&p), site, &w.block),
        Err(PublishError::Pending {
            consumers: cores(&[0, 1, 2])
        })
    );
    // A publication waits for them first (the poll runs their stubs), then completes.
    assert_eq!(ftr.publish(&w.env(&p), site, &w.block), Ok(()));
    assert!(
        site.cells()
            .iter()
            .all(|c| c.target.load(core::sync::atomic::Ordering::Relaxed) == EXEC as u64)
    );
}

#[test]
fn seq_check_waits_for_every_entry_check() {
    static NAMES: [&str; 4] = ["core 0", "core 1", "core 2", "core 3"];
    let w = world();
    let seq: &'static SeqCheck<4> = Box::leak(Box::new(SeqCheck::new()));
    let (rec, sync) = (w.rec, w.sync);
    let stuck: &'static core::sync::atomic::AtomicBool =
        Box::leak(Box::new(core::sync::atomic::AtomicBool::new(false)));
    let tick: &'static (dyn Fn() + core::marker::Sync) = Box::leak(Box::new(move || {
        for c in 1..4u8 {
            if c == 2 && stuck.load(core::sync::atomic::Ordering::Relaxed) {
                continue;
            }
            rec.record(Mark(NAMES[c as usize]));
            seq.enter(CoreId(c), sync.backend());
        }
    }));
    let p = FakePlatform::new(w.rec, 4)
        .with_on_poll(tick)
        .with_poll_budget(2);
    let site = IndirectSite::new(0);
    seq.publish(&w.env(&p), &site, &w.block).unwrap();
    let mut want: Vec<Event> = w.full_sync().into();
    for name in &NAMES[1..] {
        want.extend([Mark(name), Cache(Isb)]);
    }
    want.extend([
        Cache(Isb),
        StoreRelease {
            cell: site.cell_addr(),
            value: EXEC as u64,
        },
    ]);
    assert_eq!(w.events(), want);
    assert_eq!(seq.seen(CoreId(3)), 1);
    // Caught up: the next entry check costs no ISB.
    assert!(!seq.enter(CoreId(1), sync.backend()));
    // A core that never passes its entry check blocks publication, by name.
    stuck.store(true, core::sync::atomic::Ordering::Relaxed);
    let site2 = IndirectSite::new(7);
    assert_eq!(
        seq.publish(&w.env(&p), &site2, &w.block),
        Err(PublishError::Timeout {
            missing: cores(&[2])
        })
    );
    assert_eq!(site2.target(), 7);
}

#[test]
fn oracle_rejects_the_naive_rewrite_and_broken_orders() {
    let w = world();
    let p = FakePlatform::new(w.rec, 3);
    let site = IndirectSite::new(0);
    Naive.publish(&w.env(&p), &site, &w.block).unwrap();
    assert_eq!(oracle(&w.events(), &w, &[1, 2]), Err("block not cleaned"));

    // Start from a correct IpiSync log and break one thing at a time.
    w.rec.clear();
    IpiSync.publish(&w.env(&p), &site, &w.block).unwrap();
    let good = w.events();
    assert_eq!(oracle(&good, &w, &[1, 2]), Ok(()));
    let without =
        |drop: Event| -> Vec<Event> { good.iter().copied().filter(|e| *e != drop).collect() };
    assert_eq!(
        oracle(&without(Cache(Isb)), &w, &[1, 2]),
        Err("the publisher did not synchronize itself")
    );
    assert_eq!(
        oracle(&without(Cache(IcIvau(EXEC))), &w, &[1, 2]),
        Err("block not invalidated")
    );
    assert_eq!(
        oracle(&without(IpiEnter(CoreId(2))), &w, &[1, 2]),
        Err("a consumer had no context synchronization event")
    );
    // The IPI before the invalidate completes is too early.
    let mut early = good.clone();
    let ipi: Vec<Event> = early.drain(4..9).collect();
    early.splice(2..2, ipi);
    assert_eq!(
        oracle(&early, &w, &[1, 2]),
        Err("a consumer had no context synchronization event")
    );
}

#[test]
fn a_second_producer_is_busy_and_nothing_is_written() {
    let w = world();
    let p = FakePlatform::new(w.rec, 3);
    let site = IndirectSite::new(0x1234);
    let held = site.claim().unwrap();
    assert_eq!(
        IpiSync.publish(&w.env(&p), &site, &w.block),
        Err(PublishError::Busy)
    );
    let seq: &'static SeqCheck<4> = Box::leak(Box::new(SeqCheck::new()));
    assert_eq!(
        seq.publish(&w.env(&p), &site, &w.block),
        Err(PublishError::Busy)
    );
    assert_eq!(w.events(), [], "nothing written, no maintenance, no IPI");
    assert_eq!(site.target(), 0x1234);
    drop(held);
    IpiSync.publish(&w.env(&p), &site, &w.block).unwrap();
    assert_eq!(site.target(), EXEC as u64);

    // Flush-then-redirect: a site held by another producer refuses the whole publication.
    let site = ConsumerCells::<[_; 2]>::new(0x1000);
    let cells = site.cells();
    let ftr = FlushThenRedirect::new(0x9000);
    w.rec.clear();
    let held = site.claim().unwrap();
    assert_eq!(
        ftr.redirect(&w.env(&p), &site, &w.block),
        Err(PublishError::Busy)
    );
    assert_eq!(w.events(), []);
    assert!(
        cells
            .iter()
            .all(|c| c.target.load(core::sync::atomic::Ordering::Relaxed) == 0x1000)
    );
    drop(held);
    ftr.redirect(&w.env(&p), &site, &w.block).unwrap();
    assert!(
        cells
            .iter()
            .all(|c| c.target.load(core::sync::atomic::Ordering::Relaxed) == 0x9000)
    );
}

#[test]
fn a_flip_whose_ipi_times_out_says_the_new_branch_is_reachable() {
    let w = world();
    let p = FakePlatform::new(w.rec, 3).with_unresponsive(cores(&[2]));
    let word: &'static mut u32 = Box::leak(Box::new(insn::nop()));
    let site_x = EXEC + 0x1_0000;
    // SAFETY: leaked memory written only through this site; the exec alias is fake.
    let site = unsafe { FlipSite::new(word as *mut u32 as usize, site_x) }.unwrap();
    let b = insn::b(0x40).unwrap();
    let err = BranchFlip.flip(&w.env(&p), &site, b).unwrap_err();
    assert_eq!(
        err,
        PublishError::Unsynchronized {
            missing: cores(&[2])
        }
    );
    assert!(err.block_reachable());
    assert_eq!(site.word(), b, "the word is written and stays written");
    // Before the flip, a timeout leaves the site as it was, and says so.
    let site2 = IndirectSite::new(7);
    let err = IpiSync.publish(&w.env(&p), &site2, &w.block).unwrap_err();
    assert!(!err.block_reachable());
    assert_eq!(site2.target(), 7);
}

/// `publish` is one call: redirect, then wait until every consumer ran the stub. One at a time,
/// a consumer is redirected only once the one before it took the block, and a consumer that
/// never runs is named by its position in the whole slice.
#[test]
fn flush_then_redirect_publish_waits_for_every_consumer() {
    let w = world();
    let site: &'static ConsumerCells<[ConsumerCell; 3]> =
        Box::leak(Box::new(ConsumerCells::new(0x1000)));
    let cells = site.cells();
    const STUB: u64 = 0x9000;
    let sync = w.sync;
    let rec = w.rec;
    let stuck: &'static core::sync::atomic::AtomicBool =
        Box::leak(Box::new(core::sync::atomic::AtomicBool::new(false)));
    // Each poll, every consumer whose cell leads to the stub runs it (consumer 2 only when not
    // stuck), leaving a mark of who ran.
    let tick: &'static (dyn Fn() + core::marker::Sync) = Box::leak(Box::new(move || {
        for (i, c) in cells.iter().enumerate() {
            let on_stub = c.target.load(core::sync::atomic::Ordering::Acquire) == STUB;
            if on_stub && !(i == 2 && stuck.load(core::sync::atomic::Ordering::Relaxed)) {
                rec.record(Mark(["consumer 0", "consumer 1", "consumer 2"][i]));
                // SAFETY: the pending range is the world's block, seen only by the fake.
                unsafe { FlushThenRedirect::stub_model(c, sync.backend()) };
            }
        }
    }));
    let p = FakePlatform::new(w.rec, 4)
        .with_on_poll(tick)
        .with_poll_budget(3);
    let one = FlushThenRedirect::one_at_a_time(STUB);
    one.publish(&w.env(&p), site, &w.block).unwrap();
    let marks: Vec<Event> = w
        .events()
        .into_iter()
        .filter(|e| matches!(e, Mark(_) | StoreRelease { value: STUB, .. }))
        .collect();
    // Redirect 0, 0 runs; redirect 1, 1 runs; redirect 2, 2 runs.
    let mut want = Vec::new();
    for i in 0..3 {
        want.push(StoreRelease {
            cell: &cells[i] as *const ConsumerCell as usize,
            value: STUB,
        });
        want.push(Mark(["consumer 0", "consumer 1", "consumer 2"][i]));
    }
    assert_eq!(marks, want);
    stuck.store(true, core::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        one.publish(&w.env(&p), site, &w.block),
        Err(PublishError::Unsynchronized {
            missing: cores(&[2])
        })
    );
    assert_eq!(
        FlushThenRedirect::new(STUB).publish(&w.env(&p), site, &w.block),
        Err(PublishError::Pending {
            consumers: cores(&[2])
        })
    );
}
