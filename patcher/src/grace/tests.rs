//! Host tests: the grace-period rules step by step, then std threads posing as cores.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use std::sync::Arc;
use std::vec::Vec;

use super::{COUNTER_STRIDE, Epoch, GraceTimeout, Qsbr};
use crate::platform::fake::FakePlatform;
use crate::platform::{CoreId, CoreSet};
use crate::record::Recorder;

const C0: CoreId = CoreId(0);
const C1: CoreId = CoreId(1);
const C2: CoreId = CoreId(2);

#[test]
fn counters_do_not_share_lines() {
    let q = Qsbr::<3>::new();
    let base = &q as *const _ as usize;
    for i in 0..3 {
        let addr = q.cell(CoreId(i)) as *const _ as usize;
        assert_eq!(addr - base, COUNTER_STRIDE * (i as usize + 1));
    }
    assert_eq!(core::mem::size_of::<Qsbr<3>>(), 4 * COUNTER_STRIDE);
}

#[test]
fn offline_cores_are_not_waited_for() {
    let q = Qsbr::<3>::new();
    assert_eq!(q.current(), Epoch(1));
    let e = q.unlink();
    assert_eq!(e, Epoch(2));
    assert!(q.is_complete(e));
    assert_eq!(q.safe_epoch(), Epoch(2));
}

#[test]
fn every_online_core_must_pass_a_quiescent_state_after_unlink() {
    let q = Qsbr::<3>::new();
    q.online(C0);
    q.online(C1);
    q.online(C2);
    // A report before the unlink does not count for it.
    q.quiescent(C0);
    let e = q.unlink();
    assert_eq!(q.lagging(e), CoreSet::first(3));
    q.quiescent(C1);
    assert_eq!(q.lagging(e), CoreSet::EMPTY.with(C0).with(C2));
    assert!(!q.is_complete(e));
    q.quiescent(C0);
    assert_eq!(q.lagging(e), CoreSet::EMPTY.with(C2));
    assert_eq!(q.safe_epoch(), Epoch(1));
    // Going offline (idle) counts as quiescent.
    q.offline(C2);
    assert!(q.is_complete(e));
    assert_eq!(q.safe_epoch(), e);
    // Coming back online does not make it lag behind the finished period, but it does lag
    // behind the next one.
    q.online(C2);
    assert!(q.is_complete(e));
    let e2 = q.unlink();
    assert_eq!(q.lagging(e2), CoreSet::first(3));
    assert_eq!(q.safe_epoch(), e);
}

#[test]
fn idle_is_offline_for_its_duration() {
    let q = Qsbr::<2>::new();
    q.online(C0);
    q.online(C1);
    let e = q.unlink();
    let inside = q.idle(C1, || (q.is_online(C1), q.lagging(e)));
    assert_eq!(inside, (false, CoreSet::EMPTY.with(C0)));
    assert!(q.is_online(C1));
}

#[test]
fn wait_times_out_naming_the_laggards() {
    let rec = Recorder::new();
    let p = FakePlatform::new(&rec, 3).with_poll_budget(10);
    let q = Qsbr::<3>::new();
    q.online(C0);
    q.online(C2);
    let e = q.unlink();
    q.quiescent(C0);
    assert_eq!(
        q.wait(e, &p, Duration::from_millis(1)),
        Err(GraceTimeout {
            epoch: e,
            lagging: CoreSet::EMPTY.with(C2)
        })
    );
    q.quiescent(C2);
    assert_eq!(q.wait(e, &p, Duration::from_millis(1)), Ok(()));
}

/// RCU torture: reader threads follow a shared pointer into slots and check that the slot they
/// are reading was never freed; the writer frees a slot only after a grace period. A slot is
/// "freed" by poisoning it, as reuse would.
#[test]
fn threads_never_see_a_freed_slot() {
    const READERS: usize = 3;
    const SLOTS: usize = 8;
    const POISON: u64 = u64::MAX;
    const ROUNDS: u64 = 500;

    struct Shared {
        q: Qsbr<READERS>,
        current: AtomicUsize,
        slots: [AtomicU64; SLOTS],
        stop: AtomicBool,
        reads: AtomicU64,
    }
    let s = Arc::new(Shared {
        q: Qsbr::new(),
        current: AtomicUsize::new(0),
        slots: [const { AtomicU64::new(0) }; SLOTS],
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
    });

    // Every reader is online before the writer starts, so none can be skipped as offline
    // while it is merely slow to start.
    let start = Arc::new(std::sync::Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let s = Arc::clone(&s);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let me = CoreId(r as u8);
                s.q.online(me);
                start.wait();
                let mut n = 0u64;
                while !s.stop.load(Ordering::Relaxed) {
                    // Read-side section: follow the pointer, read the slot twice.
                    let p = s.current.load(Ordering::Acquire);
                    let a = s.slots[p].load(Ordering::Acquire);
                    for _ in 0..1000 {
                        core::hint::spin_loop();
                    }
                    let b = s.slots[p].load(Ordering::Acquire);
                    assert_ne!(a, POISON, "reader {r} entered freed slot {p}");
                    assert_ne!(b, POISON, "slot {p} freed under reader {r}");
                    n += 1;
                    if n.is_multiple_of(64) {
                        s.q.idle(me, std::thread::yield_now);
                    } else {
                        s.q.quiescent(me);
                    }
                }
                s.q.offline(me);
                s.reads.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    start.wait();
    for round in 1..=ROUNDS {
        let old = s.current.load(Ordering::Relaxed);
        let new = (old + 1) % SLOTS;
        s.slots[new].store(round, Ordering::Relaxed);
        s.current.store(new, Ordering::Release);
        let e = s.q.unlink();
        while !s.q.is_complete(e) {
            std::thread::yield_now();
        }
        s.slots[old].store(POISON, Ordering::Release);
        // Give the readers time in every round, whether or not the wait above took any.
        std::thread::yield_now();
    }
    s.stop.store(true, Ordering::Relaxed);
    for t in readers {
        t.join().expect("a reader saw a freed slot");
    }
    // Each reader was online for the first round, which waited for it to read and report.
    assert!(s.reads.load(Ordering::Relaxed) >= READERS as u64);
}
