//! The register-level rules on legitimate blocks: the kernel's payload templates and control
//! laws pass with the kernel's policy, and each rule is shown at its edge.

use std::vec::Vec;

use super::{AccessFault, ArgBound, CheckError, Externals, Policy, ReturnFault, check_block};
use crate::insn;

pub(super) const AT: u64 = 0x4060_1000;
const HELPER: u64 = 0x4008_0000;
const RET: u32 = 0xd65f_03c0;

// The kernel's payload blocks, assembled from the text of `kernel/src/patch/payload.rs` with
// `llvm-mc -triple=aarch64` (the kernel's own build runs the same blocks through this check on
// the board: `cargo xtask test` fails if they drift into something it refuses). Their literal
// pools are zero here, as in the templates.
pub(super) const PAYLOAD_A: [u32; 14] = [
    0x10000009, 0xf9000009, 0x1000014c, 0xd2800001, 0xb840452b, 0x93c1ec21, 0x8b0b0021, 0xeb0c013f,
    0x54ffff83, 0xf900001f, 0x58000040, 0xd65f03c0, 0x00000000, 0x00000000,
];
pub(super) const PAYLOAD_B: [u32; 16] = [
    0x1000000a, 0xf900000a, 0x1000018d, 0xd28b4b41, 0xb840454e, 0xca0e0021, 0x93c1f421, 0xeb0d015f,
    0x54ffff83, 0xf900001f, 0x58000080, 0xd503201f, 0xd65f03c0, 0x00000000, 0x00000000, 0x00000000,
];
// The demo's control laws as rustc 1.95 compiles them from `kernel/src/demo/controller.rs`
// (release): code, an unreachable padding word, then the parameter block (zero here, as in the
// template). The kernel checks its own build's blocks on the board at every publication.
const LAW_PID: [u32; 30] = [
    0x1e203821, 0x100002e8, 0xf9400909, 0xbd400900, 0xbd400102, 0xbd400d03, 0xbd400504, 0x2d401805,
    0xf9000409, 0x1e240824, 0x1e220822, 0x1e263826, 0x1e2428a4, 0x2f00e405, 0x1e260800, 0x1e237884,
    0x1e256884, 0x1e242842, 0x2d000404, 0x1e222800, 0x1e237800, 0x1e256800, 0xd65f03c0, 0x00000000,
    0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
];
const LAW_PIAW: [u32; 28] = [
    0x1e203821, 0x100002a8, 0xf9400909, 0xbd400902, 0xbd400503, 0xbd400d00, 0xbd400104, 0xbd400005,
    0x2f00e406, 0xf9000409, 0x1e240824, 0x1e230823, 0x1e2428a4, 0x1e207880, 0x1e266800, 0x1e243804,
    0x1e240842, 0x1e222862, 0x1e2228a2, 0x2d000402, 0xd65f03c0, 0x00000000, 0x00000000, 0x00000000,
    0x00000000, 0x00000000, 0x00000000, 0x00000000,
];

pub(super) fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn run_with(words: &[u32], policy: &Policy<'_>) -> Result<u32, CheckError> {
    let ext = Externals {
        branch_targets: &[HELPER],
        data: &[],
    };
    check_block(&bytes(words), AT, 4096, &ext, policy).map(|c| c.worst_case_insns())
}

fn run(words: &[u32]) -> Result<u32, CheckError> {
    run_with(words, &Policy::KERNEL_SITES)
}

#[test]
fn the_kernels_payloads_and_laws_pass() {
    // The payloads walk the words before their literal, 5 instructions a word: A's 12, and B's
    // 13 with the padding word before its literal.
    assert_eq!(run(&PAYLOAD_A), Ok(4 + 12 * 5 + 3));
    assert_eq!(run(&PAYLOAD_B), Ok(4 + 14 * 5 + 4));
    assert_eq!(run(&LAW_PID), Ok(23));
    assert_eq!(run(&LAW_PIAW), Ok(21));
    // With a literal filled in (the version), and at another slot address.
    let mut b = bytes(&PAYLOAD_A);
    let n = b.len();
    b[n - 8..].copy_from_slice(&7u64.to_le_bytes());
    assert!(check_block(&b, AT + 0x80, 128, &Externals::NONE, &Policy::KERNEL_SITES).is_ok());
}

#[test]
fn moves_into_fp_registers_keep_the_general_ones() {
    // rustc's PI-AW law (patches/pi-antiwindup) loads a constant with `MOV W8; FMOV S0, W8`
    // and then stores through X0: `FMOV S0, W8`, `SCVTF S0, W8` and `UCVTF S0, W8` write S0,
    // not X0. (Before this was told apart, the store was refused as through an unknown X0.)
    for to_fp in [0x1e27_0100, 0x1e22_0100, 0x1e23_0100] {
        assert_eq!(
            run(&[0x5280_0028, to_fp, 0xf900_0408, RET]),
            Ok(4),
            "{to_fp:#x}"
        );
    }
    // The other way, `FMOV W0, S0` and `FCVTZS W0, S0` do overwrite X0.
    for to_gp in [0x1e26_0000, 0x1e38_0000] {
        assert!(
            matches!(
                run(&[to_gp, 0xf900_0408, RET]),
                Err(CheckError::UnprovenAccess { .. })
            ),
            "{to_gp:#x}"
        );
    }
}

#[test]
fn the_kernels_blocks_need_the_kernels_policy() {
    // Without the argument bound, their stores through X0 are unproven.
    let no_args = Policy::DEFAULT;
    assert_eq!(
        run_with(&PAYLOAD_A, &no_args),
        Err(CheckError::UnprovenAccess {
            offset: 4,
            word: PAYLOAD_A[1],
            why: AccessFault::UnknownBase
        })
    );
    // With an 8-byte argument, the law's store of its version at X0 + 8 leaves it.
    let small = Policy {
        args: &[ArgBound {
            reg: 0,
            len: 8,
            writable: true,
        }],
        ..Policy::DEFAULT
    };
    assert_eq!(
        run_with(&LAW_PID, &small),
        Err(CheckError::UnprovenAccess {
            offset: 0x20,
            word: LAW_PID[8],
            why: AccessFault::OutOfBounds
        })
    );
    // A read-only argument refuses the first store.
    let ro = Policy {
        args: &[ArgBound {
            reg: 0,
            len: 16,
            writable: false,
        }],
        ..Policy::DEFAULT
    };
    assert_eq!(
        run_with(&LAW_PIAW, &ro),
        Err(CheckError::UnprovenAccess {
            offset: 0x24,
            word: LAW_PIAW[9],
            why: AccessFault::ReadOnly
        })
    );
    // A walk that reads 8 bytes a step up to a byte inside the literal reads past the block.
    let mut long = PAYLOAD_A;
    long[2] = 0x3000_016c; // ADR X12, #45: the walk's end, the block's last word but 3 bytes
    long[4] = 0xf840_452b; // LDR X11, [X9], #4
    assert_eq!(
        run(&long),
        Err(CheckError::UnprovenAccess {
            offset: 0x10,
            word: long[4],
            why: AccessFault::OutOfBounds
        })
    );
}

#[test]
fn a_balanced_frame_around_a_helper_call_passes() {
    // STP X29, X30, [SP, #-16]!; MOV X29, SP; BL helper; LDP X29, X30, [SP], #16; RET
    let call = |i: usize| insn::bl(HELPER as i64 - (AT as i64 + 4 * i as i64)).unwrap();
    let block = [0xa9bf_7bfd, 0x9100_03fd, call(2), 0xa8c1_7bfd, RET];
    assert_eq!(run(&block), Ok(5));
    // Without the restore, X30 is the helper's return address.
    assert_eq!(
        run(&[0xa9bf_7bfd, call(1), 0x9100_43ff, RET]),
        Err(CheckError::BadReturn {
            offset: 12,
            word: RET,
            why: ReturnFault::LinkClobbered
        })
    );
    // Restoring X30 from the wrong slot is clobbering it too.
    // STP X29, X30, [SP, #-16]!; LDP X30, X29, [SP], #16; RET
    assert_eq!(
        run(&[0xa9bf_7bfd, 0xa8c1_77fe, RET]),
        Err(CheckError::BadReturn {
            offset: 8,
            word: RET,
            why: ReturnFault::LinkClobbered
        })
    );
    // A frame through X29: SUB SP, SP, #32; MOV X29, SP; STR X1, [X29, #8]; ADD SP, X29, #32.
    assert_eq!(
        run(&[0xd100_83ff, 0x9100_03fd, 0xf900_07a1, 0x9100_83bf, RET]),
        Err(CheckError::BadReturn {
            offset: 16,
            word: RET,
            why: ReturnFault::CalleeSaved(29)
        })
    );
    // The stack budget's edge: 256 bytes pass, 272 do not.
    assert_eq!(run(&[0xd104_03ff, 0xf900_03e1, 0x9104_03ff, RET]), Ok(4));
    assert_eq!(
        run(&[0xd104_43ff, RET]),
        Err(CheckError::SpWrite {
            offset: 0,
            word: 0xd104_43ff
        })
    );
    // After the frame is popped, its slots are below SP: a read there is refused.
    assert_eq!(
        run(&[0xd100_43ff, 0x9100_43ff, 0xf85f_83e1, RET]),
        Err(CheckError::UnprovenAccess {
            offset: 8,
            word: 0xf85f_83e1,
            why: AccessFault::OutOfBounds
        })
    );
}

#[test]
fn counted_loops_are_bounded_and_others_refused() {
    // MOV X0, #n; loop: SUBS X0, X0, #1; B.NE loop; RET: 1 + 2n + 1 instructions.
    let counted = |n: u16| {
        [
            0xd280_0000 | u32::from(n) << 5,
            0xf100_0400,
            0x54ff_ffe1,
            RET,
        ]
    };
    assert_eq!(run(&counted(10)), Ok(22));
    assert_eq!(run(&counted(2047)), Ok(4096));
    assert_eq!(
        run(&counted(2048)),
        Err(CheckError::OverBudget {
            offset: 8,
            word: 0x54ff_ffe1,
            budget: 4096
        })
    );
    // A smaller budget is the site's to choose.
    let tight = Policy {
        max_insns: 21,
        ..Policy::KERNEL_SITES
    };
    assert!(matches!(
        run_with(&counted(10), &tight),
        Err(CheckError::OverBudget { .. })
    ));
    // The counter from an argument (unknown): refused.
    assert!(matches!(
        run(&[0xf100_0400, 0x54ff_ffe1, RET]),
        Err(CheckError::OverBudget { .. })
    ));
    // A forward branch on an unknown value explores both arms and takes the longer.
    // CBZ X1, +12; NOP; NOP; RET
    assert_eq!(run(&[0xb400_0061, insn::nop(), insn::nop(), RET]), Ok(4));
}

#[test]
fn safe_reads_and_policy_exceptions() {
    // MRS X0, CNTVCT_EL0 is in the safe set.
    assert_eq!(run(&[0xd53b_e040, RET]), Ok(2));
    // MSR DAIFSet, #3 passes only when the policy lists DAIFSet; MSR TTBR0_EL1 likewise.
    let p = Policy {
        pstate_writes: &[super::PstateField::DAIFSET],
        sysreg_writes: &[super::SysReg::TTBR0_EL1],
        ..Policy::KERNEL_SITES
    };
    assert_eq!(run_with(&[0xd503_43df, RET], &p), Ok(2));
    assert_eq!(run_with(&[0xd518_2000, RET], &p), Ok(2));
    assert!(matches!(
        run_with(&[0xd503_42ff, RET], &p),
        Err(CheckError::PstateWrite { .. })
    ));
    // DC CVAU and IC IVAU over the block itself are allowed (ADR X1, .; DC CVAU, X1; IC IVAU, X1).
    assert_eq!(run(&[0x1000_0001, 0xd50b_7b21, 0xd50b_7521, RET]), Ok(4));
}

#[test]
fn atomics_must_be_aligned_and_stack_addresses_may_escape() {
    // LDADD X1, X2, [X0]: 8 bytes at the argument, aligned.
    assert_eq!(run(&[0xf821_0002, RET]), Ok(2));
    // ADD X3, X0, #4; LDADD X1, X2, [X3]: in bounds, but misaligned.
    assert_eq!(
        run(&[0x9100_1003, 0xf821_0062, RET]),
        Err(CheckError::UnprovenAccess {
            offset: 4,
            word: 0xf821_0062,
            why: AccessFault::Misaligned
        })
    );
    // A stack address stored to the argument may reach the helper, which may then overwrite the
    // saved X30: STP X29, X30, [SP, #-16]!; MOV X1, SP; STR X1, [X0]; MOV X1, #0; BL helper;
    // LDP X29, X30, [SP], #16; RET.
    let call = |i: usize| insn::bl(HELPER as i64 - (AT as i64 + 4 * i as i64)).unwrap();
    let (mov_sp, mov_0) = (0x9100_03e1, 0xd280_0001);
    let leak = [
        0xa9bf_7bfd,
        mov_sp,
        0xf900_0001,
        mov_0,
        call(4),
        0xa8c1_7bfd,
        RET,
    ];
    assert_eq!(
        run(&leak),
        Err(CheckError::BadReturn {
            offset: 24,
            word: RET,
            why: ReturnFault::LinkClobbered
        })
    );
    // Without the store, the same frame passes; with the stack address still in X1 at the
    // call, it does not.
    let kept = [
        0xa9bf_7bfd,
        mov_sp,
        insn::nop(),
        mov_0,
        call(4),
        0xa8c1_7bfd,
        RET,
    ];
    assert_eq!(run(&kept), Ok(7));
    let passed = [
        0xa9bf_7bfd,
        mov_sp,
        insn::nop(),
        insn::nop(),
        call(4),
        0xa8c1_7bfd,
        RET,
    ];
    assert!(matches!(
        run(&passed),
        Err(CheckError::BadReturn {
            why: ReturnFault::LinkClobbered,
            ..
        })
    ));
}

#[test]
fn huge_offsets_are_refused_not_overflowed() {
    // MOV X1, SP; then ADD X1, X1, #0xfff000 many times over a counted loop, then a load.
    // MOV X2, #0x7fff; loop: ADD X1, X1, #0xfff, LSL #12; SUBS X2, X2, #1; B.NE loop;
    // LDR X3, [X1]; RET: X1 is far past the frame.
    let block = [
        0x9100_03e1,
        0xd28f_ffe2,
        0x917f_fc21,
        0xf100_0442,
        0x54ff_ffc1,
        0xf940_0023,
        RET,
    ];
    let big = Policy {
        max_insns: 200_000,
        ..Policy::KERNEL_SITES
    };
    assert_eq!(
        run_with(&block, &big),
        Err(CheckError::UnprovenAccess {
            offset: 20,
            word: 0xf940_0023,
            why: AccessFault::OutOfBounds
        })
    );
}

#[test]
fn too_many_pending_paths_are_refused_not_guessed() {
    // n CBZs on unknown registers, each to its own NOP further on, then RET: every taken
    // branch waits at a different word. Eight pending paths are explored; the ninth is refused.
    let forks = |n: usize| {
        let mut b: Vec<u32> = (0..n)
            .map(|i| {
                let to = n as i64 * 4; // from word i to word n + i
                insn::cbz(insn::Width::X, insn::Reg::x(i as u8 + 1), to, false).unwrap()
            })
            .collect();
        b.extend(std::iter::repeat_n(insn::nop(), n));
        b.push(RET);
        b
    };
    assert_eq!(run(&forks(8)), Ok(8 + 8 + 1));
    let nine = forks(9);
    assert_eq!(
        run(&nine),
        Err(CheckError::TooComplex {
            offset: 8 * 4,
            word: nine[8]
        })
    );
}

#[test]
fn callee_saved_fp_registers_must_be_restored() {
    let fp_ret = |r: u8, offset: usize| {
        Err(CheckError::BadReturn {
            offset,
            word: RET,
            why: ReturnFault::CalleeSavedFp(r),
        })
    };
    // FMOV D8, #1.0 clobbers D8; FMOV D0 and D16 are the caller's to lose.
    assert_eq!(run(&[0x1e6e_1008, RET]), fp_ret(8, 4));
    assert_eq!(run(&[0x1e6e_1000, 0x1e6e_1010, RET]), Ok(3));
    // Saved and restored through the stack: STR D8, [SP, #-16]!; FMOV D8; LDR D8, [SP], #16.
    assert_eq!(run(&[0xfc1f_0fe8, 0x1e6e_1008, 0xfc41_07e8, RET]), Ok(4));
    // As a pair: STP D8, D9, [SP, #-16]!; FMOV D9; LDP D8, D9, [SP], #16.
    assert_eq!(run(&[0x6dbf_27e8, 0x1e6e_1009, 0x6cc1_27e8, RET]), Ok(4));
    // Restored crosswise (LDP D9, D8): neither holds its own entry value.
    assert_eq!(run(&[0x6dbf_27e8, 0x6cc1_23e9, RET]), fp_ret(8, 8));
    // A literal load into D8 (LDR D8, =0; RET; the literal).
    assert_eq!(run(&[0x5c00_0048, RET, 0, 0]), fp_ret(8, 4));
    // Written on one path only (CBZ X0 over the FMOV): refused on the path that wrote it.
    assert_eq!(run(&[0xb400_0040, 0x1e6e_100f, RET]), fp_ret(15, 8));
}
