//! `cargo xtask fuzz`: the parsers that take bytes from outside, fed seeded random and mutated
//! input on stable Rust, each case checked for panics and for the properties below.
//!
//! - `frames`: the kernel's live-patch [`Receiver`](protocol::live::Receiver). No input panics;
//!   every patch or staging frame it yields re-encodes to bytes it reads back as the same frame; a valid
//!   frame with one byte changed never yields that same frame.
//! - `loader`: the chainloader's receiver (`graft_loader::receiver::serve`) over a fake line and
//!   memory. No input panics, none writes outside the capacity it was given, and a refused
//!   transfer is reported, never booted.
//! - `verifier`: [`patcher::check::check_block`] with the kernel sites' policy. No input panics
//!   and the verdict is the same twice. (A refused block writes nothing by construction: the
//!   arena takes only a `Checked` block.)
//!
//! Inputs are random bytes, and valid inputs with one mutation (a flipped bit, a changed,
//! inserted or removed byte). A failure prints the target, the case number and the seed, so
//! `--seed S` replays it.

use anyhow::Result;
use clap::{Args, ValueEnum};
use graft_loader::receiver::{self, Link, Memory};
use patcher::check::{Externals, Policy, check_block};
use protocol::live::{self, Event, IMAGE_BYTES, MAX_FRAME, Receiver};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// `cargo xtask fuzz` options.
#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Cases per target.
    #[arg(long, default_value_t = 1_000_000)]
    pub cases: u64,
    /// The random seed (a failure names the one to replay).
    #[arg(long, default_value_t = 0x6772_6166_7400_0001)]
    pub seed: u64,
    /// Only these targets (default: all).
    #[arg(long = "target", value_enum)]
    pub targets: Vec<Target>,
}

/// What is fuzzed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The live-patch frame receiver.
    Frames,
    /// The serial chainloader's receiver.
    Loader,
    /// The patch verifier.
    Verifier,
}

/// Every target, in the order they run.
pub const ALL: [Target; 3] = [Target::Frames, Target::Loader, Target::Verifier];

/// xorshift64*: small, seeded, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// `input` with one mutation.
    fn mutate(&mut self, mut input: Vec<u8>) -> Vec<u8> {
        let at = self.below(input.len());
        match self.below(4) {
            0 if !input.is_empty() => input[at] ^= 1 << self.below(8),
            1 if !input.is_empty() => input[at] = self.next() as u8,
            2 => input.insert(at, self.next() as u8),
            _ if !input.is_empty() => {
                input.remove(at);
            }
            _ => input.push(self.next() as u8),
        }
        input
    }
}

/// One target's tally.
pub struct Outcome {
    /// The target.
    pub target: Target,
    /// Cases run.
    pub cases: u64,
    /// The first failure: its case number and why.
    pub failure: Option<(u64, String)>,
    /// Cases per second.
    pub rate: f64,
}

thread_local! {
    /// The case being run, for the panic hook: a binary built with `panic = "abort"` cannot
    /// catch a panic, so the hook names the case before the process ends.
    static CASE: Cell<Option<(Target, u64, u64)>> = const { Cell::new(None) };
}

/// Runs `cases` cases of `target` from `seed`, stopping at the first failure.
pub fn run(target: Target, cases: u64, seed: u64) -> Outcome {
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut failure = None;
    let mut done = 0;
    for case in 0..cases {
        let input = match target {
            Target::Frames => frame_input(&mut rng),
            Target::Loader => loader_input(&mut rng),
            Target::Verifier => verifier_input(&mut rng),
        };
        CASE.set(Some((target, case, seed)));
        let result = catch_unwind(AssertUnwindSafe(|| match target {
            Target::Frames => frames(&input),
            Target::Loader => loader(&input),
            Target::Verifier => verifier(&input),
        }));
        CASE.set(None);
        done += 1;
        let why = match result {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(panic) => format!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        };
        failure = Some((
            case,
            format!("{why} (input {:02x?})", &input[..input.len().min(64)]),
        ));
        break;
    }
    Outcome {
        target,
        cases: done,
        failure,
        rate: done as f64 / start.elapsed().as_secs_f64().max(1e-9),
    }
}

const IMAGE: [u8; IMAGE_BYTES] = [0x42; IMAGE_BYTES];

fn valid_frame(rng: &mut Rng) -> Vec<u8> {
    let name: String = (0..1 + rng.below(live::MAX_NAME))
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect();
    let nonce = rng.next();
    let mut out = [0u8; MAX_FRAME];
    // Patch frames, and each staging frame kind.
    let n = match rng.below(8) {
        0 => {
            let len = rng.below(160);
            live::encode(&IMAGE, &name, &rng.bytes(len), &mut out)
        }
        1 => live::encode_stage(
            &IMAGE,
            &name,
            rng.next() as u32,
            rng.next() as u16,
            &mut out,
        ),
        2 => {
            let len = rng.below(live::MAX_CHUNK + 1);
            let bytes = rng.bytes(len);
            live::encode_data(&IMAGE, &name, nonce, rng.next() as u32, &bytes, &mut out)
        }
        3 => live::encode_end_of_stage(live::ACTIVATE, &IMAGE, &name, nonce, &mut out),
        4 => {
            let sig: [u8; 64] = rng.bytes(64).try_into().expect("64 bytes");
            live::encode_seal(&IMAGE, &name, nonce, &sig, &mut out)
        }
        5 => live::encode_request(live::LIST, &IMAGE, "", &mut out),
        6 => live::encode_request(live::ROLLBACK, &IMAGE, &name, &mut out),
        _ => live::encode_end_of_stage(live::CANCEL, &IMAGE, &name, nonce, &mut out),
    }
    .expect("a frame within the limits");
    out[..n].to_vec()
}

/// The frame that reads back as `e`, for the events frames carry.
fn reencode(e: &Event<'_>) -> Option<Result<Vec<u8>, live::FrameError>> {
    let mut out = [0u8; MAX_FRAME];
    let n = match *e {
        Event::Patch { image, site, block } => live::encode(image, site, block, &mut out),
        Event::Stage {
            image,
            site,
            len,
            expiry_s,
        } => live::encode_stage(image, site, len, expiry_s, &mut out),
        Event::Data {
            image,
            site,
            nonce,
            offset,
            bytes,
        } => live::encode_data(image, site, nonce, offset, bytes, &mut out),
        Event::Seal {
            image,
            site,
            nonce,
            signature,
        } => live::encode_seal(image, site, nonce, signature, &mut out),
        Event::Activate { image, site, nonce } => {
            live::encode_end_of_stage(live::ACTIVATE, image, site, nonce, &mut out)
        }
        Event::Cancel { image, site, nonce } => {
            live::encode_end_of_stage(live::CANCEL, image, site, nonce, &mut out)
        }
        Event::List { image } => live::encode_request(live::LIST, image, "", &mut out),
        Event::Rollback { image, site } => {
            live::encode_request(live::ROLLBACK, image, site, &mut out)
        }
        Event::End | Event::Who | Event::Bad(_) => return None,
    };
    Some(n.map(|n| out[..n].to_vec()))
}

fn frame_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            let n = rng.below(300);
            rng.bytes(n)
        }
        1 => valid_frame(rng),
        _ => {
            let f = valid_frame(rng);
            rng.mutate(f)
        }
    }
}

fn frames(input: &[u8]) -> Result<(), String> {
    let mut rx = Receiver::new();
    let mut seen = Vec::new();
    for &b in input {
        let Some(e) = rx.push(b) else { continue };
        if let Event::Patch { site, block, .. } = e
            && (site.len() > live::MAX_NAME || block.len() > live::MAX_BLOCK)
        {
            return Err(format!(
                "a frame past the limits: {} {}",
                site.len(),
                block.len()
            ));
        }
        if let Some(bytes) = reencode(&e) {
            let bytes = bytes.map_err(|err| format!("{e:?} does not encode: {err}"))?;
            seen.push((format!("{e:?}"), bytes));
        }
    }
    for (what, bytes) in seen {
        let mut again = Receiver::new();
        let back = bytes
            .iter()
            .find_map(|&b| again.push(b).map(|e| format!("{e:?}")));
        if back.as_deref() != Some(what.as_str()) {
            return Err(format!("{what} did not read back as itself: {back:?}"));
        }
    }
    Ok(())
}

fn loader_input(rng: &mut Rng) -> Vec<u8> {
    use protocol::loader::{Header, MAGIC};
    match rng.below(3) {
        0 => {
            let n = rng.below(200);
            rng.bytes(n)
        }
        _ => {
            // A header for a small image, then some chunks, then one mutation (or none).
            let size = (protocol::loader::MIN_IMAGE + rng.below(600)) as u32;
            let mut image = rng.bytes(size as usize);
            let magic = protocol::loader::IMAGE_MAGIC_OFFSET;
            image[magic..magic + 4].copy_from_slice(&protocol::loader::IMAGE_MAGIC);
            let header = Header {
                size,
                crc: protocol::crc32::crc32(&image),
            };
            let mut bytes = header.encode().to_vec();
            debug_assert_eq!(bytes[..4], MAGIC);
            for index in 0..header.chunks() {
                let len = protocol::loader::chunk_len(size, index);
                let from = (index as usize) * protocol::loader::CHUNK;
                let mut chunk = vec![0u8; len + 16];
                let n = protocol::loader::encode_chunk(index, &image[from..from + len], &mut chunk);
                bytes.extend_from_slice(&chunk[..n]);
            }
            if rng.below(2) == 0 {
                rng.mutate(bytes)
            } else {
                bytes
            }
        }
    }
}

/// The line: the input, then a header frame that fails its checksum (which ends a wait for a
/// header), then silence (which ends a transfer through its retries): every case returns.
struct FakeLine<'a> {
    input: &'a [u8],
    at: usize,
}

/// What the line sends once the input is used up.
const TAIL: [u8; protocol::loader::HEADER_LEN] = {
    let mut t = [0u8; protocol::loader::HEADER_LEN];
    let m = protocol::loader::MAGIC;
    t[0] = m[0];
    t[1] = m[1];
    t[2] = m[2];
    t[3] = m[3];
    t
};

impl Link for FakeLine<'_> {
    fn read(&mut self, _timeout_ms: u32) -> Option<u8> {
        let i = self.at;
        self.at += 1;
        match i.checked_sub(self.input.len()) {
            None => Some(self.input[i]),
            Some(t) => TAIL.get(t).copied(),
        }
    }
    fn write(&mut self, _bytes: &[u8]) {}
}

struct FakeMemory {
    capacity: usize,
    bytes: Vec<u8>,
}

impl Memory for FakeMemory {
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn load_address(&self) -> u64 {
        0x8_0000
    }
    fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(
            offset + bytes.len() <= self.capacity,
            "write of {} bytes at {offset} past capacity {}",
            bytes.len(),
            self.capacity
        );
        self.bytes[offset..offset + bytes.len()].copy_from_slice(bytes);
    }
}

fn loader(input: &[u8]) -> Result<(), String> {
    let mut line = FakeLine { input, at: 0 };
    let mut mem = FakeMemory {
        capacity: 512,
        bytes: vec![0; 512],
    };
    match receiver::serve(&mut line, &mut mem, "fuzz") {
        Ok(loaded) if loaded.size > mem.capacity => {
            Err(format!("booted {} bytes past capacity", loaded.size))
        }
        _ => Ok(()),
    }
}

/// Small blocks the kernel sites' policy accepts: mutated, they probe the rules' edges.
const BLOCKS: &[&[u32]] = &[
    &[0xd280_0020, 0xd65f_03c0],                           // MOV X0, #1; RET
    &[0xf940_0001, 0x9100_0421, 0xf900_0001, 0xd65f_03c0], // LDR X1,[X0]; ADD; STR; RET
    &[
        0xa9bf_7bfd,
        0x9100_03fd,
        0xd280_0040,
        0xa8c1_7bfd,
        0xd65f_03c0,
    ], // frame, MOV, RET
    &[0xd280_0082, 0xf100_0442, 0x54ff_ffe1, 0xd65f_03c0], // counted loop
];

fn verifier_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            let n = 4 * rng.below(40);
            rng.bytes(n)
        }
        _ => {
            let block = BLOCKS[rng.below(BLOCKS.len())];
            let mut bytes: Vec<u8> = block.iter().flat_map(|w| w.to_le_bytes()).collect();
            for _ in 0..1 + rng.below(2) {
                bytes = rng.mutate(bytes);
            }
            bytes
        }
    }
}

fn verifier(input: &[u8]) -> Result<(), String> {
    let verdict = |b: &[u8]| {
        check_block(b, 0x4060_1000, 128, &Externals::NONE, &Policy::KERNEL_SITES)
            .map(|c| c.len())
            .map_err(|e| e.to_string())
    };
    let (first, second) = (verdict(input), verdict(input));
    if first != second {
        return Err(format!("two verdicts: {first:?} then {second:?}"));
    }
    Ok(())
}

/// `cargo xtask fuzz`.
pub fn command(args: &FuzzArgs) -> Result<bool> {
    let targets = if args.targets.is_empty() {
        ALL.to_vec()
    } else {
        args.targets.clone()
    };
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some((target, case, seed)) = CASE.get() {
            println!("FAIL fuzz {target:?}: case {case} of seed {seed:#x} panicked: {info}");
        }
        default(info);
    }));
    let mut ok = true;
    for target in targets {
        let o = run(target, args.cases, args.seed);
        match &o.failure {
            None => println!(
                "PASS fuzz {:?}: {} cases, 0 failures ({:.0} cases/s, seed {:#x})",
                o.target, o.cases, o.rate, args.seed
            ),
            Some((case, why)) => {
                ok = false;
                println!(
                    "FAIL fuzz {:?}: case {case} of seed {:#x}: {why}",
                    o.target, args.seed
                );
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_survives_a_few_thousand_cases() {
        for t in ALL {
            let o = run(t, 3000, 7);
            assert!(o.failure.is_none(), "{t:?}: {:?}", o.failure);
            assert_eq!(o.cases, 3000);
        }
    }

    #[test]
    fn the_loader_inputs_reach_its_boot_path() {
        let mut rng = Rng(11);
        let booted = (0..300)
            .filter(|_| {
                let input = loader_input(&mut rng);
                let mut line = FakeLine {
                    input: &input,
                    at: 0,
                };
                let mut mem = FakeMemory {
                    capacity: 512,
                    bytes: vec![0; 512],
                };
                receiver::serve(&mut line, &mut mem, "fuzz").is_ok()
            })
            .count();
        // Unmutated transfers that fit boot; the rest are refused: both paths are exercised.
        assert!((10..290).contains(&booted), "{booted} of 300 booted");
    }

    #[test]
    fn a_broken_property_is_caught() {
        // A frame whose block is cut short must not read back: the property can fail.
        let mut rng = Rng(3);
        let f = valid_frame(&mut rng);
        assert!(frames(&f).is_ok());
        let mut rx = Receiver::new();
        let cut = &f[..f.len() - 1];
        assert!(
            cut.iter()
                .all(|&b| !matches!(rx.push(b), Some(e) if reencode(&e).is_some()))
        );
    }

    #[test]
    fn the_seed_blocks_pass_the_verifier() {
        for b in BLOCKS {
            let bytes: Vec<u8> = b.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert!(
                check_block(
                    &bytes,
                    0x4060_1000,
                    128,
                    &Externals::NONE,
                    &Policy::KERNEL_SITES
                )
                .is_ok(),
                "{b:08x?}"
            );
        }
    }
}
