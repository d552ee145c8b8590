//! Signed patches: what a staged patch's Ed25519 signature covers, and which patches an image
//! admits.
//!
//! ```text
//! signed message = DOMAIN | build id (20) | site name length u8 | site name
//!                | block address u64 | nonce u64 | block length u32 | block bytes
//! ```
//!
//! The board issues the nonce when it reserves the slot (`Record::LiveStaged`), so a signature is
//! good for one staging of one block at one address of one site of one image: a replayed frame
//! (another staging's nonce), a re-targeted one (another site, address or image) and a reordered
//! one (other bytes) all fail to verify. The host signs with the secret half of a key pair that
//! `cargo xtask keygen` wrote; the image embeds the public half at build time.
//!
//! The host signs the whole message in one piece (RFC 8032's deterministic signature, so no
//! randomness is needed); the board verifies it in two pieces, header then block, so a 4 KiB
//! block is never copied beside its header.

use crate::live::{IMAGE_BYTES, MAX_NAME, Refusal};
use ed25519_compact::{PublicKey, SecretKey, Seed, Signature};

/// Bytes of a public key.
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of a secret key's seed (what `cargo xtask keygen` keeps secret).
pub const SEED_BYTES: usize = 32;
/// Bytes of a signature.
pub const SIGNATURE_BYTES: usize = 64;
/// The first bytes of every signed message: a signature made for anything else never verifies
/// as a patch's.
pub const DOMAIN: &[u8; 18] = b"graft-patch-sig-v1";
/// The longest header [`header`] writes.
pub const HEADER_MAX: usize = DOMAIN.len() + IMAGE_BYTES + 1 + MAX_NAME + 8 + 8 + 4;
/// The longest block the host signs (an arena slot).
pub const MAX_SIGNED_BLOCK: usize = crate::exports::SLOT_BYTES;

/// The nonce for the next staging after `previous` (0 before the first): strictly greater than
/// every nonce issued before in this boot, so a signature made for one staging verifies for no
/// other, and mixed with `entropy` (the board's counter), so that it cannot be told from the
/// frames before it. None once no greater nonce exists.
pub fn next_nonce(previous: u64, entropy: u64) -> Option<u64> {
    Some(previous.checked_add(1)?.max(entropy.rotate_left(17)))
}

/// What a staged patch's signature binds it to, besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The build id of the image it is for.
    pub image: &'a [u8; IMAGE_BYTES],
    /// The site it replaces the code of.
    pub site: &'a str,
    /// The address of the slot the board reserved (the block is linked there).
    pub addr: u64,
    /// The nonce the board issued for this staging.
    pub nonce: u64,
}

/// Writes the signed message's header for a block of `len` bytes into `out`; returns its
/// length, or None for a site name longer than [`MAX_NAME`].
pub fn header(b: &Binding<'_>, len: u32, out: &mut [u8; HEADER_MAX]) -> Option<usize> {
    if b.site.len() > MAX_NAME {
        return None;
    }
    let mut n = 0;
    for part in [
        &DOMAIN[..],
        &b.image[..],
        &[b.site.len() as u8],
        b.site.as_bytes(),
        &b.addr.to_le_bytes(),
        &b.nonce.to_le_bytes(),
        &len.to_le_bytes(),
    ] {
        out[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    Some(n)
}

/// The public key of the key pair whose secret seed is `seed`, or None for the all-zero seed
/// (never a key `cargo xtask keygen` writes).
pub fn public_key(seed: &[u8; SEED_BYTES]) -> Option<[u8; PUBLIC_KEY_BYTES]> {
    let pair = ed25519_compact::KeyPair::try_from_seed(Seed::new(*seed)).ok()?;
    Some(*pair.pk)
}

/// Signs `block` bound to `b` with the key pair of `seed`. None if the seed is all zeros, the
/// site name too long or the block larger than [`MAX_SIGNED_BLOCK`].
pub fn sign(seed: &[u8; SEED_BYTES], b: &Binding<'_>, block: &[u8]) -> Option<[u8; 64]> {
    if block.len() > MAX_SIGNED_BLOCK {
        return None;
    }
    let pair = ed25519_compact::KeyPair::try_from_seed(Seed::new(*seed)).ok()?;
    let sk: SecretKey = pair.sk;
    let mut message = [0u8; HEADER_MAX + MAX_SIGNED_BLOCK];
    let mut head = [0u8; HEADER_MAX];
    let n = header(b, block.len() as u32, &mut head)?;
    message[..n].copy_from_slice(&head[..n]);
    message[n..n + block.len()].copy_from_slice(block);
    Some(*sk.sign(&message[..n + block.len()], None))
}

/// Whether `signature` is `key`'s over `block` bound to `b`.
pub fn verify(
    key: &[u8; PUBLIC_KEY_BYTES],
    b: &Binding<'_>,
    block: &[u8],
    signature: &[u8; SIGNATURE_BYTES],
) -> bool {
    let mut head = [0u8; HEADER_MAX];
    let Ok(len) = u32::try_from(block.len()) else {
        return false;
    };
    let Some(n) = header(b, len, &mut head) else {
        return false;
    };
    let Ok(mut state) = PublicKey::new(*key).verify_incremental(&Signature::new(*signature)) else {
        return false;
    };
    state.absorb(&head[..n]);
    state.absorb(block);
    state.verify().is_ok()
}

/// Which patches an image admits: fixed when it is built, announced when its live service
/// starts (`Record::PatchKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// The public key staged patches must be signed with; None: the image embeds none.
    pub key: Option<[u8; PUBLIC_KEY_BYTES]>,
    /// The development switch (`GRAFT_UNSIGNED_PATCHES=1` at build time): unsigned patches are
    /// admitted too (single-frame patches always, staged ones when no key is embedded).
    pub development: bool,
}

impl Admission {
    /// Whether a single-frame patch (`GPAT`, which carries no signature) may be applied: only
    /// under the development switch.
    pub fn single_frame(&self) -> Result<(), Refusal> {
        if self.development {
            Ok(())
        } else {
            Err(Refusal::Unsigned)
        }
    }

    /// Whether a staging may begin: never in an image that embeds no key and is not a
    /// development build, since nothing it stages could be activated.
    pub fn staging(&self) -> Result<(), Refusal> {
        if self.key.is_some() || self.development {
            Ok(())
        } else {
            Err(Refusal::Unsigned)
        }
    }

    /// Checks a staging's signature (the board calls it with every byte received).
    pub fn seal(
        &self,
        b: &Binding<'_>,
        block: &[u8],
        signature: &[u8; SIGNATURE_BYTES],
    ) -> Result<(), Refusal> {
        let key = self.key.as_ref().ok_or(Refusal::Unsigned)?;
        if verify(key, b, block, signature) {
            Ok(())
        } else {
            Err(Refusal::BadSignature)
        }
    }

    /// Whether a complete staging may be activated: `sealed` says its signature verified.
    /// An image with a key activates only sealed stagings, development switch or not.
    pub fn activation(&self, sealed: bool) -> Result<(), Refusal> {
        match (self.key, sealed, self.development) {
            (Some(_), true, _) | (None, _, true) => Ok(()),
            _ => Err(Refusal::Unsigned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];
    const OTHER: [u8; 32] = [9; 32];
    const IMAGE: [u8; IMAGE_BYTES] = [0xab; IMAGE_BYTES];

    fn binding() -> Binding<'static> {
        Binding {
            image: &IMAGE,
            site: "law",
            addr: 0x4060_3000,
            nonce: 0x1234_5678_9abc,
        }
    }

    fn block() -> Vec<u8> {
        (0..4096u32).map(|i| (i * 7) as u8).collect()
    }

    #[test]
    fn a_signature_verifies_for_exactly_what_it_was_made_for() {
        let key = public_key(&SEED).unwrap();
        let b = binding();
        let block = block();
        let sig = sign(&SEED, &b, &block).unwrap();
        assert!(verify(&key, &b, &block, &sig));
        // Replayed into another staging (its nonce), re-targeted (site, address, image).
        let other_image = [0xcd; IMAGE_BYTES];
        for moved in [
            Binding {
                nonce: b.nonce + 1,
                ..b
            },
            Binding {
                site: "indirect",
                ..b
            },
            Binding {
                addr: b.addr + 0x1000,
                ..b
            },
            Binding {
                image: &other_image,
                ..b
            },
        ] {
            assert!(!verify(&key, &moved, &block, &sig), "{moved:?}");
        }
        // Reordered or changed bytes, a shorter block.
        let mut swapped = block.clone();
        swapped.swap(0, 4);
        assert!(!verify(&key, &b, &swapped, &sig));
        assert!(!verify(&key, &b, &block[..4092], &sig));
        // Another key.
        assert!(!verify(&public_key(&OTHER).unwrap(), &b, &block, &sig));
        // A damaged signature.
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(!verify(&key, &b, &block, &bad));
    }

    #[test]
    fn the_header_names_every_bound_field_unambiguously() {
        // A site name's length is part of the header, so "la" + address bytes cannot pose as
        // "law" + other address bytes.
        let mut a = [0u8; HEADER_MAX];
        let mut c = [0u8; HEADER_MAX];
        let na = header(&binding(), 8, &mut a).unwrap();
        let nc = header(
            &Binding {
                site: "la",
                ..binding()
            },
            8,
            &mut c,
        )
        .unwrap();
        assert_ne!(a[..na], c[..nc]);
        assert!(
            header(
                &Binding {
                    site: &"x".repeat(MAX_NAME + 1),
                    ..binding()
                },
                8,
                &mut a
            )
            .is_none()
        );
        assert_eq!(
            header(
                &Binding {
                    site: &"x".repeat(MAX_NAME),
                    ..binding()
                },
                8,
                &mut a
            ),
            Some(HEADER_MAX)
        );
    }

    #[test]
    fn nonces_only_grow_whatever_the_counter_does() {
        let mut last = 0;
        let mut seen = std::collections::BTreeSet::new();
        // A counter that rises, stalls, jumps back (another core's view) and wraps its rotation.
        for entropy in [5, 5, 1 << 50, 3, 0, u64::MAX >> 17, 7, 1 << 47, 1 << 47] {
            let n = next_nonce(last, entropy).unwrap();
            assert!(n > last, "{n} after {last}");
            assert!(seen.insert(n));
            last = n;
        }
        assert_eq!(next_nonce(u64::MAX - 1, 0), Some(u64::MAX));
        assert_eq!(
            next_nonce(u64::MAX, u64::MAX),
            None,
            "no nonce is ever issued twice"
        );
    }

    #[test]
    fn signing_refuses_what_it_cannot_bind() {
        assert!(sign(&[0; 32], &binding(), &[0; 4]).is_none());
        assert!(public_key(&[0; 32]).is_none());
        assert!(sign(&SEED, &binding(), &vec![0; MAX_SIGNED_BLOCK + 1]).is_none());
    }

    #[test]
    fn admission_without_a_key_admits_nothing_unless_a_development_build() {
        let key = Some(public_key(&SEED).unwrap());
        let locked = Admission {
            key: None,
            development: false,
        };
        assert_eq!(locked.single_frame(), Err(Refusal::Unsigned));
        assert_eq!(locked.staging(), Err(Refusal::Unsigned));
        assert_eq!(locked.activation(false), Err(Refusal::Unsigned));
        assert_eq!(locked.activation(true), Err(Refusal::Unsigned));
        let sig = sign(&SEED, &binding(), &[1; 8]).unwrap();
        assert_eq!(
            locked.seal(&binding(), &[1; 8], &sig),
            Err(Refusal::Unsigned)
        );

        let dev = Admission {
            key: None,
            development: true,
        };
        assert_eq!(dev.single_frame(), Ok(()));
        assert_eq!(dev.staging(), Ok(()));
        assert_eq!(dev.activation(false), Ok(()));

        let signed = Admission {
            key,
            development: false,
        };
        assert_eq!(signed.single_frame(), Err(Refusal::Unsigned));
        assert_eq!(signed.staging(), Ok(()));
        assert_eq!(signed.activation(false), Err(Refusal::Unsigned));
        assert_eq!(signed.seal(&binding(), &[1; 8], &sig), Ok(()));
        assert_eq!(signed.activation(true), Ok(()));
        assert_eq!(
            signed.seal(&binding(), &[2; 8], &sig),
            Err(Refusal::BadSignature)
        );

        // A key and the development switch: single frames pass, a staging still needs its seal.
        let both = Admission {
            key,
            development: true,
        };
        assert_eq!(both.single_frame(), Ok(()));
        assert_eq!(both.activation(false), Err(Refusal::Unsigned));
        assert_eq!(both.activation(true), Ok(()));
    }
}
