//! The live-patch wire format: how `cargo xtask patch` hands a running kernel a block over the
//! UART. One definition for both ends, so that they cannot disagree.
//!
//! ```text
//! host:   patch frame = "GPAT" | name length u8 | site name | block length u16 | block
//!                       | crc32 of everything before it
//! host:   end frame   = "GEND"                   (the session ends; the kernel exits 0)
//! kernel: one log line per frame:
//!         live-patch applied site=indirect bytes=104 slot=0x40601080
//!         live-patch refused site=indirect: <why>          (nothing was written)
//!         live-patch bad frame: <why>                      (nothing was attempted)
//! ```
//!
//! Integers are little-endian. The receiver looks for a magic word byte by byte, so it finds the
//! next frame after noise or a damaged frame. The kernel answers through its ordinary log, which
//! the host decodes as it decodes every other line.

use graft_loader::protocol::crc32;

/// The first bytes of a patch frame.
pub const MAGIC: [u8; 4] = *b"GPAT";
/// The whole of an end-of-session frame.
pub const END: [u8; 4] = *b"GEND";
/// The longest site name.
pub const MAX_NAME: usize = 32;
/// The longest block a frame carries (larger than any arena slot, so that the patcher, not the
/// wire, refuses blocks that do not fit).
pub const MAX_BLOCK: usize = 1024;
/// The longest frame.
pub const MAX_FRAME: usize = 4 + 1 + MAX_NAME + 2 + MAX_BLOCK + 4;

/// Why a frame was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The name is longer than [`MAX_NAME`] bytes.
    NameTooLong(usize),
    /// The block is longer than [`MAX_BLOCK`] bytes.
    BlockTooLong(usize),
    /// The name is not UTF-8.
    NameNotUtf8,
    /// The checksum does not match: the frame was damaged on the way.
    Checksum {
        /// The checksum the frame carried.
        sent: u32,
        /// The checksum of what arrived.
        computed: u32,
    },
}

#[cfg(target_arch = "aarch64")]
impl defmt::Format for FrameError {
    fn format(&self, f: defmt::Formatter<'_>) {
        match *self {
            Self::NameTooLong(n) => defmt::write!(f, "site name of {=usize} bytes", n),
            Self::BlockTooLong(n) => defmt::write!(f, "block of {=usize} bytes", n),
            Self::NameNotUtf8 => defmt::write!(f, "site name is not UTF-8"),
            Self::Checksum { sent, computed } => defmt::write!(
                f,
                "checksum {=u32:#010x}, computed {=u32:#010x}",
                sent,
                computed
            ),
        }
    }
}

/// Writes a patch frame for `block` at site `name` into `out`; returns its length.
pub fn encode(name: &str, block: &[u8], out: &mut [u8; MAX_FRAME]) -> Result<usize, FrameError> {
    if name.len() > MAX_NAME {
        return Err(FrameError::NameTooLong(name.len()));
    }
    if block.len() > MAX_BLOCK {
        return Err(FrameError::BlockTooLong(block.len()));
    }
    let mut n = 0;
    for part in [
        &MAGIC[..],
        &[name.len() as u8],
        name.as_bytes(),
        &(block.len() as u16).to_le_bytes(),
        block,
    ] {
        out[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    let crc = crc32(&out[..n]);
    out[n..n + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(n + 4)
}

/// What one received byte completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole, checked patch frame.
    Patch {
        /// The site it names.
        site: &'a str,
        /// The block, not yet checked as code.
        block: &'a [u8],
    },
    /// The host ended the session.
    End,
    /// A frame was refused; the receiver looks for the next one.
    Bad(FrameError),
}

/// Reassembles frames from a byte stream.
pub struct Receiver {
    buf: [u8; MAX_FRAME],
    len: usize,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    /// A receiver waiting for a magic word.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_FRAME],
            len: 0,
        }
    }

    /// Takes the next byte; returns what it completed, if anything.
    pub fn push(&mut self, byte: u8) -> Option<Event<'_>> {
        if self.len < 4 {
            // Hunting for a magic word: keep the longest tail that could still start one.
            self.buf[self.len] = byte;
            self.len += 1;
            while self.len > 0 && !starts_magic(&self.buf[..self.len]) {
                self.buf.copy_within(1..self.len, 0);
                self.len -= 1;
            }
            if self.len == 4 && self.buf[..4] == END {
                self.len = 0;
                return Some(Event::End);
            }
            return None;
        }
        self.buf[self.len] = byte;
        self.len += 1;
        let name_len = self.buf[4] as usize;
        if self.len == 5 && name_len > MAX_NAME {
            self.len = 0;
            return Some(Event::Bad(FrameError::NameTooLong(name_len)));
        }
        let head = 5 + name_len + 2;
        if self.len < head {
            return None;
        }
        let block_len = u16::from_le_bytes([self.buf[head - 2], self.buf[head - 1]]) as usize;
        if self.len == head && block_len > MAX_BLOCK {
            self.len = 0;
            return Some(Event::Bad(FrameError::BlockTooLong(block_len)));
        }
        let end = head + block_len;
        if self.len < end + 4 {
            return None;
        }
        self.len = 0;
        let sent = u32::from_le_bytes(self.buf[end..end + 4].try_into().unwrap());
        let computed = crc32(&self.buf[..end]);
        if sent != computed {
            return Some(Event::Bad(FrameError::Checksum { sent, computed }));
        }
        match core::str::from_utf8(&self.buf[5..5 + name_len]) {
            Ok(site) => Some(Event::Patch {
                site,
                block: &self.buf[head..end],
            }),
            Err(_) => Some(Event::Bad(FrameError::NameNotUtf8)),
        }
    }
}

/// True if `bytes` (at most 4) could be the start of a magic word.
fn starts_magic(bytes: &[u8]) -> bool {
    [MAGIC, END].iter().any(|m| m.starts_with(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Receiver, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if let Some(e) = r.push(b) {
                out.push(format!("{e:?}"));
            }
        }
        out
    }

    fn frame(name: &str, block: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_FRAME];
        let n = encode(name, block, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn frames_round_trip_after_noise() {
        let mut r = Receiver::new();
        let mut bytes = b"GGPxGEN\0noise".to_vec();
        bytes.extend(frame("indirect", &[1, 2, 3, 4]));
        bytes.extend(END);
        let got = feed(&mut r, &bytes);
        assert_eq!(
            got,
            vec![
                format!(
                    "{:?}",
                    Event::Patch {
                        site: "indirect",
                        block: &[1, 2, 3, 4]
                    }
                ),
                "End".to_string()
            ]
        );
    }

    #[test]
    fn damage_is_refused_and_the_next_frame_still_arrives() {
        let mut r = Receiver::new();
        let mut bad = frame("indirect", &[9; 8]);
        bad[10] ^= 0x40;
        let mut bytes = bad;
        bytes.extend(frame("other", &[]));
        let got = feed(&mut r, &bytes);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("Bad(Checksum"), "{got:?}");
        assert_eq!(
            got[1],
            format!(
                "{:?}",
                Event::Patch {
                    site: "other",
                    block: &[]
                }
            )
        );
    }

    #[test]
    fn oversize_fields_are_refused_early() {
        let mut out = [0u8; MAX_FRAME];
        assert_eq!(
            encode(&"x".repeat(MAX_NAME + 1), &[], &mut out),
            Err(FrameError::NameTooLong(MAX_NAME + 1))
        );
        assert_eq!(
            encode("s", &[0; MAX_BLOCK + 1], &mut out),
            Err(FrameError::BlockTooLong(MAX_BLOCK + 1))
        );
        let mut r = Receiver::new();
        let got = feed(&mut r, &[b'G', b'P', b'A', b'T', 200]);
        assert_eq!(got, vec!["Bad(NameTooLong(200))".to_string()]);
        let got = feed(&mut r, &[b'G', b'P', b'A', b'T', 1, b's', 0xff, 0xff]);
        assert_eq!(got, vec!["Bad(BlockTooLong(65535))".to_string()]);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        let mut bytes = frame("ab", &[]);
        bytes[5] = 0xff;
        let n = bytes.len();
        let crc = crc32(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let mut r = Receiver::new();
        assert_eq!(feed(&mut r, &bytes), vec!["Bad(NameNotUtf8)".to_string()]);
    }
}
