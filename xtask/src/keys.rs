//! Patch signing keys: `cargo xtask keygen`, where keys live, and which key a kernel build
//! embeds.
//!
//! A key pair is two files of hex: `patch-key` (the 32-byte secret seed, mode 0600) and
//! `patch-key.pub` (the 32-byte Ed25519 public key). They live outside the repository, in
//! `$GRAFT_KEY_DIR`, else `$XDG_CONFIG_HOME/graft`, else `~/.config/graft`. A kernel built for
//! people embeds the public key found there (or none: that image admits no patches unless built
//! with `--unsigned`). `cargo xtask test` makes its own pair under `target/test-keys/` and builds
//! every kernel with it and with the development switch, so that its session exercises both
//! signed staging and the unsigned single-frame patches of the older tests.

use anyhow::{Context, Result, bail};
use protocol::signing::{self, PUBLIC_KEY_BYTES, SEED_BYTES};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `cargo xtask keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Folder to write `patch-key` and `patch-key.pub` to (default: $GRAFT_KEY_DIR, else
    /// $XDG_CONFIG_HOME/graft, else ~/.config/graft). Never inside the repository.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace a key pair already there (images built with the old key then admit no patch
    /// signed with the new one).
    #[arg(long)]
    pub force: bool,
}

/// The secret file's name.
pub const SECRET_FILE: &str = "patch-key";
/// The public file's name.
pub const PUBLIC_FILE: &str = "patch-key.pub";

/// A key pair read from disk.
#[derive(Clone, Copy)]
pub struct KeyPair {
    /// The secret seed.
    pub seed: [u8; SEED_BYTES],
    /// Its public key.
    pub public: [u8; PUBLIC_KEY_BYTES],
}

/// What a kernel build embeds (`GRAFT_PATCH_PUBLIC_KEY`, `GRAFT_UNSIGNED_PATCHES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// The public key, if any.
    pub public: Option<[u8; PUBLIC_KEY_BYTES]>,
    /// The development switch.
    pub development: bool,
}

static EMBED: OnceLock<Embedded> = OnceLock::new();

/// Fixes what every kernel this process builds embeds (a command does it once, first).
pub fn embed(e: Embedded) -> Result<()> {
    match EMBED.set(e) {
        Ok(()) => Ok(()),
        Err(_) if EMBED.get() == Some(&e) => Ok(()),
        Err(_) => bail!("this process already builds kernels with another patch key"),
    }
}

/// What kernels this process builds embed: what [`embed`] fixed, else the user's public key
/// (if they ran `cargo xtask keygen`) and no development switch.
pub fn embedded() -> Embedded {
    *EMBED.get_or_init(|| Embedded {
        public: default_dir().ok().and_then(|d| read_public(&d).ok()),
        development: false,
    })
}

/// Fixes the embedding for a kernel that serves patches (`--serve`): the user's public key,
/// which must exist unless `unsigned` (the development switch) is given.
pub fn for_serving(unsigned: bool) -> Result<()> {
    let dir = default_dir()?;
    let public = read_public(&dir).ok();
    if public.is_none() && !unsigned {
        bail!(
            "no patch key in {}: a serving kernel embeds its public key and admits only patches \
             signed with it. Run `cargo xtask keygen` first, or pass --unsigned for a \
             development build that admits unsigned patches",
            dir.display()
        );
    }
    if unsigned {
        println!("xtask: DEVELOPMENT BUILD (--unsigned): the kernel admits unsigned patches");
    }
    embed(Embedded {
        public,
        development: unsigned,
    })
}

/// Sets the kernel build's environment for what it embeds.
pub fn apply(cmd: &mut Command) {
    let e = embedded();
    match e.public {
        Some(k) => cmd.env("GRAFT_PATCH_PUBLIC_KEY", hex(&k)),
        None => cmd.env_remove("GRAFT_PATCH_PUBLIC_KEY"),
    };
    cmd.env(
        "GRAFT_UNSIGNED_PATCHES",
        if e.development { "1" } else { "0" },
    );
}

/// Where a user's key pair lives.
pub fn default_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("GRAFT_KEY_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("graft"));
    }
    let home = std::env::var_os("HOME").context("neither GRAFT_KEY_DIR nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config/graft"))
}

/// The test suite's key pair under `target/test-keys/`, made on first use.
pub fn test_pair() -> Result<KeyPair> {
    let dir = crate::runner::build::root().join("target/test-keys");
    if !dir.join(SECRET_FILE).is_file() {
        generate(&dir, true)?;
    }
    read_pair(&dir.join(SECRET_FILE))
}

/// A second pair, not the one test kernels embed: what a patch "signed with the wrong key" is
/// signed with.
pub fn test_wrong_pair() -> Result<KeyPair> {
    let dir = crate::runner::build::root().join("target/test-keys/wrong");
    if !dir.join(SECRET_FILE).is_file() {
        generate(&dir, true)?;
    }
    read_pair(&dir.join(SECRET_FILE))
}

/// `cargo xtask keygen`.
pub fn command(args: &KeygenArgs) -> Result<bool> {
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => default_dir()?,
    };
    let root = crate::runner::build::root();
    let abs = std::path::absolute(&dir).unwrap_or(dir.clone());
    if abs.starts_with(&root) {
        bail!(
            "{} is inside the repository: a secret key there is one `git add` from being \
             published; pick a folder outside it",
            dir.display()
        );
    }
    if dir.join(SECRET_FILE).exists() && !args.force {
        bail!(
            "{} already holds a key pair (kernels built since embed its public key); \
             --force replaces it",
            dir.display()
        );
    }
    let pair = generate(&dir, args.force)?;
    println!(
        "wrote {} (secret) and {} (public key {})",
        dir.join(SECRET_FILE).display(),
        dir.join(PUBLIC_FILE).display(),
        hex(&pair.public)
    );
    println!(
        "kernels built from now on (cargo xtask qemu --serve, image --serve, flash --serve) \
         embed this public key; cargo xtask patch send signs with the secret one"
    );
    Ok(true)
}

/// Writes a fresh key pair to `dir` (replacing one there only if `replace`).
fn generate(dir: &Path, replace: bool) -> Result<KeyPair> {
    let mut seed = [0u8; SEED_BYTES];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("reading /dev/urandom for a key seed")?;
    let public = signing::public_key(&seed).context("the random seed was all zeros")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let secret = dir.join(SECRET_FILE);
    if secret.exists() && !replace {
        bail!("{} exists", secret.display());
    }
    write_secret(&secret, &hex(&seed))?;
    std::fs::write(dir.join(PUBLIC_FILE), format!("{}\n", hex(&public)))
        .with_context(|| format!("writing {}", dir.join(PUBLIC_FILE).display()))?;
    Ok(KeyPair { seed, public })
}

/// Writes the secret file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{text}").with_context(|| format!("writing {}", path.display()))
}

/// The key pair whose secret seed is in `secret` (a `patch-key` file).
pub fn read_pair(secret: &Path) -> Result<KeyPair> {
    let text =
        std::fs::read_to_string(secret).with_context(|| format!("reading {}", secret.display()))?;
    let seed = unhex::<SEED_BYTES>(text.trim())
        .with_context(|| format!("{} is not 64 hex digits", secret.display()))?;
    let public = signing::public_key(&seed)
        .with_context(|| format!("{} holds the all-zero seed", secret.display()))?;
    Ok(KeyPair { seed, public })
}

/// The signing pair `cargo xtask patch` uses: `path` if given, else the user's.
pub fn signer(path: Option<&Path>) -> Result<KeyPair> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => default_dir()?.join(SECRET_FILE),
    };
    if !path.is_file() {
        bail!(
            "no secret key at {} (make one with `cargo xtask keygen`, or give --key)",
            path.display()
        );
    }
    read_pair(&path)
}

/// The public key in `dir`'s `patch-key.pub`.
fn read_public(dir: &Path) -> Result<[u8; PUBLIC_KEY_BYTES]> {
    let path = dir.join(PUBLIC_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    unhex::<PUBLIC_KEY_BYTES>(text.trim())
        .with_context(|| format!("{} is not 64 hex digits", path.display()))
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `N` bytes from `2N` hex digits.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_reads_back_and_signs_what_its_public_key_verifies() {
        let dir = std::env::temp_dir().join(format!("graft-keygen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pair = generate(&dir, false).unwrap();
        assert!(generate(&dir, false).is_err(), "an existing pair is kept");
        let back = read_pair(&dir.join(SECRET_FILE)).unwrap();
        assert_eq!(back.seed, pair.seed);
        assert_eq!(read_public(&dir).unwrap(), pair.public);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret is its owner's only: {mode:o}");
        let b = signing::Binding {
            image: &[1; 20],
            site: "law",
            addr: 0x4060_1000,
            nonce: 5,
        };
        let sig = signing::sign(&back.seed, &b, &[0xd5, 0x03, 0x20, 0x1f]).unwrap();
        assert!(signing::verify(
            &pair.public,
            &b,
            &[0xd5, 0x03, 0x20, 0x1f],
            &sig
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hex_round_trips_and_refuses_bad_text() {
        let k = [0xab; 32];
        assert_eq!(unhex::<32>(&hex(&k)), Some(k));
        assert_eq!(unhex::<32>("ab"), None);
        assert_eq!(unhex::<2>("zz00"), None);
        assert_eq!(unhex::<2>("é0"), None);
    }
}
