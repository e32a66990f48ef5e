//! `--target qemu`: the suite inside OVMF, driven from the host.
//!
//! One command does everything (why: the in-firmware run must be as easy to
//! repeat as the simulator run): make sure QEMU/OVMF/the UEFI toolchain are
//! there ([`efisock_qemu::ensure_tools`]), build the UEFI suite binary
//! (`efisock-conformance-efi`, shared target dir), write the options file on
//! the ESP ([`crate::guest::args_file`]), host the peer services with tokio
//! on 127.0.0.1 (the guest reaches them as 10.0.2.2), forward every port the
//! cases listen on in the guest ([`ports`]), boot QEMU under a whole-run
//! wall-clock limit, keep the serial log on disk, and print the same table
//! and summary as the simulator run from the guest's `EFISOCK-CASE` lines.
//!
//! Limits (environment, whole seconds): `EFISOCK_QEMU_TIMEOUT` for the whole
//! QEMU run (default 2700 = 45 min), `EFISOCK_CASE_TIMEOUT` per case
//! (default 120, firmware time; see the guest binary's docs for what is
//! enforced).

mod error;
pub mod ports;
pub mod results;

pub use error::QemuRunError;

use std::io::Write;
use std::time::Duration;

use efisock_qemu::{EfiBuild, QemuOptions, build_efi_bin, ensure_tools, run_qemu, target_dir};

use crate::cli::RunOptions;
use crate::expectations::{TargetId, entry, expected};
use crate::guest;
use crate::host::HostConfig;
use crate::host::tokio_host;
use crate::runner::{
    CaseReport, JsonReporter, Reporter, RunHeader, RunSummary, TextReporter, replay_command,
};
use crate::suite::{EXIT_FAIL, EXIT_PASS, EXIT_USAGE};

/// Connections each peer service accepts in one QEMU run (a bound, so a
/// runaway guest cannot make the host accept forever; the suite needs ~1100
/// on the echo service per seed).
pub const MAX_CONNECTIONS_PER_SERVICE: u32 = 50_000;

/// Default whole-run limit.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(2700);

fn env_secs(name: &'static str, default: Duration) -> Result<Duration, QemuRunError> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .map(Duration::from_secs)
            .ok_or(QemuRunError::Limit { name, value: v }),
    }
}

/// What one QEMU run produced, for the reporters and `--compare`.
#[derive(Debug, Clone)]
pub struct QemuRun {
    /// The guest's results.
    pub guest: results::GuestRun,
    /// QEMU's boot-to-exit wall time.
    pub wall: Duration,
    /// Whether the whole-run limit killed QEMU.
    pub killed: bool,
    /// Errors the peer host recorded (connect-back failures and the like).
    pub host_errors: Vec<String>,
    /// Where the raw serial log is.
    pub serial_log: std::path::PathBuf,
}

/// Builds, boots and collects; errors only when the run could not happen
/// (bad options, tools, build, QEMU failing to start).
pub fn execute(opts: &RunOptions, err: &mut dyn Write) -> Result<QemuRun, QemuRunError> {
    let case_timeout = env_secs("EFISOCK_CASE_TIMEOUT", guest::DEFAULT_CASE_TIMEOUT)?;
    let run_timeout = env_secs("EFISOCK_QEMU_TIMEOUT", DEFAULT_RUN_TIMEOUT)?;
    let args = guest::args_file(opts, case_timeout)?;
    ensure_tools()?;
    let _ = writeln!(err, "qemu: building the UEFI suite binary");
    let efi = build_efi_bin(&EfiBuild::suite(), true)?;
    let hostfwd = ports::allocate_forwards()?;
    let work_dir = target_dir().join("efisock-qemu");
    let esp = work_dir.join("esp");
    std::fs::create_dir_all(&esp).map_err(QemuRunError::io(format!("create {}", esp.display())))?;
    std::fs::write(esp.join(guest::ARGS_FILE), &args)
        .map_err(QemuRunError::io("write the options file"))?;
    let mut host_config = HostConfig::qemu(&hostfwd);
    host_config.lifetime = run_timeout + Duration::from_secs(60);
    // The whole suite opens well over 1000 connections to the echo service
    // (server/sequential_1000_connections alone makes 1000); the default
    // bound would close its listener mid-run and refuse every later case.
    host_config.max_connections_per_service = MAX_CONNECTIONS_PER_SERVICE;
    host_config.validate()?;
    let host = tokio_host::start(host_config)?;
    let _ = writeln!(
        err,
        "qemu: peers on 127.0.0.1 (guest: 10.0.2.2), {} forwards, booting OVMF \
         (whole-run limit {} s, per case {} s; options: {})",
        hostfwd.len(),
        run_timeout.as_secs(),
        case_timeout.as_secs(),
        args.trim()
    );
    let qopts = QemuOptions {
        hostfwd,
        timeout: run_timeout,
        work_dir,
        memory_mib: 512,
    };
    let outcome = run_qemu(&efi, &qopts);
    let host_report = host.stop();
    let outcome = outcome?;
    Ok(QemuRun {
        guest: results::collect(&outcome.lines, outcome.timed_out),
        wall: outcome.wall,
        killed: outcome.timed_out,
        host_errors: host_report.errors,
        serial_log: outcome.serial_log,
    })
}

/// Whether `r`'s outcome is what [`crate::expectations`] says for OVMF.
pub fn as_expected(r: &CaseReport) -> bool {
    expected(&r.id(), TargetId::Ovmf).accepts(r.passed)
}

/// `cargo run --release -- --target qemu [OPTIONS]`: runs the suite in OVMF
/// and prints the simulator's table and summary. Exit status 0 when every
/// case ran and matched its expectation (pass, or a failure listed in
/// `expectations::TABLE`), 1 otherwise, 2 when the run could not start.
pub fn run(opts: &RunOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match execute(opts, err) {
        Ok(run) => {
            let status = report(opts, &run, out, err);
            match &opts.record {
                Some(dir) => match crate::suite::write_recordings(run.guest.calls.iter(), dir, err)
                {
                    Ok(()) => status,
                    Err(e) => {
                        let _ = writeln!(err, "qemu: --record: {e}");
                        EXIT_FAIL
                    }
                },
                None => status,
            }
        }
        Err(e) => {
            let _ = writeln!(err, "qemu: {e}");
            EXIT_USAGE
        }
    }
}

/// Prints a finished run like the simulator's and returns the exit status.
pub fn report(opts: &RunOptions, run: &QemuRun, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let plan = opts.plan();
    {
        let mut reporter: Box<dyn Reporter + '_> = if opts.json {
            Box::new(JsonReporter::new(&mut *out))
        } else {
            Box::new(TextReporter::new(&mut *out))
        };
        reporter.start(&RunHeader {
            case_ids: run.guest.reports.iter().map(CaseReport::id).collect(),
            seeds: plan.seeds.clone(),
            base_seed: plan.base_seed,
        });
        let mut summary = RunSummary {
            base_seed: plan.base_seed,
            seeds: plan.seeds.clone(),
            wall: run.wall,
            ..RunSummary::default()
        };
        for r in &run.guest.reports {
            let replay = format!("{} --target qemu", replay_command(&plan, &r.id(), r.seed));
            reporter.case_done(r, &replay, None);
            summary.virtual_ns = summary.virtual_ns.saturating_add(r.virtual_ns);
            if r.passed {
                summary.passed += 1;
            } else {
                summary.failed += 1;
                summary.failures.push((r.id(), r.seed));
            }
        }
        reporter.finish(&summary);
    }
    let mut ok = run.guest.problems.is_empty() && !run.killed;
    for r in &run.guest.reports {
        if let Some(e) = entry(&r.id()) {
            let note = if as_expected(r) {
                "as expected"
            } else {
                "UNEXPECTED"
            };
            let _ = writeln!(
                err,
                "qemu: {} {} on OVMF ({note}; conformance/src/expectations.rs: {})",
                r.id(),
                if r.passed { "passed" } else { "failed" },
                e.why
            );
        }
        ok &= as_expected(r);
    }
    for p in &run.guest.problems {
        let _ = writeln!(err, "qemu: {p}");
    }
    for e in &run.host_errors {
        let _ = writeln!(err, "qemu: peer host: {e}");
    }
    let _ = writeln!(
        err,
        "qemu: wall {:.1} s, guest code {:?}, timeouts {:?}, serial log {}",
        run.wall.as_secs_f64(),
        run.guest.done,
        run.guest.timeouts,
        run.serial_log.display()
    );
    if ok { EXIT_PASS } else { EXIT_FAIL }
}
