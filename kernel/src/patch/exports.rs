//! What the kernel exports for patches: the `.graft_exports` table (`protocol::exports`).
//!
//! A patch links against these names only (`cargo xtask patch build` makes a symbol file from
//! the table of the image it targets), and the verifier allows a block to branch only to the
//! exported functions and to read only the exported statics. Each export is defined here, with
//! the signature `graft_patch::kernel` declares for patches, and listed once with [`export!`].

use core::arch::global_asm;

/// The largest output of every demo loop's actuator.
#[unsafe(no_mangle)]
pub static GRAFT_ACTUATOR_MAX: f32 = 1.0;

/// Clamps `x` to `[lo, hi]` (NaN gives `lo`): a helper patches may call.
#[unsafe(no_mangle)]
pub extern "C" fn graft_clamp(x: f32, lo: f32, hi: f32) -> f32 {
    graft_patch::clamp(x, lo, hi)
}

/// One entry of the table: `{address, length, kind, name padded to NAME_BYTES}` as
/// `protocol::exports` reads it.
macro_rules! export {
    ($kind:expr, $name:ident, $len:expr) => {
        global_asm!(
            ".pushsection .graft_exports, \"a\"",
            ".balign 8",
            "2:",
            ".quad {sym}",
            ".quad {len}",
            ".quad {kind}",
            concat!(".ascii \"", stringify!($name), "\""),
            ".fill {entry} - (. - 2b), 1, 0",
            ".popsection",
            sym = sym $name,
            len = const $len,
            kind = const $kind as u64,
            entry = const protocol::exports::ENTRY_BYTES,
        );
        const _: () = assert!(stringify!($name).len() < protocol::exports::NAME_BYTES);
    };
}

export!(protocol::exports::Kind::Function, graft_clamp, 0);
export!(
    protocol::exports::Kind::Data,
    GRAFT_ACTUATOR_MAX,
    core::mem::size_of::<f32>()
);

unsafe extern "C" {
    static __graft_exports_start: u8;
    static __graft_exports_end: u8;
}

/// The image's export table, as bytes.
pub fn table() -> &'static [u8] {
    // SAFETY: the linker script brackets the `.graft_exports` section with these two symbols,
    // start before end, in read-only data mapped for the kernel's whole life.
    unsafe {
        let start = &raw const __graft_exports_start;
        let end = &raw const __graft_exports_end;
        core::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// How many exports the table may hold on the board.
pub const MAX_EXPORTS: usize = 16;

/// What a patch may refer to, read from the image's own table: the exported functions as
/// branch targets, the exported statics as read-only data (`patcher::check::Externals`).
pub struct Allowed {
    /// Exported functions' addresses.
    pub targets: heapless::Vec<u64, MAX_EXPORTS>,
    /// Exported statics' address ranges.
    pub data: heapless::Vec<core::ops::Range<u64>, MAX_EXPORTS>,
}

impl Allowed {
    /// From the image's table; `None` if it is damaged or longer than [`MAX_EXPORTS`].
    pub fn from_table() -> Option<Self> {
        let mut a = Self {
            targets: heapless::Vec::new(),
            data: heapless::Vec::new(),
        };
        for e in protocol::exports::entries(table()) {
            let e = e.ok()?;
            match e.kind {
                protocol::exports::Kind::Function => a.targets.push(e.addr).ok()?,
                protocol::exports::Kind::Data => a.data.push(e.addr..e.addr + e.len).ok()?,
            }
        }
        Some(a)
    }

    /// As the verifier takes them.
    pub fn externals(&self) -> patcher::check::Externals<'_> {
        patcher::check::Externals {
            branch_targets: &self.targets,
            data: &self.data,
        }
    }
}

static ALLOWED: spin::Once<Option<Allowed>> = spin::Once::new();
static EXTERNALS: spin::Once<Option<patcher::check::Externals<'static>>> = spin::Once::new();

/// What patches staged from outside may refer to (the image's own table, read once); `None` if
/// the table is damaged.
pub fn externals() -> Option<&'static patcher::check::Externals<'static>> {
    EXTERNALS
        .call_once(|| {
            ALLOWED
                .call_once(Allowed::from_table)
                .as_ref()
                .map(Allowed::externals)
        })
        .as_ref()
}
