//! `fault`: an undefined instruction is reported with its ESR and ELR and ends the run.
//!
//! The test announces (a `Record::ExpectFault`) the address it will fault at; xtask passes the test only if the run exits
//! with the fault status and the report names that ELR and exception class 0. Can catch: a vector
//! table that hangs, loses the context, or exits with success.

use super::{Ctx, TestResult, kernel_test};
use crate::arch::probes;
use protocol::Record;
use protocol::esr::ec;

kernel_test!(FAULT, "fault", Fault, timeout_s = 30, min_cores = 1, run);

fn run(ctx: &Ctx) -> TestResult {
    if ctx.core == 0 {
        defmt::info!(
            "expect-fault: ec=0x00 elr={=usize:#x}",
            probes::undefined_address()
        );
        crate::report::emit(&Record::ExpectFault {
            ec: ec::UNKNOWN,
            elr: probes::undefined_address() as u64,
        });
        probes::run_undefined();
        defmt::error!("the undefined instruction did not fault");
        return Err(super::Failed);
    }
    Ok(())
}
