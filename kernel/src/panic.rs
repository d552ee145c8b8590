//! A panic on any core logs where and why, then ends the run with a failure status.

use crate::arch::{cpu, semihosting};
use protocol::testinfo::EXIT_FAIL;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!(
        "panic on core {=usize}: {}",
        cpu::core_id(),
        defmt::Display2Format(info)
    );
    semihosting::exit(EXIT_FAIL)
}
