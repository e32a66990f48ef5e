//! Command-line parsing for the suite binary.
//!
//! Hand-written (no dependency) because the grammar is small and the errors
//! must be precise: every unknown flag, missing value or bad value is a
//! [`CliError`] that names the argument, and the binary exits with status 2.
//! Flags take their value as the next argument or after `=`
//! (`--seed 0x10` or `--seed=0x10`).

use std::ffi::OsString;
use std::fmt;

use crate::runner::{DEFAULT_SEED, Plan, fmt_seed, sweep};

/// The usage text printed by `--help`.
pub const USAGE: &str = "\
efisock conformance suite: Python socket/select semantics over EFI TCP4

USAGE:
    cargo run --release -- [OPTIONS]

OPTIONS:
    --seed N            base seed, decimal or 0x hex (default 0xef150c4b5eed0001)
    --seeds N           run every case with N seeds: the base, then N-1 derived
                        from it by splitmix64 (default 1)
    --profile NAME      simulator firmware profile (e.g. an EDK2 release)
    --quirk NAME=on|off force one simulator quirk; repeatable
    --strategy NAME     Poll strategy for every wait: spin-backoff (the
                        core's default), busy-poll, poll-while-pending,
                        adaptive-backoff, event-wait, timer-only
    --filter SUBSTR     run only cases whose group/name contains SUBSTR (a full
                        case id selects exactly that case); repeatable (OR)
    --json              JSON Lines output (schema: runner::json module docs)
    --trace             print each case's firmware calls (strace-like) and a
                        per-call summary
    --list              list the cases (after filtering) and exit
    --case-bound SECS   fail a simulated case once it reaches SECS seconds of
                        virtual time (default 120: three times the longest
                        case), so a hang fails instead of hanging the run
                        (inside OVMF the limit is EFISOCK_CASE_TIMEOUT)
    --target sim|qemu   where to run (default sim; qemu boots the suite in OVMF,
                        limits from EFISOCK_QEMU_TIMEOUT / EFISOCK_CASE_TIMEOUT)
    --compare           run on the simulator and in OVMF, diff every case's
                        call-level recording, and write docs/fidelity.md
                        (verdicts and call-level column side by side); the
                        recordings are kept under target/efisock-calllog/
    --record DIR        write each case's call-level recording (firmware
                        calls, statuses, completions) to DIR, one file per
                        case and seed; with --target qemu, OVMF's
    --replay-log FILE   run the case and seed recorded in FILE (written by
                        --record or --compare) on the simulator and print
                        the call-level diff against the recording
    -h, --help          print this help

Exit status: 0 all passed, 1 a case failed, 2 usage error or nothing to run.
";

/// Where the cases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    /// The deterministic simulator.
    #[default]
    Sim,
    /// Inside OVMF under QEMU.
    Qemu,
}

/// Everything a run was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Base seed.
    pub seed: u64,
    /// Number of seeds to sweep (at least 1).
    pub seeds: u64,
    /// Firmware profile name, validated by the target.
    pub profile: Option<String>,
    /// Quirk overrides in command-line order, a later one for the same name
    /// replacing the earlier; validated by the target.
    pub quirks: Vec<(String, bool)>,
    /// Poll strategy name (validated against `efisock::STRATEGY_NAMES`).
    pub strategy: Option<String>,
    /// Case filters.
    pub filters: Vec<String>,
    /// JSON Lines output.
    pub json: bool,
    /// Capture and print firmware traces.
    pub trace: bool,
    /// List cases instead of running them.
    pub list: bool,
    /// Where to run.
    pub target: TargetKind,
    /// Run on both targets and write the fidelity report.
    pub compare: bool,
    /// `--case-bound`: the simulator's virtual-time bound per case, in
    /// seconds (`None`: `sim_target::CASE_BOUND`).
    pub case_bound_secs: Option<u64>,
    /// `--record DIR`: where to write call-level recordings.
    pub record: Option<String>,
    /// `--replay-log FILE`: a recording to replay on the simulator.
    pub replay_log: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            seed: DEFAULT_SEED,
            seeds: 1,
            profile: None,
            quirks: Vec::new(),
            strategy: None,
            filters: Vec::new(),
            json: false,
            trace: false,
            list: false,
            target: TargetKind::Sim,
            compare: false,
            case_bound_secs: None,
            record: None,
            replay_log: None,
        }
    }
}

/// Largest accepted `--seeds`.
pub const MAX_SEEDS: u64 = 1_000_000;

/// Largest accepted `--case-bound`, in seconds (a day of virtual time).
pub const MAX_CASE_BOUND_SECS: u64 = 86_400;

impl RunOptions {
    /// The arguments (besides seed and filter) a replay must repeat.
    pub fn replay_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(p) = &self.profile {
            a.push("--profile".to_string());
            a.push(p.clone());
        }
        if let Some(name) = &self.strategy {
            a.push("--strategy".to_string());
            a.push(name.clone());
        }
        for (name, on) in &self.quirks {
            a.push("--quirk".to_string());
            a.push(format!("{name}={}", if *on { "on" } else { "off" }));
        }
        if let Some(secs) = self.case_bound_secs {
            a.push("--case-bound".to_string());
            a.push(secs.to_string());
        }
        a
    }

    /// The runner's plan for these options.
    pub fn plan(&self) -> Plan {
        Plan {
            base_seed: self.seed,
            seeds: sweep(self.seed, self.seeds),
            filters: self.filters.clone(),
            replay_args: self.replay_args(),
        }
    }

    /// The base seed as printed (`0x…`).
    pub fn seed_str(&self) -> String {
        fmt_seed(self.seed)
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Run (or list) with these options.
    Run(RunOptions),
}

/// A command-line error; the message names the offending argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see --help)", self.0)
    }
}

impl std::error::Error for CliError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(msg.into()))
}

/// Parses a decimal or `0x` hexadecimal `u64` (underscores allowed).
pub fn parse_u64(s: &str) -> Option<u64> {
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || s.starts_with('_') {
        return None;
    }
    match clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if clean.bytes().all(|b| b.is_ascii_digit()) => clean.parse().ok(),
        None => None,
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn set_once<T>(slot: &mut Option<T>, flag: &str, v: T) -> Result<(), CliError> {
    if slot.is_some() {
        return err(format!("{flag} given more than once"));
    }
    *slot = Some(v);
    Ok(())
}

/// Parses the arguments after the program name.
pub fn parse<I, A>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = A>,
    A: Into<OsString>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut o = RunOptions::default();
    let (mut seed, mut seeds, mut profile, mut target) = (None, None, None, None);
    let (mut strategy, mut case_bound) = (None, None);
    let (mut record, mut replay_log) = (None, None);
    while let Some(raw) = args.next() {
        let Some(arg) = raw.to_str() else {
            return err(format!("argument is not UTF-8: {raw:?}"));
        };
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.to_string(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--seed"
                | "--seeds"
                | "--profile"
                | "--quirk"
                | "--filter"
                | "--target"
                | "--strategy"
                | "--case-bound"
                | "--record"
                | "--replay-log"
        );
        if !takes_value && inline.is_some() {
            return err(format!("{flag} takes no value"));
        }
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => match args.next() {
                    Some(v) => match v.into_string() {
                        Ok(v) => Some(v),
                        Err(v) => return err(format!("value of {flag} is not UTF-8: {v:?}")),
                    },
                    None => return err(format!("{flag} needs a value")),
                },
            }
        } else {
            None
        };
        let v = value.unwrap_or_default();
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => o.json = true,
            "--trace" => o.trace = true,
            "--list" => o.list = true,
            "--compare" => o.compare = true,
            "--seed" => match parse_u64(&v) {
                Some(n) => set_once(&mut seed, "--seed", n)?,
                None => return err(format!("--seed: '{v}' is not a decimal or 0x-hex u64")),
            },
            "--seeds" => match parse_u64(&v) {
                Some(n) if (1..=MAX_SEEDS).contains(&n) => set_once(&mut seeds, "--seeds", n)?,
                Some(n) => return err(format!("--seeds: {n} is out of range 1..={MAX_SEEDS}")),
                None => return err(format!("--seeds: '{v}' is not a number")),
            },
            "--profile" if valid_name(&v) => set_once(&mut profile, "--profile", v)?,
            "--profile" => return err(format!("--profile: '{v}' is not a valid profile name")),
            "--quirk" => {
                let Some((name, state)) = v.split_once('=') else {
                    return err(format!("--quirk: '{v}' is not NAME=on|off"));
                };
                if !valid_name(name) {
                    return err(format!("--quirk: '{name}' is not a valid quirk name"));
                }
                let on = match state {
                    "on" => true,
                    "off" => false,
                    _ => return err(format!("--quirk {name}: '{state}' is not on|off")),
                };
                o.quirks.retain(|(n, _)| n != name);
                o.quirks.push((name.to_string(), on));
            }
            "--strategy" if efisock::STRATEGY_NAMES.contains(&v.as_str()) => {
                set_once(&mut strategy, "--strategy", v)?
            }
            "--strategy" => {
                return err(format!(
                    "--strategy: '{v}' is not one of {}",
                    efisock::STRATEGY_NAMES.join(", ")
                ));
            }
            "--record" | "--replay-log" if v.is_empty() => {
                return err(format!("{flag} needs a non-empty path"));
            }
            "--record" => set_once(&mut record, "--record", v)?,
            "--replay-log" => set_once(&mut replay_log, "--replay-log", v)?,
            "--case-bound" => match parse_u64(&v) {
                Some(n) if (1..=MAX_CASE_BOUND_SECS).contains(&n) => {
                    set_once(&mut case_bound, "--case-bound", n)?
                }
                Some(n) => {
                    return err(format!(
                        "--case-bound: {n} is out of range 1..={MAX_CASE_BOUND_SECS} seconds"
                    ));
                }
                None => {
                    return err(format!(
                        "--case-bound: '{v}' is not a whole number of seconds"
                    ));
                }
            },
            "--filter" if !v.is_empty() => o.filters.push(v),
            "--filter" => return err("--filter: empty filter"),
            "--target" => match v.as_str() {
                "sim" => set_once(&mut target, "--target", TargetKind::Sim)?,
                "qemu" => set_once(&mut target, "--target", TargetKind::Qemu)?,
                _ => return err(format!("--target: '{v}' is not sim or qemu")),
            },
            _ if flag.starts_with('-') => return err(format!("unknown option {flag}")),
            _ => return err(format!("unexpected argument '{arg}'")),
        }
    }
    o.seed = seed.unwrap_or(DEFAULT_SEED);
    o.seeds = seeds.unwrap_or(1);
    o.profile = profile;
    o.strategy = strategy;
    o.target = target.unwrap_or_default();
    o.case_bound_secs = case_bound;
    o.record = record;
    o.replay_log = replay_log;
    if o.replay_log.is_some() {
        let clash = [
            (o.compare, "--compare"),
            (o.target == TargetKind::Qemu, "--target qemu"),
            (o.list, "--list"),
            (o.trace, "--trace"),
            (o.json, "--json"),
            (o.record.is_some(), "--record"),
            (!o.filters.is_empty(), "--filter"),
            (seed.is_some() || seeds.is_some(), "--seed/--seeds"),
        ];
        if let Some((_, flag)) = clash.iter().find(|(on, _)| *on) {
            return err(format!(
                "--replay-log takes no {flag}: the recording names the case and seed, and \
                 the replay runs on the simulator"
            ));
        }
    }
    if o.record.is_some() && (o.compare || o.list || o.trace) {
        return err("--record goes with a plain run, without --trace or --list \
                    (--compare keeps its recordings under target/efisock-calllog/)");
    }
    Ok(Command::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunOptions {
        match parse(args.iter().copied()) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?} -> {other:?}"),
        }
    }

    fn fails(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e) => e.0,
            Ok(c) => panic!("{args:?} parsed: {c:?}"),
        }
    }

    #[test]
    fn record_and_replay_log_options() {
        let o = run(&["--record", "out/dir", "--target", "qemu"]);
        assert_eq!(o.record.as_deref(), Some("out/dir"));
        let o = run(&["--replay-log=x.jsonl", "--profile", "legacy"]);
        assert_eq!(o.replay_log.as_deref(), Some("x.jsonl"));
        assert!(fails(&["--replay-log"]).contains("needs a value"));
        assert!(fails(&["--replay-log="]).contains("non-empty path"));
        assert!(fails(&["--record", "a", "--record", "b"]).contains("more than once"));
        for clash in [
            &["--compare"][..],
            &["--target", "qemu"],
            &["--filter", "x"],
            &["--seed", "3"],
            &["--record", "d"],
        ] {
            let mut args = vec!["--replay-log", "f"];
            args.extend_from_slice(clash);
            let e = fails(&args);
            assert!(e.starts_with("--replay-log takes no"), "{args:?}: {e}");
        }
        assert!(fails(&["--record", "d", "--compare"]).contains("--record goes with a plain run"));
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o, RunOptions::default());
        assert_eq!(o.seed, DEFAULT_SEED);
        assert_eq!(o.plan().seeds, vec![DEFAULT_SEED]);
    }

    #[test]
    fn all_options() {
        let o = run(&[
            "--seed",
            "0x1234",
            "--seeds=4",
            "--profile",
            "edk2-stable202405",
            "--quirk",
            "cancel=off",
            "--quirk=fin_return=on",
            "--quirk",
            "cancel=on",
            "--filter",
            "select",
            "--filter=transfer/one_mib",
            "--json",
            "--trace",
            "--list",
            "--target",
            "qemu",
        ]);
        assert_eq!(o.seed, 0x1234);
        assert_eq!(o.seeds, 4);
        assert_eq!(o.profile.as_deref(), Some("edk2-stable202405"));
        assert_eq!(
            o.quirks,
            vec![
                ("fin_return".to_string(), true),
                ("cancel".to_string(), true)
            ]
        );
        assert_eq!(o.filters, vec!["select", "transfer/one_mib"]);
        assert!(o.json && o.trace && o.list);
        assert_eq!(o.target, TargetKind::Qemu);
        let plan = o.plan();
        assert_eq!(plan.seeds.len(), 4);
        assert_eq!(plan.seeds[0], 0x1234);
        assert_eq!(
            plan.replay_args,
            [
                "--profile",
                "edk2-stable202405",
                "--quirk",
                "fin_return=on",
                "--quirk",
                "cancel=on"
            ]
        );
        assert_eq!(run(&["--seed", "4660"]).seed, 0x1234);
        assert_eq!(run(&["--seed", "0XFF_FF"]).seed, 0xffff);
    }

    #[test]
    fn case_bound() {
        assert_eq!(run(&[]).case_bound_secs, None);
        let o = run(&["--case-bound", "30", "--strategy=timer-only"]);
        assert_eq!(o.case_bound_secs, Some(30));
        assert_eq!(
            o.plan().replay_args,
            ["--strategy", "timer-only", "--case-bound", "30"]
        );
        assert_eq!(run(&["--case-bound=86400"]).case_bound_secs, Some(86_400));
        assert!(fails(&["--case-bound", "0"]).contains("out of range 1..=86400"));
        assert!(fails(&["--case-bound", "1.5"]).contains("not a whole number of seconds"));
        assert!(fails(&["--case-bound=5", "--case-bound=6"]).contains("more than once"));
        assert!(USAGE.contains("--case-bound SECS"));
        #[cfg(feature = "sim")]
        assert!(USAGE.contains(&format!(
            "(default {}:",
            crate::sim_target::CASE_BOUND.as_secs()
        )));
    }

    #[test]
    fn usage_states_the_real_default_seed() {
        assert!(USAGE.contains(&format!("(default {})", fmt_seed(DEFAULT_SEED))));
    }

    #[test]
    fn help() {
        assert_eq!(parse(["--help"]), Ok(Command::Help));
        assert_eq!(parse(["--seed", "1", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(fails(&["--bogus"]), "unknown option --bogus");
        assert_eq!(fails(&["stray"]), "unexpected argument 'stray'");
        assert_eq!(fails(&["--seed"]), "--seed needs a value");
        assert!(fails(&["--seed", "12z"]).contains("'12z' is not"));
        assert!(fails(&["--seed", "0x"]).contains("is not"));
        assert!(fails(&["--seed", "99999999999999999999999"]).contains("is not"));
        assert_eq!(
            fails(&["--seed", "1", "--seed", "2"]),
            "--seed given more than once"
        );
        assert!(fails(&["--seeds", "0"]).contains("out of range"));
        assert!(fails(&["--seeds", "-1"]).contains("not a number"));
        assert!(fails(&["--quirk", "cancel"]).contains("NAME=on|off"));
        assert!(fails(&["--quirk", "cancel=yes"]).contains("'yes' is not on|off"));
        assert!(fails(&["--quirk", "=on"]).contains("not a valid quirk name"));
        assert!(fails(&["--target", "ovmf"]).contains("not sim or qemu"));
        assert!(fails(&["--profile", "a b"]).contains("not a valid profile name"));
        assert_eq!(fails(&["--json=1"]), "--json takes no value");
        assert_eq!(fails(&["--filter", ""]), "--filter: empty filter");
    }
}
