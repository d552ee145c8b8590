//! Decoding the kernel's `defmt` frames from the serial byte stream into readable lines.

use anyhow::{Context, Result};
use defmt_decoder::{DecodeError, Locations, StreamDecoder, Table};

/// One decoded log line.
#[derive(Clone, Debug)]
pub struct Line {
    /// `info`, `warn`, `error`, ... (empty when the frame had no level).
    pub level: String,
    /// The rendered line as printed.
    pub text: String,
    /// The message alone.
    pub message: String,
}

/// The decoding table and source locations of one kernel ELF.
pub struct Symbols {
    table: Table,
    locations: Option<Locations>,
}

impl Symbols {
    /// Reads the defmt table from `elf`.
    pub fn new(elf: &[u8]) -> Result<Self> {
        let table = Table::parse(elf)?.context("the kernel ELF has no defmt table")?;
        let locations = table.get_locations(elf).ok().filter(|l| !l.is_empty());
        Ok(Self { table, locations })
    }

    /// A decoder for one run's serial stream.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            symbols: self,
            stream: self.table.new_stream_decoder(),
        }
    }
}

/// Turns serial bytes into [`Line`]s as they arrive.
pub struct Decoder<'a> {
    symbols: &'a Symbols,
    stream: Box<dyn StreamDecoder + Send + Sync + 'a>,
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
                    let message = frame.display_message().to_string();
                    let location = self
                        .symbols
                        .locations
                        .as_ref()
                        .and_then(|l| l.get(&frame.index()))
                        .filter(|_| level == "error" || level == "warn")
                        .map(|l| format!("  ({}:{})", l.file.display(), l.line))
                        .unwrap_or_default();
                    let text =
                        format!("[{ts:>14}] {:<5} {message}{location}", level.to_uppercase());
                    out.push(Line {
                        level,
                        text,
                        message,
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
                    });
                }
            }
        }
        out
    }
}
