//! The loader's side of a transfer, as a state machine over two small traits.
//!
//! Written against [`Link`] (bytes in with a time limit, bytes out) and [`Memory`] (where the
//! image goes) so that the same code runs on the board and in xtask's host tests, where a
//! corrupted or oversize transfer is easy to stage. Every wait here is bounded: a silent host
//! costs at most [`MAX_RETRIES`] chunk timeouts, then the loader waits for a new header.

use core::fmt::{self, Write};
use protocol::crc32::{Crc32, crc32};
use protocol::loader::{
    CHUNK, CHUNK_HEAD, CHUNK_TAIL, HEADER_LEN, Header, IMAGE_MAGIC, IMAGE_MAGIC_OFFSET, MAGIC,
    MAX_RETRIES, MIN_IMAGE, NakReason, Refusal, Reply, VERSION, chunk_len,
};

/// How long the loader waits between announcements while idle.
pub const ANNOUNCE_MS: u32 = 1000;
/// How long a frame may pause between two of its bytes.
pub const BYTE_MS: u32 = 500;
/// How long the loader waits for the first byte of the next chunk after answering.
pub const CHUNK_MS: u32 = 3000;
/// The quiet time that ends a drain after a bad frame.
pub const DRAIN_MS: u32 = 100;

/// The serial line, as the receiver needs it.
pub trait Link {
    /// One received byte, or None when none came within `timeout_ms`.
    fn read(&mut self, timeout_ms: u32) -> Option<u8>;
    /// Sends `bytes`, blocking until they are queued.
    fn write(&mut self, bytes: &[u8]);
}

/// Where the image is written.
pub trait Memory {
    /// The largest image that fits: the room below the loader's own copy.
    fn capacity(&self) -> usize;
    /// The address the image is written at (and entered at), for the messages.
    fn load_address(&self) -> u64;
    /// Writes `bytes` at `offset`; the receiver keeps `offset + bytes.len() <= capacity()`.
    fn write(&mut self, offset: usize, bytes: &[u8]);
}

/// The room for an image loaded at `load` that must not reach the loader at
/// `[loader_start, loader_end)`: the gap up to the loader when the loader lies above, and nothing
/// when the loader sits at or around `load` (the loader moves itself high first).
pub fn capacity(load: usize, loader_start: usize, loader_end: usize) -> usize {
    if loader_end <= load {
        // The loader is entirely below: only the address space limits the image.
        usize::MAX - load
    } else {
        loader_start.saturating_sub(load)
    }
}

/// A complete, checked image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// Its size in bytes.
    pub size: usize,
}

struct Line<'l, L: Link>(&'l mut L);

impl<L: Link> Write for Line<'_, L> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// Sends one reply line.
pub fn reply<L: Link>(link: &mut L, r: &Reply<'_>) {
    // Writing to the link cannot fail; `Line` always returns Ok.
    let _ = writeln!(Line(link), "{r}");
}

/// Announces the loader until a header frame arrives, then receives the image it describes.
///
/// Returns the image once all of it is written and its checksum matches (after sending `BOOT`),
/// or the reason the transfer was abandoned (after sending `ERR`). The caller calls again to wait
/// for the next attempt.
pub fn serve<L: Link, M: Memory>(
    link: &mut L,
    mem: &mut M,
    board: &str,
) -> Result<Loaded, Refusal> {
    let max = u32::try_from(mem.capacity()).unwrap_or(u32::MAX);
    let header = wait_header(link, mem, board, max);
    let result = header.and_then(|h| receive(link, mem, h, max));
    match result {
        Ok(_) => reply(link, &Reply::Boot(mem.load_address())),
        Err(why) => reply(link, &Reply::Err(why)),
    }
    result
}

fn wait_header<L: Link, M: Memory>(
    link: &mut L,
    mem: &M,
    board: &str,
    max: u32,
) -> Result<Header, Refusal> {
    let announce = Reply::Announce {
        version: VERSION,
        board,
        load: mem.load_address(),
        max,
    };
    reply(link, &announce);
    let mut seen = [0u8; 4];
    loop {
        match link.read(ANNOUNCE_MS) {
            None => reply(link, &announce),
            Some(b) => {
                seen.rotate_left(1);
                seen[3] = b;
                if seen == MAGIC {
                    break;
                }
            }
        }
    }
    let mut frame = [0u8; HEADER_LEN];
    frame[..4].copy_from_slice(&MAGIC);
    for byte in &mut frame[4..] {
        *byte = link.read(BYTE_MS).ok_or(Refusal::HeaderTimeout)?;
    }
    let header = Header::decode(&frame).ok_or(Refusal::HeaderChecksum)?;
    if header.size > max {
        return Err(Refusal::TooLarge {
            size: header.size,
            max,
        });
    }
    if (header.size as usize) < MIN_IMAGE {
        return Err(Refusal::TooSmall { size: header.size });
    }
    Ok(header)
}

/// Reads one chunk frame into `buf`; returns its index and payload length.
fn read_chunk<L: Link>(
    link: &mut L,
    buf: &mut [u8; CHUNK_HEAD + CHUNK + CHUNK_TAIL],
) -> Result<(u32, usize), NakReason> {
    buf[0] = link.read(CHUNK_MS).ok_or(NakReason::Timeout)?;
    for byte in &mut buf[1..CHUNK_HEAD] {
        *byte = link.read(BYTE_MS).ok_or(NakReason::Timeout)?;
    }
    let index = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = usize::from(u16::from_le_bytes([buf[4], buf[5]]));
    if len == 0 || len > CHUNK {
        return Err(NakReason::Length);
    }
    for byte in &mut buf[CHUNK_HEAD..CHUNK_HEAD + len + CHUNK_TAIL] {
        *byte = link.read(BYTE_MS).ok_or(NakReason::Timeout)?;
    }
    let t = CHUNK_HEAD + len;
    let sent = u32::from_le_bytes([buf[t], buf[t + 1], buf[t + 2], buf[t + 3]]);
    if sent != crc32(&buf[..t]) {
        return Err(NakReason::Checksum);
    }
    Ok((index, len))
}

/// Discards input until the line has been quiet for [`DRAIN_MS`], at most a few frames' worth.
fn drain<L: Link>(link: &mut L) {
    for _ in 0..4 * (CHUNK_HEAD + CHUNK + CHUNK_TAIL) {
        if link.read(DRAIN_MS).is_none() {
            return;
        }
    }
}

fn receive<L: Link, M: Memory>(
    link: &mut L,
    mem: &mut M,
    header: Header,
    max: u32,
) -> Result<Loaded, Refusal> {
    debug_assert!(header.size <= max);
    let chunks = header.chunks();
    reply(
        link,
        &Reply::Ready {
            size: header.size,
            chunks,
        },
    );
    let mut buf = [0u8; CHUNK_HEAD + CHUNK + CHUNK_TAIL];
    let mut crc = Crc32::new();
    let mut magic_ok = false;
    let mut next = 0u32;
    let mut refused = 0u32;
    while next < chunks {
        let verdict = match read_chunk(link, &mut buf) {
            Ok((index, len)) if index == next && len == chunk_len(header.size, next) => {
                let payload = &buf[CHUNK_HEAD..CHUNK_HEAD + len];
                let offset = next as usize * CHUNK;
                if next == 0 {
                    magic_ok = payload[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4] == IMAGE_MAGIC;
                    if !magic_ok {
                        return Err(Refusal::NotAnImage);
                    }
                }
                mem.write(offset, payload);
                crc.update(payload);
                reply(link, &Reply::Ack(next));
                next += 1;
                refused = 0;
                continue;
            }
            // Our acknowledgement of the previous chunk was lost and the host sent it again.
            Ok((index, _)) if index.wrapping_add(1) == next => {
                reply(link, &Reply::Ack(index));
                continue;
            }
            Ok((_, len)) if len != chunk_len(header.size, next) => NakReason::Length,
            Ok(_) => NakReason::Index,
            Err(why) => why,
        };
        drain(link);
        refused += 1;
        if refused >= MAX_RETRIES {
            return Err(Refusal::Retries { chunk: next });
        }
        reply(link, &Reply::Nak(next, verdict));
    }
    if crc.finish() != header.crc || !magic_ok {
        return Err(Refusal::ImageChecksum);
    }
    Ok(Loaded {
        size: header.size as usize,
    })
}
