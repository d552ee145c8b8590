//! Graft's host tool, the project's one front door (`cargo xtask ...`).
//!
//! Builds the kernel for a board, runs it under QEMU with its logs decoded, runs every test, and
//! checks or installs what those need first.

// The runner library, then one module per command, named after it.
mod runner;

mod bench;
mod flash;
mod fuzz;
mod image;
mod keys;
mod lint;
mod litmus_run;
mod monitor;
mod patch;
mod qemu;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Graft: build, run and test on QEMU and boards"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel and run it under QEMU with decoded logs (the demo unless --test is given).
    Qemu(qemu::QemuArgs),
    /// Run every test: lints, host unit tests, then each kernel test on every board configuration.
    Test(test::TestArgs),
    /// Check formatting and run clippy (warnings are errors) on host and target crates.
    Lint,
    /// Measure every strategy side by side under deterministic virtual time.
    Bench(bench::BenchArgs),
    /// Write an SD-card boot folder for a Raspberry Pi: kernel8.img, config.txt, README.txt.
    Image(image::ImageArgs),
    /// Send a kernel to the serial chainloader on a Pi, then show its decoded log.
    Flash(flash::FlashArgs),
    /// Send a patch to a running kernel's `live` test over its serial port.
    Patch(patch::PatchArgs),
    /// Show a running kernel's decoded log from its serial port (the ELF found by the build id
    /// it announces), with fault addresses named by function and file:line.
    Monitor(monitor::MonitorArgs),
    /// Write a patch-signing key pair outside the repository (kernels built later embed its
    /// public key).
    Keygen(keys::KeygenArgs),
    /// Feed the parsers of outside bytes (live frames, the loader, the verifier) seeded random
    /// and mutated input, and check no case panics or breaks their properties.
    Fuzz(fuzz::FuzzArgs),
    /// Run herd7 AArch64 litmus tests as bare-metal programs under QEMU (litmus7-style output).
    Litmus(litmus_run::LitmusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<bool> = match cli.command {
        Command::Qemu(args) => qemu::command(&args),
        Command::Test(args) => test::command(&args),
        Command::Lint => lint::command(),
        Command::Bench(args) => bench::command(&args),
        Command::Image(args) => image::command(&args),
        Command::Flash(args) => flash::command(&args),
        Command::Patch(args) => patch::command(&args),
        Command::Litmus(args) => litmus_run::command(&args),
        Command::Fuzz(args) => fuzz::command(&args),
        Command::Keygen(args) => keys::command(&args),
        Command::Monitor(args) => monitor::command(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
