//! Host tests of the framing: xtask's sender against the loader's own receiver, over a pipe.
//!
//! The receiver runs in a thread exactly as on the board, writing into a `Vec`; faults are
//! staged on the sending side. Each test checks what the loader ends up with, so that a sender
//! or receiver that silently accepts damage fails here.

use super::Announce;
use super::*;
use graft_loader::receiver::{self, Link, Loaded, Memory};
use protocol::loader::{CHUNK, Refusal};
use protocol::loader::{IMAGE_MAGIC, IMAGE_MAGIC_OFFSET};
use std::collections::VecDeque;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;

/// The host's end: reads time out after 20 ms, like a serial port's.
struct HostEnd {
    rx: Receiver<u8>,
    tx: Sender<u8>,
}

impl Read for HostEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let first = match self.rx.recv_timeout(Duration::from_millis(20)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::TimedOut.into()),
            Err(RecvTimeoutError::Disconnected) => return Err(io::ErrorKind::BrokenPipe.into()),
        };
        buf[0] = first;
        let mut n = 1;
        while n < buf.len() {
            match self.rx.try_recv() {
                Ok(b) => {
                    buf[n] = b;
                    n += 1;
                }
                Err(_) => break,
            }
        }
        Ok(n)
    }
}

impl Write for HostEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.tx
                .send(b)
                .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The loader's end, as `receiver::serve` sees the UART.
struct LoaderEnd {
    rx: Receiver<u8>,
    tx: Sender<u8>,
}

impl Link for LoaderEnd {
    fn read(&mut self, timeout_ms: u32) -> Option<u8> {
        self.rx
            .recv_timeout(Duration::from_millis(u64::from(timeout_ms)))
            .ok()
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let _ = self.tx.send(b);
        }
    }
}

struct Ram {
    bytes: Vec<u8>,
    capacity: usize,
}

impl Memory for Ram {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn load_address(&self) -> u64 {
        0x80000
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.capacity);
        if self.bytes.len() < offset + bytes.len() {
            self.bytes.resize(offset + bytes.len(), 0);
        }
        self.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
}

type Outcomes = VecDeque<(Result<Loaded, Refusal>, Vec<u8>)>;

/// Starts a loader with `capacity` bytes of room serving `attempts` transfers; returns the host
/// end and a handle yielding each attempt's outcome and memory.
fn loader(capacity: usize, attempts: usize) -> (HostEnd, thread::JoinHandle<Outcomes>) {
    let (to_loader, loader_rx) = mpsc::channel();
    let (loader_tx, from_loader) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut link = LoaderEnd {
            rx: loader_rx,
            tx: loader_tx,
        };
        let mut outcomes = VecDeque::new();
        for _ in 0..attempts {
            let mut ram = Ram {
                bytes: Vec::new(),
                capacity,
            };
            let r = receiver::serve(&mut link, &mut ram, "rpi3");
            outcomes.push_back((r, ram.bytes));
        }
        outcomes
    });
    (
        HostEnd {
            rx: from_loader,
            tx: to_loader,
        },
        handle,
    )
}

/// A fake kernel image: the arm64 magic at 0x38 and a pattern, `len` bytes.
fn image(len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    v[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4].copy_from_slice(&IMAGE_MAGIC);
    v
}

#[test]
fn a_clean_transfer_lands_byte_for_byte() {
    let (host, loader) = loader(1 << 20, 1);
    let mut s = Session::new(host);
    let a = s.handshake(Duration::from_secs(5)).unwrap();
    assert_eq!(
        a,
        Announce {
            board: "rpi3".into(),
            load: 0x80000,
            max: 1 << 20
        }
    );
    let img = image(5 * CHUNK + 123);
    assert_eq!(
        s.transfer(&img, Faults::default(), &ProgressBar::hidden())
            .unwrap(),
        0x80000
    );
    let (r, mem) = loader.join().unwrap().pop_front().unwrap();
    assert_eq!(r, Ok(Loaded { size: img.len() }));
    assert_eq!(mem, img);
}

#[test]
fn a_corrupted_chunk_is_sent_again_and_lands_intact() {
    let (host, loader) = loader(1 << 20, 1);
    let mut s = Session::new(host);
    s.handshake(Duration::from_secs(5)).unwrap();
    let img = image(4 * CHUNK);
    let faults = Faults {
        corrupt_once: Some(2),
        ..Faults::default()
    };
    s.transfer(&img, faults, &ProgressBar::hidden()).unwrap();
    let (r, mem) = loader.join().unwrap().pop_front().unwrap();
    assert_eq!(r, Ok(Loaded { size: img.len() }));
    assert_eq!(mem, img);
}

#[test]
fn a_chunk_corrupted_every_time_fails_by_name_and_the_loader_gives_up() {
    let (host, loader) = loader(1 << 20, 1);
    let mut s = Session::new(host);
    s.handshake(Duration::from_secs(5)).unwrap();
    let faults = Faults {
        corrupt_always: Some(1),
        ..Faults::default()
    };
    let e = s
        .transfer(&image(3 * CHUNK), faults, &ProgressBar::hidden())
        .unwrap_err();
    assert!(
        matches!(e, FlashError::Refused(Refusal::Retries { chunk: 1 })),
        "{e}"
    );
    assert!(e.to_string().contains("chunk 1"), "{e}");
    let (r, _) = loader.join().unwrap().pop_front().unwrap();
    assert_eq!(r, Err(Refusal::Retries { chunk: 1 }));
}

#[test]
fn an_oversize_image_is_refused_and_the_loader_still_takes_a_good_one() {
    let (host, loader) = loader(8 * CHUNK, 2);
    let mut s = Session::new(host);
    let a = s.handshake(Duration::from_secs(5)).unwrap();
    let big = image(a.max as usize + 1);
    let e = s
        .transfer(&big, Faults::default(), &ProgressBar::hidden())
        .unwrap_err();
    assert!(
        matches!(
            e,
            FlashError::Refused(Refusal::TooLarge { size, max }) if size == a.max + 1 && max == a.max
        ),
        "{e}"
    );
    assert!(e.to_string().contains("only 8192 fit"), "{e}");
    // The loader announces itself again and a good image still goes through.
    s.handshake(Duration::from_secs(5)).unwrap();
    let img = image(3 * CHUNK + 1);
    s.transfer(&img, Faults::default(), &ProgressBar::hidden())
        .unwrap();
    let mut outcomes = loader.join().unwrap();
    let (first, _) = outcomes.pop_front().unwrap();
    assert!(matches!(first, Err(Refusal::TooLarge { .. })));
    let (second, mem) = outcomes.pop_front().unwrap();
    assert_eq!(second, Ok(Loaded { size: img.len() }));
    assert_eq!(mem, img);
}

#[test]
fn an_image_without_the_arm64_magic_is_refused() {
    let (host, loader) = loader(1 << 20, 1);
    let mut s = Session::new(host);
    s.handshake(Duration::from_secs(5)).unwrap();
    let mut img = image(2 * CHUNK);
    img[IMAGE_MAGIC_OFFSET] = 0;
    let e = s
        .transfer(&img, Faults::default(), &ProgressBar::hidden())
        .unwrap_err();
    assert!(matches!(e, FlashError::Refused(Refusal::NotAnImage)), "{e}");
    let (r, _) = loader.join().unwrap().pop_front().unwrap();
    assert_eq!(r, Err(Refusal::NotAnImage));
}

#[test]
fn silence_is_a_handshake_timeout_that_says_what_to_check() {
    let (_to_host, rx) = mpsc::channel();
    let (tx, _from_host) = mpsc::channel();
    let mut s = Session::new(HostEnd { rx, tx });
    let e = s.handshake(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(e, FlashError::NoHandshake { .. }), "{e}");
    assert!(e.to_string().contains("TX/RX"), "{e}");
}
