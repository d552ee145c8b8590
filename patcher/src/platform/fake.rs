//! A platform for host tests: simulated cores that run IPI handlers in order and record it.
//!
//! `ipi_sync` runs each target's work on the calling thread, bracketed by
//! [`Event::IpiEnter`] and [`Event::IpiAck`] in the shared [`Recorder`], so a test sees where
//! each core's context synchronization event falls relative to the publisher's maintenance and
//! stores. Cores marked unresponsive never acknowledge, to exercise the timeout path.

use core::time::Duration;

use super::{CoreId, CoreSet, Interrupted, IpiError, IpiWork, Platform};
use crate::record::{Event, Recorder};

/// Recording fake of [`Platform`].
pub struct FakePlatform<'r> {
    recorder: &'r Recorder,
    current: CoreId,
    online: CoreSet,
    unresponsive: CoreSet,
    poll_budget: usize,
    on_poll: Option<&'r (dyn Fn() + Sync)>,
    deliver: Option<&'r (dyn Fn(CoreId, &'static dyn IpiWork) + Sync)>,
    interrupted: Option<&'r (dyn Fn(CoreId) -> Option<Interrupted> + Sync)>,
}

impl<'r> FakePlatform<'r> {
    /// `cores` cores, all online and responsive, the caller being core 0.
    pub const fn new(recorder: &'r Recorder, cores: usize) -> Self {
        Self {
            recorder,
            current: CoreId(0),
            online: CoreSet::first(cores),
            unresponsive: CoreSet::EMPTY,
            poll_budget: 1_000_000,
            on_poll: None,
            deliver: None,
            interrupted: None,
        }
    }

    /// The same fake, calling from `core`.
    pub const fn calling_from(mut self, core: CoreId) -> Self {
        self.current = core;
        self
    }

    /// The same fake with exactly `online` online.
    pub const fn with_online(mut self, online: CoreSet) -> Self {
        self.online = online;
        self
    }

    /// The same fake where `cores` never acknowledge an IPI.
    pub const fn with_unresponsive(mut self, cores: CoreSet) -> Self {
        self.unresponsive = cores;
        self
    }

    /// The same fake where [`Platform::wait_for`] gives up after `polls` calls of its condition
    /// (standing in for the timeout, which the fake does not measure).
    pub const fn with_poll_budget(mut self, polls: usize) -> Self {
        self.poll_budget = polls;
        self
    }

    /// The same fake, handing each target of [`Platform::ipi_send`] to `deliver` (a test
    /// typically starts a thread that runs the work). Without it, sent work is dropped: the
    /// targets never answer.
    pub const fn with_delivery(
        mut self,
        deliver: &'r (dyn Fn(CoreId, &'static dyn IpiWork) + Sync),
    ) -> Self {
        self.deliver = Some(deliver);
        self
    }

    /// The same fake, running `tick` before each poll in [`Platform::wait_for`]: where a test
    /// makes the other simulated cores progress, deterministically.
    pub const fn with_on_poll(mut self, tick: &'r (dyn Fn() + Sync)) -> Self {
        self.on_poll = Some(tick);
        self
    }
}

impl<'r> FakePlatform<'r> {
    /// The same fake, answering [`Platform::interrupted_at`] with `at` (without it, every core
    /// was interrupted at address 0, outside any code a test patches).
    pub const fn with_interrupted(
        mut self,
        at: &'r (dyn Fn(CoreId) -> Option<Interrupted> + Sync),
    ) -> Self {
        self.interrupted = Some(at);
        self
    }
}

impl Platform for FakePlatform<'_> {
    fn interrupted_at(&self, core: CoreId) -> Option<Interrupted> {
        match self.interrupted {
            Some(at) => at(core),
            None => Some(Interrupted { pc: 0, lr: 0 }),
        }
    }

    fn current_core(&self) -> CoreId {
        self.current
    }

    fn online_cores(&self) -> CoreSet {
        self.online
    }

    fn ipi_sync(
        &self,
        targets: CoreSet,
        work: &'static dyn IpiWork,
        _timeout: Duration,
    ) -> Result<(), IpiError> {
        let targets = targets.without(self.current);
        let offline = targets.difference(self.online);
        if !offline.is_empty() {
            return Err(IpiError::Offline { cores: offline });
        }
        self.recorder.record(Event::IpiSend(targets));
        for core in targets.difference(self.unresponsive).iter() {
            self.recorder.record(Event::IpiEnter(core));
            work.run(core);
            self.recorder.record(Event::IpiAck(core));
        }
        let missing = targets.intersection(self.unresponsive);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(IpiError::Timeout { missing })
        }
    }

    fn ipi_send(&self, targets: CoreSet, work: &'static dyn IpiWork) -> Result<(), IpiError> {
        let targets = targets.without(self.current);
        let offline = targets.difference(self.online);
        if !offline.is_empty() {
            return Err(IpiError::Offline { cores: offline });
        }
        self.recorder.record(Event::IpiSend(targets));
        if let Some(deliver) = self.deliver {
            for core in targets.difference(self.unresponsive).iter() {
                deliver(core, work);
            }
        }
        Ok(())
    }

    fn wait_for(&self, _timeout: Duration, done: &mut dyn FnMut() -> bool) -> bool {
        for _ in 0..self.poll_budget {
            if let Some(tick) = self.on_poll {
                tick();
            }
            if done() {
                return true;
            }
            core::hint::spin_loop();
        }
        false
    }
}
