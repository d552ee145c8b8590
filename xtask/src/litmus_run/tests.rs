//! Host tests of the litmus runner: the parser on the catalogue, and generated code against the
//! litmus text.

use super::parser::{self, Operand, Stmt};

#[test]
fn parses_a_message_passing_shape() {
    let t = parser::parse(
        "AArch64 MP.RF+dc-dsb-ic-dsb+ctrlisb\n{ 0:X0=NOP; 0:X1=P1:m0;\n  0:X2=1; 1:X2=0; 0:X3=z; 1:X3=z; 1:X9=0; }\n\
         P0           | P1              ;\nSTR W0,[X1]  |     LDR W2,[X3] ;\nDC CVAU,X1   |     CBNZ W2,l1  ;\n\
         DSB ISH      | l1: ISB         ;\nIC IVAU,X1   | m0: B l0        ;\nDSB ISH      |     MOV W9,#1   ;\n\
         STR W2,[X3]  | l0:             ;\nexists 1:X2=1 /\\ 1:X9=0\n",
    )
    .unwrap();
    assert_eq!(t.threads.len(), 2);
    assert_eq!(t.threads[0].code.len(), 6);
    assert!(
        matches!(&t.threads[1].code[1], Stmt::Insn(i, 6) if i.mnemonic == "CBNZ" && i.operands[1] == Operand::Label("l1".into()))
    );
    assert_eq!(t.vars, vec!["z".to_string()]);
}

/// The catalogue, from `GRAFT_LITMUS_CATALOGUE` or the shared checkout beside the project.
fn catalogue() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("GRAFT_LITMUS_CATALOGUE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            crate::runner::build::root().join("../shared/litmus/aarch64-ifetch/tests")
        });
    p.is_dir().then_some(p)
}

#[test]
fn parses_the_catalogue() {
    let Some(dir) = catalogue() else {
        println!("SKIPPED: no catalogue (set GRAFT_LITMUS_CATALOGUE)");
        return;
    };
    let files = super::collect_files(&[dir]).unwrap();
    let mut parsed = 0;
    let mut failed = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        match parser::parse(&text) {
            Ok(_) => parsed += 1,
            Err(u) => failed.push(format!("{}:{u}", f.display())),
        }
    }
    for f in &failed {
        println!("UNSUPPORTED: {f}");
    }
    println!("parsed {parsed} of {}", files.len());
    assert!(parsed >= 300, "parsed only {parsed} of {}", files.len());
}

const MP: &str = "AArch64 MP.RF+dc-dsb-ic-dsb+ctrlisb\n\
{ 0:X0=NOP;       0:X1=P1:m0;\n  0:X2=1; 1:X2=0; 0:X3=z; 1:X3=z; 1:X9=0; }\n\
P0           | P1              ;\nSTR W0,[X1]  |     LDR W2,[X3] ;\nDC CVAU,X1   |     CBNZ W2,l1  ;\n\
DSB ISH      | l1: ISB         ;\nIC IVAU,X1   | m0: B l0        ;\nDSB ISH      |     MOV W9,#1   ;\n\
STR W2,[X3]  | l0:             ;\nexists 1:X2=1 /\\ 1:X9=0\n";

fn options(dir: &std::path::Path) -> super::program::GenOptions {
    super::program::GenOptions {
        iters: 10,
        out_path: dir.join("results.bin").display().to_string(),
        timeout_secs: 2,
        delay_mask: 0xff,
        iteration_marker: false,
    }
}

/// The generated program holds each thread's instructions, in order, at its labels: checked on
/// the assembled ELF against encodings taken from the Arm ARM (not from the assembler).
#[test]
fn generated_code_matches_the_litmus_text() {
    let t = parser::parse(MP).unwrap();
    let dir = std::env::temp_dir().join(format!("graft-litmus-gen-{}", std::process::id()));
    let prog = super::program::generate(&t, &options(&dir)).unwrap();
    let elf = match super::run::build(&prog, &dir) {
        Ok(e) => e,
        Err(e) if e.to_string().contains("running rustc") => {
            println!("SKIPPED: no rustc for aarch64-unknown-none: {e}");
            return;
        }
        Err(e) => panic!("{e:#}"),
    };
    let bytes = std::fs::read(&elf).unwrap();
    let syms = super::run::Symbols::read(&bytes, &prog).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let words = |sym: &str, n: u64| -> Vec<u32> {
        let a = syms.addr(sym).unwrap_or_else(|| panic!("no symbol {sym}"));
        (0..n)
            .map(|k| super::run::read_word(&file, a + 4 * k).unwrap())
            .collect()
    };
    // P0: STR W0,[X1]; DC CVAU,X1; DSB ISH; IC IVAU,X1; DSB ISH; STR W2,[X3].
    assert_eq!(
        words("litmus_start_P0", 6),
        [
            0xb900_0020,
            0xd50b_7b21,
            0xd503_3b9f,
            0xd50b_7521,
            0xd503_3b9f,
            0xb900_0062
        ]
    );
    // P1: LDR W2,[X3]; CBNZ W2,l1 (+4); l1: ISB; m0: B l0 (+8); MOV W9,#1; l0:.
    assert_eq!(
        words("litmus_start_P1", 5),
        [
            0xb940_0062,
            0x3500_0022,
            0xd503_3fdf,
            0x1400_0002,
            0x5280_0029
        ]
    );
    let p1 = syms.addr("litmus_start_P1").unwrap();
    assert_eq!(syms.addr("litmus_P1_l1"), Some(p1 + 8));
    assert_eq!(syms.addr("litmus_P1_m0"), Some(p1 + 12));
    assert_eq!(syms.addr("litmus_P1_l0"), Some(p1 + 20));
    // The value NOP the writer stores.
    assert_eq!(words(&prog.instr_symbols[0].1, 1), [0xd503_201f]);
    // After the thread, the shared end (a B, whatever its offset).
    assert_eq!(words("litmus_P1_l0", 1)[0] >> 26, 0b000101);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The per-iteration reset is the Forbidden MP.RF+dc-dsb-ic-dsb+ctrlisb shape: stores, every
/// line cleaned, DSB ISH, every line invalidated, DSB ISH, STLR; the others LDAR, CMP, B.EQ and
/// ISB before they run test code.
#[test]
fn the_reset_is_the_forbidden_shape() {
    let t = parser::parse(MP).unwrap();
    let prog = super::program::generate(&t, &options(std::path::Path::new("/tmp"))).unwrap();
    let lines: Vec<&str> = prog.asm.lines().map(str::trim).collect();
    let find = |from: usize, what: &str| {
        lines[from..]
            .iter()
            .position(|l| *l == what)
            .map(|p| p + from)
            .unwrap_or_else(|| panic!("{what} not after line {from}"))
    };
    let store = find(find(0, "litmus_master_loop:"), "str w3, [x4], #4");
    let dc = find(store, "dc cvau, x4");
    let d1 = find(dc, "dsb ish");
    let ic = find(d1, "ic ivau, x4");
    let d2 = find(ic, "dsb ish");
    let rel = find(d2, "stlr x20, [x0]");
    assert_eq!(lines[rel + 1], "isb", "the master synchronizes itself");
    let spin = find(find(0, "litmus_secondary_loop:"), "ldar x1, [x0]");
    assert_eq!(
        &lines[spin + 1..spin + 4],
        ["cmp x1, x20", "b.eq 2f", "yield"]
    );
    let out = find(spin, "2:");
    assert_eq!(lines[out + 1], "isb");
}

#[test]
fn fault_handlers_and_quantifiers_parse() {
    let t = parser::parse(
        "AArch64 UDF+2FH\nVariant=fatal\n{\n 0:X0=NOP; 0:X1=P0:L0;\n 0:X2=0;\n}\n P0 | P0.F ;\n\
         | ADR X9,L0 ;\n | MSR ELR_EL1,X9 ;\n L0: | ERET ;\n UDF #0 | ;\n\
         forall(0:X2=1 \\/ fault(P0:L0,UndefinedInstruction))\n",
    )
    .unwrap();
    assert_eq!(t.threads.len(), 1);
    assert_eq!(t.threads[0].handler.as_ref().map(Vec::len), Some(3));
    assert!(matches!(
        t.cond,
        Some((parser::Quant::Forall, parser::Prop::Or(_)))
    ));
    let e = parser::parse("AArch64 X\n{ 0:X1=x; }\n P0 ;\n MOV SP,X1 ;\nexists x=1\n").unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    let e = parser::parse("AArch64 X\n{ }\n P0 ;\n LDXR W1,[X2] ;\nexists x=1\n").unwrap_err();
    assert!(e.why.contains("LDXR"), "{e}");
}
