//! `demo` (the default run): every core up, all-to-all IPIs, and a short summary.

use super::{Ctx, TestResult, kernel_test};
use crate::arch::cpu;
use crate::smp;

kernel_test!(DEMO, "demo", Pass, timeout_s = 120, min_cores = 1, run);

fn run(ctx: &Ctx) -> TestResult {
    defmt::info!(
        "core {=usize} up: MPIDR={=u64:#x}, entered at EL{=u8}",
        ctx.core,
        cpu::mpidr(),
        smp::boot_el(ctx.core)
    );
    if ctx.cores > 1 {
        super::ipi::all_to_all(ctx, 100)?;
    }
    if ctx.core == 0 {
        defmt::info!(
            "demo: {=usize} cores online; all-to-all IPIs acknowledged with none lost",
            ctx.cores
        );
    }
    Ok(())
}
