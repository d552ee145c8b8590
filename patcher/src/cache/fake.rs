//! A maintenance backend for host tests that records every operation in order.
//!
//! It executes nothing: each call appends an [`Op`] to a shared [`Recorder`], and the register
//! reads return the values the test chose, so one test can pose as any core.

use super::{Maintenance, Op};
use crate::record::{Event, Recorder};

/// Recording fake of [`Maintenance`].
#[derive(Clone, Copy)]
pub struct FakeCache<'r> {
    recorder: &'r Recorder,
    ctr_el0: u64,
    midr_el1: u64,
}

impl<'r> FakeCache<'r> {
    /// A fake that records into `recorder` and reports the given register values.
    pub const fn new(recorder: &'r Recorder, ctr_el0: u64, midr_el1: u64) -> Self {
        Self {
            recorder,
            ctr_el0,
            midr_el1,
        }
    }

    /// The recorder this fake writes to.
    pub const fn recorder(&self) -> &'r Recorder {
        self.recorder
    }

    fn op(&self, op: Op) {
        self.recorder.record(Event::Cache(op));
    }
}

impl Maintenance for FakeCache<'_> {
    unsafe fn dc_cvau(&self, va: usize) {
        self.op(Op::DcCvau(va));
    }
    unsafe fn dc_civac(&self, va: usize) {
        self.op(Op::DcCivac(va));
    }
    unsafe fn ic_ivau(&self, va: usize) {
        self.op(Op::IcIvau(va));
    }
    fn dsb_ish(&self) {
        self.op(Op::DsbIsh);
    }
    fn dsb_ishst(&self) {
        self.op(Op::DsbIshst);
    }
    fn dmb_ish(&self) {
        self.op(Op::DmbIsh);
    }
    fn isb(&self) {
        self.op(Op::Isb);
    }
    fn ctr_el0(&self) -> u64 {
        self.op(Op::ReadCtr);
        self.ctr_el0
    }
    fn midr_el1(&self) -> u64 {
        self.op(Op::ReadMidr);
        self.midr_el1
    }
    fn observe_store(&self, cell: usize, value: u64) {
        self.recorder.record(Event::StoreRelease { cell, value });
    }
}
