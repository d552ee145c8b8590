//! Raw boot images: the bytes the Pi firmware (or U-Boot's `booti`) loads, made from the ELF.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSegment};

/// Offset of the arm64 Image magic `ARM\x64`.
pub const MAGIC_OFFSET: usize = 0x38;
/// The magic itself.
pub const MAGIC: &[u8; 4] = b"ARM\x64";

/// Lays out every loadable segment of `elf` at its address relative to the lowest one.
pub fn raw_from_elf(elf: &[u8]) -> Result<Vec<u8>> {
    let file = object::File::parse(elf).context("parsing the kernel ELF")?;
    let segments: Vec<_> = file
        .segments()
        .filter_map(|s| {
            s.data()
                .ok()
                .filter(|d| !d.is_empty())
                .map(|d| (s.address(), d))
        })
        .collect();
    let base = segments
        .iter()
        .map(|(a, _)| *a)
        .min()
        .context("the ELF has no loadable data")?;
    let end = segments
        .iter()
        .map(|(a, d)| a + d.len() as u64)
        .max()
        .unwrap();
    if end - base > 64 << 20 {
        bail!(
            "the loadable segments span {} MiB; refusing to write such an image",
            (end - base) >> 20
        );
    }
    let mut image = vec![0u8; (end - base) as usize];
    for (addr, data) in segments {
        let at = (addr - base) as usize;
        image[at..at + data.len()].copy_from_slice(data);
    }
    if image.get(MAGIC_OFFSET..MAGIC_OFFSET + 4) != Some(MAGIC) {
        bail!(
            "the image does not start with an arm64 Image header (no magic at {MAGIC_OFFSET:#x})"
        );
    }
    Ok(image)
}
