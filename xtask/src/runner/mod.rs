//! The runner library: everything the commands share, and nothing that is a command.
//!
//! Building a kernel ([`build`]), the board table ([`board`]), one QEMU command builder and a
//! bounded run ([`qemu`], [`pty`]), decoding its frames into log lines and typed records
//! ([`logs`]), verdicts ([`verdict`], [`sanitize`]), and the sessions that talk to a running
//! kernel or the serial loader ([`live`], [`loader`], [`serial`]). The command modules
//! (`qemu`, `test`, `bench`, `image`, `flash`, `patch`, `lint` beside this one) import from here
//! and never from each other.

pub mod board;
pub mod build;
pub mod elf;
pub mod herd7;
pub mod image;
pub mod lint;
pub mod live;
pub mod loader;
pub mod loader_e2e;
pub mod logs;
pub mod patch_build;
pub mod prereq;
pub mod pty;
pub mod qemu;
pub mod sanitize;
pub mod serial;
pub mod symbolize;
pub mod verdict;
