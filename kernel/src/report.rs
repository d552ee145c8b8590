//! The one place results leave the kernel for the host: typed records over `defmt`.
//!
//! Every result xtask checks (test verdicts, the fault a test expects, exception reports, bench
//! figures, demo results, live-patch answers) is a [`Record`] emitted here, through one `defmt`
//! call site whose format string is `protocol::record::DEFMT_FORMAT`. The log lines beside them
//! are for people; the host never parses those.

use protocol::record::{DEFMT_FORMAT, MAX_LEN, Name, Record};

/// Sends `record` to the host, encoded with its checksum.
pub fn emit(record: &Record) {
    let mut buf = [0u8; MAX_LEN];
    let n = record.encode(&mut buf);
    // The literal must be `DEFMT_FORMAT` (checked below): defmt takes only a literal here.
    defmt::info!("record {=[u8]}", &buf[..n]);
}

/// The literal above is the format xtask looks for.
const _: () = assert!(same(DEFMT_FORMAT, "record {=[u8]}"));

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A test's verdict.
pub fn verdict(test: &str, passed: bool) {
    emit(&Record::TestVerdict {
        test: Name::new(test),
        passed,
    });
}
