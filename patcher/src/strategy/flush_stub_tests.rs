//! Host tests of the flush stub's machine code: its listing in an independent disassembler,
//! that it passes the block check, and that an interpreter running it produces exactly the
//! operations of the Rust model.

use core::sync::atomic::Ordering;
use std::format;
use std::string::String;
use std::vec::Vec;

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::InstDecoder;

use super::{ConsumerCell, FLUSH_STUB, FlushThenRedirect};
use crate::cache::Maintenance;
use crate::cache::fake::FakeCache;
use crate::check::{Externals, check_block};
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
            "ldr x9, [x16, #0x10]",
            "ldr x10, [x16, #0x18]",
            "ldr x11, [x16, #0x20]",
            "cbz x11, $+0x18",
            "sys #0x3, c7, c5, #0x1, x9",
            "add x9, x9, x11",
            "cmp x9, x10",
            "b.lo $-0xc",
            "dsb ish",
            "isb",
            "ldr x17, [x16, #0x8]",
            "stlr x17, [x16]",
            "br x17",
        ]
    );
}

#[test]
fn passes_the_block_check() {
    let bytes: Vec<u8> = FLUSH_STUB.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert!(check_block(&bytes, 0x4008_0000, 4096, &Externals::NONE).is_ok());
}

/// Runs [`FLUSH_STUB`] as a core would, entered with `X16` = `cell`, performing its
/// maintenance on `backend`. Returns the address it branches to. Panics on any instruction
/// the stub should not contain and on any write to a register it must preserve.
fn interpret(cell: &ConsumerCell, backend: &FakeCache<'_>) -> u64 {
    let base = cell as *const ConsumerCell as u64;
    let mut x = [0u64; 32];
    x[16] = base;
    let read = |addr: u64| match addr - base {
        0 => cell.target.load(Ordering::Relaxed),
        8 => cell.pending.load(Ordering::Relaxed),
        16 => cell.inval_start.load(Ordering::Relaxed),
        24 => cell.inval_end.load(Ordering::Relaxed),
        32 => cell.stride.load(Ordering::Relaxed),
        off => panic!("load outside the cell's fields: +{off}"),
    };
    let set = |x: &mut [u64; 32], r: crate::insn::Reg, v: u64| {
        let n = r.number();
        assert!(matches!(n, 9..=11 | 16 | 17), "stub clobbers x{n}");
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

fn cell(block: u64, start: u64, end: u64, stride: u64) -> ConsumerCell {
    let c = ConsumerCell::new(0x9000_0000);
    c.pending.store(block, Ordering::Relaxed);
    c.inval_start.store(start, Ordering::Relaxed);
    c.inval_end.store(end, Ordering::Relaxed);
    c.stride.store(stride, Ordering::Relaxed);
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
