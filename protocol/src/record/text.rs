//! Records as text, for people and for error messages: they read as the kernel's log lines.

use super::Record;
use core::fmt;

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TestVerdict { test, passed } => {
                write!(f, "test {test}: {}", if passed { "PASS" } else { "FAIL" })
            }
            Self::ExpectFault { ec, elr } => write!(f, "expect-fault: ec={ec:#04x} elr={elr:#x}"),
            Self::Exception {
                core,
                ec,
                esr,
                elr,
                far,
            } => write!(
                f,
                "exception on core {core}: {} (EC {ec:#04x}) ESR={esr:#x} ELR={elr:#x} FAR={far:#x}",
                crate::esr::class_name(ec)
            ),
            Self::RunEnded { status } => write!(f, "run ended with status {status}"),
            Self::Image { build_id } => {
                f.write_str("image build id ")?;
                for b in build_id {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Self::Strategy { index, count, name } => {
                write!(f, "strategy {} of {count}: {name}", u32::from(index) + 1)
            }
            Self::BenchDirect { insns } => write!(f, "bench-direct insns={insns}"),
            Self::BenchEntry { strategy, insns } => {
                write!(f, "bench-entry strategy={} insns={insns}", strategy)
            }
            Self::BenchResult {
                strategy,
                cores,
                latency_ns,
                throughput_per_s,
            } => write!(
                f,
                "bench-result strategy={} cores={cores} latency_ns={latency_ns} throughput_per_s={throughput_per_s}",
                strategy
            ),
            Self::BenchCost {
                strategy,
                cores,
                publications,
                disturb_insns,
                disturb_max_insns,
                exception_entries,
                producer_insns,
                latency_iterations,
            } => write!(
                f,
                "bench-cost strategy={} cores={cores} publications={publications} disturb_insns={disturb_insns} disturb_max_insns={disturb_max_insns} exception_entries={exception_entries} producer_insns={producer_insns} latency_iterations={latency_iterations}",
                strategy
            ),
            Self::BenchPublish {
                strategy,
                consumers,
                insns,
            } => write!(
                f,
                "bench-publish strategy={} consumers={consumers} insns={insns}",
                strategy
            ),
            Self::DemoResult {
                strategy,
                patches,
                iterations,
                misses,
                extra_max_ns,
                extra_mean_ns,
                mean_abs_error_c,
                max_abs_error_c,
            } => write!(
                f,
                "demo-result strategy={} patches={patches} iterations={iterations} misses={misses} extra_max_ns={extra_max_ns} extra_mean_ns={extra_mean_ns} mean_abs_error_c={mean_abs_error_c:.2} max_abs_error_c={max_abs_error_c:.2}",
                strategy
            ),
            Self::LiveReady { site } => write!(f, "live-patch ready; site {site}"),
            Self::LiveApplied { site, bytes, slot } => {
                write!(
                    f,
                    "live-patch applied site={site} bytes={bytes} slot={slot:#x}"
                )
            }
            Self::LiveRefused { site, reason } => {
                write!(f, "live-patch refused site={site}: {reason}")
            }
            Self::LiveBadFrame { error } => write!(f, "live-patch bad frame: {error}"),
            Self::LiveStaged {
                site,
                nonce,
                addr,
                len,
            } => write!(
                f,
                "live-patch staged site={site} nonce={nonce:#x} addr={addr:#x} bytes={len}"
            ),
            Self::LiveReceived { nonce, received } => {
                write!(f, "live-patch received nonce={nonce:#x} bytes={received}")
            }
            Self::LiveCancelled { site, nonce } => {
                write!(f, "live-patch cancelled site={site} nonce={nonce:#x}")
            }
            Self::LiveExpired { site, nonce } => write!(
                f,
                "live-patch expired site={site} nonce={nonce:#x}: no frame came in time; the slot is free"
            ),
            Self::LiveSealed { site, nonce } => {
                write!(
                    f,
                    "live-patch sealed site={site} nonce={nonce:#x}: signature verified"
                )
            }
            Self::SiteState {
                site,
                strategy,
                version,
                hash,
                previous_version,
                previous_hash,
                rollback,
                staged,
            } => {
                if version == 0 {
                    write!(f, "site {site} ({strategy}): nothing published")?;
                } else {
                    write!(
                        f,
                        "site {site} ({strategy}): version {version} crc {hash:#010x}"
                    )?;
                }
                if previous_version > 0 {
                    write!(
                        f,
                        "; previous version {previous_version} crc {previous_hash:#010x}{}",
                        if rollback {
                            " (kept: rollback possible)"
                        } else {
                            ""
                        }
                    )?;
                }
                if staged > 0 {
                    write!(f, "; {staged} bytes staged")?;
                }
                Ok(())
            }
            Self::LoopStats {
                core,
                iterations,
                misses,
                error_c,
            } => write!(
                f,
                "loop on core {core}: {iterations} iterations, {misses} deadline misses, |error| {error_c:.3} C"
            ),
            Self::ListEnd {
                sites,
                free_slots,
                free_bytes,
            } => write!(
                f,
                "{sites} sites; arena: {free_slots} slots ({free_bytes} bytes) free"
            ),
            Self::LiveRolledBack {
                site,
                version,
                restored,
            } => write!(
                f,
                "live-patch rolled back site={site}: version {version} runs the code of version {restored}"
            ),
            Self::PatchKey {
                key,
                signed,
                development,
            } => {
                if signed {
                    f.write_str("live-patch key ")?;
                    for b in key {
                        write!(f, "{b:02x}")?;
                    }
                } else {
                    f.write_str("live-patch key none")?;
                }
                if development {
                    f.write_str("; DEVELOPMENT BUILD: unsigned patches are admitted")?;
                }
                Ok(())
            }
            Self::LiveLawRuns { core, version } => {
                write!(f, "live: core {core}'s loop runs law version {version}")
            }
            Self::LiveRuns {
                core,
                version,
                checksum_ok,
            } => write!(
                f,
                "live: core {core} runs version {version} (checksum {})",
                if checksum_ok { "ok" } else { "MISMATCH" }
            ),
            Self::PatchFault {
                site,
                core,
                cause,
                version,
                restored,
                esr,
                elr,
                far,
            } => write!(
                f,
                "patch-fault site={site} core={core} cause={} version={version} restored={restored} esr={esr:#x} elr={elr:#x} far={far:#x}",
                match cause {
                    super::FaultCause::Exception => "exception",
                    super::FaultCause::Hang => "hang",
                }
            ),
            Self::StackOverflow {
                core,
                owner,
                exception_stack,
                elr,
                far,
            } => write!(
                f,
                "stack-overflow core={core} guard={} of core {owner} elr={elr:#x} far={far:#x}",
                if exception_stack {
                    "exception stack"
                } else {
                    "stack"
                }
            ),
            Self::LitmusWatch { va, core } => {
                write!(f, "litmus: rewritten word at {va:#x}, run by core {core}")
            }
            Self::LiveEnded { applied, refused } => {
                write!(
                    f,
                    "live-patch session ended: {applied} applied, {refused} refused"
                )
            }
        }
    }
}
