//! Links the probe at 0x4020_0000 with `probe.ld` (QEMU `virt` needs the image 1 MiB or more
//! above the start of RAM to keep its device tree).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg=-T{dir}/probe.ld");
    println!("cargo:rerun-if-changed=probe.ld");
}
