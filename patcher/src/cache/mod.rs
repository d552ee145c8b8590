//! Cache maintenance: making newly written instructions visible to instruction fetch.
//!
//! AArch64 instruction caches are not coherent with data writes. After code is written the
//! writer cleans the data side by address, waits, invalidates the instruction side by address,
//! waits; every core that will run the code then needs a context synchronization event. This
//! module owns that sequence ([`CodeSync`]) and hides every instruction behind the small
//! [`Maintenance`] trait, with the real backend in `hw` and a recording fake in `fake`, so host
//! tests can check the exact sequence each geometry produces.

#[cfg(any(test, feature = "fake"))]
pub mod fake;
mod geometry;
#[cfg(target_arch = "aarch64")]
pub mod hw;
#[cfg(test)]
mod tests;

pub use geometry::{
    CWG_UNKNOWN_BYTES, CacheGeometry, CleanOp, Errata, IMPLEMENTER_ARM, Midr, N1_1542419_ISTRIDE,
    PART_CORTEX_A53, PART_NEOVERSE_N1, SyncPolicy,
};

/// One maintenance operation, barrier or register read: what a backend executes and what the
/// fake records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `DC CVAU, va`.
    DcCvau(usize),
    /// `DC CIVAC, va`.
    DcCivac(usize),
    /// `IC IVAU, va`.
    IcIvau(usize),
    /// `DSB ISH`.
    DsbIsh,
    /// `DSB ISHST`.
    DsbIshst,
    /// `DMB ISH`.
    DmbIsh,
    /// `ISB`.
    Isb,
    /// `MRS CTR_EL0`.
    ReadCtr,
    /// `MRS MIDR_EL1`.
    ReadMidr,
}

/// The instructions the patcher needs, one method each.
///
/// Implemented by `hw::Hw` on AArch64 and by `fake::FakeCache` for host tests. Barriers and
/// register reads are safe; operations by address are `unsafe` because the address must be
/// mapped (an unmapped one faults, and on some cores a clean of device memory is not benign).
pub trait Maintenance {
    /// `DC CVAU`: clean the data cache line holding `va` to the Point of Unification.
    ///
    /// # Safety
    ///
    /// `va` must be mapped as Normal memory in the current translation regime.
    unsafe fn dc_cvau(&self, va: usize);

    /// `DC CIVAC`: clean and invalidate the data cache line holding `va` to the Point of
    /// Coherency.
    ///
    /// # Safety
    ///
    /// `va` must be mapped as Normal memory in the current translation regime.
    unsafe fn dc_civac(&self, va: usize);

    /// `IC IVAU`: invalidate the instruction cache line holding `va` to the Point of
    /// Unification (broadcast to the Inner Shareable domain on ARMv8).
    ///
    /// # Safety
    ///
    /// `va` must be mapped in the current translation regime.
    unsafe fn ic_ivau(&self, va: usize);

    /// `DSB ISH`: wait for all earlier memory accesses and maintenance to complete for the
    /// Inner Shareable domain.
    fn dsb_ish(&self);

    /// `DSB ISHST`: wait for earlier stores to complete for the Inner Shareable domain.
    fn dsb_ishst(&self);

    /// `DMB ISH`: order earlier memory accesses before later ones, Inner Shareable domain.
    fn dmb_ish(&self);

    /// `ISB`: context synchronization event for this core; later instructions are fetched anew.
    fn isb(&self);

    /// This core's `CTR_EL0`.
    fn ctr_el0(&self) -> u64;

    /// This core's `MIDR_EL1`.
    fn midr_el1(&self) -> u64;

    /// Observation hook called right after a strategy's publishing store-release of `value`
    /// into the cell at `cell`. Hardware backends do nothing (the default); the fake records
    /// it, so tests see the store in order with the maintenance and IPIs around it.
    #[inline(always)]
    fn observe_store(&self, cell: usize, value: u64) {
        let _ = (cell, value);
    }

    /// The body of a busy wait on another core (a rendezvous). The hardware backend issues
    /// `YIELD`, which under QEMU's round-robin TCG hands the host thread to the core waited for.
    fn relax(&self) {
        core::hint::spin_loop();
    }
}

impl<M: Maintenance + ?Sized> Maintenance for &M {
    unsafe fn dc_cvau(&self, va: usize) {
        // SAFETY: forwarded; the caller upholds `M::dc_cvau`'s contract.
        unsafe { (**self).dc_cvau(va) }
    }
    unsafe fn dc_civac(&self, va: usize) {
        // SAFETY: forwarded; the caller upholds `M::dc_civac`'s contract.
        unsafe { (**self).dc_civac(va) }
    }
    unsafe fn ic_ivau(&self, va: usize) {
        // SAFETY: forwarded; the caller upholds `M::ic_ivau`'s contract.
        unsafe { (**self).ic_ivau(va) }
    }
    fn dsb_ish(&self) {
        (**self).dsb_ish()
    }
    fn dsb_ishst(&self) {
        (**self).dsb_ishst()
    }
    fn dmb_ish(&self) {
        (**self).dmb_ish()
    }
    fn relax(&self) {
        (**self).relax()
    }
    fn isb(&self) {
        (**self).isb()
    }
    fn ctr_el0(&self) -> u64 {
        (**self).ctr_el0()
    }
    fn midr_el1(&self) -> u64 {
        (**self).midr_el1()
    }
    fn observe_store(&self, cell: usize, value: u64) {
        (**self).observe_store(cell, value)
    }
}

/// A maintenance backend paired with the policy decided for this system.
#[derive(Clone, Copy, Debug)]
pub struct CodeSync<M> {
    backend: M,
    policy: SyncPolicy,
}

impl<M: Maintenance> CodeSync<M> {
    /// Pairs `backend` with an explicit `policy` (for example one merged over all cores).
    pub const fn new(backend: M, policy: SyncPolicy) -> Self {
        Self { backend, policy }
    }

    /// Reads `CTR_EL0` and `MIDR_EL1` through `backend` (so, on hardware, of the calling core)
    /// and decides the policy from them.
    pub fn for_this_core(backend: M) -> Self {
        let policy = SyncPolicy::from_registers(backend.ctr_el0(), backend.midr_el1());
        Self { backend, policy }
    }

    /// The backend, for the barriers and `ISB`s a strategy issues itself.
    pub const fn backend(&self) -> &M {
        &self.backend
    }

    /// The policy in force.
    pub const fn policy(&self) -> SyncPolicy {
        self.policy
    }

    /// Makes `len` bytes of code written at `write_va` visible to instruction fetch at
    /// `exec_va` (the same memory through its executable alias): the data-side clean, then the
    /// instruction-side invalidate.
    ///
    /// Every core that will run the code still needs a context synchronization event (`ISB`,
    /// exception entry or return) after this returns; that is the strategy's job. Does nothing
    /// when `len` is 0.
    ///
    /// # Safety
    ///
    /// 1. `write_va..write_va + len` must be mapped as Normal memory.
    /// 2. `exec_va..exec_va + len` must be mapped.
    pub unsafe fn sync_range(&self, write_va: usize, exec_va: usize, len: usize) {
        // SAFETY: duty 1 of this function is duty 1 of `clean_range`.
        unsafe { self.clean_range(write_va, len) };
        // SAFETY: duty 2 of this function is duty 1 of `invalidate_range`.
        unsafe { self.invalidate_range(exec_va, len) };
    }

    /// The data side alone: clean each data line of `write_va..write_va + len` (stepping by
    /// `dline`), then `DSB ISH`. With `IDC` only `DSB ISHST` is issued. Does nothing when `len`
    /// is 0.
    ///
    /// # Safety
    ///
    /// 1. `write_va..write_va + len` must be mapped as Normal memory.
    pub unsafe fn clean_range(&self, write_va: usize, len: usize) {
        if len == 0 {
            return;
        }
        let Some(op) = self.policy.clean else {
            self.backend.dsb_ishst();
            return;
        };
        for line in lines(write_va, len, self.policy.dline) {
            match op {
                // SAFETY: `line` is the start of a line that overlaps the caller's range, which
                // duty 1 says is mapped as Normal memory; maintenance acts on whole lines.
                CleanOp::Cvau => unsafe { self.backend.dc_cvau(line) },
                // SAFETY: as above.
                CleanOp::Civac => unsafe { self.backend.dc_civac(line) },
            }
        }
        self.backend.dsb_ish();
    }

    /// The instruction side alone: invalidate each instruction line of
    /// `exec_va..exec_va + len` (stepping by `iline`), then `DSB ISH`. With `DIC` (and no
    /// erratum forcing it) nothing is issued. Does nothing when `len` is 0.
    ///
    /// # Safety
    ///
    /// 1. `exec_va..exec_va + len` must be mapped.
    pub unsafe fn invalidate_range(&self, exec_va: usize, len: usize) {
        if len == 0 || !self.policy.invalidate {
            return;
        }
        for line in lines(exec_va, len, self.policy.iline) {
            // SAFETY: `line` starts a line overlapping the caller's range, mapped by duty 1.
            unsafe { self.backend.ic_ivau(line) };
        }
        self.backend.dsb_ish();
    }
}

impl<M: Maintenance> CodeSync<M> {
    /// Makes single instruction words visible to instruction fetch, all in one pass: a
    /// `DC CVAU` (or `CIVAC`) on each word's data line through its writable address, one
    /// `DSB ISH`, an `IC IVAU` on each word's instruction line through its executable address,
    /// one `DSB ISH`. A line shared by consecutive words is maintained once. With `IDC` only
    /// `DSB ISHST` is issued, with `DIC` no invalidation, as in [`sync_range`](Self::sync_range).
    /// Does nothing for no words.
    ///
    /// `words` yields `(write_va, exec_va)` per word and is walked twice (clean, then
    /// invalidate). Every core that will run the words still needs a context synchronization
    /// event after this returns.
    ///
    /// # Safety
    ///
    /// For every word: 1. `write_va..write_va + 4` is mapped as Normal memory; 2. `exec_va..
    /// exec_va + 4` is mapped.
    pub unsafe fn sync_words<I>(&self, words: I)
    where
        I: Iterator<Item = (usize, usize)> + Clone,
    {
        if words.clone().next().is_none() {
            return;
        }
        match self.policy.clean {
            None => self.backend.dsb_ishst(),
            Some(op) => {
                let mask = !(self.policy.dline - 1);
                let mut last = None;
                for line in words.clone().map(|(w, _)| w & mask) {
                    if last == Some(line) {
                        continue;
                    }
                    last = Some(line);
                    match op {
                        // SAFETY: `line` starts the data line of a word that duty 1 says is
                        // mapped as Normal memory; maintenance acts on whole lines.
                        CleanOp::Cvau => unsafe { self.backend.dc_cvau(line) },
                        // SAFETY: as above.
                        CleanOp::Civac => unsafe { self.backend.dc_civac(line) },
                    }
                }
                self.backend.dsb_ish();
            }
        }
        if !self.policy.invalidate {
            return;
        }
        let mask = !(self.policy.iline - 1);
        let mut last = None;
        for line in words.map(|(_, x)| x & mask) {
            if last == Some(line) {
                continue;
            }
            last = Some(line);
            // SAFETY: `line` starts the instruction line of a word mapped by duty 2.
            unsafe { self.backend.ic_ivau(line) };
        }
        self.backend.dsb_ish();
    }
}

/// The start of every `stride`-sized line overlapping `va..va + len` (`len` > 0, `stride` a
/// power of two). Ranges that would pass the top of the address space stop at it.
fn lines(va: usize, len: usize, stride: usize) -> impl Iterator<Item = usize> {
    let first = va & !(stride - 1);
    let last = va.saturating_add(len - 1) & !(stride - 1);
    (first..=last).step_by(stride)
}
