//! Everything that touches the processor directly: boot, exceptions, the MMU, cpu helpers and
//! semihosting. The rest of the kernel reaches the hardware only through these modules.

pub mod boot;
pub mod build_id;
pub mod cache;
pub mod cpu;
pub mod exceptions;
pub mod markers;
pub mod mmu;
pub mod pmu;
pub mod probes;
pub mod semihosting;
