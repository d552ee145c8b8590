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
        .unwrap_or_else(|| crate::runner::build::root().join("../shared/litmus/aarch64-ifetch/tests"));
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
