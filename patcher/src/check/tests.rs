//! Host tests of the shape rules: each accepted at its edge and refused just past it.
//!
//! (These blocks need not pass the register-level rules; `tests_verify` and `tests_corpus` test
//! those.)

use std::vec::Vec;

use super::{CheckError, Externals, MAX_BLOCK_BYTES, Policy, check_block, check_shape};
use crate::insn::{self, Barrier, Cond, PcRefKind, Reg, Width};

const AT: u64 = 0x4000_1000;
const SLOT: usize = 256;

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn check(words: &[u32]) -> Result<(), CheckError> {
    check_ext(words, &Externals::NONE)
}

fn check_ext(words: &[u32], ext: &Externals<'_>) -> Result<(), CheckError> {
    check_shape(&bytes(words), AT, SLOT, ext).map(|_| ())
}

fn movz1() -> u32 {
    insn::movz(Width::X, Reg::x(0), 1, 0).unwrap()
}

fn ret() -> u32 {
    insn::ret(Reg::LR).unwrap()
}

#[test]
fn accepts_simple_block() {
    let code = bytes(&[movz1(), ret()]);
    let c = check_block(&code, AT, SLOT, &Externals::NONE, &Policy::DEFAULT).unwrap();
    assert_eq!(c.exec_addr(), AT);
    assert_eq!(c.len(), 8);
    assert_eq!(c.code(), &code[..]);
}

#[test]
fn shape_errors() {
    let ext = Externals::NONE;
    assert_eq!(
        check_block(&[], AT, SLOT, &ext, &Policy::DEFAULT),
        Err(CheckError::Empty)
    );
    let big = bytes(&[ret(); SLOT / 4 + 1]);
    assert_eq!(
        check_block(&big, AT, SLOT, &ext, &Policy::DEFAULT),
        Err(CheckError::TooLarge { len: 260, max: 256 })
    );
    assert!(check_block(&big[..SLOT], AT, SLOT, &ext, &Policy::DEFAULT).is_ok());
    let huge = std::vec![0u8; MAX_BLOCK_BYTES + 4];
    assert_eq!(
        check_block(&huge, AT, usize::MAX, &ext, &Policy::DEFAULT),
        Err(CheckError::TooLarge {
            len: MAX_BLOCK_BYTES + 4,
            max: MAX_BLOCK_BYTES
        })
    );
    let code = bytes(&[ret()]);
    assert_eq!(
        check_block(&code, AT + 2, SLOT, &ext, &Policy::DEFAULT),
        Err(CheckError::MisalignedAddress { addr: AT + 2 })
    );
    assert_eq!(
        check_block(&code[..3], AT, SLOT, &ext, &Policy::DEFAULT),
        Err(CheckError::MisalignedLength { len: 3 })
    );
    // Length is refused before the escaping branch inside is even decoded.
    let mut odd = bytes(&[insn::b(-4).unwrap(), ret()]);
    odd.push(0);
    assert_eq!(
        check_block(&odd, AT, SLOT, &ext, &Policy::DEFAULT),
        Err(CheckError::MisalignedLength { len: 9 })
    );
    assert_eq!(
        check_block(
            &bytes(&[ret(), ret()]),
            u64::MAX - 3,
            SLOT,
            &ext,
            &Policy::DEFAULT
        ),
        Err(CheckError::AddressOverflow)
    );
}

#[test]
fn branches_inside_and_at_the_edges() {
    // Forward to the last word, backward to the first: both inside.
    let cbz = insn::cbz(Width::X, Reg::x(1), 8, false).unwrap();
    let tbz = insn::tbz(Reg::x(1), 3, 4, true).unwrap();
    let back = insn::b_cond(Cond::Ne, -12).unwrap();
    assert_eq!(check(&[cbz, tbz, movz1(), back, ret()]), Ok(()));
    // One word past the end.
    let past = insn::b(8).unwrap();
    assert_eq!(
        check(&[past, ret()]),
        Err(CheckError::Escapes {
            offset: 0,
            word: past,
            kind: PcRefKind::Branch,
            target: AT + 8
        })
    );
    // One word before the start.
    let before = insn::b_cond(Cond::Eq, -8).unwrap();
    assert_eq!(
        check(&[movz1(), before, ret()]),
        Err(CheckError::Escapes {
            offset: 4,
            word: before,
            kind: PcRefKind::Branch,
            target: AT - 4
        })
    );
}

#[test]
fn external_branch_targets_must_be_listed() {
    let helper = 0x4008_0000u64;
    let call = insn::bl((helper - AT) as i64).unwrap();
    let ext = Externals {
        branch_targets: &[helper],
        data: &[],
    };
    assert_eq!(check_ext(&[call, ret()], &ext), Ok(()));
    assert_eq!(
        check(&[call, ret()]),
        Err(CheckError::Escapes {
            offset: 0,
            word: call,
            kind: PcRefKind::Call,
            target: helper
        })
    );
    // A listed target allows exactly that address, not its neighbour.
    let near = insn::b((helper + 4 - AT - 4) as i64).unwrap();
    assert_eq!(
        check_ext(&[movz1(), near], &ext),
        Err(CheckError::Escapes {
            offset: 4,
            word: near,
            kind: PcRefKind::Branch,
            target: helper + 4
        })
    );
    // Tail call back to a continuation.
    let cont = insn::b((helper - AT - 4) as i64).unwrap();
    assert_eq!(check_ext(&[movz1(), cont], &ext), Ok(()));
}

#[test]
fn adr_and_literal_loads() {
    let cell = 0x4010_0000u64;
    let data = std::vec![cell..cell + 16];
    let ext = Externals {
        branch_targets: &[],
        data: &data,
    };
    let adr_in = insn::adr(Reg::x(0), 4).unwrap();
    assert_eq!(check(&[adr_in, ret()]), Ok(()));
    let adr_out = insn::adr(Reg::x(0), (cell - AT) as i64).unwrap();
    assert_eq!(check_ext(&[adr_out, ret()], &ext), Ok(()));
    assert_eq!(
        check(&[adr_out, ret()]),
        Err(CheckError::Escapes {
            offset: 0,
            word: adr_out,
            kind: PcRefKind::Address,
            target: cell
        })
    );
    // An 8-byte load of the range's last 8 bytes is inside; 4 bytes later it is not.
    let ld_ok = insn::ldr_literal(Width::X, Reg::x(0), (cell + 8 - AT) as i64).unwrap();
    assert_eq!(check_ext(&[ld_ok, ret()], &ext), Ok(()));
    let ld_bad = insn::ldr_literal(Width::X, Reg::x(0), (cell + 12 - AT) as i64).unwrap();
    assert_eq!(
        check_ext(&[ld_bad, ret()], &ext),
        Err(CheckError::Escapes {
            offset: 0,
            word: ld_bad,
            kind: PcRefKind::Load { size: 8 },
            target: cell + 12
        })
    );
    let ld_w = insn::ldr_literal(Width::W, Reg::x(0), (cell + 12 - AT) as i64).unwrap();
    assert_eq!(check_ext(&[ld_w, ret()], &ext), Ok(()));
}

#[test]
fn literal_pools() {
    // LDR x16, pool; BR x16; pool: .quad target
    let ldr = insn::ldr_literal(Width::X, Reg::x(16), 8).unwrap();
    let br = insn::br(Reg::x(16)).unwrap();
    // The pool words decode as branches out of the block, and are not checked as code.
    let pool = [insn::b(-0x10_0000).unwrap(), insn::bl(0x10_0000).unwrap()];
    assert_eq!(check(&[ldr, br, pool[0], pool[1]]), Ok(()));
    // A pool that an instruction could fall into.
    let ldr3 = insn::ldr_literal(Width::X, Reg::x(16), 12).unwrap();
    assert_eq!(
        check(&[ldr3, movz1(), movz1(), pool[0], pool[1]]),
        Err(CheckError::FallsIntoData { offset: 12 })
    );
    // The same words after a branch that ends the flow: no path reaches the MOVZ, so it is not
    // code, and nothing falls into the pool.
    assert_eq!(check(&[ldr3, br, movz1(), pool[0], pool[1]]), Ok(()));
    // A literal straddling the end of the block.
    assert_eq!(
        check(&[
            movz1(),
            insn::ldr_literal(Width::X, Reg::x(16), 4).unwrap(),
            ret()
        ]),
        Err(CheckError::Escapes {
            offset: 4,
            word: insn::ldr_literal(Width::X, Reg::x(16), 4).unwrap(),
            kind: PcRefKind::Load { size: 8 },
            target: AT + 8
        })
    );
    // A branch into the pool.
    let into = insn::cbz(Width::X, Reg::x(0), 8, false).unwrap();
    let ldr4 = insn::ldr_literal(Width::W, Reg::x(16), 12).unwrap();
    assert_eq!(
        check(&[ldr4, into, ret(), 0xdead_beef]),
        Err(CheckError::BranchIntoData {
            offset: 4,
            target_offset: 12
        })
    );
    // Words no path reaches are not code: read-only data after the code (here words that would
    // decode as a branch out of the block and an instruction falling off the end) is accepted,
    // and only what a path reaches is checked.
    assert_eq!(check(&[movz1(), ret(), pool[0], movz1()]), Ok(()));
    let skip = insn::cbz(Width::X, Reg::x(0), 8, false).unwrap();
    assert_eq!(
        check(&[skip, ret(), pool[0], ret()]),
        Err(CheckError::Escapes {
            offset: 8,
            word: pool[0],
            kind: PcRefKind::Branch,
            target: (AT + 8).wrapping_sub(0x10_0000)
        }),
        "a word a branch reaches is code"
    );
    // A backward branch to a word no earlier word reached (the forward sweep cannot tell; the
    // worklist does): B to word 2; RET; B back to word 1. Every word is code and checked.
    let fwd = insn::b(8).unwrap();
    let back = insn::b(-4).unwrap();
    assert_eq!(check(&[fwd, ret(), back]), Ok(()));
    assert_eq!(
        check(&[fwd, pool[0], back]),
        Err(CheckError::Escapes {
            offset: 4,
            word: pool[0],
            kind: PcRefKind::Branch,
            target: (AT + 4).wrapping_sub(0x10_0000)
        }),
        "the word the backward branch reaches is checked as code"
    );
    // A block that starts with data.
    let self_ref = insn::ldr_literal(Width::W, Reg::x(0), -4).unwrap();
    assert_eq!(
        check(&[0x1234_5678, self_ref, ret()]),
        Err(CheckError::FallsIntoData { offset: 0 })
    );
}

#[test]
fn adrp_is_checked_by_page() {
    let own = insn::adrp(Reg::x(0), AT, AT).unwrap();
    assert_eq!(check(&[own, ret()]), Ok(()));
    let far = insn::adrp(Reg::x(0), AT, 0x5000_0000).unwrap();
    assert_eq!(
        check(&[far, ret()]),
        Err(CheckError::Escapes {
            offset: 0,
            word: far,
            kind: PcRefKind::Page,
            target: 0x5000_0000
        })
    );
    let data = std::vec![0x5000_0800..0x5000_0808];
    let ext = Externals {
        branch_targets: &[],
        data: &data,
    };
    assert_eq!(check_ext(&[far, ret()], &ext), Ok(()));
}

#[test]
fn must_not_fall_off_the_end() {
    for last in [
        insn::nop(),
        insn::bl(-4).unwrap(),
        insn::svc(0),
        insn::dsb(Barrier::Sy),
        insn::b_cond(Cond::Eq, -4).unwrap(),
        insn::blr(Reg::x(3)).unwrap(),
    ] {
        assert_eq!(
            check(&[movz1(), last]),
            Err(CheckError::FallsThrough { word: last }),
            "{last:#010x}"
        );
    }
    for last in [
        ret(),
        insn::b(-4).unwrap(),
        insn::b_cond(Cond::Al, -4).unwrap(),
        insn::br(Reg::x(16)).unwrap(),
        insn::brk(0),
        0xd69f_03e0, // ERET
        0xd65f_0bff, // RETAA
        0xd61f_0a1f, // BRAAZ x16
        0xd71f_0e11, // BRAB x16, x17
        0x0000_0000, // UDF #0
    ] {
        assert_eq!(check(&[movz1(), last]), Ok(()), "{last:#010x}");
    }
}

/// The test door skips the verifier only: `UDF` and `B .` pass it, the shape rules still hold.
#[test]
fn the_test_door_skips_only_the_verifier() {
    let door = &Policy::UNVERIFIED_TEST_DOOR;
    for words in [[0x0000_0000, ret()], [0x1400_0000, ret()]] {
        let code = bytes(&words);
        assert!(check_block(&code, AT, SLOT, &Externals::NONE, &Policy::KERNEL_SITES).is_err());
        let c = check_block(&code, AT, SLOT, &Externals::NONE, door).unwrap();
        assert_eq!(c.worst_case_insns(), door.max_insns);
    }
    // Falling off the end is still refused.
    assert!(check_block(&bytes(&[movz1()]), AT, SLOT, &Externals::NONE, door).is_err());
}
