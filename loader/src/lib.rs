//! Graft's serial chainloader: the part the host shares.
//!
//! The loader binary (`main.rs`, built for a Pi with feature `rpi3` or `rpi4`) sits on the SD
//! card as `kernel8.img` and receives each new kernel over the PL011, so that trying a build
//! needs no card swap. The wire format ([`protocol`]) and the receiving state machine
//! ([`receiver`]) live here, free of hardware, so that `cargo xtask flash` sends with the same
//! definitions and its host tests drive the real receiver through corrupted and oversize
//! transfers.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod protocol;
pub mod receiver;

#[cfg(test)]
mod tests {
    use crate::protocol::{Header, NakReason, Refusal, Reply, crc32};
    use crate::receiver::capacity;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

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

    #[test]
    fn capacity_stops_below_the_loader() {
        assert_eq!(
            capacity(0x80000, 0x200_0000, 0x201_0000),
            0x200_0000 - 0x80000
        );
        // A loader still at the load address leaves no room at all.
        assert_eq!(capacity(0x80000, 0x80000, 0x90000), 0);
    }
}
