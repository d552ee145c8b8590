//! Declares every file in `src/strategy/` as a public module of `patcher::strategy`, so that a new
//! strategy is one new file and no list must be edited. Cargo does not notice a new file in a
//! directory by itself; the directory is this script's trigger, so adding one rebuilds the crate.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let manifest = env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = PathBuf::from(manifest).join("src").join("strategy");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut modules: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            if !path.is_file() || path.extension()? != "rs" {
                return None;
            }
            let stem = path.file_stem()?.to_str()?.to_owned();
            (stem != "mod").then_some(stem)
        })
        .collect();
    modules.sort();
    let mut out = String::new();
    for name in &modules {
        let first = name.chars().next().unwrap_or('0');
        assert!(
            (first.is_ascii_alphabetic() || first == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "src/strategy/{name}.rs: a strategy's file name must be a Rust identifier (it names the module)"
        );
        let path = dir.join(format!("{name}.rs"));
        let _ = writeln!(
            out,
            "#[path = {:?}]\npub mod {name};",
            path.display().to_string()
        );
    }
    let dest =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("strategies.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}
