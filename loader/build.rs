//! Links the loader binary with `linker/loader.ld` (linked high, copied there by its own entry).

use std::path::PathBuf;

fn main() {
    let linker = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../linker");
    if std::env::var_os("CARGO_FEATURE_RUNTIME").is_some() {
        println!("cargo:rustc-link-search={}", linker.display());
        println!("cargo:rustc-link-arg-bins=-Tloader.ld");
    }
    println!("cargo:rerun-if-changed=../linker/loader.ld");
}
