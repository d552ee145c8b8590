//! `exports`: the image's export table for patches is what the kernel defines, and the board's
//! verifier allows exactly what it lists.
//!
//! On core 0: every entry of `.graft_exports` parses; `graft_clamp` is listed as a function at
//! its own address and `GRAFT_ACTUATOR_MAX` as data of its size; a one-word block `B graft_clamp`
//! (a tail call) placed at the first slot is accepted with the table's externals and refused
//! without them, and `B graft_clamp + 4` is refused with them; a 4-byte load of the exported
//! static is accepted and one a word past it refused. Can catch: a table the linker dropped or
//! reordered, an export at the wrong address or size, a board-side check that ignores the table.
//! Cannot catch: what a host-built patch does when it runs (the live-patch tests do).

use super::{Ctx, TestResult, check, kernel_test};
use crate::patch::exports::{self, Allowed, GRAFT_ACTUATOR_MAX, graft_clamp};
use crate::patch::{Fixed, arena_addr};
use patcher::check::{Externals, Policy, check_block};
use patcher::insn as encode;
use protocol::exports::Kind;

kernel_test!(EXPORTS, "exports", Pass, timeout_s = 30, min_cores = 1, run);

fn run(ctx: &Ctx) -> TestResult {
    if ctx.core != 0 {
        return Ok(());
    }
    let clamp = graft_clamp as *const () as u64;
    let max = &raw const GRAFT_ACTUATOR_MAX as u64;
    let mut seen = 0;
    for e in protocol::exports::entries(exports::table()) {
        let Ok(e) = e else {
            check!(false, "the export table does not parse");
            return Ok(());
        };
        defmt::info!(
            "export {=str} at {=u64:#x}, {=u64} bytes",
            e.name,
            e.addr,
            e.len
        );
        match e.name {
            "graft_clamp" => {
                check!(
                    e.kind == Kind::Function && e.addr == clamp,
                    "graft_clamp is listed wrong"
                );
                seen += 1;
            }
            "GRAFT_ACTUATOR_MAX" => {
                check!(
                    e.kind == Kind::Data && e.addr == max && e.len == 4,
                    "GRAFT_ACTUATOR_MAX is listed wrong"
                );
                seen += 1;
            }
            _ => {}
        }
    }
    check!(seen == 2, "the table lists {=usize} of the 2 exports", seen);
    check!(
        graft_clamp(2.0, 0.0, 1.0) == 1.0,
        "graft_clamp does not clamp"
    );

    let Some(allowed) = Allowed::from_table() else {
        check!(false, "the board cannot read its own export table");
        return Ok(());
    };
    let at = arena_addr(Fixed::SLOTS).0 as u64;
    let ext = allowed.externals();
    let verdict = |words: &[u32], ext: &Externals<'_>| {
        let mut bytes = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        check_block(
            &bytes[..4 * words.len()],
            at,
            crate::patch::SLOT_SIZE,
            ext,
            &Policy::KERNEL_SITES,
        )
        .is_ok()
    };
    let tail = |target: u64| encode::b(target as i64 - at as i64).unwrap_or(0);
    check!(
        verdict(&[tail(clamp)], &ext),
        "a tail call to an exported function was refused"
    );
    check!(
        !verdict(&[tail(clamp)], &Externals::NONE),
        "a tail call was accepted without the export table"
    );
    check!(
        !verdict(&[tail(clamp + 4)], &ext),
        "a branch into an exported function's middle was accepted"
    );
    // ADRP X9, page(max); LDR W9/S0, [X9, #lo12]; RET
    let load = |addr: u64| -> [u32; 3] {
        let adrp = encode::adrp(patcher::insn::Reg::x(9), at, addr).unwrap_or(0);
        // LDR S0, [X9, #imm12 * 4]
        let ldr = 0xbd40_0120 | ((((addr & 0xfff) / 4) as u32) << 10);
        [adrp, ldr, 0xd65f_03c0]
    };
    check!(
        verdict(&load(max), &ext),
        "a read of an exported static was refused"
    );
    check!(
        !verdict(&load(max + 4), &ext),
        "a read past an exported static was accepted"
    );
    Ok(())
}
