//! Host tests: region validation, every transition and its refusals, the copy, and threads.

use std::vec::Vec;

use super::{Arena, ArenaError, Region, SlotId, SlotState};
use crate::cache::fake::FakeCache;
use crate::cache::{CodeSync, Op, SyncPolicy};
use crate::check::{Externals, Policy, check_block};
use crate::grace::Epoch;
use crate::insn;
use crate::record::Recorder;

const EXEC: usize = 0x8000_0000;
const SLOT: usize = 64;
/// Cortex-A72-like CTR_EL0: 64-byte lines.
const CTR: u64 = 0x8444_c004;

/// Host memory standing in for the write alias; the exec alias is a made-up address that only
/// the fake backend ever sees.
struct Mem(Vec<u32>);

impl Mem {
    fn new(slots: usize) -> Self {
        Self(std::vec![0; slots * SLOT / 4])
    }

    fn region(&mut self, slots: usize) -> Region {
        Region {
            write_base: self.0.as_mut_ptr() as usize,
            exec_base: EXEC,
            slot_size: SLOT,
            slot_count: slots,
        }
    }

    fn arena<const N: usize>(&mut self, slots: usize) -> Arena<N> {
        let region = self.region(slots);
        // SAFETY: the write alias is this struct's buffer, which outlives every arena in these
        // tests and is touched only through it; the exec alias is used only by the fake backend.
        unsafe { Arena::new(region) }.unwrap()
    }
}

fn block(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn ret_block(tag: u16) -> Vec<u8> {
    block(&[
        insn::movz(insn::Width::X, insn::Reg::x(0), tag, 0).unwrap(),
        insn::ret(insn::Reg::LR).unwrap(),
    ])
}

fn new_arena(region: Region) -> Result<Arena<4>, ArenaError> {
    // SAFETY: never used to write: every region here is refused before an arena exists.
    unsafe { Arena::new(region) }
}

#[test]
fn region_is_validated() {
    let r = Region {
        write_base: 0x1000,
        exec_base: 0x2000,
        slot_size: 64,
        slot_count: 4,
    };
    assert_eq!(
        new_arena(Region { slot_count: 5, ..r }).err(),
        Some(ArenaError::TooManySlots {
            count: 5,
            capacity: 4
        })
    );
    assert_eq!(
        new_arena(Region { slot_size: 0, ..r }).err(),
        Some(ArenaError::BadSlotSize(0))
    );
    assert_eq!(
        new_arena(Region { slot_size: 62, ..r }).err(),
        Some(ArenaError::BadSlotSize(62))
    );
    assert_eq!(
        new_arena(Region {
            exec_base: 0x2002,
            ..r
        })
        .err(),
        Some(ArenaError::MisalignedBase(0x2002))
    );
    assert_eq!(
        new_arena(Region {
            write_base: usize::MAX - 127,
            ..r
        })
        .err(),
        Some(ArenaError::RegionOverflow)
    );
}

#[test]
fn full_arena_is_an_error_and_live_slots_are_kept() {
    let mut mem = Mem::new(3);
    let arena: Arena<4> = mem.arena(3);
    let rec = Recorder::new();
    let sync = CodeSync::new(
        FakeCache::new(&rec, 0, 0),
        SyncPolicy::from_registers(CTR, 0),
    );
    for i in 0..3u16 {
        let mut w = arena.alloc().unwrap();
        assert_eq!(w.slot(), SlotId(i as usize));
        let code = ret_block(i);
        let c = check_block(
            &code,
            w.exec_addr(),
            SLOT,
            &Externals::NONE,
            &Policy::DEFAULT,
        )
        .unwrap();
        w.write(&c).unwrap();
        let b = w.publish().unwrap();
        b.sync(&sync);
        assert_eq!(b.slot(), SlotId(i as usize));
    }
    assert_eq!(arena.alloc().err(), Some(ArenaError::ArenaFull));
    assert_eq!(arena.census(), [0, 0, 3, 0]);
    // Capacity 4, region 3: the fourth slot does not exist.
    assert_eq!(
        arena.state(SlotId(3)),
        Err(ArenaError::NoSuchSlot(SlotId(3)))
    );
    assert_eq!(
        arena.exec_addr(SlotId(3)),
        Err(ArenaError::NoSuchSlot(SlotId(3)))
    );
    assert_eq!(arena.exec_addr(SlotId(2)), Ok((EXEC + 2 * SLOT) as u64));
    // Every live slot still holds its own code.
    for i in 0..3 {
        assert_eq!(
            mem.0[i * SLOT / 4],
            insn::movz(insn::Width::X, insn::Reg::x(0), i as u16, 0).unwrap()
        );
    }
}

#[test]
fn write_copies_checked_words_and_sync_covers_both_aliases() {
    let mut mem = Mem::new(2);
    let arena: Arena<2> = mem.arena(2);
    let rec = Recorder::new();
    let sync = CodeSync::new(
        FakeCache::new(&rec, 0, 0),
        SyncPolicy::from_registers(CTR, 0),
    );
    let _first = arena.alloc().unwrap();
    let mut w = arena.alloc().unwrap();
    assert_eq!(w.exec_addr(), (EXEC + SLOT) as u64);
    let code = ret_block(7);
    let c = check_block(
        &code,
        w.exec_addr(),
        SLOT,
        &Externals::NONE,
        &Policy::DEFAULT,
    )
    .unwrap();
    w.write(&c).unwrap();
    assert_eq!(w.len(), 8);
    let b = w.publish().unwrap();
    assert_eq!(
        (b.slot(), b.len(), b.exec_addr()),
        (SlotId(1), 8, (EXEC + SLOT) as u64)
    );
    b.sync(&sync);
    let base = mem.0.as_ptr() as usize + SLOT;
    assert_eq!(
        rec.cache_ops().as_slice(),
        [
            Op::DcCvau(base & !63),
            Op::DsbIsh,
            Op::IcIvau(EXEC + SLOT),
            Op::DsbIsh
        ]
    );
    rec.clear();
    b.clean(&sync);
    assert_eq!(
        rec.cache_ops().as_slice(),
        [Op::DcCvau(base & !63), Op::DsbIsh]
    );
    rec.clear();
    b.invalidate(&sync);
    assert_eq!(
        rec.cache_ops().as_slice(),
        [Op::IcIvau(EXEC + SLOT), Op::DsbIsh]
    );
    assert_eq!(
        &mem.0[SLOT / 4..SLOT / 4 + 2],
        &[
            insn::movz(insn::Width::X, insn::Reg::x(0), 7, 0).unwrap(),
            0xd65f_03c0
        ]
    );
}

#[test]
fn write_refuses_blocks_checked_elsewhere() {
    let mut mem = Mem::new(2);
    let arena: Arena<2> = mem.arena(2);
    let mut w = arena.alloc().unwrap();
    let code = ret_block(1);
    let elsewhere = check_block(
        &code,
        w.exec_addr() + SLOT as u64,
        SLOT,
        &Externals::NONE,
        &Policy::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        w.write(&elsewhere),
        Err(ArenaError::WrongAddress {
            slot_addr: EXEC as u64,
            checked_for: (EXEC + SLOT) as u64
        })
    );
    let big = block(&[insn::ret(insn::Reg::LR).unwrap(); SLOT / 4 + 1]);
    let c = check_block(
        &big,
        w.exec_addr(),
        4096,
        &Externals::NONE,
        &Policy::DEFAULT,
    )
    .unwrap();
    assert_eq!(
        w.write(&c),
        Err(ArenaError::TooLarge {
            len: SLOT + 4,
            slot_size: SLOT
        })
    );
    assert!(
        mem.0.iter().all(|&x| x == 0),
        "a refused write wrote something"
    );
}

#[test]
fn publish_needs_a_write_and_drop_frees() {
    let mut mem = Mem::new(1);
    let arena: Arena<1> = mem.arena(1);
    let w = arena.alloc().unwrap();
    assert_eq!(arena.state(SlotId(0)), Ok(SlotState::Writing));
    assert_eq!(w.publish(), Err(ArenaError::NotWritten));
    assert_eq!(arena.state(SlotId(0)), Ok(SlotState::Free));
    let mut w = arena.alloc().unwrap();
    let code = ret_block(1);
    w.write(
        &check_block(
            &code,
            w.exec_addr(),
            SLOT,
            &Externals::NONE,
            &Policy::DEFAULT,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(w.publish().map(|b| b.slot()), Ok(SlotId(0)));
    assert_eq!(arena.state(SlotId(0)), Ok(SlotState::Live));
    assert_eq!(arena.alloc().err(), Some(ArenaError::ArenaFull));
    arena.retire(SlotId(0), Epoch(1)).unwrap();
    arena.reclaim(Epoch(1));
    drop(arena.alloc().unwrap());
    assert_eq!(arena.state(SlotId(0)), Ok(SlotState::Free));
}

#[test]
fn retire_and_reclaim_transitions_are_checked() {
    let mut mem = Mem::new(3);
    let arena: Arena<3> = mem.arena(3);
    let rec = Recorder::new();
    let sync = CodeSync::new(
        FakeCache::new(&rec, 0, 0),
        SyncPolicy::from_registers(CTR, 0),
    );
    let mut live = Vec::new();
    for _ in 0..3 {
        let mut w = arena.alloc().unwrap();
        let code = ret_block(0);
        w.write(
            &check_block(
                &code,
                w.exec_addr(),
                SLOT,
                &Externals::NONE,
                &Policy::DEFAULT,
            )
            .unwrap(),
        )
        .unwrap();
        let b = w.publish().unwrap();
        b.sync(&sync);
        live.push(b.slot());
    }
    let (a, b, c) = (live[0], live[1], live[2]);
    assert_eq!(arena.retire(a, Epoch(5)), Ok(()));
    assert_eq!(arena.retire(b, Epoch(7)), Ok(()));
    assert_eq!(
        arena.retire(a, Epoch(6)),
        Err(ArenaError::BadState {
            slot: a,
            found: SlotState::Retired(Epoch(5))
        })
    );
    assert_eq!(
        arena.retire(SlotId(3), Epoch(1)),
        Err(ArenaError::NoSuchSlot(SlotId(3)))
    );
    assert_eq!(
        arena.retire(c, Epoch(u64::MAX)),
        Err(ArenaError::EpochTooLarge(Epoch(u64::MAX)))
    );
    // Not yet: nothing retired at or before 4.
    assert_eq!(arena.reclaim(Epoch(4)), 0);
    assert_eq!(arena.reclaim(Epoch(6)), 1);
    assert_eq!(arena.state(a), Ok(SlotState::Free));
    assert_eq!(arena.state(b), Ok(SlotState::Retired(Epoch(7))));
    assert_eq!(arena.state(c), Ok(SlotState::Live));
    assert_eq!(
        arena.retire(a, Epoch(8)),
        Err(ArenaError::BadState {
            slot: a,
            found: SlotState::Free
        })
    );
    assert_eq!(arena.reclaim(Epoch(u64::MAX >> 2)), 1);
    assert_eq!(arena.census(), [2, 0, 1, 0]);
    // Only the freed slots are handed out again.
    let w1 = arena.alloc().unwrap();
    let w2 = arena.alloc().unwrap();
    assert_eq!((w1.slot(), w2.slot()), (a, b));
    assert_eq!(arena.alloc().err(), Some(ArenaError::ArenaFull));
}

/// Several threads allocate, write, publish, retire and reclaim at once: no two ever hold the
/// same slot, which each checks by finding its own signature still in place after a pause.
#[test]
fn threads_never_share_a_slot() {
    const SLOTS: usize = 4;
    let mut mem = Mem::new(SLOTS);
    let arena: Arena<SLOTS> = mem.arena(SLOTS);
    let rec = Recorder::new();
    let sync = CodeSync::new(
        FakeCache::new(&rec, CTR | (3 << 28), 0),
        SyncPolicy::from_registers(CTR | (3 << 28), 0),
    );
    let write_base = mem.0.as_ptr() as usize;
    std::thread::scope(|s| {
        for t in 0..3u16 {
            let (arena, sync) = (&arena, &sync);
            s.spawn(move || {
                let mut done = 0;
                let mut full = 0;
                while done < 200 {
                    let mut w = match arena.alloc() {
                        Ok(w) => w,
                        Err(ArenaError::ArenaFull) => {
                            full += 1;
                            arena.reclaim(Epoch(u64::MAX >> 2));
                            std::thread::yield_now();
                            continue;
                        }
                        Err(e) => panic!("{e:?}"),
                    };
                    let tag = t * 1000 + (done % 1000) as u16;
                    let code = ret_block(tag);
                    let c = check_block(
                        &code,
                        w.exec_addr(),
                        SLOT,
                        &Externals::NONE,
                        &Policy::DEFAULT,
                    )
                    .unwrap();
                    w.write(&c).unwrap();
                    std::thread::yield_now();
                    let addr = write_base + w.slot().0 * SLOT;
                    // SAFETY: reading back this thread's own slot, which no one else may write
                    // while it is `Writing` (the property under test).
                    let first = unsafe { (addr as *const u32).read_volatile() };
                    assert_eq!(
                        first,
                        insn::movz(insn::Width::X, insn::Reg::x(0), tag, 0).unwrap()
                    );
                    let b = w.publish().unwrap();
                    b.sync(sync);
                    let slot = b.slot();
                    arena.retire(slot, Epoch(1)).unwrap();
                    done += 1;
                }
                let _ = full;
            });
        }
    });
    arena.reclaim(Epoch(1));
    assert_eq!(arena.census(), [SLOTS, 0, 0, 0]);
}
