//! QEMU glue: decides at translation time what to instrument and feeds the model.
//!
//! What gets a callback (decided per translated block, docs/design.md section 5):
//! - `DMB`, `DSB`, `ISB`, `DC`, `IC`, `ERET`, `SVC`/`HVC`/`SMC`, `MSR VBAR_ELx` and the marker
//!   hints: an exec callback each (rare instructions);
//! - every store, and the loads whose value the model can use (`decode::LoadDeps::follow`): a
//!   memory callback that returns at once unless the store hits a page that ever held code, or
//!   some written line awaits synchronization (only then can data ordering matter: earlier
//!   events cannot order later ones);
//! - every store: a pre-execution callback conditional on a per-vCPU slot set only while this
//!   core's stores could carry ordering that matters; it announces the store, because QEMU
//!   runs memory callbacks after the store is visible to other vCPUs (see `Shared::in_flight`);
//! - every block: an exec callback *conditional* on a per-vCPU scoreboard slot of its page,
//!   set only while a word on that page (or a page sharing the slot) awaits synchronization.
//!   It checks each instruction of the block against the model, so a block QEMU keeps running
//!   after a rewrite (its own cross-core staleness) is still checked; elsewhere it costs one
//!   inline compare;
//! - under round-robin TCG (`core-reg=`), where QEMU 10.0 miscompiles conditional callbacks,
//!   neither conditional callback exists: stores announce nothing (no other vCPU runs while a
//!   store completes), and only blocks on pages written while they held code get an
//!   unconditional exec callback (QEMU retranslates a block whose bytes are written);
//! - blocks starting at `VBAR_ELx + n * 0x80`: exception entry (QEMU 10.0.2 has no exception
//!   callback).
//!
//! Attribution: multi-threaded TCG hands callbacks the right vCPU index. Round-robin TCG
//! (`thread=single`, `-icount`) does not: QEMU 10.0 folds the translating vCPU's index into a
//! block as a constant, though every vCPU runs that block. There the `core-reg=` argument names
//! a register the guest keeps its core number in, read in each callback that needs the core,
//! and per-vCPU scoreboard slots hold the same value for every vCPU. Either way the `CORE_ID`
//! marker checks attribution at run time.
//!
//! Physical addresses: stores give them (`qemu_plugin_get_hwaddr`); instructions only give a
//! host address. The first block QEMU translates runs with the MMU off (QEMU's boot stub at the
//! start of RAM), so `host - vaddr` there is the host-to-physical offset of guest RAM, which
//! QEMU maps as one host block. `DC`/`IC` take a virtual address: it is translated through the
//! page mappings seen so far (data accesses and translated code); unknown pages are taken as
//! identity-mapped and counted (`unresolved-maintenance`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use qemu_plugin::sys::{
    qemu_plugin_cb_flags, qemu_plugin_cond, qemu_plugin_mem_rw, qemu_plugin_scoreboard_new,
};
use qemu_plugin::{
    Args, Info, PluginId, PluginU64, TranslationBlock, VCPUIndex, plugin::HasCallbacks,
    plugin::Register, qemu_plugin_register_atexit_cb, register,
};

mod reg;
mod shared;

use reg::Reg;

use shared::{MATTERS_PLAIN, MATTERS_RELEASE, Regs, SLOTS, Shared, arm_slot};

use crate::clock::MAX_CORES;
use crate::config;
use crate::decode::{Insn, analyse_block, decode, mem_of};
use crate::filter::Filters;
use crate::markers;
use crate::model::{Config, Cse, LoadKind, Model};
use crate::report::outcome_line;

/// The plugin object the `qemu-plugin` crate drives.
#[derive(Default)]
struct Sanitizer {
    shared: Option<Arc<Shared>>,
}

impl Register for Sanitizer {
    fn register(&mut self, id: PluginId, args: &Args, info: &Info) -> qemu_plugin::Result<()> {
        let parsed = config::parse(&args.raw).map_err(|e| anyhow_free(e.to_string()))?;
        let cores = info
            .system
            .as_ref()
            .map_or(1, |s| s.max_vcpus.max(s.smp_vcpus) as usize);
        if cores > MAX_CORES {
            return Err(anyhow_free(format!("at most {MAX_CORES} vCPUs")));
        }
        let mut model = Model::new(Config {
            cores,
            ..parsed.model
        });
        for &(s, e) in &parsed.track {
            model.track_range(s, e.saturating_sub(s));
        }
        let out = match &parsed.out {
            Some(p) => Some(File::create(p).map_err(|e| anyhow_free(e.to_string()))?),
            None => None,
        };
        // SAFETY: QEMU allocates a zeroed scoreboard of SLOTS u64s per vCPU and keeps it alive
        // until we free it, which we never do.
        let score = unsafe { qemu_plugin_scoreboard_new(8 * SLOTS) };
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            out: Mutex::new(out),
            armed: PluginU64 { score, offset: 0 },
            armed_mask: AtomicU64::new(0),
            open: AtomicBool::new(false),
            cores,
            delta: AtomicI64::new(i64::MIN),
            pages: Mutex::new(HashMap::new()),
            vbars: Mutex::new(Vec::new()),
            regs: OnceLock::new(),
            core_reg_name: parsed.core_reg.clone(),
            core_reg: OnceLock::new(),
            bad_index: AtomicU64::new(0),
            filters: Filters::new(),
            in_flight: AtomicU64::new(0),
            late_code_stores: AtomicU64::new(0),
        });
        for &(s, e) in &parsed.track {
            shared.track_pages(s, e);
        }
        let at_exit = shared.clone();
        qemu_plugin_register_atexit_cb(id, move |_| {
            let mut summary = at_exit.model.lock().expect("model").summary;
            summary.attribution_errors += at_exit.bad_index.load(Relaxed);
            summary.late_code_stores += at_exit.late_code_stores.load(Relaxed);
            at_exit.emit(&summary.to_string());
            if let Some(f) = at_exit.out.lock().expect("out").as_mut() {
                let _ = f.flush();
            }
        })?;
        self.shared = Some(shared);
        Ok(())
    }
}

fn anyhow_free(msg: String) -> qemu_plugin::Error {
    qemu_plugin::Error::BoxedError(msg.into())
}

impl HasCallbacks for Sanitizer {
    fn on_vcpu_init(&mut self, _id: PluginId, _vcpu: VCPUIndex) -> qemu_plugin::Result<()> {
        let Some(sh) = &self.shared else {
            return Ok(());
        };
        if sh.regs.get().is_none() {
            let names: [String; 31] = std::array::from_fn(|n| format!("x{n}"));
            let found = Reg::find(names.each_ref().map(String::as_str));
            if let Some(n) = found.iter().position(Option::is_none) {
                return Err(anyhow_free(format!("no register x{n}")));
            }
            let x = found.map(|r| r.expect("each found, checked above"));
            let _ = sh.regs.set(Regs { x });
            if let Some(name) = &sh.core_reg_name {
                let [found] = Reg::find([name.as_str()]);
                if found.is_none() {
                    sh.emit(&format!(
                        "{} error core-reg={name}: QEMU offers no such register",
                        crate::report::PREFIX
                    ));
                }
                let _ = sh.core_reg.set(found);
            }
        }
        Ok(())
    }

    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> qemu_plugin::Result<()> {
        let Some(sh) = self.shared.clone() else {
            return Ok(());
        };
        let mut insns = Vec::with_capacity(tb.size());
        let mut words = Vec::with_capacity(tb.size());
        for insn in tb.instructions() {
            let mut b = [0u8; 4];
            insn.read_data(&mut b);
            words.push(u32::from_le_bytes(b));
            insns.push((insn.vaddr(), insn.haddr()));
        }
        if sh.delta.load(Relaxed) == i64::MIN {
            let (va, host) = insns[0];
            sh.delta.store(host.wrapping_sub(va) as i64, Relaxed);
        }
        let delta = sh.delta.load(Relaxed) as u64;
        let block: Arc<Vec<(u64, u64)>> = Arc::new(
            insns
                .iter()
                .map(|&(va, host)| (va, host.wrapping_sub(delta)))
                .collect(),
        );
        // Multi-threaded TCG: a block translated after another vCPU's store to its bytes, but
        // before that store's memory callback ran, holds words the model has not seen written.
        // Noting them as code now would make the store look like a rewrite with the same value,
        // and the fetches of this block would run before the write they read: wait until the
        // store is recorded (bounded; DIC1.WRC-inst reported false alarms without this).
        if !sh.by_register() {
            sh.wait_for_code_stores(&block, &words);
        }
        {
            let mut m = sh.model.lock().expect("model");
            let mut pages = sh.pages.lock().expect("pages");
            for (&(va, pa), &w) in block.iter().zip(&words) {
                m.note_code(pa, w);
                pages.insert(va >> 12, pa >> 12);
                sh.filters.add_code_page(pa >> 12);
            }
        }
        let vbars = sh.vbars.lock().expect("vbars").clone();
        let start = block[0].0;
        if vbars
            .iter()
            .any(|&v| start >= v && start < v + 0x800 && (start - v).is_multiple_of(0x80))
        {
            let s = sh.clone();
            tb.register_execute_callback_flags(
                move |vcpu| {
                    s.filters.forget_mappings();
                    let Some(c) = s.core(vcpu) else { return };
                    let mut m = s.model.lock().expect("model");
                    m.cse(c, Cse::Exception);
                    s.refresh(&m, c);
                },
                sh.core_flags(),
            );
        }
        let mut tb_pages: Vec<u64> = block.iter().map(|&(_, pa)| pa >> 12).collect();
        tb_pages.dedup();
        let check_block = {
            let s = sh.clone();
            let b = block.clone();
            let pages = tb_pages.clone();
            move |vcpu| {
                if !pages.iter().any(|&p| s.filters.maybe_pending(p)) {
                    return;
                }
                let Some(c) = s.core(vcpu) else { return };
                let mut m = s.model.lock().expect("model");
                for &(va, pa) in b.iter() {
                    s.report(m.exec(c, va, pa));
                }
                s.refresh(&m, c);
            }
        };
        if sh.by_register() {
            // Round-robin TCG: QEMU 10.0 miscompiles scoreboard reads there (it multiplies a
            // folded constant in place), so no conditional callbacks. A block needs checking
            // only if it holds a word written since it was first translated; QEMU drops and
            // retranslates a block whose bytes are written, and no other vCPU runs meanwhile,
            // so blocks on pages never written while holding code need no callback at all.
            if tb_pages.iter().any(|&p| sh.filters.code_written(p)) {
                tb.register_execute_callback_flags(check_block, sh.core_flags());
            }
        } else {
            for &page in &tb_pages {
                tb.register_conditional_execute_callback_flags(
                    check_block.clone(),
                    sh.core_flags(),
                    qemu_plugin_cond::QEMU_PLUGIN_COND_NE,
                    PluginU64 {
                        offset: arm_slot(page) * 8,
                        ..sh.armed
                    },
                    0,
                );
            }
        }
        let deps = analyse_block(&words);
        for (i, insn) in tb.instructions().enumerate() {
            instrument(&sh, &insn, words[i], block.clone(), i, deps[i]);
        }
        Ok(())
    }
}

fn instrument(
    sh: &Arc<Shared>,
    insn: &qemu_plugin::Instruction,
    word: u32,
    block: Arc<Vec<(u64, u64)>>,
    index: usize,
    deps: crate::decode::LoadDeps,
) {
    let s = sh.clone();
    let regs = qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS;
    let core = sh.core_flags();
    match decode(word) {
        Insn::Dmb(k) => insn.register_execute_callback_flags(
            move |v| {
                let Some(c) = s.core(v) else { return };
                let mut m = s.model.lock().expect("model");
                m.dmb(c, k);
                s.refresh(&m, c);
            },
            core,
        ),
        Insn::Dsb(k) => insn.register_execute_callback_flags(
            move |v| {
                let Some(c) = s.core(v) else { return };
                let mut m = s.model.lock().expect("model");
                m.dsb(c, k);
                s.refresh(&m, c);
            },
            core,
        ),
        Insn::Isb => insn.register_execute_callback_flags(
            move |v| {
                let Some(c) = s.core(v) else { return };
                let mut m = s.model.lock().expect("model");
                m.cse(c, Cse::Isb);
                s.refresh(&m, c);
            },
            core,
        ),
        Insn::Translation => insn.register_execute_callback(move |_| {
            s.filters.forget_mappings();
        }),
        Insn::Eret | Insn::ExceptionCall => insn.register_execute_callback_flags(
            move |v| {
                s.filters.forget_mappings();
                let Some(c) = s.core(v) else { return };
                let mut m = s.model.lock().expect("model");
                m.cse(c, Cse::Exception);
                s.refresh(&m, c);
            },
            core,
        ),
        Insn::Dc(op, rt) => insn.register_execute_callback_flags(
            move |v| {
                let Some(c) = s.core(v) else { return };
                let va = s.reg(rt);
                let mut m = s.model.lock().expect("model");
                let pa = s.va_to_pa(va, &mut m);
                m.dc(c, pa, op);
            },
            regs,
        ),
        Insn::Ic(op, rt) => insn.register_execute_callback_flags(
            move |v| {
                let Some(c) = s.core(v) else { return };
                let va = if rt == 31 { 0 } else { s.reg(rt) };
                let mut m = s.model.lock().expect("model");
                let pa = if rt == 31 { 0 } else { s.va_to_pa(va, &mut m) };
                m.ic(c, op, pa);
            },
            regs,
        ),
        Insn::MsrVbar(_, rt) => insn.register_execute_callback_flags(
            move |_| {
                let v = s.reg(rt);
                let mut vb = s.vbars.lock().expect("vbars");
                if !vb.contains(&v) {
                    vb.push(v);
                }
            },
            regs,
        ),
        Insn::Marker(k) => insn.register_execute_callback_flags(
            move |v| {
                if let Some(c) = s.core(v) {
                    marker(&s, c, k);
                }
            },
            regs,
        ),
        Insn::Mem => {
            let info = mem_of(word);
            let after_barrier = deps.after_barrier;
            let kind = LoadKind {
                acquire: info.acquire,
                ctrl: deps.ctrl,
                addr_cmo: deps.addr_cmo,
            };
            // A store that may matter announces itself before it becomes visible to other
            // vCPUs (not needed, and not possible, under round-robin TCG: see above).
            if (info.dest == [31, 31] || info.release) && !s.by_register() {
                let pre = s.clone();
                let slot = if info.release {
                    MATTERS_RELEASE
                } else {
                    MATTERS_PLAIN
                };
                insn.register_conditional_execute_callback(
                    move |_| pre.announce_store(),
                    qemu_plugin_cond::QEMU_PLUGIN_COND_NE,
                    PluginU64 {
                        offset: slot * 8,
                        ..s.armed
                    },
                    0,
                );
            }
            insn.register_memory_access_callback_flags(
                move |v, mi, vaddr| {
                    let store = mi.is_store();
                    let _recorded = Recorded(&s, store);
                    let open = s.open.load(Relaxed);
                    if store
                        && s.filters.known_not_code(vaddr >> 12)
                        && !(open
                            && s.filters
                                .store_may_matter(s.core_hint(v), info.release, vaddr))
                    {
                        return;
                    }
                    if !store && !open {
                        return;
                    }
                    let Some(hw) = mi.hwaddr(vaddr) else { return };
                    if hw.is_io() {
                        return;
                    }
                    let pa = hw.hwaddr();
                    let size = 1u64 << mi.size_shift();
                    // The core is named only past the filters (by register, it costs a read).
                    if !store {
                        s.wait_for_stores();
                        // A load of a word awaiting synchronization observes its write; one
                        // after a barrier that orders something pending is remembered for the
                        // store that will overwrite what it read (from-read).
                        let wanted = s.filters.maybe_cell(pa)
                            || s.filters.maybe_pending(pa >> 12)
                            || (after_barrier
                                && s.filters.store_matters_for(s.core_hint(v), false));
                        if !wanted {
                            return;
                        }
                        let Some(core) = s.core(v) else { return };
                        let mut m = s.model.lock().expect("model");
                        m.load(core, pa, kind);
                        // The store that overwrites it must reach the model.
                        if m.is_read_cell(pa) {
                            for (p, va) in [(pa & !7, vaddr & !7), (pa, vaddr)] {
                                s.filters.add_cell(p);
                                s.filters.add_cell_va(va);
                            }
                        }
                        s.refresh(&m, core);
                        return;
                    }
                    let code = s.filters.maybe_code_page(pa >> 12);
                    if code {
                        s.filters.note_code_written(pa >> 12);
                    } else {
                        s.filters.note_not_code(vaddr >> 12);
                    }
                    if !code && !open {
                        return;
                    }
                    if !code
                        && !(open
                            && (s.filters.store_matters_for(s.core_hint(v), info.release)
                                || (pa..pa + size).step_by(8).any(|a| s.filters.maybe_cell(a))))
                    {
                        return;
                    }
                    let Some(core) = s.core(v) else { return };
                    let mut m = s.model.lock().expect("model");
                    s.pages.lock().expect("pages").insert(vaddr >> 12, pa >> 12);
                    let bytes = value_bytes(&mi, size as usize);
                    m.store(core, block[index].0, pa, &bytes, info.release);
                    for a in (pa..pa + size).step_by(8).filter(|&a| m.is_cell(a)) {
                        s.filters.add_cell(a);
                        s.filters.add_cell_va(vaddr + (a - pa));
                    }
                    // A later instruction of this very block was overwritten: it runs now,
                    // with no chance of a context synchronization in between.
                    for &(va, ipa) in &block[index + 1..] {
                        if ipa + 4 > pa && ipa < pa + size {
                            s.report(m.exec(core, va, ipa));
                        }
                    }
                    s.refresh(&m, core);
                },
                // Loads the model cannot use get no callback at all.
                if deps.follow {
                    qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_RW
                } else {
                    qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_W
                },
                core,
            );
        }
        _ => {}
    }
}

/// Marks this thread's announced store recorded when a store's memory callback returns.
struct Recorded<'a>(&'a Shared, bool);

impl Drop for Recorded<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.store_recorded();
        }
    }
}

fn value_bytes(mi: &qemu_plugin::MemoryInfo, size: usize) -> Vec<u8> {
    use qemu_plugin::MemValue::*;
    let mut v = match mi.value() {
        U8(x) => x.to_le_bytes().to_vec(),
        U16(x) => x.to_le_bytes().to_vec(),
        U32(x) => x.to_le_bytes().to_vec(),
        U64(x) => x.to_le_bytes().to_vec(),
        U128(x) => x.to_le_bytes().to_vec(),
    };
    v.resize(size, 0);
    v
}

fn marker(s: &Shared, core: usize, k: u32) {
    let (x0, x1) = (s.reg(0), s.reg(1));
    let mut m = s.model.lock().expect("model");
    match k {
        markers::MARK_PUBLISHED => m.set_published(x0, x1, true),
        markers::MARK_UNPUBLISHED => m.set_published(x0, x1, false),
        markers::ITERATION => m.set_iteration(core, x0),
        markers::OUTCOME => s.emit(&outcome_line(core, m.iteration(core), x0)),
        markers::CORE_ID => {
            m.summary.core_ids += 1;
            if x0 != core as u64 {
                m.summary.attribution_errors += 1;
                s.emit(&format!(
                    "{} attribution core={core} claimed={x0}",
                    crate::report::PREFIX
                ));
            }
        }
        markers::TRACK_CODE => {
            m.track_range(x0, x1);
            s.track_pages(x0, x0.saturating_add(x1));
        }
        _ => {}
    }
}

register!(Sanitizer::default());
