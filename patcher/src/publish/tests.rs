//! Host tests of the publication path: the unlink-after-store rule, what each failure leaves,
//! and grace periods holding slots back, through the recording fakes.

// The rig maps a leaked buffer as an arena, which takes an `unsafe` constructor.
#![allow(unsafe_code)]

use core::time::Duration;
use std::boxed::Box;

use super::*;
use crate::arena::{Region, SlotState};
use crate::cache::fake::FakeCache;
use crate::cache::{CodeSync, SyncPolicy};
use crate::check::Policy;
use crate::insn;
use crate::platform::CoreId;
use crate::platform::fake::FakePlatform;
use crate::record::Recorder;
use crate::strategy::{Env, IndirectSite, IpiSync};

const CTR: u64 = 0x8444_c004;
const EXEC: usize = 0x8000_0000;
const SLOT: usize = 64;
const SLOTS: usize = 3;

type Fake = FakeCache<'static>;

struct Rig {
    rec: &'static Recorder,
    sync: &'static CodeSync<Fake>,
    publisher: Publisher<SLOTS, 4>,
    qsbr: &'static Qsbr<4>,
    arena: &'static Arena<SLOTS>,
}

fn rig() -> Rig {
    let rec: &'static Recorder = Box::leak(Box::new(Recorder::new()));
    let sync: &'static CodeSync<Fake> = Box::leak(Box::new(CodeSync::new(
        FakeCache::new(rec, CTR, 0),
        SyncPolicy::from_registers(CTR, 0),
    )));
    let mem: &'static mut [u32] = Box::leak(std::vec![0u32; SLOTS * SLOT / 4].into_boxed_slice());
    let region = Region {
        write_base: mem.as_mut_ptr() as usize,
        exec_base: EXEC,
        slot_size: SLOT,
        slot_count: SLOTS,
    };
    // SAFETY: the write alias is leaked memory used only through this arena; the exec alias is
    // seen only by the fake backend.
    let arena: &'static Arena<SLOTS> = Box::leak(Box::new(unsafe { Arena::new(region) }.unwrap()));
    let qsbr: &'static Qsbr<4> = Box::leak(Box::new(Qsbr::new()));
    Rig {
        rec,
        sync,
        publisher: Publisher::new(arena, qsbr),
        qsbr,
        arena,
    }
}

fn code(version: u16) -> std::vec::Vec<u8> {
    [
        insn::movz(insn::Width::X, insn::Reg::x(0), version, 0).unwrap(),
        insn::ret(insn::Reg::LR).unwrap(),
    ]
    .iter()
    .flat_map(|w| w.to_le_bytes())
    .collect()
}

impl Rig {
    fn env<'a>(&'a self, p: &'a FakePlatform<'static>) -> Env<'a, FakePlatform<'static>, Fake> {
        Env {
            platform: p,
            sync: self.sync,
            timeout: Duration::from_millis(1),
        }
    }

    fn place(&self, p: &FakePlatform<'static>, version: u16) -> CodeBlock<'static> {
        self.publisher
            .place(
                p,
                Duration::from_millis(1),
                &code(version),
                &Externals::NONE,
                &Policy::DEFAULT,
                |_| true,
            )
            .unwrap()
    }

    fn state(&self, slot: SlotId) -> SlotState {
        self.arena.state(slot).unwrap()
    }
}

/// A site whose publication is scripted: `before_store` runs first, then the pointer store, then
/// the result the test asks for.
struct Scripted {
    site: IndirectSite,
    before_store: Box<dyn Fn() + Sync>,
    result: spin::Mutex<Result<(), PublishError>>,
    in_slot: bool,
}

impl Scripted {
    fn new(before_store: impl Fn() + Sync + 'static) -> &'static Self {
        Box::leak(Box::new(Self {
            site: IndirectSite::new(0),
            before_store: Box::new(before_store),
            result: spin::Mutex::new(Ok(())),
            in_slot: true,
        }))
    }
}

impl<P: Platform + ?Sized, M: Maintenance> Publish<P, M> for Scripted {
    fn publish(&self, env: &Env<'_, P, M>, block: &CodeBlock<'static>) -> Result<(), PublishError> {
        (self.before_store)();
        let r = *self.result.lock();
        if r.is_ok() || r.is_err_and(|e| e.block_reachable()) {
            self.site
                .store_release(block.exec_addr(), env.sync.backend());
        }
        r
    }

    fn runs_in_slot(&self) -> bool {
        self.in_slot
    }
}

/// The rule: the block a publication replaced is unlinked only after the store that redirects
/// consumers. Core 1 passes a quiescent state just before the store (and may then load the old
/// pointer and enter the old block): that report must not end the old block's grace period.
#[test]
fn the_old_block_is_unlinked_only_after_the_store() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let qsbr = r.qsbr;
    qsbr.online(CoreId(1));
    let site = Scripted::new(move || qsbr.quiescent(CoreId(1)));
    let mut slots = Slots::new();
    let first = r.place(&p, 1);
    r.publisher
        .install(&r.env(&p), site, &mut slots, first)
        .unwrap();
    let second = r.place(&p, 2);
    r.publisher
        .publish(&r.env(&p), site, &mut slots, second)
        .unwrap();
    assert_eq!(slots.live(), Some(second.slot()));
    let SlotState::Retired(unlinked) = r.state(first.slot()) else {
        panic!("the replaced block is retired: {:?}", r.state(first.slot()));
    };
    // Core 1 reported during the publication, before the unlink: still not past it.
    assert!(qsbr.lagging(unlinked).contains(CoreId(1)));
    r.arena.reclaim(qsbr.safe_epoch());
    assert_eq!(
        r.state(first.slot()),
        SlotState::Retired(unlinked),
        "reclaimed while core 1 may still be inside it"
    );
    // Its next quiescent state, after the store, ends the grace period.
    qsbr.quiescent(CoreId(1));
    r.arena.reclaim(qsbr.safe_epoch());
    assert_eq!(r.state(first.slot()), SlotState::Free);
    assert_eq!(site.site.target(), second.exec_addr());
}

#[test]
fn a_refused_block_writes_nothing_and_frees_its_slot() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let bad = [0u8; 6];
    let e = r
        .publisher
        .place(
            &p,
            Duration::from_millis(1),
            &bad,
            &Externals::NONE,
            &Policy::DEFAULT,
            |_| true,
        )
        .unwrap_err();
    assert_eq!(
        e,
        PlaceError::Check(CheckError::MisalignedLength { len: 6 })
    );
    assert_eq!(r.arena.census()[0], SLOTS, "every slot free again");
    let vetoed = r
        .publisher
        .place(
            &p,
            Duration::from_millis(1),
            &code(1),
            &Externals::NONE,
            &Policy::DEFAULT,
            |_| false,
        )
        .unwrap_err();
    assert_eq!(vetoed, PlaceError::Vetoed { exec: EXEC as u64 });
    assert_eq!(r.arena.census()[0], SLOTS);
}

/// Two-phase placement: a reserved slot is held (not free, not reachable) until it is filled
/// or dropped; a refused fill frees it, and the block is written at the reserved address.
#[test]
fn a_reserved_slot_is_held_until_filled_or_dropped() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let slot = r.publisher.reserve(&p, Duration::from_millis(1)).unwrap();
    let at = slot.exec_addr();
    assert_eq!(
        r.arena.census()[0],
        SLOTS - 1,
        "the reserved slot is not free"
    );
    drop(slot);
    assert_eq!(
        r.arena.census()[0],
        SLOTS,
        "a dropped reservation frees its slot"
    );

    let slot = r.publisher.reserve(&p, Duration::from_millis(1)).unwrap();
    let e = Publisher::<SLOTS, 4>::fill(slot, &[0u8; 6], &Externals::NONE, &Policy::DEFAULT)
        .unwrap_err();
    assert_eq!(
        e,
        PlaceError::Check(CheckError::MisalignedLength { len: 6 })
    );
    assert_eq!(r.arena.census()[0], SLOTS, "a refused fill frees its slot");

    let slot = r.publisher.reserve(&p, Duration::from_millis(1)).unwrap();
    assert_eq!(slot.exec_addr(), at);
    let block =
        Publisher::<SLOTS, 4>::fill(slot, &code(3), &Externals::NONE, &Policy::DEFAULT).unwrap();
    assert_eq!(block.exec_addr(), at);
    assert_eq!(r.state(block.slot()), SlotState::Live);
}

/// A full arena waits (bounded) for grace periods, then names the cores holding them back.
#[test]
fn a_full_arena_names_the_cores_that_hold_it() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 4).with_poll_budget(3);
    r.qsbr.online(CoreId(2));
    let site = Scripted::new(|| {});
    let mut slots = Slots::new();
    for v in 0..SLOTS as u16 {
        let b = r.place(&p, v);
        r.publisher
            .publish(&r.env(&p), site, &mut slots, b)
            .unwrap();
    }
    // One live, two retired and held by core 2, which never reports.
    assert_eq!(
        r.publisher.place(
            &p,
            Duration::from_millis(1),
            &code(9),
            &Externals::NONE,
            &Policy::DEFAULT,
            |_| true
        ),
        Err(PlaceError::ArenaFull {
            lagging: CoreSet::EMPTY.with(CoreId(2))
        })
    );
    r.qsbr.quiescent(CoreId(2));
    r.place(&p, 9);
}

/// A publication that fails before the new block is reachable leaves the site and its live
/// slot as they were, and retires the new block.
#[test]
fn an_unreachable_failure_keeps_the_old_block() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 3).with_unresponsive(CoreSet::EMPTY.with(CoreId(2)));
    let site: &'static IndirectSite = Box::leak(Box::new(IndirectSite::new(0)));
    let bound: &'static Bound<IpiSync, IndirectSite> =
        Box::leak(Box::new(Bound::new(&IpiSync, site)));
    let mut slots = Slots::new();
    let ok = FakePlatform::new(r.rec, 3);
    let first = r.place(&ok, 1);
    r.publisher
        .install(&r.env(&ok), bound, &mut slots, first)
        .unwrap();
    let second = r.place(&p, 2);
    let e = r
        .publisher
        .publish(&r.env(&p), bound, &mut slots, second)
        .unwrap_err();
    assert_eq!(
        e,
        Failure::Publish(PublishError::Ipi(crate::platform::IpiError::Timeout {
            missing: CoreSet::EMPTY.with(CoreId(2))
        }))
    );
    assert_eq!(slots.live(), Some(first.slot()));
    assert_eq!(site.target(), first.exec_addr());
    assert_eq!(r.state(first.slot()), SlotState::Live);
    assert!(matches!(
        r.state(second.slot()),
        SlotState::Retired(_) | SlotState::Free
    ));
}

/// A publication that made the new block reachable without every core confirming keeps it
/// live, holds the previous block back, and retires both at the next synchronized
/// publication; two in a row lose a slot rather than reuse it while it may run.
#[test]
fn a_reachable_failure_holds_the_previous_block_back() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let site = Scripted::new(|| {});
    let mut slots = Slots::new();
    let a = r.place(&p, 1);
    r.publisher
        .install(&r.env(&p), site, &mut slots, a)
        .unwrap();
    let unsync = PublishError::Unsynchronized {
        missing: CoreSet::EMPTY.with(CoreId(1)),
    };
    *site.result.lock() = Err(unsync);
    let b = r.place(&p, 2);
    assert_eq!(
        r.publisher.publish(&r.env(&p), site, &mut slots, b),
        Err(Failure::Publish(unsync))
    );
    assert_eq!(
        (slots.live(), slots.held_back()),
        (Some(b.slot()), Some(a.slot()))
    );
    assert_eq!(r.state(a.slot()), SlotState::Live, "held back, not retired");
    let c = r.place(&p, 3);
    let _ = r.publisher.publish(&r.env(&p), site, &mut slots, c);
    assert_eq!(slots.lost(), 1);
    assert_eq!(r.state(a.slot()), SlotState::Live, "never reused");
    assert_eq!(
        (slots.live(), slots.held_back()),
        (Some(c.slot()), Some(b.slot()))
    );
}

/// After one unsynchronized publication, the next synchronized one retires both the block it
/// replaced and the one held back.
#[test]
fn a_synchronized_publication_retires_what_was_held_back() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let site = Scripted::new(|| {});
    let mut slots = Slots::new();
    let a = r.place(&p, 1);
    r.publisher
        .install(&r.env(&p), site, &mut slots, a)
        .unwrap();
    *site.result.lock() = Err(PublishError::Unsynchronized {
        missing: CoreSet::EMPTY.with(CoreId(1)),
    });
    let b = r.place(&p, 2);
    let _ = r.publisher.publish(&r.env(&p), site, &mut slots, b);
    *site.result.lock() = Ok(());
    let c = r.place(&p, 3);
    r.publisher
        .publish(&r.env(&p), site, &mut slots, c)
        .unwrap();
    assert_eq!((slots.live(), slots.held_back()), (Some(c.slot()), None));
    for old in [a, b] {
        assert!(matches!(
            r.state(old.slot()),
            SlotState::Retired(_) | SlotState::Free
        ));
    }
}

/// A site that copies the block (stop-the-world) frees the block's slot as soon as it returns.
#[test]
fn a_copied_block_frees_its_slot_at_once() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let site: &'static mut Scripted = Box::leak(Box::new(Scripted {
        site: IndirectSite::new(0),
        before_store: Box::new(|| {}),
        result: spin::Mutex::new(Ok(())),
        in_slot: false,
    }));
    let site: &'static Scripted = site;
    let mut slots = Slots::new();
    for v in 0..10 {
        let b = r.place(&p, v);
        r.publisher
            .publish(&r.env(&p), site, &mut slots, b)
            .unwrap();
        assert_eq!(slots.live(), None);
    }
}

/// A site that keeps its previous block: the replaced block stays live in its slot until the
/// next publication, and one restore leads the site back to it without a copy; a failed restore
/// keeps it for a retry.
#[test]
fn a_kept_previous_block_is_restored_in_place() {
    let r = rig();
    let p = FakePlatform::new(r.rec, 2);
    let site = Scripted::new(|| {});
    let mut slots = Slots::new();
    let env = r.env(&p);
    let one = r.place(&p, 1);
    r.publisher.install(&env, site, &mut slots, one).unwrap();
    assert_eq!(slots.previous(), None, "the first code replaces nothing");
    let two = r.place(&p, 2);
    r.publisher
        .publish_keeping(&env, site, &mut slots, two)
        .unwrap();
    assert_eq!(slots.previous(), Some(one));
    assert_eq!(r.state(one.slot()), SlotState::Live, "kept, not retired");
    let three = r.place(&p, 3);
    r.publisher
        .publish_keeping(&env, site, &mut slots, three)
        .unwrap();
    assert_eq!(slots.previous(), Some(two));
    // Retired (and, with no core online, freed at once).
    assert_ne!(r.state(one.slot()), SlotState::Live);

    // A restore that fails before the store: the site and the kept block are as they were.
    *site.result.lock() = Err(PublishError::Busy);
    assert_eq!(
        r.publisher.restore_previous(&env, site, &mut slots),
        Err(Failure::Publish(PublishError::Busy))
    );
    assert_eq!(site.site.target(), three.exec_addr());
    assert_eq!(slots.previous(), Some(two));
    assert_eq!(r.state(two.slot()), SlotState::Live);

    *site.result.lock() = Ok(());
    assert_eq!(
        r.publisher.restore_previous(&env, site, &mut slots),
        Ok(two)
    );
    assert_eq!(
        site.site.target(),
        two.exec_addr(),
        "back at the same address"
    );
    assert_eq!(slots.live(), Some(two.slot()));
    assert_ne!(r.state(three.slot()), SlotState::Live);
    assert_eq!(
        r.publisher.restore_previous(&env, site, &mut slots),
        Err(Failure::NothingKept),
        "what was replaced by a restore is not kept"
    );
}
