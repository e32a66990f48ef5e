//! `efisock-conformance fuzz`: the ordering fuzzer and the swarm, from the
//! command line.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Duration;

use efisock_sim::Scheduler;

use super::bugs::{self, BUG_NAMES};
use super::campaign::{Campaign, CampaignReport, SwarmMode, run_guarded};
use super::case::FuzzCase;
use super::generate::Connections;
use super::shrink::ShrinkBudget;
use crate::error::ParseError;
use crate::runner::fmt_seed;

/// Usage of the `fuzz` subcommand.
pub const FUZZ_USAGE: &str = "\
efisock fuzz: ordering fuzzer and swarm over core + simulator

USAGE:
    cargo run --release -p efisock-conformance -- fuzz [OPTIONS]

OPTIONS:
    --cases N          stop after N cases (default 300 unless --time is given)
    --time DURATION    stop after this much wall time, e.g. 90s, 10m, 1h
    --seed N           base seed, decimal or 0x hex (default 0xf022ef150c4b0001);
                       case i runs with splitmix64(base ^ i * golden ratio)
    --scheduler S      fifo, uniform, pctN (PCT with depth N), or all
                       (= fifo,uniform,pct3); repeatable; round-robin per case
    --swarm MODE       off (ordering only), on (every case gets seed-derived
                       faults), mixed (every other case; default)
    --max-ops N        longest generated operation list (default 24; cases
                       with several connections get up to twice as many)
    --connections MODE single (one connection per case), multi (every case
                       opens, dials and accepts several connections on a
                       listener with a backlog, reusing slots and ports),
                       mixed (a quarter of the cases, by seed; default)
    --determinism N    run every N-th case twice and compare hashes of every
                       decision and of the trace (default 8; 0 = never)
    --bug NAME|all     switch a deliberate bug on (needs --features
                       deliberate-bugs); all = one campaign per bug, each until
                       found; reports cases and time to find
    --keep-going       do not stop at the first failure
    --replay STRING    re-run one case from its replay string and print the result
    -h, --help         print this help

Exit status: 0 nothing failed (with --bug: every bug found), 1 a failure (with
--bug: a bug not found), 2 usage error.
";

/// Default base seed of a campaign.
pub const DEFAULT_FUZZ_SEED: u64 = 0xf022_ef15_0c4b_0001;

/// What the `fuzz` command line asked for.
#[derive(Debug, Clone)]
pub enum FuzzCommand {
    /// Print usage.
    Help,
    /// Replay one case.
    Replay(Box<FuzzCase>),
    /// Run a campaign (per bug, when `bugs` is non-empty).
    Run {
        /// The campaign (its `bug` is filled per entry of `bugs`).
        campaign: Campaign,
        /// Bugs to hunt, one campaign each; empty: a plain campaign.
        bugs: Vec<String>,
    },
}

fn parse_u64(flag: &str, v: &str) -> Result<u64, ParseError> {
    let r = if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        v.parse()
    };
    r.map_err(|_| ParseError::new(v, format!("{flag}: {v:?} is not a non-negative integer")))
}

/// Parses `90s`, `10m`, `1h`, `500ms` or plain seconds.
pub fn parse_duration(v: &str) -> Result<Duration, ParseError> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num.parse().map_err(|_| {
        ParseError::new(
            v,
            format!("--time: {v:?} is not a duration like 90s, 10m or 1h"),
        )
    })?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(ParseError::new(
                v,
                format!("--time: unknown unit {unit:?} in {v:?} (ms, s, m, h)"),
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

/// Parses the arguments after `fuzz`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<FuzzCommand, ParseError> {
    let mut campaign = Campaign {
        base_seed: DEFAULT_FUZZ_SEED,
        schedulers: Vec::new(),
        swarm: SwarmMode::Mixed,
        max_cases: None,
        time_budget: None,
        bug: None,
        max_ops: 24,
        connections: Connections::Mixed,
        determinism_every: 8,
        stop_at_first: true,
        shrink: ShrinkBudget::default(),
    };
    let mut bug_list = Vec::new();
    let mut args = args.into_iter().map(|a| {
        a.into_string().map_err(|a| {
            ParseError::new(
                a.to_string_lossy(),
                format!("argument {a:?} is not valid UTF-8"),
            )
        })
    });
    while let Some(arg) = args.next() {
        let arg = arg?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, ParseError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .transpose()?
                    .ok_or_else(|| ParseError::new(name, format!("{name} needs a value"))),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(FuzzCommand::Help),
            "--cases" => campaign.max_cases = Some(parse_u64("--cases", &value("--cases")?)?),
            "--time" => campaign.time_budget = Some(parse_duration(&value("--time")?)?),
            "--seed" => campaign.base_seed = parse_u64("--seed", &value("--seed")?)?,
            "--scheduler" => {
                let v = value("--scheduler")?;
                for s in v.split(',') {
                    if s == "all" {
                        campaign.schedulers.extend([
                            Scheduler::Fifo,
                            Scheduler::Uniform,
                            Scheduler::Pct { depth: 3 },
                        ]);
                    } else {
                        campaign.schedulers.push(
                            s.parse()
                                .map_err(|e| ParseError::new(s, format!("--scheduler: {e}")))?,
                        );
                    }
                }
            }
            "--swarm" => {
                campaign.swarm = match value("--swarm")?.as_str() {
                    "off" => SwarmMode::Off,
                    "on" => SwarmMode::On,
                    "mixed" => SwarmMode::Mixed,
                    o => {
                        return Err(ParseError::new(
                            o,
                            format!("--swarm: {o:?}: expected off, on or mixed"),
                        ));
                    }
                }
            }
            "--max-ops" => {
                let n = parse_u64("--max-ops", &value("--max-ops")?)?;
                if n == 0 || n > 10_000 {
                    return Err(ParseError::new(
                        n.to_string(),
                        "--max-ops: expected 1..=10000",
                    ));
                }
                campaign.max_ops = n as usize;
            }
            "--connections" => {
                campaign.connections = match value("--connections")?.as_str() {
                    "single" => Connections::Single,
                    "multi" => Connections::Multi,
                    "mixed" => Connections::Mixed,
                    o => {
                        return Err(ParseError::new(
                            o,
                            format!("--connections: {o:?}: expected single, multi or mixed"),
                        ));
                    }
                }
            }
            "--determinism" => {
                campaign.determinism_every = parse_u64("--determinism", &value("--determinism")?)?
            }
            "--bug" => {
                let v = value("--bug")?;
                if v == "all" {
                    bug_list.extend(BUG_NAMES.iter().map(|s| s.to_string()));
                } else {
                    bugs::check(&v)?;
                    bug_list.push(v);
                }
                if let Some(b) = bug_list.first() {
                    bugs::check(b)?;
                }
            }
            "--keep-going" => campaign.stop_at_first = false,
            "--replay" => {
                let case: FuzzCase = value("--replay")?.parse()?;
                if let Some(b) = &case.bug {
                    bugs::check(b)?;
                }
                return Ok(FuzzCommand::Replay(Box::new(case)));
            }
            other => {
                return Err(ParseError::new(
                    other,
                    format!("unknown fuzz option {other:?} (see fuzz --help)"),
                ));
            }
        }
    }
    if campaign.schedulers.is_empty() {
        campaign.schedulers = vec![
            Scheduler::Fifo,
            Scheduler::Uniform,
            Scheduler::Pct { depth: 3 },
        ];
    }
    if campaign.max_cases.is_none() && campaign.time_budget.is_none() {
        campaign.max_cases = Some(if bug_list.is_empty() { 300 } else { 5_000 });
    }
    Ok(FuzzCommand::Run {
        campaign,
        bugs: bug_list,
    })
}

/// Renders a campaign report (the lines the command prints).
pub fn render(c: &Campaign, r: &CampaignReport) -> String {
    let mut out = String::new();
    let sched: Vec<String> = c.schedulers.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(
        out,
        "efisock fuzz: base seed {}, schedulers {}, swarm {:?}, connections {:?}, bug {}",
        fmt_seed(c.base_seed),
        sched.join(","),
        c.swarm,
        c.connections,
        c.bug.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>8} {:>9} {:>12} {:>11} {:>10}",
        "scheduler", "cases", "failures", "cases/s", "virtual s", "decisions", "injected"
    );
    for (s, st) in &r.per_scheduler {
        let _ = writeln!(
            out,
            "{:<10} {:>7} {:>8} {:>9.1} {:>12.1} {:>11} {:>10}",
            s.to_string(),
            st.cases,
            st.failures,
            st.cases as f64 / st.wall.as_secs_f64().max(1e-9),
            st.virtual_ns as f64 / 1e9,
            st.decisions,
            st.injections
        );
    }
    let _ = writeln!(
        out,
        "total: {} cases in {:.2} s = {:.1} cases/s; seeds: case i of base {} (i = 0..{}); \
         determinism: {} cases run twice, {} divergences; decision digest {:#018x}",
        r.cases,
        r.elapsed.as_secs_f64(),
        r.cases_per_second(),
        fmt_seed(c.base_seed),
        r.cases,
        r.determinism_checks,
        r.divergences,
        r.decision_digest
    );
    for f in &r.found {
        let s = &f.shrunk;
        let _ = writeln!(
            out,
            "FAILURE found after {} cases, {:.2} s (seed {}): {}",
            f.cases_to_find,
            f.time_to_find.as_secs_f64(),
            fmt_seed(f.original.seed),
            f.original_message
        );
        let _ = writeln!(
            out,
            "  shrunk in {} runs, {:.2} s: {} -> {} ops, tape {} decisions{}",
            s.runs,
            s.elapsed.as_secs_f64(),
            f.original.ops.len(),
            s.case.ops.len(),
            s.case.tape.as_ref().map_or(0, |t| t.len()),
            if s.tape_replayed {
                ""
            } else {
                " (the recorded tape did not replay: schedule not shrunk)"
            }
        );
        let _ = writeln!(out, "  minimal failure: {}", s.message);
        let _ = writeln!(out, "  replay: {}", s.case);
        let _ = writeln!(out, "  command: {}", s.case.replay_command());
    }
    out
}

/// Runs the `fuzz` command; returns the exit status.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let cmd = match parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match cmd {
        FuzzCommand::Help => {
            print!("{FUZZ_USAGE}");
            0
        }
        FuzzCommand::Replay(case) => match run_guarded(&case) {
            Ok(r) => {
                println!(
                    "PASS {case}\n  decisions {} (hash {:#x}), trace hash {:#x}, virtual {:.3} s, {} injected statuses",
                    r.decisions,
                    r.decision_hash,
                    r.trace_hash,
                    r.virtual_ns as f64 / 1e9,
                    r.injections
                );
                if std::env::var_os("EFISOCK_FUZZ_TRACE").is_some() {
                    let sim_trace = super::exec::trace_of(&case);
                    for line in sim_trace {
                        println!("    {line}");
                    }
                }
                0
            }
            Err(f) => {
                println!(
                    "FAIL {case}\n  {}\n  decisions {} (hash {:#x})",
                    f.message, f.decisions, f.decision_hash
                );
                for line in &f.injected {
                    println!("  injected {line}");
                }
                let tail = if std::env::var_os("EFISOCK_FUZZ_TRACE").is_some() {
                    0
                } else {
                    f.trace.len().saturating_sub(60)
                };
                if !f.trace.is_empty() {
                    println!(
                        "  simulator trace (last {} of {} lines):",
                        f.trace.len() - tail,
                        f.trace.len()
                    );
                }
                for line in &f.trace[tail..] {
                    println!("    {line}");
                }
                1
            }
        },
        FuzzCommand::Run { campaign, bugs } => {
            let mut progress = |line: &str| eprintln!("{line}");
            if bugs.is_empty() {
                let report = campaign.run(&mut progress);
                print!("{}", render(&campaign, &report));
                u8::from(!report.found.is_empty())
            } else {
                let mut missed = 0;
                for bug in bugs {
                    let c = Campaign {
                        bug: Some(bug.clone()),
                        stop_at_first: true,
                        ..campaign.clone()
                    };
                    let report = c.run(&mut progress);
                    print!("{}", render(&c, &report));
                    if report.found.is_empty() {
                        match bugs::SIM_UNREACHABLE.iter().find(|(b, _)| *b == bug) {
                            Some((_, loom)) => println!(
                                "NOT FOUND: {bug} within {} cases, as expected: the simulator \
                                 runs notify functions one at a time; the loom model finds it: {loom}",
                                report.cases
                            ),
                            None => {
                                missed += 1;
                                println!("NOT FOUND: {bug} within {} cases", report.cases);
                            }
                        }
                    }
                }
                u8::from(missed > 0)
            }
        }
    }
}
