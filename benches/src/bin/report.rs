//! `efisock-bench-report` (`cargo xtask bench-report [--no-qemu]`): issue
//! #5's report in one command.
//!
//! 1. The simulator: every workload × every strategy, one deterministic run
//!    each (seed [`SEED`]) with the same plan as OVMF, in virtual time.
//! 2. OVMF, when QEMU, OVMF and a UEFI toolchain are present (installed with
//!    apt-get when run as root, like `cargo xtask test`): builds
//!    `efisock-bench-efi`, hosts the source/sink/echo peers with tokio on
//!    127.0.0.1 (the guest reaches them as slirp's 10.0.2.2), boots it once
//!    under a wall-clock limit and collects its `EFISOCK-BENCH` lines: the
//!    same workloads, the raw Tcp4 loop and std's TcpStream.
//! 3. Writes `docs/benchmarks.md` (the table, ratios, ranking check) and
//!    `docs/benchmarks.svg`, and prints the table.
//!
//! Options: `--no-qemu` (simulator only), `--strict` (exit 1 when an OVMF
//! run failed to complete or verify, or OVMF could not run: the CI smoke
//! use in `cargo xtask test`; speeds are never asserted), `--ovmf-log FILE` (take the OVMF
//! figures from a saved serial log instead of booting: calibration loops),
//! `--cost CALL,POLL,FRAME,COPY_PS` (simulate with another cost model), `--reps N` (OVMF runs per cell,
//! default 3, interleaved; the report shows the median and the spread),
//! `--out DIR` (default `docs/` of the workspace), `--qemu-timeout SECS`
//! (default 900).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use efisock_benches::report::{Impl, Measurement, Report};
use efisock_benches::{Plan, Workload, bench_target_with_cost};
use efisock_conformance::host::{HostConfig, tokio_host};
use efisock_qemu::log::EfisockLine;
use efisock_qemu::{EfiBuild, QemuOptions, build_efi_bin, ensure_tools, run_qemu, target_dir};
use efisock_sim::CostModel;

/// The seed of every simulated world in the report.
const SEED: u64 = 0x5EED_0005;

/// Bytes per sink connection in the budgeted bulk send (each verified by
/// the sink's report): the budget is checked between them.
const SEND_UNIT: u64 = 1 << 20;

/// The plan of each workload, identical on the simulator and in OVMF. The
/// budgets keep the whole OVMF run near 2-3 minutes under TCG: timer-only
/// moves about one frame per 10 ms tick there, so it stops at the budget
/// and the report gives the rate over what was done.
fn plans() -> Vec<(Workload, Plan)> {
    let p = |count: u64, ms: u64, send_unit: u64| Plan {
        count,
        budget: Some(Duration::from_millis(ms)),
        send_unit,
    };
    vec![
        (Workload::BulkReceive(16 << 20), p(16 << 20, 3000, 0)),
        (Workload::BulkSend(16 << 20), p(16 << 20, 3000, SEND_UNIT)),
        (Workload::RequestResponse, p(1000, 2000, 0)),
        (Workload::SelectLoop, p(20, 2000, 0)),
        (Workload::ConnectRate, p(50, 2000, 0)),
    ]
}

/// Workloads the raw loop and std are measured on.
fn reference_workloads(w: &Workload) -> bool {
    matches!(
        w,
        Workload::BulkReceive(_) | Workload::BulkSend(_) | Workload::RequestResponse
    )
}

fn strategies() -> Vec<String> {
    efisock::STRATEGY_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn run_sim(report: &mut Report, cost: Option<CostModel>) -> Result<(), String> {
    for (w, plan) in plans() {
        for s in strategies() {
            let t = bench_target_with_cost(&s, SEED, cost)?;
            let prepared = w.prepare(&t)?;
            let wall = Instant::now();
            let out = w
                .run_planned(&t, &prepared, &plan)
                .map_err(|e| format!("sim {} / {s}: {e}", w.name()))?;
            let host_wall_ns = wall.elapsed().as_nanos() as u64;
            prepared.close()?;
            eprintln!(
                "sim  {:<17} {:<19} {:>9} of {:>9} {} in {:>9.3} virtual ms ({:.2} s wall)",
                w.name(),
                s,
                out.done,
                plan.count,
                w.unit(),
                out.elapsed_ns as f64 / 1e6,
                host_wall_ns as f64 / 1e9
            );
            report.sim.insert(
                (w.name(), Impl::Efisock(s.clone())),
                Measurement {
                    done: out.done,
                    count: plan.count,
                    elapsed_ns: out.elapsed_ns,
                    polls: Some(out.polls),
                    fw_calls: Some(out.fw_calls),
                    host_wall_ns: Some(host_wall_ns),
                    error: None,
                },
            );
        }
    }
    Ok(())
}

fn plan_file(reps: u32) -> String {
    let mut text = String::from("# written by efisock-bench-report\n");
    for (w, p) in (0..reps).flat_map(|_| plans()) {
        let ms = p.budget.map(|b| b.as_millis()).unwrap_or(0);
        for s in strategies() {
            text.push_str(&format!(
                "efisock {s} {} {} {ms} {}\n",
                w.name(),
                p.count,
                p.send_unit
            ));
        }
        if reference_workloads(&w) {
            for kind in ["raw", "std"] {
                text.push_str(&format!(
                    "{kind} {} {} {ms} {}\n",
                    w.name(),
                    p.count,
                    p.send_unit
                ));
            }
        }
    }
    text
}

fn run_ovmf(report: &mut Report, timeout: Duration, reps: u32) -> Result<(), String> {
    ensure_tools()?;
    eprintln!("ovmf: building efisock-bench-efi for UEFI");
    let spec = EfiBuild {
        package: "efisock-efi-apps",
        bin: "efisock-bench-efi",
        features: vec!["bench-app"],
        no_default_features: false,
        std: true,
    };
    let efi = build_efi_bin(&spec, true)?;
    let work_dir = target_dir().join("efisock-qemu-bench");
    let esp = work_dir.join("esp");
    std::fs::create_dir_all(&esp).map_err(|e| format!("create {}: {e}", esp.display()))?;
    std::fs::write(esp.join("efisock-bench.txt"), plan_file(reps))
        .map_err(|e| format!("write the plan file: {e}"))?;
    let mut host_config = HostConfig::qemu(&[]);
    host_config.lifetime = timeout + Duration::from_secs(30);
    host_config.max_connections_per_service = 50_000;
    let host = tokio_host::start(host_config)?;
    eprintln!(
        "ovmf: peers on 127.0.0.1 (guest: 10.0.2.2), booting OVMF (limit {} s)",
        timeout.as_secs()
    );
    let outcome = run_qemu(
        &efi,
        &QemuOptions {
            hostfwd: Vec::new(),
            timeout,
            work_dir,
            memory_mib: 512,
        },
    );
    let host_report = host.stop();
    let outcome = outcome?;
    for e in &host_report.errors {
        eprintln!("ovmf: peer host: {e}");
    }
    eprintln!(
        "ovmf: guest code {:?}, timed out {}, QEMU wall {:.1} s, serial log {}",
        efisock_qemu::log::done_code(&outcome.lines),
        outcome.timed_out,
        outcome.wall.as_secs_f64(),
        outcome.serial_log.display()
    );
    collect(report, &outcome.lines)
}

/// Reads the `EFISOCK-BENCH` lines of a guest run into `report` (median
/// over repeated runs).
fn collect(report: &mut Report, lines: &[EfisockLine]) -> Result<(), String> {
    let mut seen = 0;
    let mut runs: BTreeMap<(&'static str, Impl), Vec<Measurement>> = BTreeMap::new();
    for l in lines {
        match l.kind.as_str() {
            "BENCH" => {
                let v: serde_json::Value = serde_json::from_str(&l.body)
                    .map_err(|e| format!("bad EFISOCK-BENCH line {}: {e}", l.body))?;
                let (key, m) = measurement(&v)?;
                eprintln!(
                    "ovmf {:<17} {:<19} {:>9} of {:>9} in {:>9.3} ms{}",
                    key.0,
                    key.1.label(),
                    m.done,
                    m.count,
                    m.elapsed_ns as f64 / 1e6,
                    m.error
                        .as_deref()
                        .map(|e| format!("  ERROR {e}"))
                        .unwrap_or_default()
                );
                runs.entry(key).or_default().push(m);
                seen += 1;
            }
            "BENCHSTART" => eprintln!("ovmf: {}", l.body),
            "ERROR" | "PANIC" => eprintln!("ovmf: guest {}: {}", l.kind, l.body),
            _ => {}
        }
    }
    if seen == 0 {
        return Err("the guest reported no runs (see the serial log)".into());
    }
    for (key, ms) in runs {
        let (median, spread) = median_run(ms);
        report.ovmf.insert(key.clone(), median);
        if let Some(s) = spread {
            report.ovmf_spread.insert(key, s);
        }
    }
    Ok(())
}

/// The run with the median rate (a failed run counts as rate 0, so one
/// failure out of three does not hide), and the spread of the rates:
/// (max - min) / median.
fn median_run(mut ms: Vec<Measurement>) -> (Measurement, Option<f64>) {
    ms.sort_by(|a, b| a.rate().unwrap_or(0.0).total_cmp(&b.rate().unwrap_or(0.0)));
    let rates: Vec<f64> = ms.iter().map(|m| m.rate().unwrap_or(0.0)).collect();
    let mid = ms.len() / 2;
    let spread = (ms.len() > 1 && rates[mid] > 0.0)
        .then(|| (rates[rates.len() - 1] - rates[0]) / rates[mid]);
    (ms.swap_remove(mid), spread)
}

/// `per_call_ns,poll_ns,per_frame_ns,per_byte_copy_ps`.
fn parse_cost(s: &str) -> Result<CostModel, String> {
    let v: Vec<u64> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<u64>()
                .map_err(|_| format!("not a number: {x}"))
        })
        .collect::<Result<_, _>>()?;
    match v[..] {
        [per_call_ns, poll_ns, per_frame_ns, per_byte_copy_ps] => Ok(CostModel {
            per_call_ns,
            poll_ns,
            per_frame_ns,
            per_byte_copy_ps,
        }),
        _ => Err("want four numbers: per_call_ns,poll_ns,per_frame_ns,per_byte_copy_ps".into()),
    }
}

fn measurement(v: &serde_json::Value) -> Result<((&'static str, Impl), Measurement), String> {
    let name = v["workload"].as_str().unwrap_or_default();
    let w = Workload::by_name(name).ok_or_else(|| format!("unknown workload in {v}"))?;
    let i = match v["kind"].as_str() {
        Some("efisock") => Impl::Efisock(v["strategy"].as_str().unwrap_or_default().to_string()),
        Some("raw") => Impl::RawLoop,
        Some("std") => Impl::Std,
        _ => return Err(format!("unknown kind in {v}")),
    };
    let m = Measurement {
        done: v["done"].as_u64().unwrap_or(0),
        count: v["count"].as_u64().unwrap_or(0),
        elapsed_ns: v["elapsed_ns"].as_u64().unwrap_or(0),
        polls: v["polls"].as_u64(),
        fw_calls: v["fw_calls"].as_u64(),
        host_wall_ns: None,
        error: v["error"].as_str().map(str::to_string),
    };
    Ok(((w.name(), i), m))
}

/// What the command line asked for.
struct Options {
    no_qemu: bool,
    out_dir: PathBuf,
    timeout: Duration,
    reps: u32,
    strict: bool,
    cost: Option<CostModel>,
    ovmf_log: Option<PathBuf>,
}

const USAGE: &str = "usage: efisock-bench-report [--no-qemu] [--strict] [--reps N] [--out DIR] \
                     [--qemu-timeout SECS] [--ovmf-log FILE] [--cost CALL,POLL,FRAME,COPY_PS]";

/// Parses the arguments; the error is the message to print (exit status 2).
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        no_qemu: false,
        out_dir: efisock_qemu::workspace_root().join("docs"),
        timeout: Duration::from_secs(900),
        reps: 3,
        strict: false,
        cost: None,
        ovmf_log: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--no-qemu" => o.no_qemu = true,
            "--strict" => o.strict = true,
            "--out" => {
                o.out_dir = PathBuf::from(args.next().ok_or("--out needs a directory")?);
            }
            "--ovmf-log" => {
                let f = args.next().ok_or("--ovmf-log needs a serial log file")?;
                o.ovmf_log = Some(PathBuf::from(f));
            }
            "--cost" => {
                let v = args
                    .next()
                    .ok_or("--cost needs per_call_ns,poll_ns,per_frame_ns,per_byte_copy_ps")?;
                o.cost = Some(parse_cost(&v).map_err(|e| format!("--cost: {e}"))?);
            }
            "--reps" => match args.next().and_then(|s| s.parse::<u32>().ok()) {
                Some(n) if (1..=9).contains(&n) => o.reps = n,
                _ => return Err("--reps needs 1..=9".into()),
            },
            "--qemu-timeout" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) if (1..=7200).contains(&s) => o.timeout = Duration::from_secs(s),
                _ => return Err("--qemu-timeout needs 1..=7200 seconds".into()),
            },
            other => return Err(format!("unknown argument {other}; {USAGE}")),
        }
    }
    Ok(o)
}

/// The generated document's preamble: where each column's figures come from.
fn preamble(o: &Options, report: &Report, sim_wall: Duration, ovmf_wall: Duration) -> String {
    let mut doc = String::new();
    doc.push_str(
        "# Poll-strategy benchmarks (generated)\n\n\
         Generated by `cargo xtask bench-report` (`efisock-bench-report`, \
         `benches/src/bin/report.rs`); do not edit by hand. Plot: \
         [benchmarks.svg](benchmarks.svg).\n\n",
    );
    doc.push_str(&format!(
        "- **sim**: the simulator (`efisock-sim`, seed {SEED:#x}, cost model {:?}), one \
         deterministic run per cell, virtual firmware time; simulator wall time {:.1} s.\n",
        o.cost.unwrap_or_default(),
        sim_wall.as_secs_f64()
    ));
    match &report.ovmf_missing {
        None if o.ovmf_log.is_some() => doc.push_str(&format!(
            "- **OVMF**: figures read from the saved serial log {} of an earlier \
             `efisock-bench-efi` run (`--ovmf-log`), median of the runs per cell, spread = \
             (max - min) / median.\n",
            o.ovmf_log
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )),
        None => doc.push_str(&format!(
            "- **OVMF**: the same workloads in `efisock-bench-efi` inside OVMF (edk2-stable202211) \
             under QEMU TCG, one boot, peers on the host's 127.0.0.1 via slirp's 10.0.2.2; timed \
             with the firmware clock (TSC calibrated against Stall); {} runs per cell \
             (interleaved), the median shown, spread = (max - min) / median; {:.1} s wall \
             including the UEFI build and boot.\n",
            o.reps,
            ovmf_wall.as_secs_f64()
        )),
        Some(why) => doc.push_str(&format!("- **OVMF**: not measured ({why}).\n")),
    }
    doc.push_str(
        "- Each cell has a count and a firmware-time budget; a run stops at the first step \
         boundary after the budget (a 64 KiB chunk, a 1 MiB sink connection, a round trip, a \
         select round, a connection) and the rate is over the work done and verified \
         (checksums, echoes, sink reports). \"(budget)\" marks cells the budget cut short.\n\
         - Polls per KiB / per unit: `Tcp4.Poll` calls counted by the socket layer \
         (`Net::stats`) or by the raw loop; std's TcpStream cannot be counted.\n\
         - Ranking check: sim = OVMF when no pair the simulator separates by more than 25 % is \
         ordered the other way by more than 25 % in OVMF (`RANK_TIE`: TCG on a shared 2-core \
         machine shows 20-70 % spread between repeated runs of one cell).\n",
    );
    doc
}

/// Fills the OVMF columns: from a saved serial log, by booting OVMF, or not
/// at all (`--no-qemu`). Err is a message for a log that cannot be used.
fn ovmf_figures(o: &Options, report: &mut Report) -> Result<(), String> {
    if let Some(f) = &o.ovmf_log {
        let bytes = std::fs::read(f).map_err(|e| format!("reading {}: {e}", f.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        collect(report, &efisock_qemu::log::parse_lines(&text))
            .map_err(|e| format!("{}: {e}", f.display()))?;
    } else if o.no_qemu {
        report.ovmf_missing = Some("--no-qemu".into());
    } else if let Err(e) = run_ovmf(report, o.timeout, o.reps) {
        eprintln!("bench-report: no OVMF figures: {e}");
        report.ovmf_missing = Some(e);
    }
    Ok(())
}

fn main() -> ExitCode {
    let started = Instant::now();
    let o = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report {
        plans: plans().into_iter().map(|(w, p)| (w.name(), p)).collect(),
        strategies: strategies(),
        default_strategy: efisock::STRATEGY_NAMES[0].to_string(),
        ..Report::default()
    };
    let t = Instant::now();
    if let Err(e) = run_sim(&mut report, o.cost) {
        eprintln!("bench-report: simulator run failed: {e}");
        return ExitCode::FAILURE;
    }
    let sim_wall = t.elapsed();
    let t = Instant::now();
    if let Err(e) = ovmf_figures(&o, &mut report) {
        eprintln!("bench-report: {e}");
        return ExitCode::FAILURE;
    }
    let ovmf_wall = t.elapsed();
    let table = report.markdown();
    let errors: Vec<String> = report
        .ovmf
        .iter()
        .filter_map(|((w, i), m)| {
            m.error
                .as_ref()
                .map(|e| format!("{w} / {}: {e}", i.label()))
        })
        .collect();
    let mut doc = preamble(&o, &report, sim_wall, ovmf_wall);
    doc.push_str(&table);
    if !errors.is_empty() {
        doc.push_str("\n### Runs that failed in OVMF\n\n");
        for e in &errors {
            doc.push_str(&format!("- {e}\n"));
        }
    }
    println!("{table}");
    for e in &errors {
        println!("OVMF run failed: {e}");
    }
    let svg = match report.svg() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench-report: plot: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out_dir = &o.out_dir;
    if let Err(e) = std::fs::create_dir_all(out_dir)
        .and_then(|_| std::fs::write(out_dir.join("benchmarks.md"), &doc))
        .and_then(|_| std::fs::write(out_dir.join("benchmarks.svg"), &svg))
    {
        eprintln!("bench-report: writing {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    println!(
        "wrote {} and {} ({:.1} s)",
        out_dir.join("benchmarks.md").display(),
        out_dir.join("benchmarks.svg").display(),
        started.elapsed().as_secs_f64()
    );
    if o.strict && (!errors.is_empty() || (report.ovmf_missing.is_some() && !o.no_qemu)) {
        eprintln!(
            "bench-report --strict: {} OVMF run(s) failed{}",
            errors.len(),
            report
                .ovmf_missing
                .as_deref()
                .map(|m| format!(", no OVMF figures: {m}"))
                .unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
