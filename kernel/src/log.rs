//! `defmt` logging over the board's console, for every core.
//!
//! Frames are rzCOBS encoded and decoded on the host by xtask. A spin lock, taken with IRQs masked,
//! keeps frames from different cores apart. A core that faults while it holds the lock (the fatal
//! report is logged from the exception handler) logs anyway rather than deadlock: the host decoder
//! resynchronises at the next frame boundary.

use crate::arch::cpu;
use boards::{Board, Current};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

#[defmt::global_logger]
struct Logger;

const FREE: usize = usize::MAX;
static OWNER: AtomicUsize = AtomicUsize::new(FREE);

struct State {
    encoder: defmt::Encoder,
    saved_daif: u64,
    nested: bool,
}

struct Shared(UnsafeCell<State>);

// SAFETY: `State` is only touched between `acquire` and `release`, by the core that owns `OWNER`
// (or, for a fatal report, by the same core re-entering).
unsafe impl Sync for Shared {}

static STATE: Shared = Shared(UnsafeCell::new(State {
    encoder: defmt::Encoder::new(),
    saved_daif: 0,
    nested: false,
}));

fn write(bytes: &[u8]) {
    Current::console_write(bytes);
}

// SAFETY: `acquire`/`release` bracket every frame and exclude other cores through `OWNER`.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        let daif = cpu::irq_save();
        let me = cpu::core_id();
        let nested = loop {
            match OWNER.compare_exchange_weak(FREE, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break false,
                Err(owner) if owner == me => break true,
                Err(_) => cpu::relax(),
            }
        };
        // SAFETY: this core owns the logger now (or re-entered it from an exception on itself).
        let state = unsafe { &mut *STATE.0.get() };
        if !nested {
            state.saved_daif = daif;
        }
        state.nested = nested;
        state.encoder.start_frame(write);
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: called after `acquire` on this core, which owns the logger.
        let state = unsafe { &mut *STATE.0.get() };
        state.encoder.end_frame(write);
        if !state.nested {
            let daif = state.saved_daif;
            OWNER.store(FREE, Ordering::Release);
            cpu::irq_restore(daif);
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called between `acquire` and `release` on this core.
        let state = unsafe { &mut *STATE.0.get() };
        state.encoder.write(bytes, write);
    }
}

defmt::timestamp!("{=u64:us} c{=usize}", cpu::micros(), cpu::core_id());
