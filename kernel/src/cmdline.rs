//! The boot command line: `test=NAME cores=N key=value ...`, as xtask passes it with `-append`.

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
        self.get("test")
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
    fn empty_line_names_no_test() {
        assert_eq!(Cmdline::new("").test(), None);
    }
}
