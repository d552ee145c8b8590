//! The symbols a kernel image exports for patches: the table in its `.graft_exports` section.
//!
//! A patch may call only the functions and read only the statics listed here: the host links a
//! patch against these names alone (any other reference is an undefined symbol), and the
//! verifier allows branches and data references only to these addresses. The kernel emits the
//! table with its `export!` macro; the host reads it from the image's ELF, and the kernel from
//! its own memory, through [`entries`].
//!
//! Each entry is [`ENTRY_BYTES`] little-endian bytes: the address (8), the length in bytes (8;
//! 0 for a function), the [`Kind`] (8), and the name, NUL padded to [`NAME_BYTES`].

/// The largest block a kernel slot holds, in bytes: code and read-only data of one patch.
pub const SLOT_BYTES: usize = 4096;

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 24 + NAME_BYTES;
/// Bytes of an entry's name field (the longest name is one less).
pub const NAME_BYTES: usize = 48;

/// What an exported symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A function a patch may call (`BL`) or tail-call (`B`).
    Function = 1,
    /// A read-only static a patch may read.
    Data = 2,
}

/// One exported symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export<'a> {
    /// Its name, as a patch's `extern` declaration spells it.
    pub name: &'a str,
    /// Its address in the image.
    pub addr: u64,
    /// Its length in bytes (0 for a function).
    pub len: u64,
    /// Function or data.
    pub kind: Kind,
}

/// Why a table could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The table's length is not a multiple of [`ENTRY_BYTES`].
    Length(usize),
    /// Entry `n` has a kind that is neither function nor data.
    Kind(usize),
    /// Entry `n`'s name is empty, not NUL terminated, or not UTF-8.
    Name(usize),
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Length(n) => write!(f, "export table of {n} bytes is not whole entries"),
            Self::Kind(n) => write!(f, "export {n} has an unknown kind"),
            Self::Name(n) => write!(f, "export {n} has no valid name"),
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The entries of a table, in order; the first bad entry ends it with an error.
pub fn entries(table: &[u8]) -> impl Iterator<Item = Result<Export<'_>, TableError>> {
    let whole = table.len().is_multiple_of(ENTRY_BYTES);
    let len = table.len();
    let first = (!whole).then_some(Err(TableError::Length(len)));
    let rest = table
        .chunks_exact(ENTRY_BYTES)
        .take(if whole { usize::MAX } else { 0 })
        .enumerate()
        .map(|(i, e)| {
            let kind = match u64_at(e, 16) {
                1 => Kind::Function,
                2 => Kind::Data,
                _ => return Err(TableError::Kind(i)),
            };
            let field = &e[24..];
            let end = field
                .iter()
                .position(|&b| b == 0)
                .filter(|&n| n > 0)
                .ok_or(TableError::Name(i))?;
            let name = core::str::from_utf8(&field[..end]).map_err(|_| TableError::Name(i))?;
            Ok(Export {
                name,
                addr: u64_at(e, 0),
                len: u64_at(e, 8),
                kind,
            })
        });
    first.into_iter().chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, addr: u64, len: u64, kind: u64) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&addr.to_le_bytes());
        e.extend_from_slice(&len.to_le_bytes());
        e.extend_from_slice(&kind.to_le_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(NAME_BYTES, 0);
        e.extend_from_slice(&n);
        e
    }

    #[test]
    fn reads_functions_and_data() {
        let mut t = entry("graft_clamp", 0x4008_0000, 0, 1);
        t.extend(entry("GRAFT_ACTUATOR_MAX", 0x4009_0000, 4, 2));
        let got: Vec<_> = entries(&t).collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].name, "graft_clamp");
        assert_eq!(got[0].kind, Kind::Function);
        assert_eq!(got[1].addr, 0x4009_0000);
        assert_eq!(got[1].len, 4);
        assert_eq!(got[1].kind, Kind::Data);
    }

    #[test]
    fn refuses_damage() {
        let t = entry("x", 1, 0, 1);
        assert_eq!(entries(&t[1..]).next(), Some(Err(TableError::Length(71))));
        assert_eq!(
            entries(&entry("x", 1, 0, 3)).next(),
            Some(Err(TableError::Kind(0)))
        );
        assert_eq!(
            entries(&entry("", 1, 0, 1)).next(),
            Some(Err(TableError::Name(0)))
        );
        let mut long = entry("x", 1, 0, 1);
        long[24..].fill(b'a');
        assert_eq!(entries(&long).next(), Some(Err(TableError::Name(0))));
        assert_eq!(entries(&[]).count(), 0);
    }
}
