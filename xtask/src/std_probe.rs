//! `qemu-std`: boots the std probe (`efi-target/apps/src/bin/std_probe.rs`) in
//! OVMF to find out how much of Rust's `std` works on `x86_64-unknown-uefi`.
//!
//! Same flow as `qemu-smoke` (echo server on 127.0.0.1, guest reaches it as
//! 10.0.2.2), but the guest is built with `-Zbuild-std=std,panic_abort`. The
//! probe prints `EFISOCK-PROBE {json}` lines; this module collects them so the
//! answer ("does std work, what does not") is evidence, not belief.

use std::time::Duration;

use super::{EfiBuild, QemuOptions, build_efi_bin, echo, ensure_tools, log, run_qemu};

/// What one probe run showed.
#[derive(Debug, Clone)]
pub struct StdProbeReport {
    /// All `EFISOCK-*` lines in order.
    pub lines: Vec<log::EfisockLine>,
    /// The guest's `EFISOCK-DONE` code.
    pub done: Option<u8>,
    /// The isa-debug-exit code.
    pub app_code: Option<u8>,
    /// Whether QEMU hit the wall-clock limit.
    pub timed_out: bool,
    /// Whether the host echo server saw one clean, complete exchange.
    pub echo_ok: bool,
    /// Boot-to-exit wall time.
    pub wall: Duration,
}

impl StdProbeReport {
    /// The body of the `EFISOCK-PROBE` line for probe `name`, if printed.
    pub fn probe(&self, name: &str) -> Option<&str> {
        let key = format!("\"probe\":\"{name}\"");
        self.lines
            .iter()
            .find(|l| l.kind == "PROBE" && l.body.contains(&key))
            .map(|l| l.body.as_str())
    }
}

/// Builds and boots the std probe with a wall-clock `timeout`; prints every
/// guest line. Errors only when it could not run at all (tools, build,
/// QEMU); a failing probe is reported in the returned value.
pub fn run_std_probe(release: bool, timeout: Duration) -> Result<StdProbeReport, String> {
    let port = match std::env::var("EFISOCK_SMOKE_PORT") {
        Ok(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("EFISOCK_SMOKE_PORT={v} is not a port"))?,
        Err(_) => super::DEFAULT_SMOKE_PORT,
    };
    ensure_tools()?;
    let efi = build_efi_bin(&EfiBuild::std_probe(), release)?;
    eprintln!("xtask: built {}", efi.display());
    let server = echo::EchoServer::start(port, timeout + Duration::from_secs(5))?;
    let opts = QemuOptions {
        timeout,
        work_dir: super::target_dir().join("efisock-qemu-std"),
        ..QemuOptions::default()
    };
    // An options file on the ESP: does `std::fs` reach it from the guest?
    let esp = opts.work_dir.join("esp");
    std::fs::create_dir_all(&esp).map_err(|e| format!("create {}: {e}", esp.display()))?;
    std::fs::write(esp.join("efisock-args.txt"), "--seed 7 --filter smoke\n")
        .map_err(|e| format!("write the options file: {e}"))?;
    let run = run_qemu(&efi, &opts);
    let reports = server.stop();
    let out = run?;
    out.print();
    Ok(StdProbeReport {
        done: log::done_code(&out.lines),
        app_code: out.app_code,
        timed_out: out.timed_out,
        echo_ok: reports.len() == 1 && reports[0].complete && reports[0].error.is_none(),
        wall: out.wall,
        lines: out.lines,
    })
}

/// `qemu-std [--debug] [--timeout SECS]`: runs [`run_std_probe`] and
/// succeeds only if every probe passed and the smoke exchange completed.
pub fn qemu_std(args: &[String]) -> Result<(), String> {
    let mut release = true;
    let mut timeout = Duration::from_secs(180);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => release = false,
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a value in seconds")?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| format!("--timeout: want 1..=3600 seconds, got {v}"))?;
                timeout = Duration::from_secs(secs);
            }
            other => {
                return Err(format!(
                    "qemu-std: unknown argument {other}; usage: qemu-std [--debug] [--timeout SECS]"
                ));
            }
        }
    }
    let r = run_std_probe(release, timeout)?;
    println!(
        "std probe: instant {}, wall {:.2} s",
        r.probe("instant").unwrap_or("<missing>"),
        r.wall.as_secs_f64()
    );
    let failed: Vec<&str> = r
        .lines
        .iter()
        .filter(|l| l.kind == "PROBE" && l.body.contains("\"ok\":false"))
        .map(|l| l.body.as_str())
        .collect();
    if r.timed_out || r.done != Some(0) || r.app_code != Some(0) || !r.echo_ok || !failed.is_empty()
    {
        return Err(format!(
            "std probe failed: done {:?}, exit {:?}, timed out {}, echo ok {}, failed probes {failed:?}",
            r.done, r.app_code, r.timed_out, r.echo_ok
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boots OVMF (slow: build-std plus ~10 s of QEMU); run with
    /// `cargo test -p xtask -- --ignored --nocapture std_probe_boots`.
    #[test]
    #[ignore = "builds std for UEFI and boots QEMU"]
    fn std_probe_boots() {
        qemu_std(&["--timeout".into(), "180".into()]).unwrap();
    }

    /// Builds the conformance suite's own binary for UEFI (no simulator)
    /// and boots it: proves the suite crate and its std dependencies link and
    /// start in OVMF. Its `main` returns to the firmware (no isa-debug-exit),
    /// so QEMU ends by the wall-clock limit; what matters is its output.
    #[test]
    #[ignore = "builds std for UEFI and boots QEMU"]
    fn conformance_efi_boots() {
        ensure_tools().unwrap();
        let efi = build_efi_bin(&EfiBuild::conformance(Vec::new()), true).unwrap();
        let opts = QemuOptions {
            timeout: Duration::from_secs(40),
            work_dir: crate::qemu::target_dir().join("efisock-qemu-conformance"),
            ..QemuOptions::default()
        };
        let out = run_qemu(&efi, &opts).unwrap();
        let raw = std::fs::read(&out.serial_log).unwrap();
        let text = log::strip_ansi(&String::from_utf8_lossy(&raw));
        println!("{text}");
        println!(
            "qemu: status {:?}, timed out {}, wall {:.1} s",
            out.qemu_status,
            out.timed_out,
            out.wall.as_secs_f64()
        );
    }

    #[test]
    fn std_build_uses_build_std_std() {
        assert_eq!(
            EfiBuild::std_probe().build_std_args()[0],
            "-Zbuild-std=std,panic_abort"
        );
        assert_eq!(
            EfiBuild::smoke().build_std_args()[0],
            "-Zbuild-std=core,alloc,compiler_builtins"
        );
    }
}
