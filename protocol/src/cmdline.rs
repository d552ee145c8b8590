//! The boot command line: `test=NAME cores=N key=value ...`, as xtask passes it with `-append`.

/// The keys the kernel reads, one definition for the side that writes them and the one that
/// reads them.
pub mod keys {
    /// The kernel test to run (none: the demo).
    pub const TEST: &str = "test";
    /// The cores QEMU was given (the `smp` test checks it).
    pub const CORES: &str = "cores";
    /// Virtual seconds the demo runs.
    pub const SECS: &str = "secs";
    /// Publications of a stress test.
    pub const PUBS: &str = "pubs";
    /// Set (to 1) when the run is under the coherence sanitizer.
    pub const SANITIZED: &str = "sanitized";
    /// The timer test's tick rate.
    pub const HZ: &str = "hz";
    /// Rounds of the IPI test.
    pub const ROUNDS: &str = "rounds";
    /// Iterations of a litmus mirror.
    pub const ITERS: &str = "iters";
}

/// `key=value`, as one command-line word.
#[cfg(test)]
fn word(key: &str, value: impl core::fmt::Display) -> String {
    format!("{key}={value}")
}

/// A parsed command line borrowing the text it came from.
#[derive(Clone, Copy, Debug)]
pub struct Cmdline<'a> {
    text: &'a str,
}

impl<'a> Cmdline<'a> {
    /// Wraps `text`; parsing is lazy and never fails.
    pub const fn new(text: &'a str) -> Self {
        Self { text }
    }

    /// The value of the first `key=value` token with this key.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.text.split_ascii_whitespace().find_map(|tok| {
            let (k, v) = tok.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// The value of `key` as a number, `Err` holding the text when it is not one.
    pub fn number(&self, key: &str) -> Option<Result<u64, &'a str>> {
        self.get(key).map(|v| v.parse().map_err(|_| v))
    }

    /// The test to run, if one is named.
    pub fn test(&self) -> Option<&'a str> {
        self.get(keys::TEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_anywhere() {
        let c = Cmdline::new("graft  test=ipi cores=8 rate=1000");
        assert_eq!(c.test(), Some("ipi"));
        assert_eq!(c.number("cores"), Some(Ok(8)));
        assert_eq!(c.number("rate"), Some(Ok(1000)));
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn bad_numbers_are_reported_with_their_text() {
        assert_eq!(
            Cmdline::new("cores=eight").number("cores"),
            Some(Err("eight"))
        );
    }

    #[test]
    fn keys_read_back() {
        let line = [word(keys::TEST, "ipi"), word(keys::PUBS, 2000)].join(" ");
        let c = Cmdline::new(&line);
        assert_eq!(c.test(), Some("ipi"));
        assert_eq!(c.number(keys::PUBS), Some(Ok(2000)));
    }

    #[test]
    fn empty_line_names_no_test() {
        assert_eq!(Cmdline::new("").test(), None);
    }
}
