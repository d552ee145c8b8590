//! Decoding the kernel's `defmt` frames from the serial byte stream into lines and records.
//!
//! Frames of the kernel's one record format (`protocol::record::DEFMT_FORMAT`) carry a typed
//! [`Record`]: they are decoded with `protocol`, never read as sentences, and a damaged one is
//! kept as its [`RecordError`] so that the run's verdict fails naming it. Every other frame is a
//! log line, for people.

use anyhow::{Context, Result};
use defmt_decoder::log::format::{Formatter, FormatterConfig};
use defmt_decoder::{DecodeError, Frame, Locations, StreamDecoder, Table};
use defmt_parser::{Fragment, Type};
use protocol::record::{self, Record};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// How every log line is laid out (defmt-decoder's formatter; no colours, so that CI logs and
/// pipes stay plain text).
const LOG_FORMAT: &str = "[{t:>14}] {L:<5} {s}";

/// One decoded frame: a log line, or a record.
#[derive(Clone, Debug)]
pub struct Line {
    /// `info`, `warn`, `error`, ... (empty when the frame had no level).
    pub level: String,
    /// The rendered line as printed.
    pub text: String,
    /// The message alone.
    pub message: String,
    /// For a frame of the record format, the record or why its bytes are not one.
    pub record: Option<Result<Record, RecordError>>,
}

impl Line {
    /// Whether to show this frame to people: every log line, a damaged record (a good record
    /// has its log line for people beside it), and the records of faults (`Exception`,
    /// `PatchFault`, `StackOverflow`), printed as the host decoded them, with the kernel
    /// functions and lines their addresses lie in.
    pub fn for_people(&self) -> bool {
        !matches!(
            self.record,
            Some(Ok(r)) if !matches!(
                r,
                Record::Exception { .. } | Record::PatchFault { .. } | Record::StackOverflow { .. }
            )
        )
    }

    /// The record this frame carries, if it is a well-formed one.
    pub fn record(&self) -> Option<&Record> {
        self.record.as_ref().and_then(|r| r.as_ref().ok())
    }
}

/// A record frame whose bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The argument did not render as a byte list (a defmt table that does not match).
    NotBytes(String),
    /// The bytes are not a record.
    Decode(record::DecodeError),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBytes(text) => write!(f, "a record frame's argument is not bytes: {text}"),
            Self::Decode(e) => write!(f, "{e}"),
        }
    }
}

/// The first damaged record among `lines`, as an error naming it.
pub fn first_bad_record(lines: &[Line]) -> Option<String> {
    lines.iter().find_map(|l| match &l.record {
        Some(Err(e)) => Some(format!("a damaged record from the kernel: {e}")),
        _ => None,
    })
}

/// Whether `frame` is one of the kernel's records: its format is exactly the literal
/// [`record::DEFMT_PREFIX`] then one `{=[u8]}` argument.
fn is_record(frame: &Frame<'_>) -> bool {
    matches!(
        frame.fragments().as_slice(),
        [Fragment::Literal(text), Fragment::Parameter(p)]
            if text.as_ref() == record::DEFMT_PREFIX && p.ty == Type::U8Slice
    )
}

/// The bytes of a record frame's argument, as defmt renders a byte slice: `[1, 2, 3]`.
fn record_bytes(rendered: &str) -> Result<Vec<u8>, RecordError> {
    let bad = || RecordError::NotBytes(rendered.to_string());
    let inner = rendered
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(bad)?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .map(|b| b.trim().parse::<u8>().map_err(|_| bad()))
        .collect()
}

/// Decodes a record frame's rendered argument.
pub fn decode_record(rendered: &str) -> Result<Record, RecordError> {
    Record::decode(&record_bytes(rendered)?).map_err(RecordError::Decode)
}

/// The decoding table and source locations of one kernel ELF.
pub struct Symbols {
    table: Table,
    locations: Option<Locations>,
    /// The ELF, for the symbolizer (made on first use: DWARF takes a moment to index).
    elf: Arc<[u8]>,
    symbolizer: OnceLock<super::symbolize::Symbolizer>,
    /// The ELF's build id (its `.note.gnu.build-id`), which the kernel announces at boot.
    pub build_id: Option<Vec<u8>>,
}

impl Symbols {
    /// Reads the defmt table from `elf`.
    pub fn new(elf: &[u8]) -> Result<Self> {
        let table = Table::parse(elf)?.context("the kernel ELF has no defmt table")?;
        let locations = table.get_locations(elf).ok().filter(|l| !l.is_empty());
        let build_id = {
            use object::Object;
            object::File::parse(elf)
                .ok()
                .and_then(|f| f.build_id().ok().flatten().map(<[u8]>::to_vec))
        };
        Ok(Self {
            table,
            locations,
            elf: Arc::from(elf),
            symbolizer: OnceLock::new(),
            build_id,
        })
    }

    /// Names the kernel function and source line at `addr`, if the ELF knows it.
    pub fn describe(&self, addr: u64) -> Option<String> {
        self.symbolizer
            .get_or_init(|| super::symbolize::Symbolizer::new(&self.elf))
            .describe(addr)
    }

    /// " [at function (file:line)]" notes for the addresses a fault record names.
    fn fault_notes(&self, r: &Record) -> String {
        let addrs: &[(&str, u64)] = match *r {
            Record::Exception { elr, far, .. } => &[("ELR", elr), ("FAR", far)],
            Record::PatchFault { elr, far, .. } => &[("ELR", elr), ("FAR", far)],
            Record::StackOverflow { elr, .. } => &[("ELR", elr)],
            _ => &[],
        };
        addrs
            .iter()
            .filter(|(_, a)| *a != 0)
            .filter_map(|(what, a)| Some(format!(" [{what} {a:#x}: {}]", self.describe(*a)?)))
            .collect()
    }

    /// Whether the kernel that sent `lines` is this ELF: its boot record's build id must be the
    /// ELF's, or the run was decoded (and its verdict judged) against another build.
    pub fn same_image(&self, lines: &[Line]) -> Result<(), String> {
        use crate::keys::hex;
        let announced = lines.iter().filter_map(Line::record).find_map(|r| match r {
            Record::Image { build_id } => Some(*build_id),
            _ => None,
        });
        match (announced, &self.build_id) {
            (_, None) => Err("the kernel ELF has no build id".into()),
            (None, Some(_)) => Err("the kernel never announced its build id".into()),
            (Some(ran), Some(elf)) if ran[..] == elf[..] => Ok(()),
            (Some(ran), Some(elf)) => Err(format!(
                "the kernel that ran is build {}, not the ELF it was decoded with ({})",
                hex(&ran),
                hex(elf)
            )),
        }
    }

    /// A decoder for one run's serial stream.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            symbols: self,
            stream: self.table.new_stream_decoder(),
            formatter: Formatter::new(FormatterConfig::custom(LOG_FORMAT).with_timestamp()),
        }
    }
}

/// Turns serial bytes into [`Line`]s as they arrive.
pub struct Decoder<'a> {
    symbols: &'a Symbols,
    stream: Box<dyn StreamDecoder + Send + Sync + 'a>,
    formatter: Formatter,
}

impl Decoder<'_> {
    /// Feeds `bytes` and returns every line now complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Line> {
        self.stream.received(bytes);
        let mut out = Vec::new();
        loop {
            match self.stream.decode() {
                Ok(frame) => {
                    let level = frame
                        .level()
                        .map(|l| l.as_str().to_string())
                        .unwrap_or_default();
                    let ts = frame
                        .display_timestamp()
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    let record = is_record(&frame).then(|| {
                        let rendered: Vec<String> =
                            frame.display_fragments().map(|f| f.to_string()).collect();
                        decode_record(rendered.get(1).map_or("", String::as_str))
                    });
                    let message = match &record {
                        Some(Ok(r)) => format!("record: {r}{}", self.symbols.fault_notes(r)),
                        Some(Err(e)) => format!("record: DAMAGED: {e}"),
                        None => frame.display_message().to_string(),
                    };
                    let location = self
                        .symbols
                        .locations
                        .as_ref()
                        .and_then(|l| l.get(&frame.index()))
                        .filter(|_| level == "error" || level == "warn")
                        .map(|l| format!("  ({}:{})", l.file.display(), l.line))
                        .unwrap_or_default();
                    let text = match record {
                        // Records are shown as the host decoded them, in the same layout.
                        Some(_) => format!("[{ts:>14}] {:<5} {message}", level.to_uppercase()),
                        None => format!(
                            "{}{location}",
                            self.formatter.format_frame(frame, None, None, None)
                        ),
                    };
                    out.push(Line {
                        level,
                        text,
                        message,
                        record,
                    });
                }
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => {
                    // rzCOBS resynchronises at the next frame boundary; a frame cut by a fault
                    // report is lost, the rest still decodes.
                    out.push(Line {
                        level: "warn".into(),
                        text: "[   host] WARN  (a malformed log frame was skipped)".into(),
                        message: String::new(),
                        record: None,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::record::{MAX_LEN, Name};

    fn rendered(r: &Record) -> (Vec<u8>, String) {
        let mut buf = [0u8; MAX_LEN];
        let n = r.encode(&mut buf);
        let bytes = buf[..n].to_vec();
        // As defmt-decoder renders a `{=[u8]}` argument.
        let text = format!("{bytes:?}");
        (bytes, text)
    }

    #[test]
    fn a_rendered_record_decodes() {
        let r = Record::TestVerdict {
            test: Name::new("smp"),
            passed: true,
        };
        assert_eq!(decode_record(&rendered(&r).1), Ok(r));
    }

    #[test]
    fn damaged_records_are_errors_naming_what_was_expected() {
        let r = Record::LiveEnded {
            applied: 2,
            refused: 5,
        };
        let (mut bytes, _) = rendered(&r);
        bytes[2] ^= 4;
        let e = decode_record(&format!("{bytes:?}")).unwrap_err();
        assert!(e.to_string().contains("CRC mismatch"), "{e}");
        bytes.truncate(3);
        let e = decode_record(&format!("{bytes:?}")).unwrap_err();
        assert!(e.to_string().contains("expected 13 bytes, got 3"), "{e}");
        let e = decode_record("[1, 2, 300]").unwrap_err();
        assert!(matches!(e, RecordError::NotBytes(_)), "{e}");
        let e = decode_record("[]").unwrap_err();
        assert_eq!(e, RecordError::Decode(record::DecodeError::Empty));
    }

    #[test]
    fn a_damaged_record_is_found_among_lines() {
        let good = Line {
            level: "info".into(),
            text: String::new(),
            message: String::new(),
            record: Some(Ok(Record::RunEnded { status: 0 })),
        };
        let mut bad = good.clone();
        bad.record = Some(Err(RecordError::Decode(record::DecodeError::BadTag(99))));
        assert_eq!(first_bad_record(std::slice::from_ref(&good)), None);
        let e = first_bad_record(&[good, bad]).unwrap();
        assert!(e.contains("bad record tag 99"), "{e}");
    }
}
