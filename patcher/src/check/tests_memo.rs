//! The memo answers only for the very inputs it interpreted: the stress tests' blocks (whose
//! versions differ only in the literal pool) are interpreted once per slot, and every other
//! difference runs the whole check again.

use super::tests_verify::{AT, PAYLOAD_A, PAYLOAD_B, bytes};
use super::{CheckError, Externals, Memo, Policy, check_block};

const SIZE: usize = 128;

/// PAYLOAD_A with `version` in its literal (the last 8 bytes), as the kernel builds it.
fn versioned(version: u64) -> std::vec::Vec<u8> {
    let mut b = bytes(&PAYLOAD_A);
    let n = b.len();
    b[n - 8..].copy_from_slice(&version.to_le_bytes());
    b
}

fn check(
    memo: &Memo<2>,
    slot: usize,
    code: &[u8],
    at: u64,
    policy: &Policy<'static>,
) -> Result<u32, CheckError> {
    memo.check_block(slot, code, at, SIZE, &Externals::NONE, policy)
        .map(|c| c.worst_case_insns())
}

#[test]
fn a_block_differing_only_in_its_literal_pool_is_answered_from_the_slot() {
    let memo = Memo::<2>::new();
    let full = check_block(
        &versioned(1),
        AT,
        SIZE,
        &Externals::NONE,
        &Policy::KERNEL_SITES,
    )
    .map(|c| c.worst_case_insns());
    assert_eq!(
        check(&memo, 0, &versioned(1), AT, &Policy::KERNEL_SITES),
        full
    );
    assert_eq!(memo.interpreted(), 1);
    for v in 2..100 {
        assert_eq!(
            check(&memo, 0, &versioned(v), AT, &Policy::KERNEL_SITES),
            full
        );
    }
    assert_eq!(memo.interpreted(), 1, "the version lives in the pool");
    // Another slot has its own entry.
    assert_eq!(
        check(&memo, 1, &versioned(1), AT + 0x80, &Policy::KERNEL_SITES),
        full
    );
    assert_eq!(memo.interpreted(), 2);
}

#[test]
fn any_other_difference_is_interpreted_again() {
    let memo = Memo::<2>::new();
    let a = versioned(1);
    check(&memo, 0, &a, AT, &Policy::KERNEL_SITES).unwrap();
    // The other template, in the same slot.
    let b = bytes(&PAYLOAD_B);
    check(&memo, 0, &b, AT, &Policy::KERNEL_SITES).unwrap();
    assert_eq!(memo.interpreted(), 2);
    // One instruction word: the loop's bound (`CMP X10, X13` made `CMP X10, X11`, a loaded
    // word) is no longer a constant comparison, and the path is unbounded.
    let mut c = b.clone();
    c[7 * 4..8 * 4].copy_from_slice(&0xeb0b_015fu32.to_le_bytes());
    assert!(check(&memo, 0, &c, AT, &Policy::KERNEL_SITES).is_err());
    assert_eq!(memo.interpreted(), 3);
    // The same slot index at another address.
    check(&memo, 0, &b, AT + 0x1000, &Policy::KERNEL_SITES).unwrap();
    assert_eq!(memo.interpreted(), 4);
    // Other externals.
    const EXT: Externals<'static> = Externals {
        branch_targets: &[0x4008_0000],
        data: &[],
    };
    memo.check_block(0, &b, AT + 0x1000, SIZE, &EXT, &Policy::KERNEL_SITES)
        .unwrap();
    assert_eq!(memo.interpreted(), 5);
}

#[test]
fn the_policy_is_part_of_the_verdict() {
    // Without this, a block accepted under a site's policy would be accepted under any other:
    // PAYLOAD_A stores through X0, which only the kernel's policy bounds.
    let memo = Memo::<2>::new();
    check(&memo, 0, &versioned(1), AT, &Policy::KERNEL_SITES).unwrap();
    assert!(matches!(
        check(&memo, 0, &versioned(1), AT, &Policy::DEFAULT),
        Err(CheckError::UnprovenAccess { .. })
    ));
    // A refusal is not kept: the accepted entry still answers.
    let before = memo.interpreted();
    check(&memo, 0, &versioned(2), AT, &Policy::KERNEL_SITES).unwrap();
    assert_eq!(memo.interpreted(), before);
}

#[test]
fn the_shape_rules_run_every_time() {
    let memo = Memo::<2>::new();
    check(&memo, 0, &versioned(1), AT, &Policy::KERNEL_SITES).unwrap();
    // A slot too small for the same bytes.
    assert!(matches!(
        memo.check_block(
            0,
            &versioned(1),
            AT,
            16,
            &Externals::NONE,
            &Policy::KERNEL_SITES
        ),
        Err(CheckError::TooLarge { .. })
    ));
}

#[test]
fn each_slot_keeps_its_two_latest_blocks() {
    // The stress tests alternate two templates, and a slot meets them in turn.
    let memo = Memo::<2>::new();
    let (a, b) = (versioned(1), bytes(&PAYLOAD_B));
    for _ in 0..10 {
        check(&memo, 0, &a, AT, &Policy::KERNEL_SITES).unwrap();
        check(&memo, 0, &b, AT, &Policy::KERNEL_SITES).unwrap();
    }
    assert_eq!(memo.interpreted(), 2);
    // A third block pushes out the one used least recently (a), not b.
    let mut c = bytes(&PAYLOAD_B);
    c[3 * 4..4 * 4].copy_from_slice(&0xd28b_4b61u32.to_le_bytes()); // MOV X1, #0x5a5b
    check(&memo, 0, &c, AT, &Policy::KERNEL_SITES).unwrap();
    check(&memo, 0, &b, AT, &Policy::KERNEL_SITES).unwrap();
    assert_eq!(memo.interpreted(), 3);
    check(&memo, 0, &a, AT, &Policy::KERNEL_SITES).unwrap();
    assert_eq!(memo.interpreted(), 4);
}
