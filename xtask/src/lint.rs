//! `cargo xtask lint`: every lint check of [`crate::runner::lint`], one line each.

use crate::runner::lint::CHECKS;
use anyhow::Result;

/// `cargo xtask lint`.
pub fn command() -> Result<bool> {
    let mut ok = true;
    for check in CHECKS {
        match check.run()? {
            None => println!("ok   {}", check.name),
            Some(output) => {
                println!("FAIL {}\n{output}", check.name);
                ok = false;
            }
        }
    }
    Ok(ok)
}
