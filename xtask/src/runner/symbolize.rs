//! Names the function and source line of an address in the kernel, from its ELF's DWARF (and
//! its symbol table where there is no line information: hand-written assembly).

use object::{Object, ObjectSection, ObjectSymbol};
use std::sync::{Arc, Mutex};

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Addresses to names for one kernel ELF.
pub struct Symbolizer {
    /// Behind a lock: the context fills its caches lazily, and test runs share the ELF's
    /// symbols across threads.
    dwarf: Option<Mutex<addr2line::Context<Reader>>>,
    /// Function symbols, by address: (start, size, name).
    symbols: Vec<(u64, u64, String)>,
}

impl Symbolizer {
    /// Reads `elf`'s DWARF and symbol table; an ELF with neither still makes one (it names
    /// nothing).
    pub fn new(elf: &[u8]) -> Self {
        let Ok(file) = object::File::parse(elf) else {
            return Self {
                dwarf: None,
                symbols: Vec::new(),
            };
        };
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let data = file
                .section_by_name(id.name())
                .and_then(|s| s.uncompressed_data().ok())
                .unwrap_or_default();
            Ok(Reader::new(Arc::from(&*data), gimli::RunTimeEndian::Little))
        };
        let dwarf = gimli::Dwarf::load(load)
            .ok()
            .and_then(|d| addr2line::Context::from_dwarf(d).ok())
            .map(Mutex::new);
        let mut symbols: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .collect();
        symbols.sort();
        Self { dwarf, symbols }
    }

    /// `function (file:line)` for `addr`: the outermost function (what was not inlined) and the
    /// line in it (where the inlined code was called from); None if the ELF says nothing.
    pub fn describe(&self, addr: u64) -> Option<String> {
        if let Some(found) = self.in_dwarf(addr) {
            return Some(found);
        }
        // The last symbol at or before `addr` that covers it (or, sized 0, is the nearest).
        let i = self
            .symbols
            .partition_point(|s| s.0 <= addr)
            .checked_sub(1)?;
        let (start, size, name) = &self.symbols[i];
        if *size != 0 && addr >= start + size {
            return None;
        }
        let name = rustc_demangle::demangle(name).to_string();
        Some(format!("{name}+{:#x}", addr - start))
    }

    fn in_dwarf(&self, addr: u64) -> Option<String> {
        let ctx = self.dwarf.as_ref()?.lock().ok()?;
        let mut frames = ctx.find_frames(addr).skip_all_loads().ok()?;
        let mut location = None;
        let mut function = None;
        // Frames come innermost first; the last one is the function the address lies in.
        while let Ok(Some(frame)) = frames.next() {
            if let Some(l) = frame
                .location
                .and_then(|l| Some(format!("{}:{}", l.file?, l.line?)))
            {
                location = Some(l);
            }
            if let Some(f) = frame.function {
                function = f.demangle().ok().map(|n| n.to_string());
            }
        }
        match (function, location) {
            (Some(f), Some(l)) => Some(format!("{f} ({l})")),
            (Some(f), None) => Some(f),
            (None, Some(l)) => Some(l),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_tool_names_one_of_its_own_functions() {
        // This test binary is an ELF with DWARF: its own function must come back by name.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let s = Symbolizer::new(&exe);
        // A position-independent executable runs at a load bias; find the function's link
        // address through the symbol table instead.
        let linked = s
            .symbols
            .iter()
            .find(|(_, _, n)| {
                rustc_demangle::demangle(n)
                    .to_string()
                    .contains("Symbolizer::describe")
            })
            .map(|(a, _, _)| *a);
        let Some(at) = linked else {
            panic!("no symbol for Symbolizer::describe");
        };
        let d = s.describe(at + 4).unwrap();
        assert!(d.contains("describe"), "{d}");
        assert!(Symbolizer::new(b"not an elf").describe(0x1000).is_none());
    }
}
