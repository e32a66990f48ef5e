//! `efisock-conformance-efi`: the conformance suite inside OVMF.
//!
//! Booted by the host runner (`cargo run --release -- --target qemu`, module
//! `efisock_conformance::qemu`). It reads its options from `\efisock-args.txt`
//! on the ESP (no argv in UEFI), runs DHCP once, runs the selected cases
//! sequentially against [`OvmfTarget`](efisock_efi_apps::ovmf_target::OvmfTarget) (one fresh `Net` per case, the firmware
//! persists), and prints the protocol lines of `efisock_conformance::guest`:
//! `EFISOCK-START`, `EFISOCK-CASE`, `EFISOCK-SUMMARY`, `EFISOCK-DONE <code>`,
//! then leaves QEMU through isa-debug-exit. With `--record-calls` in the
//! options it records each case's firmware calls with the same layer as the
//! simulator run (`efisock_conformance::calllog`) and streams the recording
//! as `EFISOCK-CALLS` / `EFISOCK-CALLSEND` lines before the case's CASE line.
//!
//! Per-case limit (firmware time; no threads in UEFI, so a case cannot be
//! preempted). What is enforced: every blocking connect without a socket
//! timeout is bounded by the limit (`NetConfig::connect_timeout`), DHCP and
//! teardown have their own bounds, and a case that returns after the limit
//! is reported as `TIMEOUT` (failed) and the run continues. What is not: a
//! case that blocks in a wait without deadline (recv/accept/select on a
//! socket without timeout whose peer never acts) cannot be interrupted; the
//! host's whole-run wall-clock limit then kills QEMU and reports the case
//! named by the last `EFISOCK-START` as TIMEOUT and the rest as not run.
//!
//! Panics: `panic_abort`, so a panicking case ends the run; the hook prints
//! `EFISOCK-PANIC` and exits with code 5.
#![cfg_attr(target_os = "uefi", feature(uefi_std))]

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!(
        "efisock-conformance-efi is a UEFI application; run it with \
         `cargo run --release -- --target qemu`."
    );
    std::process::exit(2);
}

#[cfg(target_os = "uefi")]
fn main() {
    app::main()
}

#[cfg(target_os = "uefi")]
#[path = "std_guest/mod.rs"]
mod std_guest;

#[cfg(target_os = "uefi")]
mod app {
    use std::os::uefi::env;
    use std::time::Duration;

    use super::std_guest::{done, fatal, line};
    use efisock::firmware::{BootServices as _, Platform as _};
    use efisock_conformance::calllog::record_one;
    use efisock_conformance::guest::{self, GuestArgs};
    use efisock_conformance::runner::{RunSummary, run_one, select};
    use efisock_conformance::{cases, suite};
    use efisock_efi::backend::EfiPlatform;
    use efisock_efi_apps::ovmf_target::{OvmfSetup, OvmfTarget};
    use uefi_raw::Handle;
    use uefi_raw::table::boot::BootServices;

    /// Exit code: the platform could not be located or DHCP failed.
    const EXIT_SETUP: u8 = 3;
    /// Exit code: a panic ended the run.
    const EXIT_PANIC: u8 = 5;

    pub fn main() {
        std::panic::set_hook(Box::new(|info| {
            line(&format!(
                "{}PANIC {}",
                guest::PREFIX,
                serde_json::json!({ "message": info.to_string() })
            ));
            done(EXIT_PANIC);
        }));
        let GuestArgs {
            opts,
            case_timeout,
            record_calls,
        } = match std::fs::read_to_string(guest::GUEST_ARGS_PATH)
            .map_err(|e| format!("reading {}: {e}", guest::GUEST_ARGS_PATH))
            .and_then(|t| guest::parse_args_file(&t).map_err(|e| e.to_string()))
        {
            Ok(a) => a,
            Err(e) => fatal(&e, suite::EXIT_USAGE),
        };
        let Some(bs) = env::boot_services() else {
            fatal("boot services have been exited", EXIT_SETUP)
        };
        let bs = bs.as_ptr().cast::<BootServices>();
        let image = env::image_handle();
        // SAFETY: live boot services and our image handle; std never exits
        // boot services.
        let platform = match unsafe { EfiPlatform::locate(bs, image.as_ptr() as Handle) } {
            Ok(p) => p,
            Err(e) => fatal(&format!("platform: {e}"), EXIT_SETUP),
        };
        let setup = match OvmfSetup::start(platform, case_timeout, opts.strategy.clone()) {
            Ok(s) => s,
            Err(e) => fatal(&e.to_string(), EXIT_SETUP),
        };
        let clock = move || platform.boot().monotonic_ns();
        let all = cases::all::<OvmfTarget>();
        let selected = select(&all, &opts.filters);
        if selected.is_empty() {
            fatal(
                &format!(
                    "no case matches --filter {}",
                    opts.filters.join(" --filter ")
                ),
                suite::EXIT_USAGE,
            );
        }
        let plan = opts.plan();
        let limit_ns = u64::try_from(case_timeout.as_nanos()).unwrap_or(u64::MAX);
        let run_start = clock();
        let mut summary = RunSummary {
            base_seed: plan.base_seed,
            seeds: plan.seeds.clone(),
            ..RunSummary::default()
        };
        for case in &selected {
            for &seed in &plan.seeds {
                line(&guest::start_line(&case.id(), seed));
                let t0 = clock();
                let mut make = |s| setup.build(s).map_err(|e| e.to_string());
                let (mut report, recording) = if record_calls {
                    let (report, recording) = record_one(case, seed, &mut make);
                    (report, Some(recording))
                } else {
                    (run_one(case, seed, &mut make), None)
                };
                let wall_ns = clock().saturating_sub(t0);
                // After the clock is read: streaming the recording is not
                // part of the case's time.
                for l in recording.iter().flat_map(|r| r.serial_lines()) {
                    line(&l);
                }
                // Firmware time, not std's Instant (9 % slow under TCG).
                report.wall = Duration::from_nanos(wall_ns);
                let timeout = wall_ns > limit_ns;
                if timeout {
                    let verdict = if report.passed { "passed" } else { "failed" };
                    report.message = Some(format!(
                        "TIMEOUT: took {:.1} s, limit {} s (the case {verdict} after the limit{})",
                        wall_ns as f64 / 1e9,
                        case_timeout.as_secs(),
                        report
                            .message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ));
                    report.passed = false;
                }
                line(&guest::case_line(&report, timeout));
                summary.virtual_ns = summary.virtual_ns.saturating_add(report.virtual_ns);
                if report.passed {
                    summary.passed += 1;
                } else {
                    summary.failed += 1;
                    summary.failures.push((report.id(), seed));
                }
            }
        }
        summary.wall = Duration::from_nanos(clock().saturating_sub(run_start));
        line(&guest::summary_line(&summary));
        done(if summary.success() {
            suite::EXIT_PASS
        } else {
            suite::EXIT_FAIL
        })
    }
}
