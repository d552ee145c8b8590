//! `cargo xtask image`: the boot folder for a Raspberry Pi 3 or 4 SD card.
//!
//! Writes `kernel8.img` (the kernel, or with `--loader` the serial chainloader), a `config.txt`
//! with exactly what Graft needs from the firmware, and a `README.txt` naming the firmware files
//! to add. The firmware is Broadcom's and not ours to ship; `--firmware` copies it from Debian's
//! `raspi-firmware` package (component non-free-firmware), fetched with a private apt state so
//! that the machine's own apt configuration is not touched.

use crate::runner::board::{self, BoardInfo, Pi};
use crate::runner::build::{self, build_running};
use crate::runner::loader::build_loader;
use crate::runner::{live, prereq};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo xtask image` options.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// A board that boots from an SD card (rpi3 or rpi4).
    #[arg(long, value_enum)]
    pub board: BoardInfo,
    /// Output folder (default: target/sdcard/<board>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Put the serial chainloader on the card as kernel8.img, for `cargo xtask flash`.
    #[arg(long)]
    pub loader: bool,
    /// Put a kernel on the card that serves live patches (its `live` test) instead of running
    /// the demo, for `cargo xtask patch`.
    #[arg(long, conflicts_with = "loader")]
    pub serve: bool,
    /// With --serve: a development build that admits unsigned patches (the kernel's log says
    /// so); without it, a serving kernel embeds the key `cargo xtask keygen` wrote.
    #[arg(long, requires = "serve")]
    pub unsigned: bool,
    /// Copy the firmware files in from Debian's raspi-firmware package (needs apt and network).
    #[arg(long)]
    pub firmware: bool,
}

/// The firmware files the Pi's boot ROM (or EEPROM) needs on the card, per board.
pub fn firmware_files(board: &BoardInfo) -> &'static [&'static str] {
    pi(board).firmware
}

/// What the card of `board` needs; only Pis get here (the command checks first).
fn pi(board: &BoardInfo) -> Pi {
    board
        .pi
        .expect("SD-card folders are written only for a Pi (checked by the command)")
}

/// The `config.txt` for `board`, every line with its reason.
pub fn config_txt(board: &BoardInfo) -> String {
    let mut text = format!(
        "# Graft on a Raspberry Pi {n}, written by `cargo xtask image --board {name}`.\n\
         # Start the cores in AArch64 and load a 64-bit kernel.\n\
         arm_64bit=1\n\
         # The file to load (the Graft kernel, or the serial loader), and where: Graft is linked\n\
         # at 0x80000 (its Image header says fixed placement).\n\
         kernel=kernel8.img\n\
         kernel_address=0x80000\n\
         # Keep UART0, the PL011, on GPIO 14 (TXD) and 15 (RXD): Graft's console and the\n\
         # loader's line. Bluetooth owns the PL011 by default; disable-bt takes it back (it needs\n\
         # overlays/disable-bt.dtbo; Graft also routes the pins itself, see README.txt).\n\
         enable_uart=1\n\
         dtoverlay=disable-bt\n\
         # The PL011 reference clock Graft's baud divisor assumes (115200 = 48 MHz / 16 / 26.04).\n\
         init_uart_clock=48000000\n",
        n = pi(board).model,
        name = board.name,
    );
    if board.has_gic {
        text.push_str(
            "# Route interrupts through the GIC-400 (Graft's IPIs and timer ticks) and let the\n\
             # firmware's stub hand it over to non-secure EL2.\n\
             enable_gic=1\n",
        );
    }
    text
}

/// The `README.txt` placed beside the boot files.
pub fn readme_txt(board: &BoardInfo, loader: bool, firmware_copied: bool) -> String {
    let files = firmware_files(board).join(", ");
    let what = if loader {
        "the Graft serial loader: run `cargo xtask flash --port /dev/ttyUSB0` to send a kernel"
    } else {
        "the Graft kernel itself"
    };
    let mut text = format!(
        "Graft boot folder for the Raspberry Pi {n} ({name}).\n\n\
         Copy every file here to the FAT32 boot partition (the first partition) of an SD card.\n\
         kernel8.img is {what}.\n\n\
         Firmware (Broadcom's, not part of Graft): {files}.\n",
        n = pi(board).model,
        name = board.name,
    );
    if firmware_copied {
        text.push_str(
            "They were copied here from Debian's raspi-firmware package; its licence is in\n\
             firmware-copyright.txt.\n",
        );
    } else {
        text.push_str(
            "Add them from the boot/ folder of the Raspberry Pi firmware repository, from an\n\
             existing Raspberry Pi OS card, or run `cargo xtask image --firmware` on Debian.\n",
        );
    }
    text.push_str(
        "\nOptional: overlays/disable-bt.dtbo (Raspberry Pi firmware repository, boot/overlays/)\n\
         makes `dtoverlay=disable-bt` take effect in the firmware. Graft routes GPIO 14/15 to the\n\
         PL011 itself and reads no device tree, so its console works without it.\n",
    );
    if pi(board).wants_dtb {
        text.push_str(
            "\nPi 4: also copy bcm2711-rpi-4-b.dtb (firmware repository boot/, or Debian's\n\
             linux-image-*-arm64 package under usr/lib/linux-image-*/broadcom/). Graft does not\n\
             read it, but the firmware uses the device tree for its own setup (others report a\n\
             dead UART and wrong clocks without it). Untested here: no board was attached.\n",
        );
    }
    text.push_str(
        "\nWiring: a 3.3 V USB-TTL adapter (never 5 V): Pi pin 8 (GPIO 14, TXD) to the adapter's\n\
         RX, pin 10 (GPIO 15, RXD) to its TX, pin 6 (GND) to GND. 115200 baud, 8N1.\n",
    );
    text
}

/// Copies the board's firmware files from Debian's raspi-firmware package into `out`.
fn fetch_firmware(board: &BoardInfo, out: &Path) -> Result<()> {
    let work = std::env::temp_dir().join(format!("graft-raspi-firmware-{}", std::process::id()));
    let result = fetch_firmware_in(board, out, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The machine's Debian mirror and release codename, from apt itself.
fn debian_mirror() -> Result<(String, String)> {
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .context("--firmware needs Debian (no VERSION_CODENAME in /etc/os-release)")?;
    let out = Command::new("apt-get")
        .args(["indextargets", "--format", "$(REPO_URI) $(RELEASE)"])
        .output()
        .context("--firmware needs apt-get (Debian)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let uri = text
        .lines()
        .find_map(|l| {
            let (uri, release) = l.split_once(' ')?;
            (release.trim() == codename).then(|| uri.to_string())
        })
        .with_context(|| format!("found no apt source for Debian {codename}"))?;
    Ok((uri, codename))
}

fn fetch_firmware_in(board: &BoardInfo, out: &Path, work: &Path) -> Result<()> {
    let (uri, codename) = debian_mirror()?;
    for dir in [
        "state/lists/partial",
        "cache/archives/partial",
        "parts",
        "deb",
    ] {
        std::fs::create_dir_all(work.join(dir))?;
    }
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    std::fs::write(
        work.join("sources.list"),
        format!("deb [signed-by={keyring}] {uri} {codename} non-free-firmware\n"),
    )?;
    let opts = [
        format!("Dir::State={}", work.join("state").display()),
        "Dir::State::status=/dev/null".to_string(),
        format!("Dir::Cache={}", work.join("cache").display()),
        format!(
            "Dir::Etc::SourceList={}",
            work.join("sources.list").display()
        ),
        format!("Dir::Etc::SourceParts={}", work.join("parts").display()),
        // The package is architecture-independent; keep the index small.
        "Acquire::Languages=none".to_string(),
        // The download goes to a folder of ours, which apt's own sandbox user cannot write.
        "APT::Sandbox::User=root".to_string(),
    ];
    let apt = |args: &[&str], dir: &Path| -> Result<()> {
        let mut cmd = Command::new("apt-get");
        cmd.current_dir(dir).arg("-q");
        for o in &opts {
            cmd.args(["-o", o]);
        }
        let status = cmd
            .args(args)
            .status()
            .context("running apt-get (--firmware needs Debian's apt)")?;
        if !status.success() {
            bail!(
                "apt-get {} failed while fetching raspi-firmware ({uri} {codename} \
                 non-free-firmware); add the firmware files by hand (see README.txt)",
                args.join(" ")
            );
        }
        Ok(())
    };
    eprintln!("xtask: fetching raspi-firmware from {uri} {codename}/non-free-firmware");
    apt(&["update"], work)?;
    apt(&["download", "raspi-firmware"], &work.join("deb"))?;
    let deb = std::fs::read_dir(work.join("deb"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let tree = work.join("tree");
    let ok = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()
        .context("running dpkg -x")?
        .success();
    if !ok {
        bail!("dpkg -x {} failed", deb.display());
    }
    let from = tree.join("usr/lib/raspi-firmware");
    for f in firmware_files(board) {
        std::fs::copy(from.join(f), out.join(f))
            .with_context(|| format!("copying {f} from the raspi-firmware package"))?;
    }
    std::fs::copy(
        tree.join("usr/share/doc/raspi-firmware/copyright"),
        out.join("firmware-copyright.txt"),
    )
    .context("copying the firmware's licence")?;
    Ok(())
}

/// Writes the boot folder for `board` into `out`; returns the files written.
pub fn write_folder(
    board: &BoardInfo,
    out: &Path,
    kernel8: &Path,
    loader: bool,
    firmware: bool,
) -> Result<Vec<String>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::copy(kernel8, out.join("kernel8.img"))
        .with_context(|| format!("copying {} to {}", kernel8.display(), out.display()))?;
    std::fs::write(out.join("config.txt"), config_txt(board))?;
    if firmware {
        fetch_firmware(board, out)?;
    }
    std::fs::write(out.join("README.txt"), readme_txt(board, loader, firmware))?;
    let mut names: Vec<String> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// `cargo xtask image`.
pub fn command(args: &ImageArgs) -> Result<bool> {
    let board = args.board;
    if board.pi.is_none() {
        let pis: Vec<_> = board::ALL
            .iter()
            .filter(|b| b.pi.is_some())
            .map(|b| b.name)
            .collect();
        bail!(
            "board {} boots no SD card; the SD-card boards are: {}",
            board.name,
            pis.join(", ")
        );
    }
    prereq::rust_target()?;
    if args.serve {
        crate::keys::for_serving(args.unsigned)?;
    }
    let kernel8 = if args.loader {
        build_loader(&board)?
    } else {
        build_running(&board, args.serve.then_some(live::TEST))?.boot
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| build::root().join("target/sdcard").join(board.name));
    let names = write_folder(&board, &out, &kernel8, args.loader, args.firmware)?;
    println!("xtask: wrote {}: {}", out.display(), names.join(", "));
    if !args.firmware {
        println!(
            "xtask: add the firmware files {} (see README.txt, or pass --firmware)",
            firmware_files(&board).join(", ")
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_what_each_pi_needs() {
        for name in ["rpi3", "rpi4"] {
            let c = config_txt(&board::find(name).unwrap());
            for line in [
                "arm_64bit=1",
                "enable_uart=1",
                "dtoverlay=disable-bt",
                "init_uart_clock=48000000",
                "kernel=kernel8.img",
            ] {
                assert!(c.lines().any(|l| l == line), "{name}: {line} missing");
            }
            assert_eq!(c.contains("enable_gic=1"), name == "rpi4");
        }
    }

    #[test]
    fn readme_names_the_firmware_files() {
        let r3 = readme_txt(&board::find("rpi3").unwrap(), true, false);
        assert!(r3.contains("bootcode.bin, start.elf, fixup.dat"), "{r3}");
        let r4 = readme_txt(&board::find("rpi4").unwrap(), false, false);
        assert!(
            r4.contains("start4.elf, fixup4.dat") && !r4.contains("bootcode"),
            "{r4}"
        );
    }

    #[test]
    fn writes_the_folder() {
        let dir = std::env::temp_dir().join(format!("graft-sdcard-test-{}", std::process::id()));
        let img = dir.join("in.img");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&img, b"image").unwrap();
        let out = dir.join("out");
        let names = write_folder(&board::find("rpi3").unwrap(), &out, &img, false, false).unwrap();
        assert_eq!(names, ["README.txt", "config.txt", "kernel8.img"]);
        assert_eq!(std::fs::read(out.join("kernel8.img")).unwrap(), b"image");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
