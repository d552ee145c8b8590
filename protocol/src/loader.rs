//! The chainloading wire format, shared by the loader (receiver) and `cargo xtask flash` (sender).
//!
//! One source for both ends, so that they cannot disagree. The host sends binary frames; the
//! loader answers with one ASCII line per event, readable in any terminal:
//!
//! ```text
//! loader: GRAFT-LOADER 1 board=rpi3 load=0x80000 max=32505856 chunk=1024   (every second, idle)
//! host:   header  = "GRFT" | size u32 | image crc u32 | crc u32 of the previous 12 bytes
//! loader: READY size=43328 chunks=43          or  ERR too-large size=.. max=.. (then idle again)
//! host:   chunk   = index u32 | length u16 | payload | crc u32 of index, length and payload
//! loader: ACK 0                                or  NAK 0 checksum  (the host sends chunk 0 again)
//! ...
//! loader: BOOT 0x80000                         then the kernel's own output follows
//! ```
//!
//! Every integer is little-endian. A chunk is refused at most [`MAX_RETRIES`] times in a row;
//! then the loader says `ERR retries chunk=N` and waits for a new header.

use crate::crc32::crc32;
use core::fmt;

/// The first word of every announcement.
pub const ANNOUNCE: &str = "GRAFT-LOADER";
/// The protocol version in the announcement; the host refuses another.
pub const VERSION: u32 = 1;
/// The first bytes of a header frame.
pub const MAGIC: [u8; 4] = *b"GRFT";
/// Bytes in a header frame.
pub const HEADER_LEN: usize = 16;
/// The most payload bytes in one chunk; every chunk but the last is exactly this long.
pub const CHUNK: usize = 1024;
/// Bytes before a chunk's payload (index, length).
pub const CHUNK_HEAD: usize = 6;
/// Bytes after a chunk's payload (its checksum).
pub const CHUNK_TAIL: usize = 4;
/// How often one chunk may be refused in a row before the transfer is abandoned.
pub const MAX_RETRIES: u32 = 8;
/// The smallest image accepted: an arm64 Image header is 64 bytes.
pub const MIN_IMAGE: usize = 64;
/// Where an arm64 Image keeps its magic, and the magic.
pub const IMAGE_MAGIC_OFFSET: usize = 0x38;
/// The arm64 Image magic `ARM\x64`.
pub const IMAGE_MAGIC: [u8; 4] = *b"ARM\x64";

/// What a header frame announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Image bytes to follow.
    pub size: u32,
    /// CRC-32 of the whole image.
    pub crc: u32,
}

impl Header {
    /// The header frame's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..12].copy_from_slice(&self.crc.to_le_bytes());
        let check = crc32(&out[..12]);
        out[12..].copy_from_slice(&check.to_le_bytes());
        out
    }

    /// Reads a header frame; None when its own checksum or magic is wrong.
    pub fn decode(frame: &[u8; HEADER_LEN]) -> Option<Self> {
        let word = |at: usize| {
            u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        (frame[..4] == MAGIC && word(12) == crc32(&frame[..12])).then(|| Self {
            size: word(4),
            crc: word(8),
        })
    }

    /// The number of chunks the image is sent in.
    pub fn chunks(&self) -> u32 {
        (self.size as usize).div_ceil(CHUNK) as u32
    }
}

/// The payload length of chunk `index` of an image of `size` bytes.
pub fn chunk_len(size: u32, index: u32) -> usize {
    let start = index as usize * CHUNK;
    (size as usize).saturating_sub(start).min(CHUNK)
}

/// Appends the frame of chunk `index` carrying `payload` to `out` (host side).
pub fn encode_chunk(index: u32, payload: &[u8], out: &mut [u8]) -> usize {
    let len = payload.len();
    assert!(len <= CHUNK && out.len() >= CHUNK_HEAD + len + CHUNK_TAIL);
    out[..4].copy_from_slice(&index.to_le_bytes());
    out[4..6].copy_from_slice(&(len as u16).to_le_bytes());
    out[CHUNK_HEAD..CHUNK_HEAD + len].copy_from_slice(payload);
    let check = crc32(&out[..CHUNK_HEAD + len]);
    out[CHUNK_HEAD + len..CHUNK_HEAD + len + CHUNK_TAIL].copy_from_slice(&check.to_le_bytes());
    CHUNK_HEAD + len + CHUNK_TAIL
}

/// Why a chunk was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NakReason {
    /// Its checksum did not match.
    Checksum,
    /// Its length field was not the length that chunk must have.
    Length,
    /// It was not the chunk expected next.
    Index,
    /// It stopped arriving before its end.
    Timeout,
}

/// Why the loader abandoned a transfer and went back to waiting for a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The image is larger than the room below the loader.
    TooLarge {
        /// Bytes offered.
        size: u32,
        /// Bytes that fit.
        max: u32,
    },
    /// The image is smaller than an arm64 Image header.
    TooSmall {
        /// Bytes offered.
        size: u32,
    },
    /// The header frame's own checksum did not match.
    HeaderChecksum,
    /// The header frame stopped arriving before its end.
    HeaderTimeout,
    /// One chunk was refused [`MAX_RETRIES`] times in a row.
    Retries {
        /// The chunk.
        chunk: u32,
    },
    /// Every chunk arrived but the whole image's checksum did not match.
    ImageChecksum,
    /// The image has no arm64 Image magic at 0x38.
    NotAnImage,
}

/// One line from the loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Waiting for a header.
    Announce {
        /// The protocol version.
        version: u32,
        /// The board the loader was built for.
        board: &'a str,
        /// Where the image will be written and entered.
        load: u64,
        /// The largest image that fits.
        max: u32,
    },
    /// The header was accepted; chunks may follow.
    Ready {
        /// Image bytes.
        size: u32,
        /// Chunks to send.
        chunks: u32,
    },
    /// A chunk was written (or had been: a repeat of the last one is acknowledged again).
    Ack(u32),
    /// The chunk the loader wants next was refused; send it again.
    Nak(u32, NakReason),
    /// The transfer was abandoned.
    Err(Refusal),
    /// The image is complete and checked; the loader jumps to it now.
    Boot(u64),
}

impl NakReason {
    fn word(self) -> &'static str {
        match self {
            Self::Checksum => "checksum",
            Self::Length => "length",
            Self::Index => "index",
            Self::Timeout => "timeout",
        }
    }
}

impl fmt::Display for NakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { size, max } => write!(f, "too-large size={size} max={max}"),
            Self::TooSmall { size } => write!(f, "too-small size={size}"),
            Self::HeaderChecksum => f.write_str("header-checksum"),
            Self::HeaderTimeout => f.write_str("header-timeout"),
            Self::Retries { chunk } => write!(f, "retries chunk={chunk}"),
            Self::ImageChecksum => f.write_str("image-checksum"),
            Self::NotAnImage => f.write_str("not-an-arm64-image"),
        }
    }
}

impl fmt::Display for Reply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Announce {
                version,
                board,
                load,
                max,
            } => write!(
                f,
                "{ANNOUNCE} {version} board={board} load={load:#x} max={max} chunk={CHUNK}"
            ),
            Self::Ready { size, chunks } => write!(f, "READY size={size} chunks={chunks}"),
            Self::Ack(i) => write!(f, "ACK {i}"),
            Self::Nak(i, why) => write!(f, "NAK {i} {why}"),
            Self::Err(why) => write!(f, "ERR {why}"),
            Self::Boot(at) => write!(f, "BOOT {at:#x}"),
        }
    }
}

fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn small(text: Option<&str>) -> Option<u32> {
    number(text?)?.try_into().ok()
}

impl<'a> Reply<'a> {
    /// Reads one line (without its line end); None for anything else, such as noise.
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut all = [""; 8];
        let mut n = 0;
        for w in line.split_ascii_whitespace().take(all.len()) {
            all[n] = w;
            n += 1;
        }
        let words = &all[..n];
        let (&first, rest) = words.split_first()?;
        Some(match first {
            ANNOUNCE => Self::Announce {
                version: small(rest.first().copied())?,
                board: field(rest, "board")?,
                load: number(field(rest, "load")?)?,
                max: small(field(rest, "max"))?,
            },
            "READY" => Self::Ready {
                size: small(field(rest, "size"))?,
                chunks: small(field(rest, "chunks"))?,
            },
            "ACK" => Self::Ack(small(rest.first().copied())?),
            "NAK" => {
                let why = match *rest.get(1)? {
                    "checksum" => NakReason::Checksum,
                    "length" => NakReason::Length,
                    "index" => NakReason::Index,
                    "timeout" => NakReason::Timeout,
                    _ => return None,
                };
                Self::Nak(small(rest.first().copied())?, why)
            }
            "ERR" => Self::Err(match *rest.first()? {
                "too-large" => Refusal::TooLarge {
                    size: small(field(rest, "size"))?,
                    max: small(field(rest, "max"))?,
                },
                "too-small" => Refusal::TooSmall {
                    size: small(field(rest, "size"))?,
                },
                "header-checksum" => Refusal::HeaderChecksum,
                "header-timeout" => Refusal::HeaderTimeout,
                "retries" => Refusal::Retries {
                    chunk: small(field(rest, "chunk"))?,
                },
                "image-checksum" => Refusal::ImageChecksum,
                "not-an-arm64-image" => Refusal::NotAnImage,
                _ => return None,
            }),
            "BOOT" => Self::Boot(number(rest.first()?)?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let h = Header {
            size: 43_328,
            crc: 0xdead_beef,
        };
        let mut frame = h.encode();
        assert_eq!(Header::decode(&frame), Some(h));
        frame[5] ^= 1;
        assert_eq!(Header::decode(&frame), None);
    }

    #[test]
    fn replies_round_trip() {
        let all = [
            Reply::Announce {
                version: 1,
                board: "rpi3",
                load: 0x80000,
                max: 32_505_856,
            },
            Reply::Ready {
                size: 5000,
                chunks: 5,
            },
            Reply::Ack(3),
            Reply::Nak(4, NakReason::Checksum),
            Reply::Err(Refusal::TooLarge { size: 9, max: 8 }),
            Reply::Err(Refusal::Retries { chunk: 2 }),
            Reply::Boot(0x80000),
        ];
        for r in all {
            let text = r.to_string();
            assert_eq!(Reply::parse(&text), Some(r), "{text}");
        }
        assert_eq!(Reply::parse("garbage from the firmware"), None);
    }
}
