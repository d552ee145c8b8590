//! The CRC-32 of every frame and record: IEEE 802.3, reflected, as zlib computes it.
//!
//! One definition for the loader's framing, the live-patch frames and the kernel's records, so
//! that no two ends can compute it differently. The arithmetic is the `crc` crate's.

use crc::{CRC_32_ISO_HDLC, Crc, Digest};

const CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// A running CRC-32.
#[derive(Clone)]
pub struct Crc32(Digest<'static, u32>);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A CRC over no bytes yet.
    pub const fn new() -> Self {
        Self(CRC.digest())
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The CRC of everything added.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

/// The CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn a_running_crc_equals_the_one_shot() {
        let mut c = Crc32::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xcbf4_3926);
    }
}
