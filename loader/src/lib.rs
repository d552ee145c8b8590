//! Graft's serial chainloader: the part the host shares.
//!
//! The loader binary (`main.rs`, built for a Pi with feature `rpi3` or `rpi4`) sits on the SD
//! card as `kernel8.img` and receives each new kernel over the PL011, so that trying a build
//! needs no card swap. The wire format is `graft-protocol`'s `loader` module, shared with
//! `cargo xtask flash`; the receiving state machine ([`receiver`]) lives here, free of hardware,
//! so that xtask's host tests (a dev-dependency) drive the real receiver through corrupted and
//! oversize transfers.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod receiver;

#[cfg(test)]
mod tests {
    use crate::receiver::capacity;

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
