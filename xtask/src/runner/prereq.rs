//! What the commands need on the host, checked (and installed where xtask can) before use.
//!
//! - the `aarch64-unknown-none` Rust target, added with rustup when missing;
//! - QEMU 10 or newer (`qemu-system-aarch64`). As root on Debian bookworm it is installed from
//!   bookworm-backports (the source is added with the machine's own Debian mirror and key); on
//!   newer Debian from the main archive. Anywhere else xtask prints the exact command and stops.

use anyhow::{Context, Result, bail};
use std::process::Command;

const TARGET: &str = "aarch64-unknown-none";
/// The oldest QEMU Graft supports (plugin API v4, measured facts in docs/design.md).
const MIN_QEMU_MAJOR: u32 = 10;

/// Makes sure the Rust target is installed.
pub fn rust_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(out) = out else {
        // No rustup: cargo will say if the target is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("xtask: installing the Rust target {TARGET} (rustup target add {TARGET})");
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()?
        .success();
    if !ok {
        bail!("could not install the Rust target; run: rustup target add {TARGET}");
    }
    Ok(())
}

/// The major version of `qemu-system-aarch64`, if it runs.
fn qemu_major() -> Option<u32> {
    let out = Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .ok()?;
    parse_qemu_major(&String::from_utf8_lossy(&out.stdout))
}

fn parse_qemu_major(version_text: &str) -> Option<u32> {
    let rest = version_text.split("version ").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

fn os_release(key: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Makes sure QEMU 10 or newer is installed.
pub fn qemu() -> Result<()> {
    match qemu_major() {
        Some(major) if major >= MIN_QEMU_MAJOR => return Ok(()),
        found => {
            let what = found.map_or("not installed".to_string(), |m| format!("version {m}"));
            eprintln!(
                "xtask: QEMU {MIN_QEMU_MAJOR} or newer is needed (qemu-system-aarch64 is {what})"
            );
        }
    }
    let debian = os_release("ID").as_deref() == Some("debian");
    let codename = os_release("VERSION_CODENAME").unwrap_or_default();
    if !debian || !is_root() {
        bail!(
            "install QEMU {MIN_QEMU_MAJOR}+ yourself. On Debian bookworm, as root: add a \
             bookworm-backports apt source, then run `apt-get update && apt-get install -y -t \
             bookworm-backports qemu-system-arm`; on Debian trixie or newer: `apt-get install -y \
             qemu-system-arm`; elsewhere, your distribution's qemu-system-aarch64 package, version \
             {MIN_QEMU_MAJOR} or newer"
        );
    }
    if codename == "bookworm" {
        add_backports()?;
        apt(&["update"])?;
        apt(&[
            "install",
            "-y",
            "-t",
            "bookworm-backports",
            "qemu-system-arm",
        ])?;
    } else {
        apt(&["update"])?;
        apt(&["install", "-y", "qemu-system-arm"])?;
    }
    match qemu_major() {
        Some(m) if m >= MIN_QEMU_MAJOR => Ok(()),
        _ => bail!(
            "QEMU was installed but qemu-system-aarch64 is still not version {MIN_QEMU_MAJOR}+"
        ),
    }
}

fn apt(args: &[&str]) -> Result<()> {
    eprintln!("xtask: apt-get {}", args.join(" "));
    let ok = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?
        .success();
    if !ok {
        bail!("apt-get {} failed", args.join(" "));
    }
    Ok(())
}

const BACKPORTS_FILE: &str = "/etc/apt/sources.list.d/graft-bookworm-backports.sources";

/// Adds bookworm-backports with the same mirror and key as the machine's Debian source.
fn add_backports() -> Result<()> {
    let existing = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|t| deb822_source(&t))
        .or_else(|| {
            std::fs::read_to_string("/etc/apt/sources.list")
                .ok()
                .and_then(|t| one_line_source(&t))
        });
    let Some((uri, signed_by)) = existing else {
        bail!("found no Debian apt source to copy the mirror from; add bookworm-backports by hand");
    };
    if list_sources().is_ok_and(|all| all.contains("bookworm-backports")) {
        return Ok(());
    }
    let mut text = format!(
        "Types: deb\nURIs: {uri}\nSuites: bookworm-backports\nComponents: main non-free-firmware\n"
    );
    if let Some(key) = signed_by {
        text.push_str(&format!("Signed-By: {key}\n"));
    }
    eprintln!("xtask: adding {BACKPORTS_FILE} (mirror {uri})");
    std::fs::write(BACKPORTS_FILE, text).with_context(|| format!("writing {BACKPORTS_FILE}"))?;
    Ok(())
}

fn list_sources() -> Result<String> {
    let mut all = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    for entry in std::fs::read_dir("/etc/apt/sources.list.d")? {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("list" | "sources")
        ) {
            all.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
    }
    Ok(all)
}

/// (URI, Signed-By) of the first deb822 stanza whose suites include bookworm.
fn deb822_source(text: &str) -> Option<(String, Option<String>)> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(&format!("{name}:"))
                    .map(|v| v.trim().to_string())
            })
        };
        let suites = field("Suites")?;
        suites
            .split_whitespace()
            .any(|s| s == "bookworm")
            .then(|| {
                let uri = field("URIs")?.split_whitespace().next()?.to_string();
                Some((uri, field("Signed-By")))
            })?
    })
}

/// (URI, signed-by) from a one-line `deb [options] URI bookworm ...` entry.
fn one_line_source(text: &str) -> Option<(String, Option<String>)> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("deb ")?;
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => {
                let (o, r) = r.split_once(']')?;
                (o.to_string(), r.trim())
            }
            None => (String::new(), rest),
        };
        let mut words = rest.split_whitespace();
        let uri = words.next()?.to_string();
        (words.next()? == "bookworm").then(|| {
            let key = options
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            (uri, key)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_versions() {
        assert_eq!(
            parse_qemu_major("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds)"),
            Some(10)
        );
        assert_eq!(parse_qemu_major("QEMU emulator version 7.2.15"), Some(7));
        assert_eq!(parse_qemu_major("garbage"), None);
    }

    #[test]
    fn copies_mirror_and_key_from_deb822() {
        let t = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
                 Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                 Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            deb822_source(t),
            Some((
                "http://mirror.example/debian".into(),
                Some("/usr/share/keyrings/debian-archive-keyring.gpg".into())
            ))
        );
    }

    #[test]
    fn copies_mirror_from_one_line_sources() {
        let t =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            one_line_source(t),
            Some(("http://m.example/debian".into(), Some("/k.gpg".into())))
        );
        assert_eq!(
            one_line_source("deb http://m.example/debian bullseye main"),
            None
        );
    }
}
