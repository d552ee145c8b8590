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

use crate::crc32::crc32;
use crate::live::{FrameError, Refusal};
use crate::names::Strategy;
use core::fmt;

/// The format string of the kernel's one record call site (`kernel/src/report.rs`).
pub const DEFMT_FORMAT: &str = "record {=[u8]}";
/// The literal text before the argument in [`DEFMT_FORMAT`].
pub const DEFMT_PREFIX: &str = "record ";
/// Bytes in a name field (site and test names), NUL padded.
pub const NAME_BYTES: usize = 32;
/// Bytes of the checksum at the end of every record.
const CRC_BYTES: usize = 4;
/// The longest encoded record: an [`encode`](Record::encode) buffer of this size always fits.
pub const MAX_LEN: usize = 1 + 64 + CRC_BYTES;

/// A short name (a site or a test), at most [`NAME_BYTES`] bytes of UTF-8.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; NAME_BYTES],
    len: u8,
}

impl Name {
    /// `text`, cut at the last character boundary within [`NAME_BYTES`] bytes (site names are at
    /// most `live::MAX_NAME` and test names `testinfo::NAME_LEN` bytes, so both fit whole).
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
    /// `bench-entry`: instructions of a direct call (`BLR; RET`), the baseline.
    BenchDirect {
        /// Retired instructions per call.
        insns: u64,
    },
    /// `bench-entry`: instructions per call through one strategy's site.
    BenchEntry {
        /// The strategy.
        strategy: Strategy,
        /// Retired instructions per call.
        insns: u64,
    },
    /// `bench-strategy`: one strategy's effect on the running consumers (virtual nanoseconds).
    BenchResult {
        /// The strategy.
        strategy: Strategy,
        /// Cores in the run (one producer, the rest consumers).
        cores: u32,
        /// The largest extra time one publication added to one consumer iteration.
        disturb_max_ns: u64,
        /// The mean of that extra time.
        disturb_mean_ns: u64,
        /// From the call to publish until every consumer ran the new version.
        latency_ns: u64,
        /// Back-to-back publications per virtual second.
        throughput_per_s: u64,
    },
    /// `bench-strategy`: the producer's own instructions for one publication to every consumer.
    BenchPublish {
        /// The strategy.
        strategy: Strategy,
        /// Consumers published to.
        consumers: u32,
        /// Retired instructions.
        insns: u64,
    },
    /// The demo's figures for one strategy.
    DemoResult {
        /// The strategy.
        strategy: Strategy,
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
    /// A strategy field holds no strategy's number.
    UnknownStrategy(u8),
    /// A name field is not NUL-padded UTF-8.
    BadName,
    /// A flag field is neither 0 nor 1.
    BadFlag(u8),
    /// A refusal reason holds no reason's number (or a field too wide for it).
    UnknownRefusal(u8),
    /// A frame error holds no error's number.
    UnknownFrameError(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("empty record"),
            Self::BadTag(t) => write!(f, "bad record tag {t}"),
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
            Self::UnknownStrategy(n) => write!(f, "unknown strategy number {n} in a record"),
            Self::BadName => f.write_str("a record's name field is not NUL-padded UTF-8"),
            Self::BadFlag(v) => write!(f, "a record's flag is {v}, expected 0 or 1"),
            Self::UnknownRefusal(n) => write!(f, "unknown refusal reason {n} in a record"),
            Self::UnknownFrameError(n) => write!(f, "unknown frame error {n} in a record"),
        }
    }
}

/// Tags, in one place: the byte each record starts with.
mod tag {
    pub const TEST_VERDICT: u8 = 1;
    pub const EXPECT_FAULT: u8 = 2;
    pub const EXCEPTION: u8 = 3;
    pub const RUN_ENDED: u8 = 4;
    pub const BENCH_DIRECT: u8 = 10;
    pub const BENCH_ENTRY: u8 = 11;
    pub const BENCH_RESULT: u8 = 12;
    pub const BENCH_PUBLISH: u8 = 13;
    pub const DEMO_RESULT: u8 = 20;
    pub const LIVE_READY: u8 = 30;
    pub const LIVE_APPLIED: u8 = 31;
    pub const LIVE_REFUSED: u8 = 32;
    pub const LIVE_BAD_FRAME: u8 = 33;
    pub const LIVE_RUNS: u8 = 34;
    pub const LIVE_ENDED: u8 = 35;
}

/// Field bytes of a record with `tag`, None for an unknown tag.
const fn body_len(t: u8) -> Option<usize> {
    Some(match t {
        tag::TEST_VERDICT => NAME_BYTES + 1,
        tag::EXPECT_FAULT => 1 + 8,
        tag::EXCEPTION => 1 + 1 + 8 * 3,
        tag::RUN_ENDED => 4,
        tag::BENCH_DIRECT => 8,
        tag::BENCH_ENTRY => 1 + 8,
        tag::BENCH_RESULT => 1 + 4 + 8 * 4,
        tag::BENCH_PUBLISH => 1 + 4 + 8,
        tag::DEMO_RESULT => 1 + 8 * 5 + 4 * 2,
        tag::LIVE_READY => NAME_BYTES,
        tag::LIVE_APPLIED => NAME_BYTES + 4 + 8,
        tag::LIVE_REFUSED => NAME_BYTES + 1 + 8 + 8,
        tag::LIVE_BAD_FRAME => 1 + 4 + 4,
        tag::LIVE_RUNS => 1 + 8 + 1,
        tag::LIVE_ENDED => 4 + 4,
        _ => return None,
    })
}

/// Every tag's body fits [`MAX_LEN`].
const _: () = {
    let mut t = 0u8;
    loop {
        if let Some(n) = body_len(t) {
            assert!(1 + n + CRC_BYTES <= MAX_LEN);
        }
        if t == u8::MAX {
            break;
        }
        t += 1;
    }
};

/// Writes fields in order.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.bytes(&v.to_le_bytes());
    }
    fn name(&mut self, n: &Name) {
        self.bytes(&n.bytes);
    }
}

/// Reads fields in order from a body whose length was checked.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.body[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8() {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadFlag(v)),
        }
    }
    fn strategy(&mut self) -> Result<Strategy, DecodeError> {
        let n = self.u8();
        Strategy::from_u8(n).ok_or(DecodeError::UnknownStrategy(n))
    }
    fn name(&mut self) -> Result<Name, DecodeError> {
        Name::decode(&self.take::<NAME_BYTES>())
    }
}

impl FrameError {
    fn to_parts(self) -> (u8, u32, u32) {
        let wide = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match self {
            Self::NameTooLong(n) => (0, wide(n), 0),
            Self::BlockTooLong(n) => (1, wide(n), 0),
            Self::NameNotUtf8 => (2, 0, 0),
            Self::Checksum { sent, computed } => (3, sent, computed),
        }
    }

    fn from_parts(kind: u8, a: u32, b: u32) -> Option<Self> {
        Some(match kind {
            0 => Self::NameTooLong(a as usize),
            1 => Self::BlockTooLong(a as usize),
            2 => Self::NameNotUtf8,
            3 => Self::Checksum {
                sent: a,
                computed: b,
            },
            _ => return None,
        })
    }
}

impl Record {
    fn tag(&self) -> u8 {
        match self {
            Self::TestVerdict { .. } => tag::TEST_VERDICT,
            Self::ExpectFault { .. } => tag::EXPECT_FAULT,
            Self::Exception { .. } => tag::EXCEPTION,
            Self::RunEnded { .. } => tag::RUN_ENDED,
            Self::BenchDirect { .. } => tag::BENCH_DIRECT,
            Self::BenchEntry { .. } => tag::BENCH_ENTRY,
            Self::BenchResult { .. } => tag::BENCH_RESULT,
            Self::BenchPublish { .. } => tag::BENCH_PUBLISH,
            Self::DemoResult { .. } => tag::DEMO_RESULT,
            Self::LiveReady { .. } => tag::LIVE_READY,
            Self::LiveApplied { .. } => tag::LIVE_APPLIED,
            Self::LiveRefused { .. } => tag::LIVE_REFUSED,
            Self::LiveBadFrame { .. } => tag::LIVE_BAD_FRAME,
            Self::LiveRuns { .. } => tag::LIVE_RUNS,
            Self::LiveEnded { .. } => tag::LIVE_ENDED,
        }
    }

    /// Bytes this record encodes to.
    pub fn len(&self) -> usize {
        // Every tag `tag()` returns has a body length.
        1 + body_len(self.tag()).unwrap_or(0) + CRC_BYTES
    }

    /// Always false: a record has at least its tag and checksum (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the record into `out` and returns its length.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than [`Record::len`] (a buffer of [`MAX_LEN`] bytes always fits).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        let n = self.len();
        assert!(out.len() >= n, "record buffer of {} bytes", out.len());
        let mut w = Writer { out, at: 0 };
        w.u8(self.tag());
        match *self {
            Self::TestVerdict { test, passed } => {
                w.name(&test);
                w.u8(passed.into());
            }
            Self::ExpectFault { ec, elr } => {
                w.u8(ec);
                w.u64(elr);
            }
            Self::Exception {
                core,
                ec,
                esr,
                elr,
                far,
            } => {
                w.u8(core);
                w.u8(ec);
                w.u64(esr);
                w.u64(elr);
                w.u64(far);
            }
            Self::RunEnded { status } => w.u32(status),
            Self::BenchDirect { insns } => w.u64(insns),
            Self::BenchEntry { strategy, insns } => {
                w.u8(strategy as u8);
                w.u64(insns);
            }
            Self::BenchResult {
                strategy,
                cores,
                disturb_max_ns,
                disturb_mean_ns,
                latency_ns,
                throughput_per_s,
            } => {
                w.u8(strategy as u8);
                w.u32(cores);
                w.u64(disturb_max_ns);
                w.u64(disturb_mean_ns);
                w.u64(latency_ns);
                w.u64(throughput_per_s);
            }
            Self::BenchPublish {
                strategy,
                consumers,
                insns,
            } => {
                w.u8(strategy as u8);
                w.u32(consumers);
                w.u64(insns);
            }
            Self::DemoResult {
                strategy,
                patches,
                iterations,
                misses,
                extra_max_ns,
                extra_mean_ns,
                mean_abs_error_c,
                max_abs_error_c,
            } => {
                w.u8(strategy as u8);
                for v in [patches, iterations, misses, extra_max_ns, extra_mean_ns] {
                    w.u64(v);
                }
                w.f32(mean_abs_error_c);
                w.f32(max_abs_error_c);
            }
            Self::LiveReady { site } => w.name(&site),
            Self::LiveApplied { site, bytes, slot } => {
                w.name(&site);
                w.u32(bytes);
                w.u64(slot);
            }
            Self::LiveRefused { site, reason } => {
                let (kind, a, b) = reason.to_parts();
                w.name(&site);
                w.u8(kind);
                w.u64(a);
                w.u64(b);
            }
            Self::LiveBadFrame { error } => {
                let (kind, a, b) = error.to_parts();
                w.u8(kind);
                w.u32(a);
                w.u32(b);
            }
            Self::LiveRuns {
                core,
                version,
                checksum_ok,
            } => {
                w.u8(core);
                w.u64(version);
                w.u8(checksum_ok.into());
            }
            Self::LiveEnded { applied, refused } => {
                w.u32(applied);
                w.u32(refused);
            }
        }
        let body = w.at;
        debug_assert_eq!(body + CRC_BYTES, n);
        let crc = crc32(&w.out[..body]);
        w.u32(crc);
        n
    }

    /// Reads one whole record: exactly the bytes [`Record::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        let &t = bytes.first().ok_or(DecodeError::Empty)?;
        let expected = 1 + body_len(t).ok_or(DecodeError::BadTag(t))? + CRC_BYTES;
        let got = bytes.len();
        if got < expected {
            return Err(DecodeError::Short {
                tag: t,
                expected,
                got,
            });
        }
        if got > expected {
            return Err(DecodeError::Long {
                tag: t,
                expected,
                got,
            });
        }
        let (data, tail) = bytes.split_at(expected - CRC_BYTES);
        let sent = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let computed = crc32(data);
        if sent != computed {
            return Err(DecodeError::Crc { sent, computed });
        }
        let mut r = Reader {
            body: &data[1..],
            at: 0,
        };
        Ok(match t {
            tag::TEST_VERDICT => Self::TestVerdict {
                test: r.name()?,
                passed: r.flag()?,
            },
            tag::EXPECT_FAULT => Self::ExpectFault {
                ec: r.u8(),
                elr: r.u64(),
            },
            tag::EXCEPTION => Self::Exception {
                core: r.u8(),
                ec: r.u8(),
                esr: r.u64(),
                elr: r.u64(),
                far: r.u64(),
            },
            tag::RUN_ENDED => Self::RunEnded { status: r.u32() },
            tag::BENCH_DIRECT => Self::BenchDirect { insns: r.u64() },
            tag::BENCH_ENTRY => Self::BenchEntry {
                strategy: r.strategy()?,
                insns: r.u64(),
            },
            tag::BENCH_RESULT => Self::BenchResult {
                strategy: r.strategy()?,
                cores: r.u32(),
                disturb_max_ns: r.u64(),
                disturb_mean_ns: r.u64(),
                latency_ns: r.u64(),
                throughput_per_s: r.u64(),
            },
            tag::BENCH_PUBLISH => Self::BenchPublish {
                strategy: r.strategy()?,
                consumers: r.u32(),
                insns: r.u64(),
            },
            tag::DEMO_RESULT => Self::DemoResult {
                strategy: r.strategy()?,
                patches: r.u64(),
                iterations: r.u64(),
                misses: r.u64(),
                extra_max_ns: r.u64(),
                extra_mean_ns: r.u64(),
                mean_abs_error_c: r.f32(),
                max_abs_error_c: r.f32(),
            },
            tag::LIVE_READY => Self::LiveReady { site: r.name()? },
            tag::LIVE_APPLIED => Self::LiveApplied {
                site: r.name()?,
                bytes: r.u32(),
                slot: r.u64(),
            },
            tag::LIVE_REFUSED => {
                let site = r.name()?;
                let (kind, a, b) = (r.u8(), r.u64(), r.u64());
                Self::LiveRefused {
                    site,
                    reason: Refusal::from_parts(kind, a, b)
                        .ok_or(DecodeError::UnknownRefusal(kind))?,
                }
            }
            tag::LIVE_BAD_FRAME => {
                let (kind, a, b) = (r.u8(), r.u32(), r.u32());
                Self::LiveBadFrame {
                    error: FrameError::from_parts(kind, a, b)
                        .ok_or(DecodeError::UnknownFrameError(kind))?,
                }
            }
            tag::LIVE_RUNS => Self::LiveRuns {
                core: r.u8(),
                version: r.u64(),
                checksum_ok: r.flag()?,
            },
            tag::LIVE_ENDED => Self::LiveEnded {
                applied: r.u32(),
                refused: r.u32(),
            },
            _ => return Err(DecodeError::BadTag(t)),
        })
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TestVerdict { test, passed } => {
                write!(f, "test {test}: {}", if passed { "PASS" } else { "FAIL" })
            }
            Self::ExpectFault { ec, elr } => write!(f, "expect-fault: ec={ec:#04x} elr={elr:#x}"),
            Self::Exception {
                core,
                ec,
                esr,
                elr,
                far,
            } => write!(
                f,
                "exception on core {core}: EC {ec:#04x} ESR={esr:#x} ELR={elr:#x} FAR={far:#x}"
            ),
            Self::RunEnded { status } => write!(f, "run ended with status {status}"),
            Self::BenchDirect { insns } => write!(f, "bench-direct insns={insns}"),
            Self::BenchEntry { strategy, insns } => {
                write!(f, "bench-entry strategy={} insns={insns}", strategy.name())
            }
            Self::BenchResult {
                strategy,
                cores,
                disturb_max_ns,
                disturb_mean_ns,
                latency_ns,
                throughput_per_s,
            } => write!(
                f,
                "bench-result strategy={} cores={cores} disturb_max_ns={disturb_max_ns} disturb_mean_ns={disturb_mean_ns} latency_ns={latency_ns} throughput_per_s={throughput_per_s}",
                strategy.name()
            ),
            Self::BenchPublish {
                strategy,
                consumers,
                insns,
            } => write!(
                f,
                "bench-publish strategy={} consumers={consumers} insns={insns}",
                strategy.name()
            ),
            Self::DemoResult {
                strategy,
                patches,
                iterations,
                misses,
                extra_max_ns,
                extra_mean_ns,
                mean_abs_error_c,
                max_abs_error_c,
            } => write!(
                f,
                "demo-result strategy={} patches={patches} iterations={iterations} misses={misses} extra_max_ns={extra_max_ns} extra_mean_ns={extra_mean_ns} mean_abs_error_c={mean_abs_error_c:.2} max_abs_error_c={max_abs_error_c:.2}",
                strategy.name()
            ),
            Self::LiveReady { site } => write!(f, "live-patch ready; site {site}"),
            Self::LiveApplied { site, bytes, slot } => {
                write!(
                    f,
                    "live-patch applied site={site} bytes={bytes} slot={slot:#x}"
                )
            }
            Self::LiveRefused { site, reason } => {
                write!(f, "live-patch refused site={site}: {reason}")
            }
            Self::LiveBadFrame { error } => write!(f, "live-patch bad frame: {error}"),
            Self::LiveRuns {
                core,
                version,
                checksum_ok,
            } => write!(
                f,
                "live: core {core} runs version {version} (checksum {})",
                if checksum_ok { "ok" } else { "MISMATCH" }
            ),
            Self::LiveEnded { applied, refused } => {
                write!(
                    f,
                    "live-patch session ended: {applied} applied, {refused} refused"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every record, with fields that differ from each other.
    fn every() -> Vec<Record> {
        let site = Name::new("indirect");
        vec![
            Record::TestVerdict {
                test: Name::new("patch-ipi"),
                passed: true,
            },
            Record::TestVerdict {
                test: Name::new("x"),
                passed: false,
            },
            Record::ExpectFault {
                ec: 0,
                elr: 0x4020_1040,
            },
            Record::Exception {
                core: 2,
                ec: 0x25,
                esr: 0x9600_004f,
                elr: 0x4020_1044,
                far: 0x4060_0000,
            },
            Record::RunEnded { status: 3 },
            Record::BenchDirect { insns: 1 },
            Record::BenchEntry {
                strategy: Strategy::SeqCheck,
                insns: 18,
            },
            Record::BenchResult {
                strategy: Strategy::StopTheWorld,
                cores: 32,
                disturb_max_ns: 4118,
                disturb_mean_ns: 2579,
                latency_ns: 7520,
                throughput_per_s: 133_818,
            },
            Record::BenchPublish {
                strategy: Strategy::FtrMulti,
                consumers: 3,
                insns: 412,
            },
            Record::DemoResult {
                strategy: Strategy::BranchFlip,
                patches: 1000,
                iterations: 30_000,
                misses: 0,
                extra_max_ns: 4464,
                extra_mean_ns: 4080,
                mean_abs_error_c: 3.04,
                max_abs_error_c: 40.0,
            },
            Record::LiveReady { site },
            Record::LiveApplied {
                site,
                bytes: 64,
                slot: 0x4060_1080,
            },
            Record::LiveRefused {
                site: Name::new("no-such-site"),
                reason: Refusal::UnknownSite,
            },
            Record::LiveRefused {
                site,
                reason: Refusal::Escapes {
                    offset: 0,
                    target: 0x4070_1080,
                },
            },
            Record::LiveRefused {
                site,
                reason: Refusal::Timeout { missing: 0b100 },
            },
            Record::LiveBadFrame {
                error: FrameError::Checksum {
                    sent: 1,
                    computed: 2,
                },
            },
            Record::LiveBadFrame {
                error: FrameError::NameTooLong(200),
            },
            Record::LiveRuns {
                core: 3,
                version: 7,
                checksum_ok: true,
            },
            Record::LiveEnded {
                applied: 2,
                refused: 5,
            },
        ]
    }

    fn bytes(r: &Record) -> Vec<u8> {
        let mut buf = [0u8; MAX_LEN];
        let n = r.encode(&mut buf);
        assert_eq!(n, r.len());
        buf[..n].to_vec()
    }

    #[test]
    fn every_record_round_trips() {
        for r in every() {
            assert_eq!(Record::decode(&bytes(&r)), Ok(r), "{r}");
        }
    }

    #[test]
    fn every_tag_is_tested() {
        let tags: std::collections::BTreeSet<u8> = every().iter().map(Record::tag).collect();
        let known = (0..=u8::MAX).filter(|&t| body_len(t).is_some()).count();
        assert_eq!(tags.len(), known);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        for r in every() {
            let good = bytes(&r);
            for bit in 0..good.len() * 8 {
                let mut bad = good.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    Record::decode(&bad).is_err(),
                    "{r}: bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_flipped_field_bit_is_a_crc_mismatch() {
        let r = Record::BenchDirect { insns: 1 };
        let mut b = bytes(&r);
        b[1] ^= 0x10;
        assert!(matches!(Record::decode(&b), Err(DecodeError::Crc { .. })));
    }

    #[test]
    fn truncated_and_padded_records_say_how_long_they_should_be() {
        for r in every() {
            let good = bytes(&r);
            for cut in 1..good.len() {
                assert_eq!(
                    Record::decode(&good[..cut]),
                    Err(DecodeError::Short {
                        tag: good[0],
                        expected: good.len(),
                        got: cut
                    })
                );
            }
            let mut long = good.clone();
            long.push(0);
            assert!(matches!(
                Record::decode(&long),
                Err(DecodeError::Long { .. })
            ));
        }
        assert_eq!(Record::decode(&[]), Err(DecodeError::Empty));
        let e = Record::decode(&bytes(&every()[0])[..5]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "short record (tag 1): expected 38 bytes, got 5"
        );
    }

    #[test]
    fn a_bad_tag_is_named() {
        let mut b = bytes(&Record::RunEnded { status: 0 });
        b[0] = 0xee;
        assert_eq!(Record::decode(&b), Err(DecodeError::BadTag(0xee)));
        assert_eq!(DecodeError::BadTag(0xee).to_string(), "bad record tag 238");
    }

    /// Recomputes the checksum after an edit, so that the field checks behind it are reached.
    fn reseal(mut b: Vec<u8>) -> Vec<u8> {
        let n = b.len() - CRC_BYTES;
        let crc = crc32(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn bad_fields_behind_a_good_checksum_are_named() {
        let entry = bytes(&Record::BenchEntry {
            strategy: Strategy::IpiSync,
            insns: 4,
        });
        let mut b = entry.clone();
        b[1] = 9;
        assert_eq!(
            Record::decode(&reseal(b)),
            Err(DecodeError::UnknownStrategy(9))
        );
        let runs = bytes(&Record::LiveRuns {
            core: 1,
            version: 1,
            checksum_ok: false,
        });
        let mut b = runs.clone();
        b[10] = 2;
        assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadFlag(2)));
        let ready = bytes(&Record::LiveReady {
            site: Name::new("ab"),
        });
        let mut b = ready.clone();
        b[5] = b'x'; // a byte after the NUL padding began
        assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadName));
        let mut b = ready;
        b[1] = 0xff;
        assert_eq!(Record::decode(&reseal(b)), Err(DecodeError::BadName));
        let refused = bytes(&Record::LiveRefused {
            site: Name::new("s"),
            reason: Refusal::Busy,
        });
        let mut b = refused;
        b[1 + NAME_BYTES] = 99;
        assert_eq!(
            Record::decode(&reseal(b)),
            Err(DecodeError::UnknownRefusal(99))
        );
        let bad = bytes(&Record::LiveBadFrame {
            error: FrameError::NameNotUtf8,
        });
        let mut b = bad;
        b[1] = 9;
        assert_eq!(
            Record::decode(&reseal(b)),
            Err(DecodeError::UnknownFrameError(9))
        );
    }

    #[test]
    fn every_refusal_round_trips() {
        let all = [
            Refusal::UnknownSite,
            Refusal::Busy,
            Refusal::Empty,
            Refusal::TooLarge { len: 512, max: 128 },
            Refusal::MisalignedAddress { addr: 0x4060_1082 },
            Refusal::MisalignedLength { len: 6 },
            Refusal::AddressOverflow,
            Refusal::Escapes {
                offset: 4,
                target: 0x1_0000,
            },
            Refusal::BranchIntoData { offset: 8 },
            Refusal::FallsIntoData { offset: 12 },
            Refusal::FallsThrough { word: 0xd503_201f },
            Refusal::ArenaFull { lagging: 0b1110 },
            Refusal::Vetoed,
            Refusal::Timeout { missing: 0b10 },
            Refusal::Offline { cores: 0b1000 },
            Refusal::PublishFailed,
            Refusal::Arena,
        ];
        for reason in all {
            let r = Record::LiveRefused {
                site: Name::new("indirect"),
                reason,
            };
            assert_eq!(Record::decode(&bytes(&r)), Ok(r));
        }
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        assert_eq!(Name::new("indirect").as_str(), "indirect");
        let long = "é".repeat(20); // 40 bytes
        let n = Name::new(&long);
        assert_eq!(n.as_str(), "é".repeat(16));
        assert_eq!(Name::new("").as_str(), "");
    }

    #[test]
    fn text_forms_read_as_the_log_lines_did() {
        assert_eq!(
            Record::LiveRefused {
                site: Name::new("nope"),
                reason: Refusal::UnknownSite
            }
            .to_string(),
            "live-patch refused site=nope: unknown site"
        );
        assert_eq!(
            Record::TestVerdict {
                test: Name::new("demo"),
                passed: true
            }
            .to_string(),
            "test demo: PASS"
        );
    }
}
