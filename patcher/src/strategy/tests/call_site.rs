//! Host tests of call sites: every word of a key rewritten, one maintenance pass and one IPI
//! round for all of them, and every refusal made before anything is written.

use core::time::Duration;
use std::boxed::Box;
use std::vec::Vec;

use super::{CallSite, CallSiteKey, CallSiteRecord};
use crate::arena::{Arena, CodeBlock, Region};
use crate::cache::fake::FakeCache;
use crate::cache::{CodeSync, Op, SyncPolicy};
use crate::check::{Externals, Policy, check_block};
use crate::insn;
use crate::platform::fake::FakePlatform;
use crate::platform::{CoreId, CoreSet, IpiError};
use crate::record::{Event, Recorder};
use crate::strategy::{Env, PublishError, Strategy};

use Event::{Cache, IpiAck, IpiEnter, IpiSend};
use Op::{DcCvau, DsbIsh, DsbIshst, IcIvau, Isb};

/// Cortex-A72-like CTR_EL0: 64-byte lines, no IDC, no DIC.
const CTR: u64 = 0x8444_c004;
/// The same with IDC and DIC set.
const CTR_IDC_DIC: u64 = CTR | (1 << 28) | (1 << 29);
/// The block's executable address.
const EXEC: usize = 0x8000_0000;
/// Where the callers' text starts (executable view).
const TEXT: usize = 0x7f00_0000;
const T: Duration = Duration::from_millis(1);
const KEY: u64 = 0x4242;

/// The callers' text as the writable view sees it, line aligned.
#[repr(C, align(64))]
struct Text([u32; 128]);

struct World {
    rec: &'static Recorder,
    sync: &'static CodeSync<FakeCache<'static>>,
    block: CodeBlock<'static>,
    text: &'static mut Text,
}

fn world(ctr: u64) -> World {
    let rec: &'static Recorder = Box::leak(Box::new(Recorder::new()));
    let sync = Box::leak(Box::new(CodeSync::new(
        FakeCache::new(rec, ctr, 0),
        SyncPolicy::from_registers(ctr, 0),
    )));
    let mem: &'static mut [u32] = Box::leak(std::vec![0u32; 16].into_boxed_slice());
    let region = Region {
        write_base: mem.as_mut_ptr() as usize,
        exec_base: EXEC,
        slot_size: 64,
        slot_count: 1,
    };
    // SAFETY: the write alias is leaked memory used only through this arena; the exec alias is
    // seen only by the fake backend.
    let arena: &'static Arena<1> = Box::leak(Box::new(unsafe { Arena::new(region) }.unwrap()));
    let mut w = arena.alloc().unwrap();
    let code: Vec<u8> = [insn::nop(), insn::ret(insn::Reg::LR).unwrap()]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let code: &'static [u8] = Box::leak(code.into_boxed_slice());
    w.write(&check_block(code, w.exec_addr(), 64, &Externals::NONE, &Policy::DEFAULT).unwrap())
        .unwrap();
    let block = w.publish().unwrap();
    // Every call site starts as `BL .+0x40` (its old target): in the CMODX set.
    let text = Box::leak(Box::new(Text([insn::bl(0x40).unwrap(); 128])));
    rec.clear();
    World {
        rec,
        sync,
        block,
        text,
    }
}

impl World {
    fn env<'a>(
        &'a self,
        p: &'a FakePlatform<'static>,
    ) -> Env<'a, FakePlatform<'static>, FakeCache<'static>> {
        Env {
            platform: p,
            sync: self.sync,
            timeout: T,
        }
    }

    fn events(&self) -> Vec<Event> {
        self.rec.events().iter().copied().collect()
    }

    fn text_w(&self) -> usize {
        self.text.0.as_ptr() as usize
    }

    /// The key over `records`, whose words are in `self.text` at `TEXT + offset`.
    fn key(&self, records: &[CallSiteRecord]) -> CallSiteKey {
        let records: &'static [CallSiteRecord] = Box::leak(records.to_vec().into_boxed_slice());
        // SAFETY: the words are in leaked memory written only through this key; the
        // executable view is seen only by the fake backend.
        unsafe { CallSiteKey::new(records, KEY, self.text_w().wrapping_sub(TEXT)) }.unwrap()
    }

    fn word(&self, off: usize) -> u32 {
        self.text.0[off / 4]
    }
}

fn rec(off: usize, key: u64) -> CallSiteRecord {
    CallSiteRecord {
        word: (TEXT + off) as u64,
        key,
    }
}

fn cores(list: &[u8]) -> CoreSet {
    list.iter().fold(CoreSet::EMPTY, |s, &c| s.with(CoreId(c)))
}

fn ipi_round(targets: &[u8]) -> Vec<Event> {
    let mut v = std::vec![IpiSend(cores(targets))];
    for &c in targets {
        v.extend([IpiEnter(CoreId(c)), IpiAck(CoreId(c))]);
    }
    v
}

/// Three call sites of the key (two on one line, one on another) and one of another key: every
/// word of the key becomes `BL block` with its own offset, in one pass and one IPI round.
#[test]
fn every_word_of_the_key_in_one_pass_and_one_round() {
    let w = world(CTR);
    let p = FakePlatform::new(w.rec, 3);
    let key = w.key(&[rec(0x00, KEY), rec(0x08, 9), rec(0x04, KEY), rec(0x100, KEY)]);
    assert_eq!(key.count(), 3);
    CallSite::new().publish(&w.env(&p), &key, &w.block).unwrap();
    for off in [0x00, 0x04, 0x100] {
        let want = insn::bl(EXEC as i64 - (TEXT + off) as i64).unwrap();
        assert_eq!(w.word(off), want, "word at +{off:#x}");
    }
    assert_eq!(w.word(0x08), insn::bl(0x40).unwrap(), "another key's word");
    let tw = w.text_w();
    let mut want = std::vec![
        Cache(DcCvau(w.block.write_addr() & !63)),
        Cache(DsbIsh),
        Cache(IcIvau(EXEC)),
        Cache(DsbIsh),
    ];
    // Every core synchronizes once the block is fresh, before any word can lead to it.
    want.extend(ipi_round(&[1, 2]));
    // One pass: each line once, one DSB per side.
    want.extend([
        Cache(DcCvau(tw)),
        Cache(DcCvau(tw + 0x100)),
        Cache(DsbIsh),
        Cache(IcIvau(TEXT)),
        Cache(IcIvau(TEXT + 0x100)),
        Cache(DsbIsh),
    ]);
    want.extend(ipi_round(&[1, 2]));
    want.push(Cache(Isb));
    assert_eq!(w.events(), want);
}

/// One word of two out of `BL` range: refused before the block is synchronized, any IPI is
/// sent or any word written, the word in range included.
#[test]
fn a_word_out_of_range_refuses_before_anything_is_written() {
    let w = world(CTR);
    let p = FakePlatform::new(w.rec, 3);
    let key = w.key(&[rec(0x00, KEY), rec(0x100, KEY)]);
    // In range of the first word (BL reaches -128 MiB), 4 bytes too far for the second.
    let target = (TEXT + 0x100 - (128 << 20) - 4) as u64;
    assert!(insn::bl(target as i64 - TEXT as i64).is_ok());
    assert!(matches!(
        CallSite::new().retarget(&w.env(&p), &key, target),
        Err(PublishError::Encode(insn::EncodeError::OutOfRange { .. }))
    ));
    assert!(key.current().all(|word| word == insn::bl(0x40).unwrap()));
    assert_eq!(w.events(), []);
    // Through `publish`, the block is not even synchronized.
    let far = w.key(&[rec(0x00, KEY)]);
    let far_block_key = {
        let records: &'static [CallSiteRecord] =
            Box::leak(Box::new([CallSiteRecord { word: (EXEC + (1 << 28)) as u64, key: KEY }]));
        // SAFETY: the writable view is `text`'s first word; the executable one is fake.
        unsafe { CallSiteKey::new(records, KEY, w.text_w().wrapping_sub(EXEC + (1 << 28))) }
            .unwrap()
    };
    assert!(matches!(
        CallSite::new().publish(&w.env(&p), &far_block_key, &w.block),
        Err(PublishError::Encode(insn::EncodeError::OutOfRange { .. }))
    ));
    assert_eq!(w.events(), []);
    assert!(far.current().all(|word| word == insn::bl(0x40).unwrap()));
}

/// A word outside the CMODX set, or misaligned: refused, nothing written or maintained.
#[test]
fn a_word_outside_the_cmodx_set_is_refused() {
    let w = world(CTR);
    let p = FakePlatform::new(w.rec, 3);
    let ldr = insn::ldr_literal(insn::Width::X, insn::Reg::x(0), 8).unwrap();
    w.text.0[1] = ldr;
    let key = w.key(&[rec(0x00, KEY), rec(0x04, KEY)]);
    assert_eq!(
        CallSite::new().publish(&w.env(&p), &key, &w.block),
        Err(PublishError::NotCmodxSafe {
            old: ldr,
            new: insn::bl(EXEC as i64 - (TEXT + 4) as i64).unwrap()
        })
    );
    assert_eq!(w.word(0), insn::bl(0x40).unwrap(), "the first word was not written");
    assert_eq!(w.events(), []);
    let records: &'static [CallSiteRecord] = Box::leak(Box::new([rec(0x02, KEY)]));
    // SAFETY: never used: a misaligned word is refused.
    let misaligned = unsafe { CallSiteKey::new(records, KEY, 0) };
    assert_eq!(
        misaligned.err(),
        Some(PublishError::Misaligned { addr: TEXT + 2 })
    );
}

/// A first-round timeout leaves every word as it was; a second-round one says the new block is
/// reachable and names the core.
#[test]
fn timeouts_say_what_is_reachable() {
    let w = world(CTR);
    let p = FakePlatform::new(w.rec, 3).with_unresponsive(cores(&[2]));
    let key = w.key(&[rec(0x00, KEY), rec(0x100, KEY)]);
    let err = CallSite::new()
        .publish(&w.env(&p), &key, &w.block)
        .unwrap_err();
    assert!(matches!(err, PublishError::Ipi(IpiError::Timeout { missing }) if missing == cores(&[2])));
    assert!(!err.block_reachable());
    assert!(key.current().all(|word| word == insn::bl(0x40).unwrap()));
    let err = CallSite::new()
        .retarget(&w.env(&p), &key, EXEC as u64)
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Unsynchronized {
            missing: cores(&[2])
        }
    );
    assert!(err.block_reachable());
    assert_eq!(w.word(0x100), insn::bl(EXEC as i64 - (TEXT + 0x100) as i64).unwrap());
}

/// The negative control has no IPI round after the words (what the sanitizer must flag).
#[test]
fn the_broken_variant_skips_the_round() {
    let w = world(CTR);
    let p = FakePlatform::new(w.rec, 3);
    let key = w.key(&[rec(0x00, KEY)]);
    CallSite::without_ipi_round()
        .retarget(&w.env(&p), &key, EXEC as u64)
        .unwrap();
    let tw = w.text_w();
    assert_eq!(
        w.events(),
        [
            Cache(DcCvau(tw)),
            Cache(DsbIsh),
            Cache(IcIvau(TEXT)),
            Cache(DsbIsh),
            Cache(Isb)
        ]
    );
}

/// With IDC and DIC the pass is one `DSB ISHST`; with no words it is nothing.
#[test]
fn idc_and_dic_and_no_words() {
    let w = world(CTR_IDC_DIC);
    let p = FakePlatform::new(w.rec, 2);
    let key = w.key(&[rec(0x00, KEY), rec(0x100, KEY)]);
    CallSite::new()
        .retarget(&w.env(&p), &key, EXEC as u64)
        .unwrap();
    let mut want = std::vec![Cache(DsbIshst)];
    want.extend(ipi_round(&[1]));
    want.push(Cache(Isb));
    assert_eq!(w.events(), want);
    w.rec.clear();
    // SAFETY: no word: nothing is ever accessed.
    unsafe { w.sync.sync_words(core::iter::empty()) };
    assert_eq!(w.events(), []);
}
