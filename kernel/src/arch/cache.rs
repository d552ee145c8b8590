//! Making written instructions visible to instruction fetch on this core.
//!
//! The full Arm sequence, stepping each cache by its own line size from `CTR_EL0`: clean the data
//! cache to the point of unification through the address written, `DSB ISH`, invalidate the
//! instruction cache through the address executed, `DSB ISH`, then `ISB` here. Other cores need
//! their own context synchronization event as well; that is the patcher's business.

use crate::arch::cpu;
use aarch64_cpu::asm::barrier;
use core::arch::asm;

/// Cleans `[write, write+len)` by data line, invalidates `[exec, exec+len)` by instruction line,
/// and synchronizes this core.
pub fn sync_code(write: usize, exec: usize, len: usize) {
    let (dline, iline) = (cpu::dcache_line(), cpu::icache_line());
    let mut a = write & !(dline - 1);
    while a < write + len {
        // SAFETY: cleaning a data line by a mapped address writes back memory, changes nothing.
        unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += dline;
    }
    barrier::dsb(barrier::ISH);
    let mut a = exec & !(iline - 1);
    while a < exec + len {
        // SAFETY: invalidating instruction-cache lines by a mapped address has no effect on data.
        unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += iline;
    }
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}
