//! The chainloader binary for the Raspberry Pi 3 and 4 (`--features rpi3` or `rpi4`).
//!
//! Put on the SD card as `kernel8.img`, it moves itself to `LOADER_BASE` (`entry.s`), brings up
//! the PL011 through the boards crate, and serves [`graft_loader::receiver::serve`] until a
//! whole, checked image has been written at 0x80000; then it makes that memory right for
//! instruction fetch and enters the image at the level the loader was entered at (EL2 on a Pi),
//! with the firmware's x0-x3 and the secondaries still in the firmware's spin table. The MMU
//! stays off throughout; all unsafe code is here and in `entry.s`.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
use boards::{Board, Current};
use graft_loader::receiver::{self, Link, Memory, capacity};

/// Where the firmware loads a kernel and where the received image is written and entered.
const LOAD: usize = 0x80000;
/// The counter frequency to assume when the firmware left `CNTFRQ_EL0` unset.
const FALLBACK_COUNTER_HZ: u64 = 19_200_000;

core::arch::global_asm!(include_str!("entry.s"), main = sym loader_main);

unsafe extern "C" {
    /// First byte of the loader's running copy (linker/loader.ld).
    static __loader_start: u8;
    /// One past the loader's last byte, stack included.
    static __loader_end: u8;
    /// Cleans or invalidates `[start, end)` to the point of coherency (entry.s).
    fn graft_loader_sync_range(start: usize, end: usize);
    /// `IC IALLU; DSB SY; ISB` (entry.s).
    fn graft_loader_sync_icache();
    /// Branches to `entry` with `x0`-`x3` set; never returns (entry.s).
    fn graft_loader_enter(entry: usize, x0: u64, x1: u64, x2: u64, x3: u64) -> !;
    /// Parks this core for good (entry.s).
    fn graft_loader_park() -> !;
}

/// The PL011 console with a time limit on reads, from the generic timer.
struct Uart {
    ticks_per_ms: u64,
}

impl Uart {
    fn new() -> Self {
        let hz = match CNTFRQ_EL0.get() {
            0 => FALLBACK_COUNTER_HZ,
            f => f,
        };
        Self {
            ticks_per_ms: (hz / 1000).max(1),
        }
    }

    fn wait_ms(&self, ms: u32) {
        let end = CNTPCT_EL0.get() + u64::from(ms) * self.ticks_per_ms;
        while CNTPCT_EL0.get() < end {
            core::hint::spin_loop();
        }
    }
}

impl Link for Uart {
    fn read(&mut self, timeout_ms: u32) -> Option<u8> {
        let end = CNTPCT_EL0.get() + u64::from(timeout_ms) * self.ticks_per_ms;
        loop {
            if let Some(b) = Current::console_read() {
                return Some(b);
            }
            if CNTPCT_EL0.get() >= end {
                return None;
            }
            core::hint::spin_loop();
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        Current::console_write(bytes);
    }
}

/// RAM from [`LOAD`] up to the loader's running copy.
struct Ram {
    capacity: usize,
}

impl Memory for Ram {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn load_address(&self) -> u64 {
        LOAD as u64
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(
            offset + bytes.len() <= self.capacity,
            "write past the room below the loader"
        );
        let dst = (LOAD + offset) as *mut u8;
        // SAFETY: [LOAD, LOAD + capacity) is RAM that nothing else uses: the firmware's spin table
        // and stubs lie below LOAD, the loader's own copy starts at LOAD + capacity (checked
        // above), and only this core runs. The MMU is off, so the address is physical.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }
}

/// The loader's running copy, from the linker's symbols (only their addresses are used).
fn loader_region() -> (usize, usize) {
    (
        &raw const __loader_start as usize,
        &raw const __loader_end as usize,
    )
}

/// Called by `entry.s` on core 0, running from `LOADER_BASE`, with the firmware's x0-x3.
extern "C" fn loader_main(x0: u64, x1: u64, x2: u64, x3: u64) -> ! {
    Current::console_init();
    let mut uart = Uart::new();
    let (start, end) = loader_region();
    let mut ram = Ram {
        capacity: capacity(LOAD, start, end),
    };
    let loaded = loop {
        if let Ok(loaded) = receiver::serve(&mut uart, &mut ram, Current::NAME) {
            break loaded;
        }
        // The refusal was reported on the line; wait for the next attempt.
    };
    // Let the BOOT line leave the FIFO before the kernel reprograms the UART.
    uart.wait_ms(5);
    // The image lies in [LOAD, LOAD + size), RAM written only by this core.
    // SAFETY: cache maintenance there (as SCTLR.C requires) and of the I-cache changes no data.
    unsafe {
        graft_loader_sync_range(LOAD, LOAD + loaded.size);
        graft_loader_sync_icache();
    }
    // `serve` checked the whole image's checksum and arm64 magic. Entered as the firmware would:
    // same exception level, MMU off, interrupts masked, x0-x3 as the firmware left them.
    // SAFETY: a complete, checked image at its load address, entered with the firmware's state.
    unsafe { graft_loader_enter(LOAD, x0, x1, x2, x3) }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    Current::console_write(b"ERR loader-panic\n");
    // SAFETY: parking touches no memory; the core stays there.
    unsafe { graft_loader_park() }
}
