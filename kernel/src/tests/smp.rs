//! `smp`: every core came up, at the level the board promises, with its own MPIDR.
//!
//! Can catch: a core that did not start, a wrong core count, two cores sharing an index or stack
//! (they would report the same MPIDR), a core left at EL2, an index/MPIDR mapping error.
//! Cannot catch: anything about caches (QEMU does not model them).

use super::{Ctx, TestResult, check, kernel_test};
use crate::arch::cpu;
use crate::smp;
use crate::sync::Barrier;
use boards::{Board, Current, MAX_CORES};
use core::sync::atomic::{AtomicU64, Ordering};

kernel_test!(SMP, "smp", Pass, timeout_s = 30, min_cores = 1, run);

static MPIDR: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(u64::MAX) }; MAX_CORES];
static ARRIVED: Barrier = Barrier::new();

fn run(ctx: &Ctx) -> TestResult {
    let mpidr = cpu::mpidr();
    MPIDR[ctx.core].store(mpidr, Ordering::Relaxed);
    defmt::info!(
        "core {=usize} up: MPIDR={=u64:#x}, entered at EL{=u8}, running at EL{=u64}",
        ctx.core,
        mpidr,
        smp::boot_el(ctx.core),
        cpu::current_el()
    );
    check!(
        cpu::current_el() == 1,
        "core {=usize} runs at EL{=u64}, not EL1",
        ctx.core,
        cpu::current_el()
    );
    check!(
        Current::core_index(mpidr) == ctx.core,
        "core {=usize}: MPIDR {=u64:#x} maps to index {=usize}",
        ctx.core,
        mpidr,
        Current::core_index(mpidr)
    );
    check!(
        smp::boot_el(ctx.core) == smp::boot_el(0),
        "core {=usize} entered at EL{=u8}, the primary at EL{=u8}",
        ctx.core,
        smp::boot_el(ctx.core),
        smp::boot_el(0)
    );
    if ARRIVED.wait(ctx.cores, 5_000_000).is_err() {
        defmt::error!("not every core reached the barrier");
        return Err(super::Failed);
    }
    if ctx.core != 0 {
        return Ok(());
    }
    if let Some(expected) = ctx.cmdline.number("cores") {
        let expected = expected.unwrap_or(0) as usize;
        check!(
            ctx.cores == expected,
            "{=usize} cores online, {=usize} expected",
            ctx.cores,
            expected
        );
    }
    let mpidrs = &MPIDR[..ctx.cores];
    for (a, ma) in mpidrs.iter().enumerate() {
        for (b, mb) in mpidrs.iter().enumerate().skip(a + 1) {
            let (ma, mb) = (ma.load(Ordering::Relaxed), mb.load(Ordering::Relaxed));
            check!(
                ma != mb,
                "cores {=usize} and {=usize} share MPIDR {=u64:#x}",
                a,
                b,
                ma
            );
        }
    }
    defmt::info!(
        "smp: {=usize} cores up, MPIDRs distinct, all at EL1",
        ctx.cores
    );
    Ok(())
}
