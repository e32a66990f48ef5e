//! `cargo xtask qemu-smoke`: the raw TCP4 smoke application against the
//! host echo server.

use std::time::Duration;

use crate::build::build_efi;
use crate::error::QemuError;
use crate::run::{QemuOptions, run_qemu};
use crate::tools::ensure_tools;
use crate::{DEFAULT_SMOKE_PORT, echo, log};

/// `cargo xtask qemu-smoke [--debug] [--timeout SECS]`: tools, build, echo
/// server on 127.0.0.1, boot, check. Succeeds only if the guest reports
/// `EFISOCK-DONE 0`, exits through isa-debug-exit with code 0, and the echo
/// server saw one complete exchange.
pub fn qemu_smoke(args: &[String]) -> Result<(), QemuError> {
    let mut release = true;
    let mut timeout = Duration::from_secs(120);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => release = false,
            "--timeout" => {
                let v = it
                    .next()
                    .ok_or_else(|| QemuError::Usage("--timeout needs a value in seconds".into()))?;
                let secs: u64 = v.parse().map_err(|_| {
                    QemuError::Usage(format!("--timeout: not a number of seconds: {v}"))
                })?;
                if !(1..=3600).contains(&secs) {
                    return Err(QemuError::Usage(
                        "--timeout must be 1..=3600 seconds".into(),
                    ));
                }
                timeout = Duration::from_secs(secs);
            }
            other => {
                return Err(QemuError::Usage(format!(
                    "qemu-smoke: unknown argument {other}; usage: qemu-smoke [--debug] [--timeout SECS]"
                )));
            }
        }
    }
    let port = match std::env::var("EFISOCK_SMOKE_PORT") {
        Ok(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| QemuError::Usage(format!("EFISOCK_SMOKE_PORT={v} is not a port")))?,
        Err(_) => DEFAULT_SMOKE_PORT,
    };
    ensure_tools()?;
    let efi = build_efi(release)?;
    eprintln!("xtask: built {}", efi.display());
    let server = echo::EchoServer::start(port, timeout + Duration::from_secs(5))?;
    eprintln!(
        "xtask: echo server on {} (guest: 10.0.2.2:{port})",
        server.addr()
    );
    let opts = QemuOptions {
        timeout,
        ..QemuOptions::default()
    };
    let run = run_qemu(&efi, &opts);
    let reports = server.stop();
    let out = run?;
    out.print();
    for r in &reports {
        println!(
            "echo server: peer {} echoed {} bytes, complete {}, client closed {}, error {:?}",
            r.peer, r.echoed, r.complete, r.client_closed, r.error
        );
    }
    let done = log::done_code(&out.lines);
    if out.timed_out {
        return Err(QemuError::Smoke(format!(
            "QEMU killed after {} s; see {}",
            timeout.as_secs(),
            out.serial_log.display()
        )));
    }
    if done != Some(0) || out.app_code != Some(0) {
        return Err(QemuError::Smoke(format!(
            "smoke test failed: EFISOCK-DONE {done:?}, isa-debug-exit code {:?} \
             (1 platform, 2 DHCP, 3 TCP, 4 mismatch, 5 panic); see {}",
            out.app_code,
            out.serial_log.display()
        )));
    }
    if !(reports.len() == 1 && reports[0].complete && reports[0].error.is_none()) {
        return Err(QemuError::Smoke(format!(
            "echo server did not see one clean exchange: {reports:?}"
        )));
    }
    Ok(())
}
