//! A shared, ordered log of everything the fakes observe, for host tests.
//!
//! The cache fake and the platform fake write into one [`Recorder`], so a test can check the
//! order of maintenance, barriers, IPIs and pointer stores across both. Fixed capacity and a
//! spin lock keep it usable from `no_std` test harnesses and from several threads.

#![forbid(unsafe_code)]

use crate::cache::Op;
use crate::platform::{CoreId, CoreSet};

/// How many events a [`Recorder`] keeps; recording more panics, so no test silently loses one.
pub const RECORDER_CAPACITY: usize = 1024;

/// One observed event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A maintenance operation, barrier or register read.
    Cache(Op),
    /// An IPI was sent to these cores.
    IpiSend(CoreSet),
    /// A core took the IPI: exception entry, a context synchronization event.
    IpiEnter(CoreId),
    /// A core acknowledged the IPI after its handler returned.
    IpiAck(CoreId),
    /// A store with release semantics of `value` into the cell at `cell`.
    StoreRelease {
        /// Address of the cell.
        cell: usize,
        /// Value stored.
        value: u64,
    },
    /// A free-form marker a test or strategy leaves in the log.
    Mark(&'static str),
}

/// An ordered, thread-safe event log.
pub struct Recorder {
    events: spin::Mutex<heapless::Vec<Event, RECORDER_CAPACITY>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty log.
    pub const fn new() -> Self {
        Self {
            events: spin::Mutex::new(heapless::Vec::new()),
        }
    }

    /// Appends `event`.
    ///
    /// # Panics
    ///
    /// When the log already holds [`RECORDER_CAPACITY`] events.
    pub fn record(&self, event: Event) {
        self.events
            .lock()
            .push(event)
            .expect("Recorder full: a test recorded more events than RECORDER_CAPACITY");
    }

    /// A copy of every event so far, oldest first.
    pub fn events(&self) -> heapless::Vec<Event, RECORDER_CAPACITY> {
        self.events.lock().clone()
    }

    /// The maintenance operations so far, oldest first, without the other events.
    pub fn cache_ops(&self) -> heapless::Vec<Op, RECORDER_CAPACITY> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                Event::Cache(op) => Some(*op),
                _ => None,
            })
            .collect()
    }

    /// Forgets every event.
    pub fn clear(&self) {
        self.events.lock().clear();
    }
}
