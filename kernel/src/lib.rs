//! Graft kernel: the parts that are plain logic, shared with the host tool and unit-tested there.
//!
//! The runtime itself (`main.rs` and its modules) builds only for `aarch64-unknown-none`. What
//! both sides must agree on lives here: the layout of kernel-test records in the ELF, exit codes,
//! the boot command line, the names of exception classes, and the live-patch wire format.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod cmdline;
pub mod esr;
pub mod testinfo;
pub mod wire;
