//! Graft's coherence sanitizer: a QEMU TCG plugin that models non-coherent instruction fetch.
//!
//! QEMU keeps translated code coherent with memory, so a plain run cannot fail a test that
//! forgets cache maintenance. This plugin keeps, per core, a model of which written
//! instructions the architecture guarantees that core to fetch fresh, and reports every
//! execution of one that is not (see [`model`] for the rules and their sources). It is an
//! independent oracle: it decodes instructions itself ([`decode`]) and shares no code with the
//! patcher. The QEMU glue lives in `plugin.rs`; everything else is a pure state machine that
//! the host unit tests drive directly.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod decode;
pub mod filter;
pub mod markers;
pub mod model;
pub mod report;

#[cfg(test)]
mod model_tests;

#[cfg(not(test))]
mod plugin;
