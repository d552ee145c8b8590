//! A ready-made host world for documentation examples and other crates' host tests.
//!
//! Everything leaks (it lives for the whole test): a recorder, a fake cache with a 64-byte line
//! geometry, a fake platform with a given number of cores, and a small arena on the heap holding
//! one checked, written block (`NOP; RET`) ready to publish.

extern crate std;

use crate::arena::{Arena, CodeBlock, Region};
use crate::cache::fake::FakeCache;
use crate::cache::{CodeSync, SyncPolicy};
use crate::check::{Externals, Policy, check_block};
use crate::insn;
use crate::platform::fake::FakePlatform;
use crate::record::Recorder;
use crate::strategy::Env;
use core::time::Duration;
use std::boxed::Box;
use std::vec::Vec;

/// `CTR_EL0` of the fake cores: 64-byte data and instruction lines, IDC = DIC = 0.
pub const CTR_EL0: u64 = 0x8444_c004;
/// The executable address the world's arena pretends to live at.
pub const EXEC_BASE: usize = 0x8000_0000;

/// The world; see the module documentation.
pub struct ExampleWorld {
    /// Every operation, in order.
    pub recorder: &'static Recorder,
    /// The maintenance backend and policy.
    pub sync: &'static CodeSync<FakeCache<'static>>,
    /// The cores.
    pub platform: &'static FakePlatform<'static>,
    /// A block ready to publish.
    pub block: CodeBlock<'static>,
}

impl ExampleWorld {
    /// A world with `cores` cores (core 0 publishes).
    pub fn new(cores: usize) -> Self {
        let recorder: &'static Recorder = Box::leak(Box::new(Recorder::new()));
        let sync = Box::leak(Box::new(CodeSync::new(
            FakeCache::new(recorder, CTR_EL0, 0),
            SyncPolicy::from_registers(CTR_EL0, 0),
        )));
        let platform = Box::leak(Box::new(FakePlatform::new(recorder, cores)));
        let memory: &'static mut [u32] = Box::leak(std::vec![0u32; 64].into_boxed_slice());
        let region = Region {
            write_base: memory.as_mut_ptr() as usize,
            exec_base: EXEC_BASE,
            slot_size: 128,
            slot_count: 2,
        };
        // SAFETY: (1) `memory` is leaked, writable and used by nothing else; (2) the fake cache
        // never dereferences the pretend executable addresses.
        let arena: &'static Arena<2> =
            Box::leak(Box::new(unsafe { Arena::new(region) }.expect("arena")));
        let code: &'static [u8] = Box::leak(
            [insn::nop(), insn::ret(insn::Reg::LR).expect("RET")]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect::<Vec<u8>>()
                .into_boxed_slice(),
        );
        let mut slot = arena.alloc().expect("a free slot");
        let checked = check_block(
            code,
            slot.exec_addr(),
            128,
            &Externals::NONE,
            &Policy::DEFAULT,
        )
        .expect("a valid block");
        slot.write(&checked).expect("write");
        let block = slot.publish().expect("publish");
        recorder.clear();
        Self {
            recorder,
            sync,
            platform,
            block,
        }
    }

    /// The environment strategies run in, with a 1 ms timeout.
    pub fn env(&self) -> Env<'static, FakePlatform<'static>, FakeCache<'static>> {
        Env {
            platform: self.platform,
            sync: self.sync,
            timeout: Duration::from_millis(1),
        }
    }
}
