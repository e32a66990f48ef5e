//! `efisock-bench-efi`: the Poll-strategy workloads inside OVMF.
//!
//! Booted by `efisock-bench-report` (`cargo xtask bench-report`), which
//! hosts the peer services (source, sink, echo) on 127.0.0.1 with tokio; the
//! guest reaches them as 10.0.2.2. The plan comes from `\efisock-bench.txt`
//! on the ESP (no argv in UEFI), one run per line:
//!
//! ```text
//! efisock <strategy> <workload> <count> <budget_ms> <send_unit>
//! raw <workload> <count> <budget_ms> <send_unit>
//! std <workload> <count> <budget_ms> <send_unit>
//! ```
//!
//! - `efisock`: the workload of `efisock_benches::workloads` on efisock's
//!   sockets with that Poll strategy (a fresh `Net` per run, DHCP once);
//! - `raw`: the same transfer as a tight loop directly on Tcp4
//!   (`efisock_efi_apps::rawbench`);
//! - `std`: the same transfer with Rust std's own UEFI `TcpStream`.
//!
//! Each run prints `EFISOCK-BENCH {json}` with the work done and verified,
//! the firmware time it took (`Platform::boot().monotonic_ns()`, the TSC
//! calibrated against Stall; not std's `Instant`, ~9 % off under TCG) and
//! the Poll/firmware call counts where known; then `EFISOCK-DONE <code>` and
//! isa-debug-exit. Every wait is bounded (budget plus a per-call deadline).
#![cfg_attr(target_os = "uefi", feature(uefi_std))]

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!("efisock-bench-efi is a UEFI application; run it with `cargo xtask bench-report`.");
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
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddrV4, TcpStream};
    use std::os::uefi::env;
    use std::time::Duration;

    use super::std_guest::{done, fatal, line};
    use efisock::firmware::{BootServices as _, Platform as _};
    use efisock_benches::{Plan, Workload};
    use efisock_conformance::pattern::{Fnv64, fill_pattern, pattern_checksum};
    use efisock_conformance::peers::{ports, protocol};
    use efisock_conformance::runner::Target as _;
    use efisock_efi::backend::EfiPlatform;
    use efisock_efi_apps::ovmf_target::{OvmfSetup, PEER_IP};
    use efisock_efi_apps::rawbench::{RAW_CHUNK, RawBenchError, RawConn};
    use serde_json::json;
    use uefi_raw::Handle;
    use uefi_raw::table::boot::BootServices;

    /// Where the host puts the plan.
    const PLAN_PATH: &str = "\\efisock-bench.txt";
    /// Bound on every blocking call of one run beyond its budget.
    const CALL_LIMIT: Duration = Duration::from_secs(60);
    const EXIT_OK: u8 = 0;
    const EXIT_FAILED: u8 = 1;
    const EXIT_USAGE: u8 = 2;
    const EXIT_SETUP: u8 = 3;
    const EXIT_PANIC: u8 = 5;

    /// One line of the plan.
    struct Run {
        kind: String,
        strategy: Option<String>,
        workload: Workload,
        plan: Plan,
    }

    fn parse(text: &str) -> Result<Vec<Run>, String> {
        let mut runs = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.is_empty() || w[0].starts_with('#') {
                continue;
            }
            let bad = || format!("{PLAN_PATH} line {}: cannot parse '{l}'", i + 1);
            let (kind, strategy, rest) = match w[0] {
                "efisock" if w.len() == 6 => ("efisock", Some(w[1].to_string()), &w[2..]),
                "raw" | "std" if w.len() == 5 => (w[0], None, &w[1..]),
                _ => return Err(bad()),
            };
            let workload = Workload::by_name(rest[0]).ok_or_else(bad)?;
            let count: u64 = rest[1].parse().map_err(|_| bad())?;
            let budget_ms: u64 = rest[2].parse().map_err(|_| bad())?;
            let send_unit: u64 = rest[3].parse().map_err(|_| bad())?;
            runs.push(Run {
                kind: kind.to_string(),
                strategy,
                workload,
                plan: Plan {
                    count,
                    budget: Some(Duration::from_millis(budget_ms)),
                    send_unit,
                },
            });
        }
        Ok(runs)
    }

    /// What a reference run measured.
    #[derive(Default)]
    struct Measured {
        done: u64,
        elapsed_ns: u64,
        polls: Option<u64>,
        fw_calls: Option<u64>,
    }

    pub fn main() {
        std::panic::set_hook(Box::new(|info| {
            line(&format!(
                "EFISOCK-PANIC {}",
                json!({ "message": info.to_string() })
            ));
            done(EXIT_PANIC);
        }));
        let runs = match std::fs::read_to_string(PLAN_PATH)
            .map_err(|e| format!("reading {PLAN_PATH}: {e}"))
            .and_then(|t| parse(&t))
        {
            Ok(r) => r,
            Err(e) => fatal(&e, EXIT_USAGE),
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
        let setup = match OvmfSetup::start(platform, CALL_LIMIT, None) {
            Ok(s) => s,
            Err(e) => fatal(&e.to_string(), EXIT_SETUP),
        };
        line(&format!(
            "EFISOCK-BENCHSTART {}",
            json!({ "runs": runs.len(), "local_ip": setup.local_ip.to_string(),
                    "counter_hz": platform.boot().counter_hz() })
        ));
        let mut failed = 0;
        for run in &runs {
            let t0 = platform.boot().monotonic_ns();
            let result = match run.kind.as_str() {
                "efisock" => efisock_run(&setup, run),
                "raw" => raw_run(&platform, run),
                _ => std_run(&platform, run),
            };
            let wall_ns = platform.boot().monotonic_ns() - t0;
            let mut j = json!({
                "kind": run.kind,
                "strategy": run.strategy,
                "workload": run.workload.name(),
                "unit": run.workload.unit(),
                "count": run.plan.count,
                "budget_ms": run.plan.budget.map(|b| b.as_millis() as u64),
                "send_unit": run.plan.send_unit,
                "run_ns": wall_ns,
            });
            match result {
                Ok(m) => {
                    j["done"] = json!(m.done);
                    j["elapsed_ns"] = json!(m.elapsed_ns);
                    j["polls"] = json!(m.polls);
                    j["fw_calls"] = json!(m.fw_calls);
                }
                Err(e) => {
                    failed += 1;
                    j["error"] = json!(e);
                }
            }
            line(&format!("EFISOCK-BENCH {j}"));
        }
        done(if failed == 0 { EXIT_OK } else { EXIT_FAILED })
    }

    fn efisock_run(setup: &OvmfSetup, run: &Run) -> Result<Measured, String> {
        let mut setup = setup.clone();
        setup.strategy = run.strategy.clone();
        if let Some(s) = &run.strategy
            && efisock::strategy_by_name(s).is_none()
        {
            return Err(format!("unknown strategy {s}"));
        }
        let mut t = setup.build(0).map_err(|e| e.to_string())?;
        let prepared = run.workload.prepare(&t)?;
        let out = run.workload.run_planned(&t, &prepared, &run.plan);
        let closed = prepared.close();
        let finished = t.finish();
        let out = out?;
        closed?;
        finished?;
        Ok(Measured {
            done: out.done,
            elapsed_ns: out.elapsed_ns,
            polls: Some(out.polls),
            fw_calls: Some(out.fw_calls),
        })
    }

    fn over(p: &EfiPlatform, start: u64, plan: &Plan) -> bool {
        plan.budget
            .is_some_and(|b| p.boot().monotonic_ns() - start >= b.as_nanos() as u64)
    }

    fn deadline(p: &EfiPlatform) -> u64 {
        p.boot().monotonic_ns() + CALL_LIMIT.as_nanos() as u64
    }

    /// The raw loop's error as this file's error text.
    fn text(e: RawBenchError) -> String {
        e.to_string()
    }

    /// The raw Tcp4 tight loop (bulk receive, bulk send, round trips).
    fn raw_run(p: &EfiPlatform, run: &Run) -> Result<Measured, String> {
        let remote = PEER_IP.octets();
        let plan = &run.plan;
        let start = p.boot().monotonic_ns();
        let mut polls = 0;
        let mut calls = 0;
        let mut done = 0u64;
        match run.workload {
            Workload::BulkReceive(_) => {
                let mut c =
                    RawConn::connect(p, remote, ports::SOURCE_FIN, deadline(p)).map_err(text)?;
                c.send(&protocol::source_request(plan.count), deadline(p))
                    .map_err(text)?;
                let mut buf = vec![0u8; RAW_CHUNK];
                let mut sum = Fnv64::new();
                while !over(p, start, plan) {
                    let n = c.recv(&mut buf, deadline(p)).map_err(text)?;
                    if n == 0 {
                        if sum.len() != plan.count {
                            return Err(format!("EOF after {} bytes", sum.len()));
                        }
                        break;
                    }
                    sum.update(&buf[..n]);
                }
                if sum.value() != pattern_checksum(0, sum.len()) {
                    return Err(format!("checksum differs after {} bytes", sum.len()));
                }
                done = sum.len();
                polls += c.stats.polls;
                calls += c.stats.calls;
            }
            Workload::BulkSend(_) => {
                let unit = if plan.send_unit == 0 {
                    plan.count
                } else {
                    plan.send_unit
                };
                let mut buf = vec![0u8; RAW_CHUNK];
                while done < plan.count && !over(p, start, plan) {
                    let n = unit.min(plan.count - done);
                    let mut c =
                        RawConn::connect(p, remote, ports::SINK, deadline(p)).map_err(text)?;
                    c.send(&protocol::sink_request(n), deadline(p))
                        .map_err(text)?;
                    let mut sent = 0u64;
                    while sent < n {
                        let len = (n - sent).min(RAW_CHUNK as u64) as usize;
                        fill_pattern(sent, &mut buf[..len]);
                        c.send(&buf[..len], deadline(p)).map_err(text)?;
                        sent += len as u64;
                    }
                    let mut report = [0u8; protocol::SINK_REPORT_LEN];
                    let mut have = 0;
                    while have < report.len() {
                        let k = c.recv(&mut report[have..], deadline(p)).map_err(text)?;
                        if k == 0 {
                            return Err("EOF before the sink report".into());
                        }
                        have += k;
                    }
                    let r = protocol::SinkReport::decode(&report);
                    if r.count != n || r.checksum != pattern_checksum(0, n) {
                        return Err(format!("sink report {r:?} for {n} bytes"));
                    }
                    polls += c.stats.polls;
                    calls += c.stats.calls;
                    done += n;
                }
            }
            Workload::RequestResponse => {
                let mut c = RawConn::connect(p, remote, ports::ECHO, deadline(p)).map_err(text)?;
                let mut req = [0u8; efisock_benches::workloads::RR_BYTES];
                let mut resp = [0u8; efisock_benches::workloads::RR_BYTES];
                while done < plan.count && !over(p, start, plan) {
                    fill_pattern(done * req.len() as u64, &mut req);
                    c.send(&req, deadline(p)).map_err(text)?;
                    let mut have = 0;
                    while have < resp.len() {
                        let k = c.recv(&mut resp[have..], deadline(p)).map_err(text)?;
                        if k == 0 {
                            return Err(format!("EOF in round trip {done}"));
                        }
                        have += k;
                    }
                    if resp != req {
                        return Err(format!("round trip {done}: echo differs"));
                    }
                    done += 1;
                }
                polls += c.stats.polls;
                calls += c.stats.calls;
            }
            other => return Err(format!("no raw loop for {}", other.name())),
        }
        Ok(Measured {
            done,
            elapsed_ns: p.boot().monotonic_ns() - start,
            polls: Some(polls),
            fw_calls: Some(calls),
        })
    }

    fn std_connect(port: u16) -> Result<TcpStream, String> {
        let addr = SocketAddrV4::new(PEER_IP, port);
        let s = TcpStream::connect_timeout(&addr.into(), CALL_LIMIT)
            .map_err(|e| format!("std TcpStream::connect({addr}): {e}"))?;
        s.set_read_timeout(Some(CALL_LIMIT))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        s.set_write_timeout(Some(CALL_LIMIT))
            .map_err(|e| format!("set_write_timeout: {e}"))?;
        Ok(s)
    }

    /// Rust std's UEFI `TcpStream` (bulk receive, bulk send, round trips).
    fn std_run(p: &EfiPlatform, run: &Run) -> Result<Measured, String> {
        let plan = &run.plan;
        let start = p.boot().monotonic_ns();
        let mut done = 0u64;
        match run.workload {
            Workload::BulkReceive(_) => {
                let mut s = std_connect(ports::SOURCE_FIN)?;
                s.write_all(&protocol::source_request(plan.count))
                    .map_err(|e| format!("write: {e}"))?;
                let mut buf = vec![0u8; RAW_CHUNK];
                let mut sum = Fnv64::new();
                while sum.len() < plan.count && !over(p, start, plan) {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => sum.update(&buf[..n]),
                        Err(e) => return Err(format!("read after {} bytes: {e}", sum.len())),
                    }
                }
                if sum.value() != pattern_checksum(0, sum.len()) {
                    return Err(format!("checksum differs after {} bytes", sum.len()));
                }
                done = sum.len();
            }
            Workload::BulkSend(_) => {
                let unit = if plan.send_unit == 0 {
                    plan.count
                } else {
                    plan.send_unit
                };
                let mut buf = vec![0u8; RAW_CHUNK];
                while done < plan.count && !over(p, start, plan) {
                    let n = unit.min(plan.count - done);
                    let mut s = std_connect(ports::SINK)?;
                    s.write_all(&protocol::sink_request(n))
                        .map_err(|e| format!("write: {e}"))?;
                    let mut sent = 0u64;
                    while sent < n {
                        let len = (n - sent).min(RAW_CHUNK as u64) as usize;
                        fill_pattern(sent, &mut buf[..len]);
                        s.write_all(&buf[..len])
                            .map_err(|e| format!("write after {sent} bytes: {e}"))?;
                        sent += len as u64;
                    }
                    let mut report = [0u8; protocol::SINK_REPORT_LEN];
                    s.read_exact(&mut report)
                        .map_err(|e| format!("reading the sink report: {e}"))?;
                    let r = protocol::SinkReport::decode(&report);
                    if r.count != n || r.checksum != pattern_checksum(0, n) {
                        return Err(format!("sink report {r:?} for {n} bytes"));
                    }
                    done += n;
                }
            }
            Workload::RequestResponse => {
                let mut s = std_connect(ports::ECHO)?;
                let mut req = [0u8; efisock_benches::workloads::RR_BYTES];
                let mut resp = [0u8; efisock_benches::workloads::RR_BYTES];
                while done < plan.count && !over(p, start, plan) {
                    fill_pattern(done * req.len() as u64, &mut req);
                    s.write_all(&req).map_err(|e| format!("write: {e}"))?;
                    s.read_exact(&mut resp)
                        .map_err(|e| format!("round trip {done}: read: {e}"))?;
                    if resp != req {
                        return Err(format!("round trip {done}: echo differs"));
                    }
                    done += 1;
                }
            }
            other => return Err(format!("no std run for {}", other.name())),
        }
        Ok(Measured {
            done,
            elapsed_ns: p.boot().monotonic_ns() - start,
            polls: None,
            fw_calls: None,
        })
    }
}
