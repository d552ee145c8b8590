//! What xtask reads from the kernel ELF: the kernel-test records.

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSection};
use protocol::testinfo::{Expect, RECORD_SIZE, SECTION, Sanitized, Tcg, TestHeader};

/// A kernel test as recorded in the ELF.
#[derive(Clone, Debug)]
pub struct KernelTest {
    /// Its name.
    pub name: String,
    /// What success looks like.
    pub expect: Expect,
    /// Wall-clock seconds before the host kills the run.
    pub timeout_s: u32,
    /// The fewest cores it runs on.
    pub min_cores: u32,
    /// How QEMU's TCG must run the cores.
    pub tcg: Tcg,
    /// Sanitized runs: with default switches, with `ic-broadcast=off`.
    pub sanitized: [Sanitized; 2],
    /// `CTR_EL0.IDC` the sanitized runs model (the plugin's `idc=1`).
    pub idc: bool,
    /// `CTR_EL0.DIC` the sanitized runs model (the plugin's `dic=1`).
    pub dic: bool,
}

/// Lists the kernel tests in `elf`.
pub fn tests(elf: &[u8]) -> Result<Vec<KernelTest>> {
    let file = object::File::parse(elf).context("parsing the kernel ELF")?;
    let section = file
        .section_by_name(SECTION)
        .context("the kernel ELF has no test section")?;
    let data = section.data()?;
    if data.len() % RECORD_SIZE != 0 {
        bail!(
            "{SECTION} is {} bytes, not a multiple of {RECORD_SIZE}",
            data.len()
        );
    }
    data.chunks(RECORD_SIZE)
        .map(|rec| {
            let h = TestHeader::parse(rec).context("short test record")?;
            let expect = h.expect().with_context(|| {
                format!("test {} has unknown expectation {}", h.name(), h.expect)
            })?;
            let tcg = h
                .tcg()
                .with_context(|| format!("test {} has unknown TCG mode {}", h.name(), h.tcg))?;
            let sanitized = h
                .sanitized()
                .with_context(|| format!("test {} has unknown sanitizer expectations", h.name()))?;
            let (idc, dic) = h
                .ctr()
                .with_context(|| format!("test {} has unknown CTR_EL0 bits", h.name()))?;
            Ok(KernelTest {
                sanitized,
                idc,
                dic,
                name: h.name().to_string(),
                expect,
                timeout_s: h.timeout_s,
                min_cores: h.min_cores,
                tcg,
            })
        })
        .collect()
}
