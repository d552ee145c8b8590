//! Host tests of stop-the-world, with std threads as the parked cores.

use core::sync::atomic::Ordering;
use core::time::Duration;
use std::boxed::Box;
use std::thread::JoinHandle;
use std::vec::Vec;

use super::{InPlaceSite, Rendezvous, StopTheWorld};
use crate::cache::fake::FakeCache;
use crate::cache::{CodeSync, Op, SyncPolicy};
use crate::insn;
use crate::platform::fake::FakePlatform;
use crate::platform::{CoreId, CoreSet, IpiWork};
use crate::record::{Event, Recorder};
use crate::strategy::{Env, PublishError};

const CTR: u64 = 0x8444_c004;

/// Between polls, give the simulated cores' threads real time to start and park: the fake
/// counts polls, not time. 200 polls of 1 ms is far more than a thread needs to start.
static SLEEP: fn() = || std::thread::sleep(Duration::from_millis(1));
const EXEC: usize = 0x8000_0040;

type Fake = FakeCache<'static>;

struct Rig {
    rec: &'static Recorder,
    sync: &'static CodeSync<Fake>,
    stw: StopTheWorld<Fake, 4>,
    rv: &'static Rendezvous<Fake, 4>,
    threads: &'static spin::Mutex<Vec<JoinHandle<()>>>,
}

fn rig() -> Rig {
    let rec: &'static Recorder = Box::leak(Box::new(Recorder::new()));
    let sync: &'static CodeSync<Fake> = Box::leak(Box::new(CodeSync::new(
        FakeCache::new(rec, CTR, 0),
        SyncPolicy::from_registers(CTR, 0),
    )));
    let rv: &'static Rendezvous<Fake, 4> = Box::leak(Box::new(Rendezvous::new(*sync)));
    Rig {
        rec,
        sync,
        stw: StopTheWorld::new(rv),
        rv,
        threads: Box::leak(Box::new(spin::Mutex::new(Vec::new()))),
    }
}

impl Rig {
    /// Delivery that runs each core's work on its own thread, after logging its entry.
    fn deliver(&self) -> &'static (dyn Fn(CoreId, &'static dyn IpiWork) + Sync) {
        let (rec, threads) = (self.rec, self.threads);
        Box::leak(Box::new(move |core: CoreId, work: &'static dyn IpiWork| {
            rec.record(Event::IpiEnter(core));
            threads
                .lock()
                .push(std::thread::spawn(move || work.run(core)));
        }))
    }

    fn join(&self) {
        for t in self.threads.lock().drain(..) {
            t.join().unwrap();
        }
    }
}

fn site(words: usize) -> (InPlaceSite, &'static mut [u32]) {
    let mem: &'static mut [u32] = Box::leak(std::vec![insn::nop(); words].into_boxed_slice());
    // SAFETY: leaked memory written only through this site; the exec alias is fake.
    let s = unsafe { InPlaceSite::new(mem.as_mut_ptr() as usize, EXEC, words) }.unwrap();
    (s, mem)
}

#[test]
fn edits_only_while_every_core_is_parked() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 4)
        .with_delivery(r.deliver())
        .with_on_poll(&SLEEP)
        .with_poll_budget(5000);
    let env = Env {
        platform: &p,
        sync: r.sync,
        timeout: Duration::from_millis(100),
    };
    let (s, mem) = site(2);
    let new = [
        insn::movz(insn::Width::X, insn::Reg::x(0), 5, 0).unwrap(),
        insn::ret(insn::Reg::LR).unwrap(),
    ];
    r.stw.patch_in_place(&env, &s, &new).unwrap();
    r.join();
    assert_eq!(*mem, new);
    let ev: Vec<Event> = r.rec.events().iter().copied().collect();
    let first_dc = ev
        .iter()
        .position(|e| matches!(e, Event::Cache(Op::DcCvau(_))))
        .unwrap();
    // Sent to the three others, each of which entered before the first maintenance.
    assert_eq!(ev[0], Event::IpiSend(CoreSet::from_bits(0b1110)));
    for c in 1..4 {
        let enter = ev
            .iter()
            .position(|e| *e == Event::IpiEnter(CoreId(c)))
            .unwrap();
        assert!(enter < first_dc);
    }
    let w = mem.as_ptr() as usize;
    assert_eq!(
        ev[first_dc..first_dc + 4],
        [
            Event::Cache(Op::DcCvau(w & !63)),
            Event::Cache(Op::DsbIsh),
            Event::Cache(Op::IcIvau(EXEC & !63)),
            Event::Cache(Op::DsbIsh),
        ]
    );
    // Then four ISBs, the publisher's and one per released core, all after the maintenance.
    let tail: Vec<Event> = ev[first_dc + 4..]
        .iter()
        .copied()
        .filter(|e| !matches!(e, Event::IpiEnter(_)))
        .collect();
    assert_eq!(tail, [Event::Cache(Op::Isb); 4]);
}

#[test]
fn a_core_that_does_not_park_means_nothing_is_written() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 4)
        .with_delivery(r.deliver())
        .with_unresponsive(CoreSet::from_bits(0b0100))
        .with_on_poll(&SLEEP)
        .with_poll_budget(200);
    let env = Env {
        platform: &p,
        sync: r.sync,
        timeout: Duration::from_millis(1),
    };
    let (s, mem) = site(1);
    assert_eq!(
        r.stw.patch_in_place(&env, &s, &[insn::brk(0)]),
        Err(PublishError::Timeout {
            missing: CoreSet::from_bits(0b0100)
        })
    );
    // The parked cores were released: their threads end.
    r.join();
    assert_eq!(*mem, [insn::nop()]);
    assert!(
        !r.rec
            .events()
            .iter()
            .any(|e| matches!(e, Event::Cache(Op::DcCvau(_))))
    );
    assert_eq!(
        r.stw
            .patch_in_place(&env, &s, &[insn::brk(0), insn::brk(1)]),
        Err(PublishError::LengthMismatch {
            expected: 1,
            found: 2
        })
    );
}

#[test]
fn a_core_parked_for_an_older_generation_does_not_count() {
    let r = rig();
    // Core 2 looks parked, but for generation 7, not for the one about to start.
    r.rv.parked[2].0.store(7, Ordering::Release);
    r.rv.generation.0.store(7, Ordering::Release);
    r.rv.released.0.store(7, Ordering::Release);
    let p = FakePlatform::new(r.rec, 3)
        .with_unresponsive(CoreSet::from_bits(0b0100))
        .with_delivery(r.deliver())
        .with_on_poll(&SLEEP)
        .with_poll_budget(200);
    let env = Env {
        platform: &p,
        sync: r.sync,
        timeout: Duration::from_millis(1),
    };
    assert_eq!(
        r.stw.stopped(&env, || ()),
        Err(PublishError::Timeout {
            missing: CoreSet::from_bits(0b0100)
        })
    );
    r.join();
}

/// A core interrupted inside the site (or whose caller is inside it) would resume in the middle
/// of the new code: the edit is refused, nothing is written, every core is released.
#[test]
fn refuses_while_a_stopped_core_is_inside_the_site() {
    use crate::platform::Interrupted;
    for (pc, lr) in [(EXEC as u64 + 4, 0x1000), (0x1000, EXEC as u64)] {
        let r = rig();
        let at: &'static (dyn Fn(CoreId) -> Option<Interrupted> + Sync) =
            Box::leak(Box::new(move |core: CoreId| {
                Some(if core == CoreId(2) {
                    Interrupted { pc, lr }
                } else {
                    Interrupted {
                        pc: 0x2000,
                        lr: 0x2004,
                    }
                })
            }));
        let p = FakePlatform::new(r.rec, 4)
            .with_delivery(r.deliver())
            .with_on_poll(&SLEEP)
            .with_poll_budget(5000)
            .with_interrupted(at);
        let env = Env {
            platform: &p,
            sync: r.sync,
            timeout: Duration::from_millis(100),
        };
        let (s, mem) = site(2);
        let before = mem.to_vec();
        let err = r
            .stw
            .patch_in_place(&env, &s, &[insn::ISB, insn::ISB])
            .unwrap_err();
        r.join();
        assert_eq!(
            err,
            PublishError::InsideSite {
                core: CoreId(2),
                at: Interrupted { pc, lr }
            }
        );
        assert_eq!(*mem, before[..], "nothing written");
        assert!(
            !r.rec
                .events()
                .iter()
                .any(|e| matches!(e, Event::Cache(Op::DcCvau(_)))),
            "no maintenance for an edit that did not happen"
        );
        // Just past the end is outside.
        assert!(
            !Interrupted {
                pc: EXEC as u64 + 8,
                lr: 0
            }
            .within(EXEC as u64, 8)
        );
    }
}

/// A platform that cannot say where a core stopped gets no in-place edit.
#[test]
fn refuses_when_a_position_is_unknown() {
    let r = rig();
    let at: &'static (dyn Fn(CoreId) -> Option<crate::platform::Interrupted> + Sync) =
        Box::leak(Box::new(|_core: CoreId| None));
    let p = FakePlatform::new(r.rec, 2)
        .with_delivery(r.deliver())
        .with_on_poll(&SLEEP)
        .with_poll_budget(5000)
        .with_interrupted(at);
    let env = Env {
        platform: &p,
        sync: r.sync,
        timeout: Duration::from_millis(100),
    };
    let (s, _mem) = site(1);
    let err = r.stw.patch_in_place(&env, &s, &[insn::ISB]).unwrap_err();
    r.join();
    assert_eq!(err, PublishError::PositionUnknown { core: CoreId(1) });
}
