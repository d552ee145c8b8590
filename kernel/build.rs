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
}
