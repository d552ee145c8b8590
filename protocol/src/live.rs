//! The live-patch wire format: how `cargo xtask patch` hands a running kernel a block over the
//! UART. One definition for both ends, so that they cannot disagree.
//!
//! ```text
//! host:   patch frame = "GPAT" | build id (20 bytes) | name length u8 | site name
//!                       | block length u16 | block | crc32 of everything before it
//! host:   who frame   = "GWHO"                   (the kernel answers with Record::Image)
//! host:   end frame   = "GEND"                   (the session ends; the kernel exits 0)
//!
//! Staging, in two phases (a block linked at the address the board reserved):
//! host:   stage frame = "GSTG" | build id | name length u8 | site name
//!                       | payload length u16 (6) | block length u32 | expiry s u16 | crc32
//!                       -> LiveStaged { site, nonce, addr, len }: a slot is reserved at addr;
//!                          no frame for it within the expiry (a dropped connection) and the
//!                          kernel frees it: LiveExpired { site, nonce }
//! host:   data frame  = "GDAT" | ... | payload = nonce u64 | offset u32 | bytes | crc32
//!                       -> LiveReceived { nonce, received } (in order, at most MAX_CHUNK each)
//! host:   seal frame  = "GSIG" | ... | payload = nonce u64 | Ed25519 signature (64) | crc32
//!                       -> LiveSealed { nonce }: the signature (crate::signing) verified and
//!                          the block passed the checks at its address
//! host:   activate    = "GACT" | ... | payload = nonce u64 | crc32
//!                       -> LiveApplied (checked, written, published) or LiveRefused
//! host:   cancel      = "GCAN" | ... | payload = nonce u64 | crc32
//!                       -> LiveCancelled: the slot is free again
//! host:   list        = "GLST" | build id | name length 0 | payload length 0 | crc32
//!                       -> SiteState per site, then ListEnd { sites, free_slots, free_bytes }
//! host:   rollback    = "GRBK" | build id | site | payload length 0 | crc32
//!                       -> LiveRolledBack { site, version, restored } or LiveRefused
//! kernel: one record per frame (crate::record), beside a log line for people:
//!         LiveApplied { site, bytes, slot }
//!         LiveRefused { site, reason: Refusal }  (nothing was written; WrongImage when the
//!                                                 frame's build id is not the kernel's)
//!         LiveBadFrame { error: FrameError }     (nothing was attempted)
//! ```
//!
//! Integers are little-endian. The receiver looks for a magic word byte by byte, so it finds the
//! next frame after noise or a damaged frame.

use crate::crc32::crc32;

/// The first bytes of a patch frame.
pub const MAGIC: [u8; 4] = *b"GPAT";
/// The whole of an end-of-session frame.
pub const END: [u8; 4] = *b"GEND";
/// The whole of a frame asking the kernel which image it runs (it answers `Record::Image`).
pub const WHO: [u8; 4] = *b"GWHO";
/// The first bytes of a stage frame.
pub const STAGE: [u8; 4] = *b"GSTG";
/// The first bytes of a data frame (a staged block's next bytes).
pub const DATA: [u8; 4] = *b"GDAT";
/// The first bytes of a seal frame (a staged block's signature).
pub const SEAL: [u8; 4] = *b"GSIG";
/// The first bytes of an activate frame.
pub const ACTIVATE: [u8; 4] = *b"GACT";
/// The first bytes of a cancel frame.
pub const CANCEL: [u8; 4] = *b"GCAN";
/// The first bytes of a list frame (every site's state).
pub const LIST: [u8; 4] = *b"GLST";
/// The first bytes of a rollback frame.
pub const ROLLBACK: [u8; 4] = *b"GRBK";
/// The most block bytes one data frame carries.
pub const MAX_CHUNK: usize = MAX_BLOCK - 16;
/// Bytes of the build id a patch frame is bound to (`record::BUILD_ID_BYTES`).
pub const IMAGE_BYTES: usize = crate::record::BUILD_ID_BYTES;
/// The longest site name.
pub const MAX_NAME: usize = 32;
/// The longest block a frame carries (larger than any arena slot, so that the patcher, not the
/// wire, refuses blocks that do not fit).
pub const MAX_BLOCK: usize = 1024;
/// The longest frame.
pub const MAX_FRAME: usize = 4 + IMAGE_BYTES + 1 + MAX_NAME + 2 + MAX_BLOCK + 4;
/// Where a patch frame's name length is.
const NAME_AT: usize = 4 + IMAGE_BYTES;

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
    /// A stage, data, activate or cancel frame's payload has the wrong length.
    Payload(usize),
}

#[cfg(feature = "defmt")]
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
            Self::Payload(n) => defmt::write!(f, "payload of {=usize} bytes", n),
        }
    }
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NameTooLong(n) => write!(f, "site name of {n} bytes"),
            Self::BlockTooLong(n) => write!(f, "block of {n} bytes"),
            Self::NameNotUtf8 => f.write_str("site name is not UTF-8"),
            Self::Checksum { sent, computed } => {
                write!(f, "checksum {sent:#010x}, computed {computed:#010x}")
            }
            Self::Payload(n) => write!(f, "payload of {n} bytes"),
        }
    }
}

/// Why the kernel refused a well-formed patch frame: in every case the site still leads where it
/// led before. The kernel maps its patcher's errors onto these; the host names them in its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No site has this name.
    UnknownSite,
    /// Another producer is publishing to this site now.
    Busy,
    /// The block has no bytes.
    Empty,
    /// The block is larger than an arena slot.
    TooLarge {
        /// Bytes in the block.
        len: u32,
        /// Bytes a slot holds.
        max: u32,
    },
    /// The slot's address is not a multiple of 4.
    MisalignedAddress {
        /// The address.
        addr: u64,
    },
    /// The block's length is not a multiple of 4.
    MisalignedLength {
        /// Bytes in the block.
        len: u32,
    },
    /// The block would pass the top of the address space.
    AddressOverflow,
    /// A PC-relative reference leaves the block.
    Escapes {
        /// Byte offset of the instruction.
        offset: u32,
        /// Where it leads.
        target: u64,
    },
    /// A branch inside the block targets a literal-pool word.
    BranchIntoData {
        /// Byte offset of the branch.
        offset: u32,
    },
    /// Execution can run into a literal-pool word.
    FallsIntoData {
        /// Byte offset of the data word.
        offset: u32,
    },
    /// The last instruction can continue past the block's end.
    FallsThrough {
        /// The last instruction.
        word: u32,
    },
    /// No arena slot came free in time: these cores held the grace period back.
    ArenaFull {
        /// The cores, as a bit mask.
        lagging: u64,
    },
    /// The kernel's own check of the slot refused it.
    Vetoed,
    /// These cores did not acknowledge the publication in time; the old code stays live.
    Timeout {
        /// The cores, as a bit mask.
        missing: u64,
    },
    /// These cores are offline, so nothing was sent.
    Offline {
        /// The cores, as a bit mask.
        cores: u64,
    },
    /// The site already leads to the new block, but these cores did not confirm their
    /// synchronization in time: they may still run the previous block (which the kernel keeps).
    Unsynchronized {
        /// The cores (or consumers, by position), as a bit mask.
        missing: u64,
    },
    /// A stopped core was interrupted inside the code to be rewritten in place; nothing was
    /// written.
    InsideSite {
        /// The core.
        core: u8,
    },
    /// Where a stopped core was interrupted could not be told, so an in-place edit could not be
    /// proven safe; nothing was written.
    PositionUnknown {
        /// The core.
        core: u8,
    },
    /// The publication failed for another reason (the kernel's log line says which).
    PublishFailed,
    /// The frame was built for another image (its build id is not the running kernel's).
    WrongImage,
    /// The verifier refused an instruction (`patcher::check`: an exception-generating, system,
    /// wait or maintenance instruction, an access it cannot prove in bounds, an unbounded loop,
    /// ...); the kernel's log line says which rule, the host can decode the word.
    Unsafe {
        /// Byte offset of the instruction.
        offset: u32,
        /// The instruction.
        word: u32,
    },
    /// The arena refused a state change (a bookkeeping error).
    Arena,
    /// The frame's nonce names no open staging (never issued, cancelled, already activated:
    /// a replayed frame), or its site is not the staged one.
    NotStaged,
    /// A data frame's bytes do not start where the staged bytes end.
    OutOfOrder {
        /// Where they start.
        offset: u32,
        /// Where the staged bytes end.
        expected: u32,
    },
    /// Activation before every byte arrived (or a data frame past the staged length).
    Incomplete {
        /// Bytes received.
        received: u32,
        /// Bytes staged for.
        len: u32,
    },
    /// Another staging is open: activate or cancel it first.
    StageOpen,
    /// The patch carries no signature the image can check: an image with a key activates only
    /// sealed stagings; one without accepts nothing unless built with the development switch.
    Unsigned,
    /// The staging's signature does not verify with the image's key.
    BadSignature,
    /// A rollback found no previous code kept for the site (patched once, rolled back already,
    /// or a site that keeps none).
    NothingKept,
}

impl Refusal {
    /// The reason as a number and two fields, for the binary record.
    pub(crate) fn to_parts(self) -> (u8, u64, u64) {
        match self {
            Self::UnknownSite => (0, 0, 0),
            Self::Busy => (1, 0, 0),
            Self::Empty => (2, 0, 0),
            Self::TooLarge { len, max } => (3, len.into(), max.into()),
            Self::MisalignedAddress { addr } => (4, addr, 0),
            Self::MisalignedLength { len } => (5, len.into(), 0),
            Self::AddressOverflow => (6, 0, 0),
            Self::Escapes { offset, target } => (7, offset.into(), target),
            Self::BranchIntoData { offset } => (8, offset.into(), 0),
            Self::FallsIntoData { offset } => (9, offset.into(), 0),
            Self::FallsThrough { word } => (10, word.into(), 0),
            Self::ArenaFull { lagging } => (11, lagging, 0),
            Self::Vetoed => (12, 0, 0),
            Self::Timeout { missing } => (13, missing, 0),
            Self::Offline { cores } => (14, cores, 0),
            Self::PublishFailed => (15, 0, 0),
            Self::Arena => (16, 0, 0),
            Self::Unsynchronized { missing } => (17, missing, 0),
            Self::InsideSite { core } => (18, core.into(), 0),
            Self::PositionUnknown { core } => (19, core.into(), 0),
            Self::Unsafe { offset, word } => (20, offset.into(), word.into()),
            Self::WrongImage => (21, 0, 0),
            Self::NotStaged => (22, 0, 0),
            Self::OutOfOrder { offset, expected } => (23, offset.into(), expected.into()),
            Self::Incomplete { received, len } => (24, received.into(), len.into()),
            Self::StageOpen => (25, 0, 0),
            Self::Unsigned => (26, 0, 0),
            Self::BadSignature => (27, 0, 0),
            Self::NothingKept => (28, 0, 0),
        }
    }

    /// The reason from [`Refusal::to_parts`]; None for an unknown number or a field too wide.
    pub(crate) fn from_parts(kind: u8, a: u64, b: u64) -> Option<Self> {
        let small = |v: u64| u32::try_from(v).ok();
        Some(match kind {
            0 => Self::UnknownSite,
            1 => Self::Busy,
            2 => Self::Empty,
            3 => Self::TooLarge {
                len: small(a)?,
                max: small(b)?,
            },
            4 => Self::MisalignedAddress { addr: a },
            5 => Self::MisalignedLength { len: small(a)? },
            6 => Self::AddressOverflow,
            7 => Self::Escapes {
                offset: small(a)?,
                target: b,
            },
            8 => Self::BranchIntoData { offset: small(a)? },
            9 => Self::FallsIntoData { offset: small(a)? },
            10 => Self::FallsThrough { word: small(a)? },
            11 => Self::ArenaFull { lagging: a },
            12 => Self::Vetoed,
            13 => Self::Timeout { missing: a },
            14 => Self::Offline { cores: a },
            15 => Self::PublishFailed,
            16 => Self::Arena,
            17 => Self::Unsynchronized { missing: a },
            18 => Self::InsideSite {
                core: u8::try_from(a).ok()?,
            },
            19 => Self::PositionUnknown {
                core: u8::try_from(a).ok()?,
            },
            21 => Self::WrongImage,
            20 => Self::Unsafe {
                offset: small(a)?,
                word: small(b)?,
            },
            22 => Self::NotStaged,
            23 => Self::OutOfOrder {
                offset: small(a)?,
                expected: small(b)?,
            },
            24 => Self::Incomplete {
                received: small(a)?,
                len: small(b)?,
            },
            25 => Self::StageOpen,
            26 => Self::Unsigned,
            27 => Self::BadSignature,
            28 => Self::NothingKept,
            _ => return None,
        })
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::UnknownSite => f.write_str("unknown site"),
            Self::Busy => f.write_str("another producer is publishing to this site"),
            Self::Empty => f.write_str("empty block"),
            Self::TooLarge { len, max } => write!(f, "block of {len} bytes, a slot holds {max}"),
            Self::MisalignedAddress { addr } => write!(f, "misaligned slot address {addr:#x}"),
            Self::MisalignedLength { len } => {
                write!(f, "length {len} is not a multiple of 4")
            }
            Self::AddressOverflow => f.write_str("the block passes the top of the address space"),
            Self::Escapes { offset, target } => {
                write!(
                    f,
                    "the instruction at +{offset:#x} reaches {target:#x}, outside the block"
                )
            }
            Self::BranchIntoData { offset } => {
                write!(f, "the branch at +{offset:#x} targets a literal-pool word")
            }
            Self::FallsIntoData { offset } => {
                write!(f, "execution runs into the data word at +{offset:#x}")
            }
            Self::FallsThrough { word } => {
                write!(
                    f,
                    "the last instruction {word:#010x} can run past the block"
                )
            }
            Self::ArenaFull { lagging } => {
                write!(
                    f,
                    "arena full; cores {lagging:#x} hold the grace period back"
                )
            }
            Self::Vetoed => f.write_str("the slot was vetoed"),
            Self::Timeout { missing } => {
                write!(f, "cores {missing:#x} did not acknowledge in time")
            }
            Self::Offline { cores } => write!(f, "cores {cores:#x} are offline"),
            Self::Unsynchronized { missing } => write!(
                f,
                "the site leads to the new block, but cores {missing:#x} did not confirm"
            ),
            Self::InsideSite { core } => {
                write!(f, "core {core} was stopped inside the code to rewrite")
            }
            Self::PositionUnknown { core } => {
                write!(f, "where core {core} was stopped is unknown")
            }
            Self::PublishFailed => f.write_str("the publication failed"),
            Self::WrongImage => f.write_str(
                "the frame was built for another image (its build id is not this kernel's)",
            ),
            Self::Arena => f.write_str("arena bookkeeping error"),
            Self::Unsafe { offset, word } => write!(
                f,
                "the verifier refused the instruction {word:#010x} at +{offset:#x}"
            ),
            Self::NotStaged => f.write_str(
                "no staging is open with this nonce for this site (cancelled, activated or \
                 replayed)",
            ),
            Self::OutOfOrder { offset, expected } => write!(
                f,
                "bytes at +{offset:#x}, but the staged bytes end at +{expected:#x}"
            ),
            Self::Incomplete { received, len } => {
                write!(f, "{received} of the staged {len} bytes arrived")
            }
            Self::StageOpen => f.write_str("another staging is open"),
            Self::Unsigned => f.write_str(
                "unsigned: this image admits only patches signed with its key (a development \
                 build admits unsigned ones)",
            ),
            Self::NothingKept => f.write_str(
                "nothing to roll back to: the site keeps no previous code (patched once, rolled \
                 back already, or a site that keeps none)",
            ),
            Self::BadSignature => f.write_str(
                "the signature does not verify with this image's key for this staging (wrong \
                 key, or a frame replayed, re-targeted or changed)",
            ),
        }
    }
}

/// Writes a patch frame for `block` at site `name`, for the image with build id `image`, into
/// `out`; returns its length.
pub fn encode(
    image: &[u8; IMAGE_BYTES],
    name: &str,
    block: &[u8],
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    encode_frame(MAGIC, image, name, &[block], out)
}

/// Writes a stage frame: reserve a slot at site `name` for a block of `len` bytes, to be freed
/// if no frame for it comes within `expiry_s` seconds of the last one.
pub fn encode_stage(
    image: &[u8; IMAGE_BYTES],
    name: &str,
    len: u32,
    expiry_s: u16,
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    encode_frame(
        STAGE,
        image,
        name,
        &[&len.to_le_bytes(), &expiry_s.to_le_bytes()],
        out,
    )
}

/// Writes a data frame: `bytes` of staging `nonce`'s block, from `offset`.
pub fn encode_data(
    image: &[u8; IMAGE_BYTES],
    name: &str,
    nonce: u64,
    offset: u32,
    bytes: &[u8],
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    if bytes.len() > MAX_CHUNK {
        return Err(FrameError::BlockTooLong(bytes.len()));
    }
    encode_frame(
        DATA,
        image,
        name,
        &[&nonce.to_le_bytes(), &offset.to_le_bytes(), bytes],
        out,
    )
}

/// Writes a seal frame: staging `nonce`'s signature (`crate::signing::sign`).
pub fn encode_seal(
    image: &[u8; IMAGE_BYTES],
    name: &str,
    nonce: u64,
    signature: &[u8; crate::signing::SIGNATURE_BYTES],
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    encode_frame(SEAL, image, name, &[&nonce.to_le_bytes(), signature], out)
}

/// Writes a list frame (`LIST`, `name` empty) or a rollback frame (`ROLLBACK`, for site
/// `name`): frames with no payload.
pub fn encode_request(
    magic: [u8; 4],
    image: &[u8; IMAGE_BYTES],
    name: &str,
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    encode_frame(magic, image, name, &[], out)
}

/// Writes an activate (`ACTIVATE`) or cancel (`CANCEL`) frame for staging `nonce`.
pub fn encode_end_of_stage(
    magic: [u8; 4],
    image: &[u8; IMAGE_BYTES],
    name: &str,
    nonce: u64,
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    encode_frame(magic, image, name, &[&nonce.to_le_bytes()], out)
}

/// Every frame but `GWHO` and `GEND`: magic, build id, site name, a payload of `parts`, CRC.
fn encode_frame(
    magic: [u8; 4],
    image: &[u8; IMAGE_BYTES],
    name: &str,
    parts: &[&[u8]],
    out: &mut [u8; MAX_FRAME],
) -> Result<usize, FrameError> {
    if name.len() > MAX_NAME {
        return Err(FrameError::NameTooLong(name.len()));
    }
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_BLOCK {
        return Err(FrameError::BlockTooLong(len));
    }
    let mut n = 0;
    for part in [
        &magic[..],
        &image[..],
        &[name.len() as u8],
        name.as_bytes(),
        &(len as u16).to_le_bytes(),
    ]
    .into_iter()
    .chain(parts.iter().copied())
    {
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
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site it names.
        site: &'a str,
        /// The block, not yet checked as code.
        block: &'a [u8],
    },
    /// Reserve a slot at `site` for a block of `len` bytes.
    Stage {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site it names.
        site: &'a str,
        /// The block's length.
        len: u32,
        /// Seconds without a frame for this staging after which the kernel frees it.
        expiry_s: u16,
    },
    /// The next bytes of a staged block.
    Data {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site it names.
        site: &'a str,
        /// The staging's nonce.
        nonce: u64,
        /// Where the bytes go in the block.
        offset: u32,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// A staged block's signature.
    Seal {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site it names.
        site: &'a str,
        /// The staging's nonce.
        nonce: u64,
        /// The Ed25519 signature.
        signature: &'a [u8; crate::signing::SIGNATURE_BYTES],
    },
    /// Check, write and publish a staged block.
    Activate {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site it names.
        site: &'a str,
        /// The staging's nonce.
        nonce: u64,
    },
    /// Drop a staged block and free its slot.
    Cancel {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site it names.
        site: &'a str,
        /// The staging's nonce.
        nonce: u64,
    },
    /// Report every site's state.
    List {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
    },
    /// Lead `site` back to the code it ran before its last patch.
    Rollback {
        /// The build id of the image it was built for.
        image: &'a [u8; IMAGE_BYTES],
        /// The site.
        site: &'a str,
    },
    /// The host ended the session.
    End,
    /// The host asks which image runs.
    Who,
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
            if self.len == 4 && self.buf[..4] == WHO {
                self.len = 0;
                return Some(Event::Who);
            }
            return None;
        }
        self.buf[self.len] = byte;
        self.len += 1;
        if self.len <= NAME_AT {
            return None;
        }
        let name_len = self.buf[NAME_AT] as usize;
        if self.len == NAME_AT + 1 && name_len > MAX_NAME {
            self.len = 0;
            return Some(Event::Bad(FrameError::NameTooLong(name_len)));
        }
        let head = NAME_AT + 1 + name_len + 2;
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
        let (magic_and_image, rest) = self.buf.split_at(NAME_AT);
        let magic: [u8; 4] = magic_and_image[..4].try_into().expect("4 bytes");
        let image = magic_and_image[4..]
            .try_into()
            .expect("the frame's build id is IMAGE_BYTES long");
        let Ok(site) = core::str::from_utf8(&rest[1..1 + name_len]) else {
            return Some(Event::Bad(FrameError::NameNotUtf8));
        };
        let payload = &rest[head - NAME_AT..end - NAME_AT];
        let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8"));
        let u32_at = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().expect("4"));
        let bad = Some(Event::Bad(FrameError::Payload(payload.len())));
        match magic {
            MAGIC => Some(Event::Patch {
                image,
                site,
                block: payload,
            }),
            STAGE if payload.len() == 6 => Some(Event::Stage {
                image,
                site,
                len: u32_at(0),
                expiry_s: u16::from_le_bytes([payload[4], payload[5]]),
            }),
            DATA if payload.len() >= 12 && payload.len() <= 12 + MAX_CHUNK => Some(Event::Data {
                image,
                site,
                nonce: u64_at(0),
                offset: u32_at(8),
                bytes: &payload[12..],
            }),
            SEAL if payload.len() == 8 + crate::signing::SIGNATURE_BYTES => Some(Event::Seal {
                image,
                site,
                nonce: u64_at(0),
                signature: payload[8..].try_into().expect("64 bytes"),
            }),
            ACTIVATE if payload.len() == 8 => Some(Event::Activate {
                image,
                site,
                nonce: u64_at(0),
            }),
            LIST if payload.is_empty() && site.is_empty() => Some(Event::List { image }),
            ROLLBACK if payload.is_empty() => Some(Event::Rollback { image, site }),
            CANCEL if payload.len() == 8 => Some(Event::Cancel {
                image,
                site,
                nonce: u64_at(0),
            }),
            _ => bad,
        }
    }
}

/// True if `bytes` (at most 4) could be the start of a magic word.
fn starts_magic(bytes: &[u8]) -> bool {
    [
        MAGIC, END, WHO, STAGE, DATA, SEAL, ACTIVATE, CANCEL, LIST, ROLLBACK,
    ]
    .iter()
    .any(|m| m.starts_with(bytes))
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

    const IMAGE: [u8; IMAGE_BYTES] = [0x5a; IMAGE_BYTES];

    fn frame(name: &str, block: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_FRAME];
        let n = encode(&IMAGE, name, block, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn frames_round_trip_after_noise() {
        let mut r = Receiver::new();
        let mut bytes = b"GGPxGEN\0noise".to_vec();
        bytes.extend(frame("indirect", &[1, 2, 3, 4]));
        bytes.extend(WHO);
        bytes.extend(END);
        let got = feed(&mut r, &bytes);
        assert_eq!(
            got,
            vec![
                format!(
                    "{:?}",
                    Event::Patch {
                        image: &IMAGE,
                        site: "indirect",
                        block: &[1, 2, 3, 4]
                    }
                ),
                "Who".to_string(),
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
                    image: &IMAGE,
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
            encode(&IMAGE, &"x".repeat(MAX_NAME + 1), &[], &mut out),
            Err(FrameError::NameTooLong(MAX_NAME + 1))
        );
        assert_eq!(
            encode(&IMAGE, "s", &[0; MAX_BLOCK + 1], &mut out),
            Err(FrameError::BlockTooLong(MAX_BLOCK + 1))
        );
        let mut r = Receiver::new();
        let head = |rest: &[u8]| [&MAGIC[..], &IMAGE[..], rest].concat();
        let got = feed(&mut r, &head(&[200]));
        assert_eq!(got, vec!["Bad(NameTooLong(200))".to_string()]);
        let got = feed(&mut r, &head(&[1, b's', 0xff, 0xff]));
        assert_eq!(got, vec!["Bad(BlockTooLong(65535))".to_string()]);
    }

    #[test]
    fn staging_frames_round_trip() {
        let mut out = [0u8; MAX_FRAME];
        let mut bytes = Vec::new();
        let n = encode_stage(&IMAGE, "law", 164, 30, &mut out).unwrap();
        bytes.extend(&out[..n]);
        let n = encode_data(&IMAGE, "law", 7, 96, &[1, 2, 3, 4], &mut out).unwrap();
        bytes.extend(&out[..n]);
        let n = encode_seal(&IMAGE, "law", 7, &[0x3c; 64], &mut out).unwrap();
        bytes.extend(&out[..n]);
        let n = encode_end_of_stage(ACTIVATE, &IMAGE, "law", 7, &mut out).unwrap();
        bytes.extend(&out[..n]);
        let n = encode_end_of_stage(CANCEL, &IMAGE, "law", 8, &mut out).unwrap();
        bytes.extend(&out[..n]);
        let n = encode_request(LIST, &IMAGE, "", &mut out).unwrap();
        bytes.extend(&out[..n]);
        let n = encode_request(ROLLBACK, &IMAGE, "law", &mut out).unwrap();
        bytes.extend(&out[..n]);
        let mut r = Receiver::new();
        let got = feed(&mut r, &bytes);
        let want = [
            Event::Stage {
                image: &IMAGE,
                site: "law",
                len: 164,
                expiry_s: 30,
            },
            Event::Data {
                image: &IMAGE,
                site: "law",
                nonce: 7,
                offset: 96,
                bytes: &[1, 2, 3, 4],
            },
            Event::Seal {
                image: &IMAGE,
                site: "law",
                nonce: 7,
                signature: &[0x3c; 64],
            },
            Event::Activate {
                image: &IMAGE,
                site: "law",
                nonce: 7,
            },
            Event::Cancel {
                image: &IMAGE,
                site: "law",
                nonce: 8,
            },
            Event::List { image: &IMAGE },
            Event::Rollback {
                image: &IMAGE,
                site: "law",
            },
        ]
        .map(|e| format!("{e:?}"));
        assert_eq!(got, want);
        assert_eq!(
            encode_data(&IMAGE, "law", 7, 0, &[0; MAX_CHUNK + 1], &mut out),
            Err(FrameError::BlockTooLong(MAX_CHUNK + 1))
        );
    }

    #[test]
    fn a_staging_payload_of_the_wrong_length_is_refused() {
        let mut out = [0u8; MAX_FRAME];
        // A stage frame whose payload is a u64, not the u32 length and u16 expiry.
        let n = encode_frame(STAGE, &IMAGE, "law", &[&[0; 8]], &mut out).unwrap();
        let mut r = Receiver::new();
        assert_eq!(feed(&mut r, &out[..n]), vec!["Bad(Payload(8))".to_string()]);
        let n = encode_frame(ACTIVATE, &IMAGE, "law", &[&[0; 4]], &mut out).unwrap();
        assert_eq!(feed(&mut r, &out[..n]), vec!["Bad(Payload(4))".to_string()]);
        // A list frame that names a site, a rollback frame with a payload.
        let n = encode_request(LIST, &IMAGE, "law", &mut out).unwrap();
        assert_eq!(feed(&mut r, &out[..n]), vec!["Bad(Payload(0))".to_string()]);
        let n = encode_frame(ROLLBACK, &IMAGE, "law", &[&[0; 8]], &mut out).unwrap();
        assert_eq!(feed(&mut r, &out[..n]), vec!["Bad(Payload(8))".to_string()]);
        // A seal frame cut to a nonce and half a signature.
        let n = encode_frame(SEAL, &IMAGE, "law", &[&[0; 8], &[0; 32]], &mut out).unwrap();
        assert_eq!(
            feed(&mut r, &out[..n]),
            vec!["Bad(Payload(40))".to_string()]
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        let mut bytes = frame("ab", &[]);
        bytes[NAME_AT + 1] = 0xff;
        let n = bytes.len();
        let crc = crc32(&bytes[..n - 4]);
        bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let mut r = Receiver::new();
        assert_eq!(feed(&mut r, &bytes), vec!["Bad(NameNotUtf8)".to_string()]);
    }
}
