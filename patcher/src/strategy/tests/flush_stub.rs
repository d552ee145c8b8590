//! Host tests of the flush stub's machine code: its listing in an independent disassembler,
//! that it passes the block check, and that an interpreter running it produces exactly the
//! operations of the Rust model.

use core::sync::atomic::Ordering;
use std::format;
use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::InstDecoder;

use super::{ConsumerCell, FLUSH_STUB, FlushThenRedirect, Publication};
use crate::cache::Maintenance;
use crate::cache::fake::FakeCache;
use crate::check::{Externals, check_shape};
use crate::insn::{Barrier, Cond, IcOp, Insn, decode};
use crate::record::{Event, Recorder};

#[test]
fn listing() {
    let text: Vec<String> = FLUSH_STUB
        .iter()
        .map(|w| {
            let b = w.to_le_bytes();
            format!(
                "{}",
                InstDecoder::default()
                    .decode(&mut U8Reader::new(&b))
                    .unwrap()
            )
        })
        .collect();
    assert_eq!(
        text,
        [
            "dmb ish",
            "ldr x12, [x16, #0x8]",
            "ldr x9, [x12, #0x8]",
            "ldr x10, [x12, #0x10]",
            "ldr x11, [x12, #0x18]",
            "cbz x11, $+0x18",
            "sys #0x3, c7, c5, #0x1, x9",
            "add x9, x9, x11",
            "cmp x9, x10",
            "b.lo $-0xc",
            "dsb ish",
            "isb",
            "ldr x17, [x12]",
            "stlr x17, [x16]",
            "br x17",
        ]
    );
}

#[test]
fn passes_the_shape_check() {
    // The stub is fixed kernel code, not a patch: it is position-independent (the shape rules),
    // but it does what patches may not (IC IVAU through its cell, BR), so only its shape is
    // checked.
    let bytes: Vec<u8> = FLUSH_STUB.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert!(check_shape(&bytes, 0x4008_0000, 4096, &Externals::NONE).is_ok());
}

/// Runs [`FLUSH_STUB`] as a core would, entered with `X16` = `cell`, performing its
/// maintenance on `backend`. Returns the address it branches to. Panics on any instruction
/// the stub should not contain, on any load outside the cell and the record it leads to, and
/// on any write to a register it must preserve.
fn interpret(cell: &ConsumerCell, backend: &FakeCache<'_>) -> u64 {
    let base = cell as *const ConsumerCell as u64;
    let record = cell.publication.load(Ordering::Relaxed);
    // SAFETY: the tests below point every cell at a live record.
    let r = unsafe { &*(record as *const Publication) };
    let mut x = [0u64; 32];
    x[16] = base;
    let read = |addr: u64| match (addr.wrapping_sub(base), addr.wrapping_sub(record)) {
        (0, _) => cell.target.load(Ordering::Relaxed),
        (8, _) => cell.publication.load(Ordering::Relaxed),
        (_, 0) => r.block.load(Ordering::Relaxed),
        (_, 8) => r.inval_start.load(Ordering::Relaxed),
        (_, 16) => r.inval_end.load(Ordering::Relaxed),
        (_, 24) => r.stride.load(Ordering::Relaxed),
        _ => panic!("load outside the cell and its record: {addr:#x}"),
    };
    let set = |x: &mut [u64; 32], r: crate::insn::Reg, v: u64| {
        let n = r.number();
        assert!(matches!(n, 9..=12 | 16 | 17), "stub clobbers x{n}");
        x[n as usize] = v;
    };
    let (mut pc, mut carry) = (0i64, false);
    for _ in 0..100_000 {
        let mut next = pc + 1;
        let g = |r: crate::insn::Reg| x[r.number() as usize];
        match decode(FLUSH_STUB[pc as usize]) {
            Insn::Dmb(Barrier::Ish) => backend.dmb_ish(),
            Insn::Dsb(Barrier::Ish) => backend.dsb_ish(),
            Insn::Isb => backend.isb(),
            Insn::LdrImm { rt, rn, offset } => {
                let v = read(g(rn) + offset as u64);
                set(&mut x, rt, v);
            }
            Insn::Cbz {
                rt,
                offset,
                nonzero: false,
                ..
            } => {
                if g(rt) == 0 {
                    next = pc + offset / 4;
                }
            }
            // SAFETY: the fake backend touches no memory.
            Insn::Ic { op: IcOp::Ivau, rt } => unsafe { backend.ic_ivau(g(rt) as usize) },
            Insn::AddReg { rd, rn, rm } => {
                let v = g(rn).wrapping_add(g(rm));
                set(&mut x, rd, v);
            }
            // SUBS: carry set when there is no borrow.
            Insn::CmpReg { rn, rm } => carry = g(rn) >= g(rm),
            Insn::BCond {
                cond: Cond::Cc,
                offset,
                ..
            } => {
                if !carry {
                    next = pc + offset / 4;
                }
            }
            Insn::Stlr { rt, rn } => {
                assert_eq!(g(rn), base, "store outside the cell's target");
                cell.target.store(g(rt), Ordering::Release);
                backend.observe_store(base as usize, g(rt));
            }
            Insn::Br { rn } => return g(rn),
            other => panic!("unexpected instruction in the stub: {other:?}"),
        }
        pc = next;
    }
    panic!("the stub does not terminate");
}

/// A cell redirected to the stub, leading to a record of `block` (leaked: the cell points at
/// it).
fn cell(block: u64, start: u64, end: u64, stride: u64) -> ConsumerCell {
    let r: &'static Publication = Box::leak(Box::new(Publication {
        block: block.into(),
        inval_start: start.into(),
        inval_end: end.into(),
        stride: stride.into(),
    }));
    let c = ConsumerCell::new(0x9000_0000);
    c.publication
        .store(r as *const Publication as u64, Ordering::Relaxed);
    c
}

#[test]
fn machine_code_matches_the_model() {
    for (block, start, end, stride) in [
        // Three lines: 0x..1030 + 0x60 bytes reaches into the line at 0x..1080.
        (0x4010_1030u64, 0x4010_1000u64, 0x4010_1090u64, 64u64),
        // Exactly one line.
        (0x4010_1000, 0x4010_1000, 0x4010_1040, 64),
        // 32-byte lines.
        (0x4010_1010, 0x4010_1000, 0x4010_1048, 32),
        // DIC: nothing to invalidate.
        (0x4010_1000, 0x4010_1000, 0x4010_1040, 0),
    ] {
        let (rec_m, rec_i) = (Recorder::new(), Recorder::new());
        let (cm, ci) = (
            cell(block, start, end, stride),
            cell(block, start, end, stride),
        );
        // SAFETY: the fake backend touches no memory.
        let to_m = unsafe { FlushThenRedirect::stub_model(&cm, &FakeCache::new(&rec_m, 0, 0)) };
        let to_i = interpret(&ci, &FakeCache::new(&rec_i, 0, 0));
        assert_eq!((to_m, to_i), (block, block));
        assert_eq!(ci.target.load(Ordering::Relaxed), block);
        // Same operations, same order (the store's cell address differs: two cells).
        let strip = |r: &Recorder| -> Vec<Event> {
            r.events()
                .iter()
                .map(|e| match *e {
                    Event::StoreRelease { value, .. } => Event::StoreRelease { cell: 0, value },
                    e => e,
                })
                .collect()
        };
        assert_eq!(
            strip(&rec_i),
            strip(&rec_m),
            "block {block:#x} stride {stride}"
        );
        let ics = rec_i
            .cache_ops()
            .iter()
            .filter(|o| matches!(o, crate::cache::Op::IcIvau(_)))
            .count();
        let want = if stride == 0 {
            0
        } else {
            (end - start).div_ceil(stride) as usize
        };
        assert_eq!(ics, want);
    }
}
