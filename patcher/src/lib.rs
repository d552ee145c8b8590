//! Graft's patcher: replaces code that other cores may be running, and proves it is safe to.
//!
//! Everything here is pure logic over addresses and instruction words, so that it builds for
//! `aarch64-unknown-none` and unit-tests on the host. It knows no board and no address: the
//! kernel hands it memory regions, a [`cache::Maintenance`] backend and a
//! [`platform::Platform`]. The only instructions it executes itself live in `cache::hw` (cache
//! maintenance, barriers and two system-register reads) and the only raw memory writes in
//! `code_write` (code into arena slots and patch sites, through the write alias). The pure
//! modules (`check`, `insn`, `grace`, `platform`) forbid `unsafe`; the rest confine it to
//! constructors whose contract is a memory mapping.
//!
//! Modules, in the order a patch flows through them:
//! - [`check`]: validate a position-independent block before anything is written;
//! - [`arena`]: fixed-size code slots with a checked state machine;
//! - [`insn`]: encode and decode the instructions the patcher emits and inspects;
//! - [`cache`]: cache geometry, errata and the maintenance sequence (`sync_range`);
//! - [`platform`]: what the kernel provides: core identity, online set, IPIs with a bound;
//! - [`strategy`]: publication strategies making a written block what other cores run;
//! - [`grace`]: QSBR grace periods deciding when a retired slot may be reused;
//! - [`publish`]: the one publication path tying them together: place, publish, retire.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod arena;
pub mod cache;
pub mod check;
mod code_write;
#[cfg(any(test, feature = "fake"))]
pub mod example;
pub mod grace;
pub mod insn;
pub mod platform;
pub mod publish;
#[cfg(any(test, feature = "fake"))]
pub mod record;
pub mod strategy;
