//! Picks the linker script of the board being built; the scripts live in `linker/`.

use std::path::PathBuf;

fn main() {
    let linker = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../linker");
    let feature = |f: &str| std::env::var_os(format!("CARGO_FEATURE_{f}")).is_some();
    let script = if feature("VIRT") {
        Some("virt.ld")
    } else if feature("RPI3") || feature("RPI4") {
        Some("rpi.ld")
    } else {
        None
    };
    if let Some(script) = script {
        println!("cargo:rustc-link-search={}", linker.display());
        println!("cargo:rustc-link-arg-bins=-T{script}");
        // defmt's build script puts defmt.x on the search path; it adds the .defmt info section.
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
        // A build id the kernel announces and the host compares with the ELF it decodes.
        println!("cargo:rustc-link-arg-bins=--build-id=sha1");
    }
    println!("cargo:rerun-if-changed=../linker");
    patch_key();
}

/// Writes `$OUT_DIR/patch_key.rs`: which patches the image admits (`protocol::signing`).
/// `GRAFT_PATCH_PUBLIC_KEY` is the public key's 64 hex digits (`cargo xtask keygen` writes it;
/// xtask passes it); `GRAFT_UNSIGNED_PATCHES=1` is the development switch.
fn patch_key() {
    println!("cargo:rerun-if-env-changed=GRAFT_PATCH_PUBLIC_KEY");
    println!("cargo:rerun-if-env-changed=GRAFT_UNSIGNED_PATCHES");
    let key = match std::env::var("GRAFT_PATCH_PUBLIC_KEY") {
        Ok(hex) if !hex.trim().is_empty() => {
            let hex = hex.trim();
            let digit = |c: u8| (c as char).to_digit(16);
            let bytes: Option<Vec<u8>> = (hex.len() == 64)
                .then(|| {
                    hex.as_bytes()
                        .chunks(2)
                        .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
                        .collect()
                })
                .flatten();
            let Some(bytes) = bytes else {
                panic!(
                    "GRAFT_PATCH_PUBLIC_KEY must be 64 hex digits (an Ed25519 public key), got \
                     {hex:?}"
                );
            };
            format!("Some({bytes:?})")
        }
        _ => "None".to_string(),
    };
    let development = match std::env::var("GRAFT_UNSIGNED_PATCHES").as_deref() {
        Ok("1") => true,
        Ok("0") | Ok("") | Err(_) => false,
        Ok(other) => panic!("GRAFT_UNSIGNED_PATCHES must be 1 or 0, got {other:?}"),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("patch_key.rs");
    std::fs::write(
        out,
        format!("protocol::signing::Admission {{ key: {key}, development: {development} }}\n"),
    )
    .unwrap();
}
