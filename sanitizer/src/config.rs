//! Plugin arguments: `-plugin libgraft_sanitizer.so,ic-broadcast=off,idc=1,dic=0,out=FILE`.
//!
//! | argument | values | default | meaning |
//! | --- | --- | --- | --- |
//! | `ic-broadcast` | `on`, `off` | `on` | `IC` reaches every core, or only the issuer |
//! | `idc` | `0`, `1` | `0` | `CTR_EL0.IDC`: the D-side clean is not needed |
//! | `dic` | `0`, `1` | `0` | `CTR_EL0.DIC`: the I-side invalidate is not needed |
//! | `line` | bytes | `64` | cache line size (Cortex-A72: 64 for both sides) |
//! | `out` | path | QEMU log | write report lines to this file instead of `qemu_plugin_outs` |
//! | `track` | `0xSTART-0xEND` | none | also track writes to this physical range as code |
//! | `core-reg` | register name | none | attribute events to the core whose number this register holds |
//!
//! `core-reg` exists for round-robin TCG (`-accel tcg,thread=single`, `-icount`): there QEMU
//! 10.0 folds the *translating* vCPU's index into code every vCPU runs, so the index callbacks
//! receive names the wrong core. A register the guest sets to its core number early (Graft's
//! `boot.s` writes `TPIDR_EL1` before anything else) names the right one.

use std::fmt;

use crate::model::Config;

/// Everything the arguments set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// The model's switches (`cores` is filled in from QEMU, not from an argument).
    pub model: Config,
    /// `out=PATH`.
    pub out: Option<String>,
    /// `track=START-END` ranges (physical, end exclusive).
    pub track: Vec<(u64, u64)>,
    /// `core-reg=NAME`: the register (as QEMU's gdbstub names it) that holds the core number.
    pub core_reg: Option<String>,
}

/// An argument the plugin does not understand; QEMU refuses to load the plugin then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "graft-sanitizer: bad argument `{}`", self.0)
    }
}

impl std::error::Error for ArgError {}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => s.replace('_', "").parse().ok(),
    }
}

/// Parses `key=value` arguments as QEMU hands them over.
pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Args, ArgError> {
    let mut args = Args::default();
    for a in raw {
        let a = a.as_ref();
        let bad = || ArgError(a.to_string());
        let (k, v) = a.split_once('=').ok_or_else(bad)?;
        let flag = |v: &str| match v {
            "1" | "on" | "yes" | "true" => Ok(true),
            "0" | "off" | "no" | "false" => Ok(false),
            _ => Err(bad()),
        };
        match k {
            "ic-broadcast" => args.model.ic_broadcast = flag(v)?,
            "idc" => args.model.idc = flag(v)?,
            "dic" => args.model.dic = flag(v)?,
            "line" => {
                args.model.line = number(v)
                    .filter(|l| l.is_power_of_two() && *l >= 4)
                    .ok_or_else(bad)?
            }
            "out" => args.out = Some(v.to_string()),
            "track" => {
                let (s, e) = v.split_once('-').ok_or_else(bad)?;
                let (s, e) = (number(s).ok_or_else(bad)?, number(e).ok_or_else(bad)?);
                args.track.push((s, e));
            }
            "core-reg" if !v.is_empty() => args.core_reg = Some(v.to_string()),
            _ => return Err(bad()),
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_switches() {
        let a = parse(&[
            "ic-broadcast=off",
            "idc=1",
            "dic=0",
            "out=/tmp/x",
            "track=0x4000_0000-0x4100_0000",
            "core-reg=tpidr_el1",
        ])
        .unwrap();
        assert_eq!(a.core_reg.as_deref(), Some("tpidr_el1"));
        assert!(!a.model.ic_broadcast && a.model.idc && !a.model.dic);
        assert_eq!(a.out.as_deref(), Some("/tmp/x"));
        assert_eq!(a.track, vec![(0x4000_0000, 0x4100_0000)]);
        let d = parse::<&str>(&[]).unwrap();
        assert!(d.model.ic_broadcast && !d.model.idc && !d.model.dic && d.model.line == 64);
    }

    #[test]
    fn rejects_unknown() {
        assert!(parse(&["icbroadcast=off"]).is_err());
        assert!(parse(&["idc=maybe"]).is_err());
        assert!(parse(&["line=48"]).is_err());
        assert!(parse(&["core-reg="]).is_err());
    }
}
