//! Graft's seam: what the kernel, the serial loader and the host tool must agree on.
//!
//! Every byte or name that crosses from one side to another is defined here, once: the
//! live-patch frames, the loader's framing, their CRC-32, the kernel-test records in the ELF,
//! exit codes, command-line keys, exception class names, board names, and the typed
//! [`record::Record`]s through which the kernel reports every result the host checks. The crate
//! knows no board and no kernel internals, builds `no_std` for the target and unit-tests on the
//! host; a rename here is a compile error on every side.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod cmdline;
pub mod crc32;
pub mod esr;
pub mod exports;
pub mod live;
pub mod loader;
pub mod names;
pub mod record;
pub mod signing;
pub mod testinfo;

pub use names::Board;
pub use record::{DecodeError, Record};
