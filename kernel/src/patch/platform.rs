//! What the patcher needs from the kernel: who am I, who is online, IPIs with a bound.

use crate::arch::cpu;
use crate::ipi::{self, IpiError as KernelIpiError, Request};
use crate::smp;
use boards::CoreMask;
use core::time::Duration;
use patcher::platform::{CoreId, CoreSet, Interrupted, IpiError, IpiWork, Platform};

/// The kernel as the patcher's [`Platform`] (zero-sized: all state lives in `ipi` and `smp`).
pub struct KernelPlatform;

fn mask(set: CoreSet) -> CoreMask {
    CoreMask::from_bits(set.bits())
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn convert(e: KernelIpiError) -> IpiError {
    match e {
        KernelIpiError::Timeout { pending } => IpiError::Timeout {
            missing: CoreSet::from_bits(pending.bits()),
        },
        KernelIpiError::Offline { cores } => IpiError::Offline {
            cores: CoreSet::from_bits(cores.bits()),
        },
    }
}

impl Platform for KernelPlatform {
    fn current_core(&self) -> CoreId {
        CoreId(cpu::core_id() as u8)
    }

    fn online_cores(&self) -> CoreSet {
        CoreSet::from_bits(smp::online().bits())
    }

    fn ipi_sync(
        &self,
        targets: CoreSet,
        work: &'static dyn IpiWork,
        timeout: Duration,
    ) -> Result<(), IpiError> {
        let t = micros(timeout);
        let ticket = ipi::send_request(mask(targets), Request::Work(work), t).map_err(convert)?;
        ipi::wait(&ticket, t).map_err(convert)
    }

    fn ipi_send(&self, targets: CoreSet, work: &'static dyn IpiWork) -> Result<(), IpiError> {
        ipi::send_request(mask(targets), Request::Work(work), SEND_TIMEOUT_US)
            .map(drop)
            .map_err(convert)
    }

    fn interrupted_at(&self, core: CoreId) -> Option<Interrupted> {
        if !smp::online().contains(core.index()) {
            return None;
        }
        let (pc, lr) = crate::arch::exceptions::interrupted_at(core.index());
        Some(Interrupted { pc, lr })
    }

    fn wait_for(&self, timeout: Duration, done: &mut dyn FnMut() -> bool) -> bool {
        let deadline = cpu::ticks() + cpu::us_to_ticks(micros(timeout));
        if done() {
            return true;
        }
        let _waiting = crate::wait::Waiting::begin();
        loop {
            if done() {
                return true;
            }
            if cpu::ticks() > deadline {
                return done();
            }
            cpu::relax();
        }
    }
}

/// How long `ipi_send` waits for a target to finish the previous request before it gives up.
const SEND_TIMEOUT_US: u64 = 1_000_000;
