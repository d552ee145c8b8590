//! `wx`: the arena's two views are W^X and meet in one physical page.
//!
//! Checks, on core 0: code written through the writable view runs through the executable view
//! (after clean, invalidate and ISB); a store through the executable view takes a permission
//! fault and changes nothing; a branch into the writable view takes an instruction permission
//! fault; a store into the kernel's own text faults as well; and the same for the pages of text
//! that hold call sites, which have a writable view too. Can catch: a mapping that is writable
//! and executable, missing aliases, wrong attributes. Cannot catch: cache-maintenance mistakes
//! (QEMU keeps fetch coherent), which is the sanitizer's job.

use super::{Ctx, TestResult, check, kernel_test};
use crate::arch::exceptions::{FaultTrap, Resume};
use crate::arch::{cache, mmu, probes};
use protocol::esr::{self, ec};

kernel_test!(WX, "wx", Pass, timeout_s = 30, min_cores = 1, run);

fn run(ctx: &Ctx) -> TestResult {
    if ctx.core != 0 {
        return Ok(());
    }
    let exec = mmu::arena().start;
    let write = exec + mmu::WRITE_ALIAS_OFFSET;
    let code = probes::answer_code();

    // 1. The two views are one page: write through one, run through the other.
    // SAFETY: `write` is the arena's writable view, at least a page long, used by nothing else.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), write as *mut u8, code.len()) };
    cache::sync_code(write, exec, code.len());
    // SAFETY: the probe's code was just copied there and synchronized for this core.
    let answer = unsafe { probes::call_at(exec) };
    check!(
        answer == 42,
        "code run through the executable view returned {=u64}",
        answer
    );

    // 2. A store through the executable view is a permission fault and changes nothing.
    let before = read_word(exec);
    let caught = FaultTrap::catch(ec::DATA_ABORT_SAME_EL, Resume::Skip, || {
        // SAFETY: the store is expected to fault; the trap resumes after it.
        unsafe { core::ptr::write_volatile(exec as *mut u32, 0) }
    });
    let Some(f) = caught else {
        defmt::error!("a store through the executable view did not fault");
        return Err(super::Failed);
    };
    check!(
        f.far as usize == exec,
        "store fault FAR {=u64:#x}, expected {=usize:#x}",
        f.far,
        exec
    );
    check!(
        esr::is_permission_fault(esr::fault_status(f.esr)),
        "store fault is not a permission fault: ESR {=u64:#x}",
        f.esr
    );
    check!(
        esr::is_write(f.esr),
        "store fault not marked as a write: ESR {=u64:#x}",
        f.esr
    );
    check!(
        read_word(exec) == before,
        "the faulting store changed the code"
    );

    // 3. A branch into the writable view is an instruction permission fault.
    let caught = FaultTrap::catch(
        ec::INSTRUCTION_ABORT_SAME_EL,
        Resume::ReturnToCaller,
        || {
            // SAFETY: the fetch is expected to fault; the trap returns to this call's return address.
            unsafe { probes::call_at(write) };
        },
    );
    let Some(f) = caught else {
        defmt::error!("a branch into the writable view did not fault");
        return Err(super::Failed);
    };
    check!(
        f.elr as usize == write,
        "fetch fault ELR {=u64:#x}, expected {=usize:#x}",
        f.elr,
        write
    );
    check!(
        f.far as usize == write,
        "fetch fault FAR {=u64:#x}, expected {=usize:#x}",
        f.far,
        write
    );
    check!(
        esr::is_permission_fault(esr::fault_status(f.esr)),
        "fetch fault is not a permission fault: ESR {=u64:#x}",
        f.esr
    );

    // 4. The kernel's own text is not writable either.
    let text = probes::undefined_address();
    let caught = FaultTrap::catch(ec::DATA_ABORT_SAME_EL, Resume::Skip, || {
        // SAFETY: the store is expected to fault; the trap resumes after it.
        unsafe { core::ptr::write_volatile(text as *mut u32, 0) }
    });
    check!(caught.is_some(), "a store into kernel text did not fault");

    // 5. The pages holding call sites: the same rule for their writable view.
    call_site_pages()?;

    defmt::info!("wx: executable view read-only, writable view never executable, both one page");
    Ok(())
}

/// A call site's word reads the same through both views; a store through its executable view
/// and a branch into its writable view each fault.
fn call_site_pages() -> TestResult {
    let Some(site) = crate::patch::call_sites::records().first() else {
        defmt::error!("no call site recorded in .graft_callsites");
        return Err(super::Failed);
    };
    let exec = site.word as usize;
    let write = exec + mmu::WRITE_ALIAS_OFFSET;
    check!(
        read_word(exec) == read_word(write),
        "a call site reads differently through its two views"
    );
    let caught = FaultTrap::catch(ec::DATA_ABORT_SAME_EL, Resume::Skip, || {
        // SAFETY: the store is expected to fault; the trap resumes after it.
        unsafe { core::ptr::write_volatile(exec as *mut u32, 0) }
    });
    check!(
        caught.is_some_and(|f| f.far as usize == exec),
        "a store through a call site's executable view did not fault there"
    );
    let entry = crate::patch::call_sites::entry_a() + mmu::WRITE_ALIAS_OFFSET;
    let caught = FaultTrap::catch(
        ec::INSTRUCTION_ABORT_SAME_EL,
        Resume::ReturnToCaller,
        || {
            // SAFETY: the fetch is expected to fault; the trap returns to this call's return address.
            unsafe { probes::call_at(entry) };
        },
    );
    check!(
        caught.is_some_and(
            |f| f.elr as usize == entry && esr::is_permission_fault(esr::fault_status(f.esr))
        ),
        "a branch into a call site page's writable view did not take a permission fault"
    );
    Ok(())
}

fn read_word(addr: usize) -> u32 {
    // SAFETY: `addr` is in the arena or a call-site page, through either view: mapped readable.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}
