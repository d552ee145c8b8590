//! Kernel tests: each a scenario run on every core, selected by `test=NAME` on the command line.
//!
//! Tests register themselves with [`kernel_test!`], which puts a fixed-layout record in the
//! `.graft_tests` section. The kernel looks the name up there; xtask reads the same section from
//! the ELF to list tests and know what success looks like. A run ends through semihosting with
//! [`EXIT_PASS`] only if the test returned `Ok` on every core.

mod bench;
mod call_site;
mod contain;
mod demo;
mod exports;
mod fault;
mod ipi;
mod ipi_recovery;
mod litmus;
mod live;
mod naive;
pub(crate) mod patch;
mod patch_errors;
mod smp;
mod stack_overflow;
mod timer;
mod wx;

use crate::arch::semihosting;
use crate::smp as cores;
use core::sync::atomic::{AtomicUsize, Ordering};
use protocol::cmdline::Cmdline;
use protocol::testinfo::{EXIT_BAD_COMMAND, EXIT_FAIL, EXIT_PASS, RECORD_SIZE, TestHeader};

/// A failed check; the details were logged where it failed.
#[derive(Debug)]
pub struct Failed;

/// What a test returns on each core.
pub type TestResult = Result<(), Failed>;

/// What a test sees on the core it runs on.
pub struct Ctx {
    /// This core's index.
    pub core: usize,
    /// How many cores are online (all run the test).
    pub cores: usize,
    /// The boot command line.
    pub cmdline: Cmdline<'static>,
}

/// One test as placed in `.graft_tests`.
#[repr(C)]
pub struct KernelTest {
    /// Name, expectation, timeout, minimum cores.
    pub header: TestHeader,
    /// Runs on every core.
    pub run: fn(&Ctx) -> TestResult,
}

const _: () = assert!(core::mem::size_of::<KernelTest>() == RECORD_SIZE);

/// Registers a kernel test.
macro_rules! kernel_test {
    ($static:ident, $name:literal, $expect:ident, timeout_s = $timeout:literal, min_cores = $min:literal, $run:expr) => {
        $crate::tests::kernel_test!(
            $static,
            $name,
            $expect,
            timeout_s = $timeout,
            min_cores = $min,
            $run,
            tcg = MultiThreaded,
            sanitized = [No, No]
        );
    };
    ($static:ident, $name:literal, $expect:ident, timeout_s = $timeout:literal, min_cores = $min:literal, $run:expr, tcg = $tcg:ident, sanitized = [$s0:ident, $s1:ident]) => {
        $crate::tests::kernel_test!(
            $static,
            $name,
            $expect,
            timeout_s = $timeout,
            min_cores = $min,
            $run,
            tcg = $tcg,
            sanitized = [$s0, $s1],
            ctr = [false, false]
        );
    };
    // `ctr = [idc, dic]`: the `CTR_EL0` bits the sanitized runs model (the plugin's idc=/dic=).
    ($static:ident, $name:literal, $expect:ident, timeout_s = $timeout:literal, min_cores = $min:literal, $run:expr, tcg = $tcg:ident, sanitized = [$s0:ident, $s1:ident], ctr = [$idc:literal, $dic:literal]) => {
        #[unsafe(link_section = ".graft_tests")]
        #[used]
        static $static: $crate::tests::KernelTest = $crate::tests::KernelTest {
            header: protocol::testinfo::TestHeader::new(
                $name,
                protocol::testinfo::Expect::$expect,
                $timeout,
                $min,
                protocol::testinfo::Tcg::$tcg,
                [
                    protocol::testinfo::Sanitized::$s0,
                    protocol::testinfo::Sanitized::$s1,
                ],
            )
            .with_ctr($idc, $dic),
            run: $run,
        };
    };
}
pub(crate) use kernel_test;

/// Fails the test on this core, logging why, unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            defmt::error!($($fmt)+);
            defmt::error!("  check failed at {=str}:{=u32}", file!(), line!());
            return Err($crate::tests::Failed);
        }
    };
}
pub(crate) use check;

fn all() -> &'static [KernelTest] {
    unsafe extern "C" {
        static __graft_tests_start: u8;
        static __graft_tests_end: u8;
    }
    // SAFETY: the linker script gathers only `KernelTest` statics (from `kernel_test!`) between
    // these two symbols, contiguously and aligned, and the section is never written.
    unsafe {
        let start = (&raw const __graft_tests_start).cast::<KernelTest>();
        let end = (&raw const __graft_tests_end).cast::<KernelTest>();
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

static CMDLINE: spin::Once<([u8; 256], usize)> = spin::Once::new();
static CURRENT: AtomicUsize = AtomicUsize::new(0);

fn cmdline() -> Cmdline<'static> {
    let (buf, len) = CMDLINE.get().expect("command line read before tests run");
    Cmdline::new(core::str::from_utf8(&buf[..*len]).unwrap_or(""))
}

fn run_current(core: usize) -> bool {
    crate::arch::markers::core_id(core);
    let test = &all()[CURRENT.load(Ordering::Acquire)];
    let ctx = Ctx {
        core,
        cores: cores::online().len(),
        cmdline: cmdline(),
    };
    (test.run)(&ctx).is_ok()
}

/// What runs when the command line names no test (a board without semihosting has none): the
/// demo, or the test named by `GRAFT_RUN` at build time (`cargo xtask flash --serve` builds one
/// that serves live patches).
const DEFAULT_RUN: &str = match option_env!("GRAFT_RUN") {
    Some(name) => name,
    None => protocol::testinfo::DEMO,
};

/// Runs the test named on the command line (the demo when none is named) and exits.
pub fn run() -> ! {
    CMDLINE.call_once(|| {
        let mut buf = [0u8; 256];
        let len = semihosting::cmdline(&mut buf).len();
        (buf, len)
    });
    let name = cmdline().test().unwrap_or(DEFAULT_RUN);
    let Some(index) = all().iter().position(|t| t.header.name() == name) else {
        defmt::error!("unknown test '{=str}'; the tests are:", name);
        for t in all() {
            defmt::error!("  {=str}", t.header.name());
        }
        semihosting::exit(EXIT_BAD_COMMAND);
    };
    let header = &all()[index].header;
    let online = cores::online().len();
    if online < header.min_cores as usize {
        defmt::error!(
            "test {=str} needs {=u32} cores, {=usize} online",
            name,
            header.min_cores,
            online
        );
        semihosting::exit(EXIT_FAIL);
    }
    CURRENT.store(index, Ordering::Release);
    defmt::info!("test {=str}: start on {=usize} cores", name, online);
    let timeout_us = u64::from(header.timeout_s) * 1_000_000;
    match cores::run_everywhere(run_current, timeout_us) {
        Ok(failed) if failed.is_empty() => {
            defmt::info!("test {=str}: PASS", name);
            crate::report::verdict(name, true);
            semihosting::exit(EXIT_PASS)
        }
        Ok(failed) => {
            defmt::error!("test {=str}: FAIL on cores {=u64:#b}", name, failed.bits());
            crate::report::verdict(name, false);
            semihosting::exit(EXIT_FAIL)
        }
        Err(unfinished) => {
            defmt::error!(
                "test {=str}: cores {=u64:#b} did not finish",
                name,
                unfinished.bits()
            );
            crate::report::verdict(name, false);
            semihosting::exit(EXIT_FAIL)
        }
    }
}

/// Waits on `b` for every core of the test, at most `timeout_us`; a timeout is logged with the
/// cores that arrived and fails the test.
fn wait_all(b: &crate::sync::Barrier, ctx: &Ctx, timeout_us: u64) -> TestResult {
    b.wait(ctx.cores, timeout_us).map_err(|arrived| {
        defmt::error!(
            "core {=usize}: barrier timed out, arrived {=u64:#b}",
            ctx.core,
            arrived
        );
        Failed
    })
}
