//! Kernel tests as the ELF records them: a fixed-layout header per test in `.graft_tests`.
//!
//! The kernel places one [`TestHeader`] (followed by its entry point) per test in that section;
//! xtask reads the section with the `object` crate to list the tests, check a name before it
//! boots QEMU, and know what each test's success looks like.

/// Exit status of a run in which every check held.
pub const EXIT_PASS: u32 = 0;
/// Exit status of a failed check or a panic.
pub const EXIT_FAIL: u32 = 1;
/// Exit status when the boot command line names no known test.
pub const EXIT_BAD_COMMAND: u32 = 2;
/// Exit status after an unexpected exception was reported.
pub const EXIT_FAULT: u32 = 3;

/// The test a kernel runs when no command line names one (a board without semihosting has
/// none): the control-loop demo.
pub const DEMO: &str = "demo";

/// The section name.
pub const SECTION: &str = ".graft_tests";
/// Bytes reserved for a test name (NUL padded).
pub const NAME_LEN: usize = 24;

/// What a passing run of a test looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Expect {
    /// Exit status [`EXIT_PASS`].
    Pass = 0,
    /// Exit status [`EXIT_FAULT`] after an exception report whose ELR and class the test
    /// announced in an `expect-fault` log line.
    Fault = 1,
}

/// How QEMU's TCG runs the cores for a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Tcg {
    /// One host thread per core (QEMU's default): real parallelism. QEMU may leave a core on old
    /// translated code (it is coherent only eventually), and spinning cores compete for host CPUs.
    MultiThreaded = 0,
    /// One host thread runs the cores in turn (`-accel tcg,thread=single`): a core waiting with
    /// `YIELD` hands over at once, and every core sees rewritten code immediately.
    SingleThreaded = 1,
    /// Round-robin with deterministic virtual time (`-icount shift=0,sleep=off`): one
    /// instruction is one virtual nanosecond, so timings repeat exactly and deadlines mean
    /// something whatever the host does.
    Icount = 2,
}

/// What a run under the coherence sanitizer must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Sanitized {
    /// Not run under the sanitizer by `cargo xtask test`.
    No = 0,
    /// Runs and must report no hazard.
    Clean = 1,
    /// A negative control: must report at least one hazard.
    Hazard = 2,
    /// A catalogue mirror whose outcome is `Allowed`: no hazard, and the rewritten word reported
    /// stale in at least one iteration where the `exists` clause's other conditions held.
    Allowed = 3,
    /// A catalogue mirror whose outcome is `Forbidden`: no hazard, at least 50 qualifying
    /// iterations, and none of them with the rewritten word reported stale.
    Forbidden = 4,
}

impl Sanitized {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::No),
            1 => Some(Self::Clean),
            2 => Some(Self::Hazard),
            3 => Some(Self::Allowed),
            4 => Some(Self::Forbidden),
            _ => None,
        }
    }
}

/// The board-independent description of one kernel test.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct TestHeader {
    /// The test's name, NUL padded.
    pub name: [u8; NAME_LEN],
    /// [`Expect`] as a number.
    pub expect: u32,
    /// Seconds of wall time after which the host fails the run.
    pub timeout_s: u32,
    /// The fewest cores the test can run on.
    pub min_cores: u32,
    /// [`Tcg`] as a number.
    pub tcg: u32,
    /// [`Sanitized`] as a number: the sanitizer with its default switches.
    pub sanitized: u32,
    /// [`Sanitized`] as a number: the sanitizer with `ic-broadcast=off`.
    pub sanitized_no_broadcast: u32,
    /// `CTR_EL0.IDC` (0 or 1) the sanitized runs model: the plugin's `idc=`.
    pub idc: u32,
    /// `CTR_EL0.DIC` (0 or 1) the sanitized runs model: the plugin's `dic=`.
    pub dic: u32,
}

/// Bytes from one record to the next: the header and one code pointer.
pub const RECORD_SIZE: usize = core::mem::size_of::<TestHeader>() + 8;

const _: () = assert!(core::mem::size_of::<TestHeader>() == 56);

impl TestHeader {
    /// A header for `name` (at most [`NAME_LEN`] bytes, checked at compile time when const).
    pub const fn new(
        name: &str,
        expect: Expect,
        timeout_s: u32,
        min_cores: u32,
        tcg: Tcg,
        sanitized: [Sanitized; 2],
    ) -> Self {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= NAME_LEN,
            "test name length"
        );
        let mut out = [0u8; NAME_LEN];
        let mut i = 0;
        while i < bytes.len() {
            out[i] = bytes[i];
            i += 1;
        }
        Self {
            name: out,
            expect: expect as u32,
            timeout_s,
            min_cores,
            tcg: tcg as u32,
            sanitized: sanitized[0] as u32,
            sanitized_no_broadcast: sanitized[1] as u32,
            idc: 0,
            dic: 0,
        }
    }

    /// The same header with the `CTR_EL0` bits its sanitized runs model (default: both 0).
    pub const fn with_ctr(mut self, idc: bool, dic: bool) -> Self {
        self.idc = idc as u32;
        self.dic = dic as u32;
        self
    }

    /// `(IDC, DIC)` for the sanitized runs, if both are 0 or 1.
    pub fn ctr(&self) -> Option<(bool, bool)> {
        match (self.idc, self.dic) {
            (i @ 0..=1, d @ 0..=1) => Some((i == 1, d == 1)),
            _ => None,
        }
    }

    /// The name as text.
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        core::str::from_utf8(&self.name[..len]).unwrap_or("<invalid>")
    }

    /// The expected outcome, if the number is known.
    pub fn expect(&self) -> Option<Expect> {
        match self.expect {
            0 => Some(Expect::Pass),
            1 => Some(Expect::Fault),
            _ => None,
        }
    }

    /// The TCG mode, if the number is known.
    pub fn tcg(&self) -> Option<Tcg> {
        match self.tcg {
            0 => Some(Tcg::MultiThreaded),
            1 => Some(Tcg::SingleThreaded),
            2 => Some(Tcg::Icount),
            _ => None,
        }
    }

    /// The sanitized runs `cargo xtask test` makes: with default switches, with `ic-broadcast=off`.
    pub fn sanitized(&self) -> Option<[Sanitized; 2]> {
        Some([
            Sanitized::from_u32(self.sanitized)?,
            Sanitized::from_u32(self.sanitized_no_broadcast)?,
        ])
    }

    /// The header's bytes as the kernel's `repr(C)` static holds them on AArch64 (little-endian).
    pub fn to_le_bytes(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        out[..NAME_LEN].copy_from_slice(&self.name);
        let words = [
            self.expect,
            self.timeout_s,
            self.min_cores,
            self.tcg,
            self.sanitized,
            self.sanitized_no_broadcast,
            self.idc,
            self.dic,
        ];
        for (i, w) in words.iter().enumerate() {
            out[NAME_LEN + 4 * i..NAME_LEN + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Reads a header from the first bytes of a record (little-endian, as on AArch64).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < core::mem::size_of::<Self>() {
            return None;
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&bytes[..NAME_LEN]);
        Some(Self {
            name,
            expect: word(NAME_LEN),
            timeout_s: word(NAME_LEN + 4),
            min_cores: word(NAME_LEN + 8),
            tcg: word(NAME_LEN + 12),
            sanitized: word(NAME_LEN + 16),
            sanitized_no_broadcast: word(NAME_LEN + 20),
            idc: word(NAME_LEN + 24),
            dic: word(NAME_LEN + 28),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_bytes() {
        let h = TestHeader::new(
            "ipi",
            Expect::Fault,
            30,
            2,
            Tcg::SingleThreaded,
            [Sanitized::Clean, Sanitized::Hazard],
        )
        .with_ctr(true, false);
        let bytes = h.to_le_bytes();
        let p = TestHeader::parse(&bytes).unwrap();
        assert_eq!(p.name(), "ipi");
        assert_eq!(p.expect(), Some(Expect::Fault));
        assert_eq!((p.timeout_s, p.min_cores), (30, 2));
        assert_eq!(p.tcg(), Some(Tcg::SingleThreaded));
        assert_eq!(p.sanitized(), Some([Sanitized::Clean, Sanitized::Hazard]));
        assert_eq!(p.ctr(), Some((true, false)));
    }

    #[test]
    fn litmus_expectations_round_trip() {
        for s in [Sanitized::Allowed, Sanitized::Forbidden] {
            assert_eq!(Sanitized::from_u32(s as u32), Some(s));
        }
        assert_eq!(Sanitized::from_u32(5), None);
    }

    #[test]
    fn short_input_is_rejected() {
        assert!(TestHeader::parse(&[0; 55]).is_none());
    }

    #[test]
    fn unknown_expectation_is_none() {
        let mut h = TestHeader::new(
            "x",
            Expect::Pass,
            1,
            1,
            Tcg::MultiThreaded,
            [Sanitized::No; 2],
        );
        h.expect = 7;
        assert_eq!(h.expect(), None);
    }
}
