//! What the Raspberry Pi 3 and 4 share: four Cortex cores in one cluster, started from the
//! firmware's spin table, and the PL011 on GPIO 14/15 at the clock `config.txt` asks for.

use crate::gpio::{self, Pulls};
use crate::pl011::Pl011;
use crate::{StartError, spin_table};

/// Cores on both boards.
pub const CORES: usize = 4;
/// The PL011 clock `config.txt` asks the firmware for (`init_uart_clock=48000000`).
const UART_CLOCK_HZ: u32 = 48_000_000;

/// Routes GPIO 14/15 to the PL011 and programs it for 115200 8N1.
///
/// # Safety
///
/// `gpio` must be the SoC's GPIO block, mapped as device memory, with nothing else driving pins
/// 14 and 15.
pub unsafe fn console_init(console: &Pl011, gpio: usize, pulls: Pulls) {
    // SAFETY: the caller's contract.
    unsafe { gpio::route_uart0(gpio, pulls) };
    console.init(UART_CLOCK_HZ, 115_200);
}

/// The single cluster's affinity of core `core`.
pub fn mpidr_of(core: usize) -> u64 {
    core as u64
}

/// The core with affinity `mpidr`.
pub fn core_index(mpidr: u64) -> usize {
    (mpidr & 0xff) as usize
}

/// Releases secondary `core` from the spin table into `entry`.
pub fn start_core(core: usize, entry: usize) -> Result<(), StartError> {
    if core == 0 || core >= CORES {
        return Err(StartError::NoSuchCore(core));
    }
    spin_table::release(core, entry);
    Ok(())
}
