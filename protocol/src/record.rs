//! Typed records: every result the host consumes from a kernel run.
//!
//! The kernel emits each [`Record`] through one `defmt` call site, [`DEFMT_FORMAT`] with the
//! encoded bytes as its one argument, beside a log line for people. xtask recognizes frames of
//! exactly that format and decodes the bytes here, so no host check parses a sentence: logs stay
//! logs, for people, and a renamed field is a compile error on both sides.
//!
//! ```text
//! record = tag u8 | fields (fixed per tag, little-endian) | crc32 of tag and fields, u32
//! ```
//!
//! A record that is damaged, cut short, too long or of an unknown tag is a [`DecodeError`]
//! naming what was expected, never a silent skip.

use crate::live::{FrameError, Refusal};
use core::fmt;

/// The format string of the kernel's one record call site (`kernel/src/report.rs`).
pub const DEFMT_FORMAT: &str = "record {=[u8]}";
/// The literal text before the argument in [`DEFMT_FORMAT`].
pub const DEFMT_PREFIX: &str = "record ";
/// Bytes in a name field (site, test and strategy names), NUL padded.
pub const NAME_BYTES: usize = 32;
/// Bytes of a kernel's build id (the linker's `--build-id=sha1`).
pub const BUILD_ID_BYTES: usize = 20;
/// The build id in an ELF note `namesz | descsz | type | name (padded to 4) | desc`, if the note
/// is GNU's build id (type 3, name `GNU\0`) of [`BUILD_ID_BYTES`] bytes: what the kernel reads
/// from its own image to announce in [`Record::Image`].
pub fn build_id_from_note(note: &[u8]) -> Option<[u8; BUILD_ID_BYTES]> {
    let word = |i: usize| -> Option<usize> {
        let b = note.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (namesz, descsz, kind) = (word(0)?, word(1)?, word(2)?);
    let name = note.get(12..12 + namesz)?;
    if kind != 3 || name != b"GNU\0" || descsz != BUILD_ID_BYTES {
        return None;
    }
    let desc = 12 + namesz.next_multiple_of(4);
    note.get(desc..desc + BUILD_ID_BYTES)?.try_into().ok()
}

/// Bytes of the checksum at the end of every record.
const CRC_BYTES: usize = 4;
/// The longest encoded record: an [`encode`](Record::encode) buffer of this size always fits.
pub const MAX_LEN: usize = 1 + 96 + CRC_BYTES;

/// A short name (a site, a test or a strategy), at most [`NAME_BYTES`] bytes of UTF-8.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; NAME_BYTES],
    len: u8,
}

impl Name {
    /// `text`, cut at the last character boundary within [`NAME_BYTES`] bytes (site names are at
    /// most `live::MAX_NAME` and test names `testinfo::NAME_LEN` bytes, so both fit whole; the
    /// kernel checks its strategy names fit).
    pub const fn new(text: &str) -> Self {
        let src = text.as_bytes();
        let mut len = if src.len() < NAME_BYTES {
            src.len()
        } else {
            NAME_BYTES
        };
        // Never cut a character: back up over continuation bytes.
        while len < src.len() && len > 0 && (src[len] & 0xc0) == 0x80 {
            len -= 1;
        }
        let mut bytes = [0u8; NAME_BYTES];
        let mut i = 0;
        while i < len {
            bytes[i] = src[i];
            i += 1;
        }
        Self {
            bytes,
            len: len as u8,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` cut at a character boundary, or checked by `decode`.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    fn decode(field: &[u8]) -> Result<Self, DecodeError> {
        let len = field.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES);
        if field[len..].iter().any(|&b| b != 0) || core::str::from_utf8(&field[..len]).is_err() {
            return Err(DecodeError::BadName);
        }
        let mut bytes = [0u8; NAME_BYTES];
        bytes.copy_from_slice(field);
        Ok(Self {
            bytes,
            len: len as u8,
        })
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a patch was rolled back ([`Record::PatchFault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FaultCause {
    /// A synchronous exception with its `ELR` in the patch's block.
    Exception = 0,
    /// The call ran past its site's time budget (found by the loop's timer tick).
    Hang = 1,
}

impl FaultCause {
    /// The cause with this byte, if any.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Exception),
            1 => Some(Self::Hang),
            _ => None,
        }
    }
}

/// One result of a kernel run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Record {
    /// A kernel test finished: every check held, or one failed.
    TestVerdict {
        /// The test.
        test: Name,
        /// Whether it passed.
        passed: bool,
    },
    /// The test expects the next exception report to name this class and address (its run then
    /// passes with the fault exit status).
    ExpectFault {
        /// The exception class, `ESR_EL1[31:26]`.
        ec: u8,
        /// The instruction that will fault.
        elr: u64,
    },
    /// An unexpected exception was taken; the run ends with the fault status.
    Exception {
        /// The core it was taken on.
        core: u8,
        /// The exception class.
        ec: u8,
        /// `ESR_EL1`.
        esr: u64,
        /// `ELR_EL1`.
        elr: u64,
        /// `FAR_EL1`.
        far: u64,
    },
    /// The run ended with this exit status and no semihosting to report it to (a board's path:
    /// the kernel halts).
    RunEnded {
        /// The exit status it would have reported.
        status: u32,
    },
    /// The running kernel's build id, sent first at boot: the host checks it is the ELF it
    /// decodes the run with.
    Image {
        /// The linker's build id (its `.note.gnu.build-id` descriptor).
        build_id: [u8; BUILD_ID_BYTES],
    },
    /// One of the kernel's publication strategies: number `index` of `count`, in report order.
    ///
    /// The kernel announces all of them before any record that names one (the demo's and the
    /// bench's), so the host expects a result for each strategy this kernel has, and a new
    /// strategy needs no change here or in xtask.
    Strategy {
        /// Its place in report order, from 0.
        index: u8,
        /// How many strategies the kernel has.
        count: u8,
        /// Its name (`ipi-sync`, ...), as records that report on it name it.
        name: Name,
    },
    /// `bench-entry`: instructions of a direct call (`BLR; RET`), the baseline.
    BenchDirect {
        /// Retired instructions per call.
        insns: u64,
    },
    /// `bench-entry`: instructions per call through one strategy's site.
    BenchEntry {
        /// The strategy.
        strategy: Name,
        /// Retired instructions per call.
        insns: u64,
    },
    /// `bench-strategy`: one strategy's host-dependent figures, in QEMU's virtual time
    /// (informative: under round-robin `-icount` they mostly measure when QEMU switches vCPUs).
    BenchResult {
        /// The strategy.
        strategy: Name,
        /// Cores in the run (one producer, the rest consumers).
        cores: u32,
        /// From the call to publish until every consumer ran the new version.
        latency_ns: u64,
        /// Back-to-back publications per virtual second.
        throughput_per_s: u64,
    },
    /// `bench-strategy`: one strategy's costs as properties of Graft, in instructions and
    /// iterations, over `publications` spaced publications.
    BenchCost {
        /// The strategy.
        strategy: Name,
        /// Cores in the run (one producer, the rest consumers).
        cores: u32,
        /// Publications measured.
        publications: u32,
        /// Extra instructions the publications added to the consumers' iterations, summed over
        /// every consumer (IRQ handlers included).
        disturb_insns: u64,
        /// The largest extra one publication added to one consumer iteration.
        disturb_max_insns: u64,
        /// IRQ exceptions the consumers took in that time, summed over every consumer.
        exception_entries: u64,
        /// The fewest instructions the producer itself ran for one publication (its waits for
        /// other cores excluded).
        producer_insns: u64,
        /// The most calls one consumer made to an older version after `publish` had returned.
        latency_iterations: u64,
    },
    /// `bench-strategy`: the producer's own instructions for one publication to every consumer.
    BenchPublish {
        /// The strategy.
        strategy: Name,
        /// Consumers published to.
        consumers: u32,
        /// Retired instructions.
        insns: u64,
    },
    /// The demo's figures for one strategy.
    DemoResult {
        /// The strategy.
        strategy: Name,
        /// Versions published.
        patches: u64,
        /// Loop iterations over every loop.
        iterations: u64,
        /// Deadline misses.
        misses: u64,
        /// The largest extra response time a publication caused.
        extra_max_ns: u64,
        /// The mean extra response time.
        extra_mean_ns: u64,
        /// Mean absolute tracking error, degrees C.
        mean_abs_error_c: f32,
        /// Largest absolute tracking error, degrees C.
        max_abs_error_c: f32,
    },
    /// `live`: version 0 is published and frames are welcome.
    LiveReady {
        /// The site the session patches first.
        site: Name,
    },
    /// `live`: a frame's block was checked, placed and published.
    LiveApplied {
        /// The site.
        site: Name,
        /// Bytes in the block.
        bytes: u32,
        /// The slot's executable address.
        slot: u64,
    },
    /// `live`: a well-formed frame was refused; nothing was written.
    LiveRefused {
        /// The site it named.
        site: Name,
        /// Why.
        reason: Refusal,
    },
    /// `live`: a frame was damaged or malformed; nothing was attempted.
    LiveBadFrame {
        /// What was wrong with it.
        error: FrameError,
    },
    /// `live`: a consumer core now runs another version.
    LiveRuns {
        /// The core.
        core: u8,
        /// The version its calls return.
        version: u64,
        /// Whether the block's checksum of its own code words was right.
        checksum_ok: bool,
    },
    /// A catalogue mirror's word under watch: the sanitized run's stale reports of this word, by
    /// this core, are the ones its verdict counts.
    LitmusWatch {
        /// The rewritten word's executable address.
        va: u64,
        /// The core that runs it.
        core: u8,
    },
    /// A patch faulted or ran past its site's time budget; the site was rolled back to the code
    /// it ran before (fault containment, `kernel/src/patch/contain.rs`).
    PatchFault {
        /// The site.
        site: Name,
        /// The core whose call faulted.
        core: u8,
        /// What happened.
        cause: FaultCause,
        /// The site's publication count when it faulted: the version that faulted.
        version: u64,
        /// The publication count whose code the rollback put back.
        restored: u64,
        /// `ESR_EL1` (0 for a hang).
        esr: u64,
        /// Where the patch was: `ELR_EL1`.
        elr: u64,
        /// `FAR_EL1` (0 for a hang).
        far: u64,
    },
    /// A stack overflowed into its guard page; the core that overflowed stops, the others go on.
    StackOverflow {
        /// The core that took the fault.
        core: u8,
        /// The core whose stack the guard page protects.
        owner: u8,
        /// Whether it is that core's exception stack (else its own stack).
        exception_stack: bool,
        /// `ELR_EL1`.
        elr: u64,
        /// `FAR_EL1`: the address in the guard page.
        far: u64,
    },
    /// `live`: a slot is reserved for a staged block (two-phase patching).
    LiveStaged {
        /// The site.
        site: Name,
        /// The staging's nonce: every later frame of it names it, and no other staging gets it.
        nonce: u64,
        /// The reserved slot's executable address: the address to link the block at.
        addr: u64,
        /// Bytes staged for.
        len: u32,
    },
    /// `live`: a data frame's bytes were taken.
    LiveReceived {
        /// The staging's nonce.
        nonce: u64,
        /// Bytes received so far.
        received: u32,
    },
    /// `live`: a staging was cancelled; its slot is free.
    LiveCancelled {
        /// The site.
        site: Name,
        /// The staging's nonce.
        nonce: u64,
    },
    /// `live`: a staged block's signature verified and the block passed the checks at its
    /// address; it can be activated.
    LiveSealed {
        /// The site.
        site: Name,
        /// The staging's nonce.
        nonce: u64,
    },
    /// `live`: which patches this image admits (`crate::signing::Admission`), announced before
    /// `LiveReady`.
    PatchKey {
        /// The public key staged patches must be signed with (zeros when `signed` is false).
        key: [u8; crate::signing::PUBLIC_KEY_BYTES],
        /// Whether the image embeds a key.
        signed: bool,
        /// Whether it was built with the development switch (unsigned patches admitted).
        development: bool,
    },
    /// `live`, answering a list frame: one site's state (one record per site, in table order).
    SiteState {
        /// The site.
        site: Name,
        /// The strategy it publishes with.
        strategy: Name,
        /// The publication count that made its current code current (0: none yet).
        version: u64,
        /// CRC-32 of its current code.
        hash: u32,
        /// The previous code's publication count (0: none kept).
        previous_version: u64,
        /// CRC-32 of the previous code.
        previous_hash: u32,
        /// Whether the previous block is kept in its slot, so a rollback can lead back to it.
        rollback: bool,
        /// Bytes staged for it now (0: no staging open).
        staged: u32,
    },
    /// `live`, answering a list frame: one control loop's figures so far.
    LoopStats {
        /// The core that runs it.
        core: u8,
        /// Iterations run.
        iterations: u64,
        /// Deadlines missed (a step ending after the next tick was due, or a skipped period).
        misses: u64,
        /// `|temperature - set-point|` at its last iteration, degrees C.
        error_c: f32,
    },
    /// `live`: the end of a list frame's answer.
    ListEnd {
        /// Sites listed.
        sites: u8,
        /// Arena slots free now.
        free_slots: u8,
        /// Arena bytes free now.
        free_bytes: u32,
    },
    /// `live`: a site was led back to its previous code with one publication.
    LiveRolledBack {
        /// The site.
        site: Name,
        /// The publication count now.
        version: u64,
        /// The publication count that first made the restored code current.
        restored: u64,
    },
    /// `live`: a staging got no frame within its expiry (its host went away); its slot is
    /// free.
    LiveExpired {
        /// The site.
        site: Name,
        /// The staging's nonce.
        nonce: u64,
    },
    /// `live`: a control loop's law now records another version.
    LiveLawRuns {
        /// The core.
        core: u8,
        /// The version the law recorded.
        version: u64,
    },
    /// `live`: the host ended the session.
    LiveEnded {
        /// Frames applied.
        applied: u32,
        /// Frames refused or damaged.
        refused: u32,
    },
}

/// Why bytes are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all.
    Empty,
    /// The first byte is no record's tag.
    BadTag(u8),
    /// Fewer bytes than a record with this tag has.
    Short {
        /// The tag.
        tag: u8,
        /// Bytes a record with this tag has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// More bytes than a record with this tag has.
    Long {
        /// The tag.
        tag: u8,
        /// Bytes a record with this tag has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The checksum does not match: the record was damaged on the way.
    Crc {
        /// The checksum the record carried.
        sent: u32,
        /// The checksum of what arrived.
        computed: u32,
    },
    /// A name field is not NUL-padded UTF-8.
    BadName,
    /// A flag field is neither 0 nor 1.
    BadFlag(u8),
    /// A refusal reason holds no reason's number (or a field too wide for it).
    UnknownRefusal(u8),
    /// A frame error holds no error's number.
    UnknownFrameError(u8),
    /// A fault cause holds no cause's number.
    UnknownFaultCause(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("empty record"),
            Self::BadTag(t) => write!(f, "bad record tag {t}"),
            Self::UnknownFaultCause(c) => write!(f, "unknown fault cause {c}"),
            Self::Short { tag, expected, got } => {
                write!(
                    f,
                    "short record (tag {tag}): expected {expected} bytes, got {got}"
                )
            }
            Self::Long { tag, expected, got } => {
                write!(
                    f,
                    "long record (tag {tag}): expected {expected} bytes, got {got}"
                )
            }
            Self::Crc { sent, computed } => write!(
                f,
                "record CRC mismatch: it carried {sent:#010x}, its bytes give {computed:#010x}"
            ),
            Self::BadName => f.write_str("a record's name field is not NUL-padded UTF-8"),
            Self::BadFlag(v) => write!(f, "a record's flag is {v}, expected 0 or 1"),
            Self::UnknownRefusal(n) => write!(f, "unknown refusal reason {n} in a record"),
            Self::UnknownFrameError(n) => write!(f, "unknown frame error {n} in a record"),
        }
    }
}

mod codec;
mod text;

#[cfg(test)]
mod tests;
