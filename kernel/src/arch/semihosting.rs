//! Arm semihosting: the boot command line (`SYS_GET_CMDLINE`) and the run's exit status.
//!
//! QEMU answers semihosting calls when started with `-semihosting`; xtask always does. A real
//! board with no debugger attached does not: there `HLT` is an undefined instruction. The first
//! call finds out under a fault trap, and without semihosting the command line is empty (the
//! demo runs) and "exit" logs the status and halts the cores.

use crate::arch::cpu;
use crate::arch::exceptions::{FaultTrap, Resume};
use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};
use protocol::esr::ec;

/// 0: not probed yet, 1: present, 2: absent.
static PRESENT: AtomicU8 = AtomicU8::new(0);

const SYS_GET_CMDLINE: u64 = 0x15;

/// Issues one semihosting call.
///
/// # Safety
///
/// `arg` must be what operation `op` expects: for the calls used here, a pointer to a parameter
/// block that stays valid and writable for the duration of the call.
unsafe fn call(op: u64, arg: u64) -> u64 {
    let ret;
    // SAFETY: `hlt #0xf000` is the AArch64 semihosting trap; QEMU reads and writes only the
    // parameter block the caller vouched for.
    unsafe {
        asm!("hlt #0xf000", inout("x0") op => ret, in("x1") arg, options(nostack));
    }
    ret
}

/// Copies the command line QEMU was given with `-append` into `buf`; returns its text (empty
/// without semihosting).
pub fn cmdline(buf: &mut [u8]) -> &str {
    let mut block: [u64; 2] = [buf.as_mut_ptr() as u64, buf.len() as u64];
    let mut status = u64::MAX;
    let trapped = FaultTrap::catch(ec::UNKNOWN, Resume::Skip, || {
        // SAFETY: `block` describes `buf`, which outlives the call; the call writes at most
        // `buf.len()` bytes there and updates block[1] with the length.
        status = unsafe { call(SYS_GET_CMDLINE, block.as_mut_ptr() as u64) };
    });
    PRESENT.store(if trapped.is_some() { 2 } else { 1 }, Ordering::Relaxed);
    if trapped.is_some() {
        defmt::warn!("no semihosting (HLT is undefined here): no command line, the demo runs");
        return "";
    }
    if status != 0 {
        return "";
    }
    let len = (block[1] as usize).min(buf.len());
    let text = &buf[..len];
    let text = &text[..text.iter().position(|&b| b == 0).unwrap_or(len)];
    core::str::from_utf8(text).unwrap_or("")
}

/// Ends the QEMU run with `code` as its exit status; without semihosting, logs it, reports it
/// (`RunEnded`) and turns the machine off where the board can (QEMU `virt`: PSCI), else halts.
pub fn exit(code: u32) -> ! {
    use qemu_exit::QEMUExit;
    if PRESENT.load(Ordering::Relaxed) != 2 {
        qemu_exit::AArch64::new().exit(code)
    }
    defmt::info!(
        "run ended with status {=u32}; no semihosting to report it to: halting",
        code
    );
    crate::report::emit(&protocol::Record::RunEnded { status: code });
    cpu::irq_save();
    // The host reads the record from QEMU's pty, which closes with the machine: give it a moment
    // (counter time) before turning off.
    let until = cpu::ticks() + cpu::tick_hz() / 5;
    while cpu::ticks() < until {
        core::hint::spin_loop();
    }
    <boards::Current as boards::Board>::power_off();
    loop {
        cpu::wfi();
    }
}
