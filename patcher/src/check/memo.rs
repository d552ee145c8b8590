//! Verdicts kept per slot, so that a block checked before is not interpreted again.
//!
//! A site republishes the same code over and over: a rollback, a control loop switched between
//! two laws, the stress tests' two templates (whose only difference from one publication to the
//! next is the version in their literal pool). Interpreting every path of such a block again
//! (most of [`check_block`](super::check_block)'s cost, and on a board the whole check runs
//! before every publication) gives the same answer each time, because [`verify`] is a pure
//! function of exactly these inputs:
//!
//! - the execution address and the length;
//! - which words are data, literal pools and words no path reaches ([`check_shape`]'s answer,
//!   which depends on every word, data words included, so it is recomputed for every block);
//! - every word that is not data: `verify` never reads a data word on a path it accepts (it
//!   refuses falling or branching into one, and loads from the pool give an unknown value);
//! - the [`Externals`] and the [`Policy`], compared by value.
//!
//! A [`Memo`] keeps, for each of `N` slots, the last [`WAYS`] blocks it accepted there with those
//! inputs (two: a site alternating between two versions, as a rollback does, meets both in every
//! slot), and answers from one only when all of them are equal; anything else (a first block, one
//! different word, another policy) runs the whole check. Refusals are never kept. The shape
//! rules run every time: they are cheap and they are what computes the data words.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use super::{CheckError, Checked, DataWords, Externals, Policy, check_shape, verify, word_at};

/// The longest block a [`Memo`] keeps (longer ones are always checked in full): 64 words, so
/// that the data words fit one `u64` and each entry stays small.
pub const MEMO_BYTES: usize = 256;
const WORDS: usize = MEMO_BYTES / 4;
/// Accepted blocks kept per slot, the most recently used first.
pub const WAYS: usize = 2;

/// One accepted block and everything its verdict depended on.
struct Entry {
    exec: u64,
    len: usize,
    /// Bit `i`: word `i` is data (not compared).
    data: u64,
    words: [u32; WORDS],
    ext: Externals<'static>,
    policy: Policy<'static>,
    insns: u32,
}

/// The last accepted blocks of each of `N` slots ([module documentation](self)).
pub struct Memo<const N: usize> {
    entries: [Mutex<[Option<Entry>; WAYS]>; N],
    /// Blocks interpreted in full (not answered from an entry).
    interpreted: AtomicU64,
}

impl<const N: usize> Default for Memo<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Memo<N> {
    /// A memo that knows nothing yet.
    pub const fn new() -> Self {
        Self {
            entries: [const { Mutex::new([const { None }; WAYS]) }; N],
            interpreted: AtomicU64::new(0),
        }
    }

    /// How many blocks were interpreted in full so far (the rest were answered from an entry).
    pub fn interpreted(&self) -> u64 {
        self.interpreted.load(Ordering::Relaxed)
    }

    /// [`check_block`](super::check_block) for the block about to be written to slot `slot`,
    /// answered from the slot's last accepted block when every input the interpretation reads
    /// is equal. A `slot` of `N` or more is checked in full and kept nowhere; so is a block
    /// checked while another core holds the same slot's entry.
    pub fn check_block<'a>(
        &self,
        slot: usize,
        code: &'a [u8],
        exec_addr: u64,
        max_len: usize,
        ext: &Externals<'static>,
        policy: &Policy<'static>,
    ) -> Result<Checked<'a>, CheckError> {
        let data = check_shape(code, exec_addr, max_len, ext)?;
        if !policy.verify {
            // The test door: shape only; the budget stands for the unknown count.
            return Ok(Checked {
                code,
                exec_addr,
                insns: policy.max_insns,
            });
        }
        let mut ways = self.entries.get(slot).and_then(Mutex::try_lock);
        let mask = (code.len() <= MEMO_BYTES).then(|| low_mask(&data));
        if let (Some(ways), Some(mask)) = (ways.as_deref_mut(), mask) {
            let hit = ways.iter().enumerate().find_map(|(i, e)| {
                let e = e.as_ref()?;
                e.matches(code, exec_addr, mask, ext, policy)
                    .then_some((i, e.insns))
            });
            if let Some((i, insns)) = hit {
                ways[..=i].rotate_right(1);
                return Ok(Checked {
                    code,
                    exec_addr,
                    insns,
                });
            }
        }
        self.interpreted.fetch_add(1, Ordering::Relaxed);
        let insns = verify::verify(code, exec_addr, &data, ext, policy)?;
        if let (Some(ways), Some(mask)) = (ways.as_deref_mut(), mask) {
            let mut words = [0; WORDS];
            for (i, w) in words.iter_mut().enumerate().take(code.len() / 4) {
                *w = word_at(code, i);
            }
            ways.rotate_right(1);
            ways[0] = Some(Entry {
                exec: exec_addr,
                len: code.len(),
                data: mask,
                words,
                ext: *ext,
                policy: *policy,
                insns,
            });
        }
        Ok(Checked {
            code,
            exec_addr,
            insns,
        })
    }
}

impl Entry {
    fn matches(
        &self,
        code: &[u8],
        exec: u64,
        data: u64,
        ext: &Externals<'_>,
        policy: &Policy<'_>,
    ) -> bool {
        self.exec == exec
            && self.len == code.len()
            && self.data == data
            && (0..code.len() / 4)
                .all(|i| data & (1 << i) != 0 || self.words[i] == word_at(code, i))
            && self.ext == *ext
            && self.policy == *policy
    }
}

/// The data words of a block of at most 64 words, as one mask.
fn low_mask(data: &DataWords) -> u64 {
    data.0[0]
}
