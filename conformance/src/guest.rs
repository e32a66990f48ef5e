//! The host↔guest protocol of the in-OVMF run, in one place so both ends
//! (the UEFI suite binary and the host runner) share it and it is tested on
//! the host.
//!
//! Why a file and serial lines: inside OVMF the suite has no argv (only the
//! image path) and no network back to the host except the TCP peers, so the
//! host writes the options to a file on the ESP ([`ARGS_FILE`]) and the guest
//! prints one machine-readable line per event on the console, which OVMF
//! mirrors to the serial port:
//!
//! - `EFISOCK-START {"id","seed"}` before a case runs (so the host can name
//!   the case in flight if QEMU has to be killed),
//! - `EFISOCK-CASE {"id","group","name","passed","timeout","message","wall_ns","virtual_ns","seed"}`,
//! - with [`RECORD_CALLS_FLAG`], the case's call-level recording before its
//!   CASE line: `EFISOCK-CALLS {"id","seed","part","steps"}` lines and one
//!   `EFISOCK-CALLSEND {"id","seed","parts","steps","dropped"}`
//!   ([`crate::calllog::file`]),
//! - `EFISOCK-SUMMARY {"passed","failed","wall_ns","virtual_ns"}`,
//! - `EFISOCK-DONE <code>` (the suite's exit status).

use std::borrow::Cow;
use std::time::Duration;

use crate::cli::{self, Command, RunOptions};
use crate::error::ParseError;
use crate::runner::{CaseReport, RunSummary, fmt_seed};

/// The options file's name at the ESP root (host side).
pub const ARGS_FILE: &str = "efisock-args.txt";
/// The same file as the guest opens it (UEFI path, ESP root).
pub const GUEST_ARGS_PATH: &str = "\\efisock-args.txt";
/// Per-case limit when the options do not give one (firmware time).
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(120);
/// The guest-only option carrying the per-case limit in whole seconds.
pub const CASE_TIMEOUT_FLAG: &str = "--case-timeout";
/// The guest-only option asking for call-level recordings.
pub const RECORD_CALLS_FLAG: &str = "--record-calls";
/// Prefix of every machine-readable guest line.
pub const PREFIX: &str = "EFISOCK-";

/// What the guest was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestArgs {
    /// The suite options (seed, seeds, strategy, filters).
    pub opts: RunOptions,
    /// Per-case wall-clock limit (firmware time).
    pub case_timeout: Duration,
    /// Whether to stream each case's call-level recording.
    pub record_calls: bool,
}

/// The options file for `opts`. Only options that mean something inside
/// OVMF are accepted: simulator profiles and quirks, `--trace`, `--json` and
/// `--list` are host-side or simulator-only, and filters must be single
/// words (the file is split on whitespace). The error names the option
/// that cannot be passed on. `--record` and `--compare` ask the guest for
/// call-level recordings ([`RECORD_CALLS_FLAG`]).
pub fn args_file(opts: &RunOptions, case_timeout: Duration) -> Result<String, ParseError> {
    if opts.profile.is_some() || !opts.quirks.is_empty() {
        let option = if opts.profile.is_some() {
            "--profile"
        } else {
            "--quirk"
        };
        return Err(ParseError::new(
            option,
            "--profile/--quirk select simulator firmware; OVMF is what it is \
                    (edk2-stable202211)",
        ));
    }
    if opts.trace {
        return Err(ParseError::new(
            "--trace",
            "--trace is not supported with --target qemu (the firmware trace would \
                    have to cross the serial console); run the case on the simulator",
        ));
    }
    let secs = case_timeout.as_secs();
    if secs == 0 || case_timeout.subsec_nanos() != 0 {
        return Err(ParseError::new(
            format!("{case_timeout:?}"),
            format!("case timeout {case_timeout:?} must be a whole number of seconds >= 1"),
        ));
    }
    let mut words = vec![
        "--seed".to_string(),
        fmt_seed(opts.seed),
        "--seeds".to_string(),
        opts.seeds.to_string(),
    ];
    if let Some(s) = &opts.strategy {
        words.push("--strategy".into());
        words.push(s.clone());
    }
    for f in &opts.filters {
        if f.is_empty() || f.chars().any(char::is_whitespace) {
            return Err(ParseError::new(
                f.as_str(),
                format!("--filter {f:?}: filters for the QEMU run must be single words"),
            ));
        }
        words.push("--filter".into());
        words.push(f.clone());
    }
    words.push(CASE_TIMEOUT_FLAG.into());
    words.push(secs.to_string());
    if opts.record.is_some() || opts.compare {
        words.push(RECORD_CALLS_FLAG.into());
    }
    Ok(words.join(" ") + "\n")
}

/// Parses the options file (whitespace-separated words, the CLI grammar plus
/// [`CASE_TIMEOUT_FLAG`]); the same as `text.parse::<GuestArgs>()`.
pub fn parse_args_file(text: &str) -> Result<GuestArgs, ParseError> {
    text.parse()
}

impl std::str::FromStr for GuestArgs {
    type Err = ParseError;

    /// Parses the options file's text.
    fn from_str(text: &str) -> Result<GuestArgs, ParseError> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let mut case_timeout = DEFAULT_CASE_TIMEOUT;
        if let Some(at) = words.iter().position(|w| *w == CASE_TIMEOUT_FLAG) {
            let v = words.get(at + 1).ok_or_else(|| {
                ParseError::new(
                    CASE_TIMEOUT_FLAG,
                    format!("{CASE_TIMEOUT_FLAG} needs a value"),
                )
            })?;
            let secs: u64 = v
                .parse()
                .ok()
                .filter(|s| (1..=86_400).contains(s))
                .ok_or_else(|| {
                    ParseError::new(
                        *v,
                        format!("{CASE_TIMEOUT_FLAG}: '{v}' is not 1..=86400 seconds"),
                    )
                })?;
            case_timeout = Duration::from_secs(secs);
            words.drain(at..at + 2);
        }
        let record_calls = words.contains(&RECORD_CALLS_FLAG);
        words.retain(|w| *w != RECORD_CALLS_FLAG);
        match cli::parse(words) {
            Ok(Command::Run(opts)) => Ok(GuestArgs {
                opts,
                case_timeout,
                record_calls,
            }),
            Ok(Command::Help) => Err(ParseError::new("--help", "--help in the options file")),
            Err(e) => Err(ParseError::new(text, e.to_string())),
        }
    }
}

/// `EFISOCK-START …` for a case about to run.
pub fn start_line(id: &str, seed: u64) -> String {
    format!(
        "{PREFIX}START {}",
        serde_json::json!({ "id": id, "seed": seed })
    )
}

/// `EFISOCK-CASE …` for a finished case; `timeout` marks a case that
/// exceeded the per-case limit (then `passed` is false).
pub fn case_line(r: &CaseReport, timeout: bool) -> String {
    let v = serde_json::json!({
        "id": r.id(),
        "group": r.group,
        "name": r.name,
        "passed": r.passed,
        "timeout": timeout,
        "message": r.message,
        "wall_ns": u64::try_from(r.wall.as_nanos()).unwrap_or(u64::MAX),
        "virtual_ns": r.virtual_ns,
        "seed": r.seed,
    });
    format!("{PREFIX}CASE {v}")
}

/// `EFISOCK-SUMMARY …`.
pub fn summary_line(s: &RunSummary) -> String {
    let v = serde_json::json!({
        "passed": s.passed,
        "failed": s.failed,
        "wall_ns": u64::try_from(s.wall.as_nanos()).unwrap_or(u64::MAX),
        "virtual_ns": s.virtual_ns,
    });
    format!("{PREFIX}SUMMARY {v}")
}

/// A case result read back from a guest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCase {
    /// The report, as the runner's reporters take it.
    pub report: CaseReport,
    /// Whether the guest marked it as over the per-case limit.
    pub timeout: bool,
}

/// Parses the JSON body of an `EFISOCK-CASE` line; the error carries the
/// whole body as its input.
pub fn parse_case(body: &str) -> Result<GuestCase, ParseError> {
    let bad = |message: String| ParseError::new(body, message);
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| bad(format!("CASE line is not JSON ({e}): {body}")))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(format!("CASE line lacks string field {k:?}: {body}")))
    };
    let num = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad(format!("CASE line lacks number field {k:?}: {body}")))
    };
    let flag = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(|| bad(format!("CASE line lacks bool field {k:?}: {body}")))
    };
    let message = match v.get("message") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad(format!("CASE line message is not a string: {other}"))),
    };
    Ok(GuestCase {
        report: CaseReport {
            name: Cow::Owned(text("name")?),
            group: Cow::Owned(text("group")?),
            passed: flag("passed")?,
            message,
            wall: Duration::from_nanos(num("wall_ns")?),
            virtual_ns: num("virtual_ns")?,
            seed: num("seed")?,
        },
        timeout: flag("timeout")?,
    })
}

/// The `(id, seed)` of an `EFISOCK-START` line body; the error carries the
/// whole body as its input.
pub fn parse_start(body: &str) -> Result<(String, u64), ParseError> {
    let v: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ParseError::new(body, format!("START line is not JSON ({e}): {body}")))?;
    match (v["id"].as_str(), v["seed"].as_u64()) {
        (Some(id), Some(seed)) => Ok((id.to_string(), seed)),
        _ => Err(ParseError::new(
            body,
            format!("START line lacks id/seed: {body}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> RunOptions {
        match cli::parse(args.iter().copied()) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn args_file_round_trips() {
        let o = opts(&[
            "--seed",
            "0x10",
            "--seeds",
            "3",
            "--filter",
            "select",
            "--filter",
            "transfer/one_mib",
            "--strategy",
            "busy-poll",
            "--target",
            "qemu",
        ]);
        let text = args_file(&o, Duration::from_secs(90)).unwrap();
        let back = parse_args_file(&text).unwrap();
        assert_eq!(back.case_timeout, Duration::from_secs(90));
        assert_eq!(back.opts.seed, 0x10);
        assert_eq!(back.opts.seeds, 3);
        assert_eq!(back.opts.filters, o.filters);
        assert_eq!(back.opts.strategy.as_deref(), Some("busy-poll"));
        assert!(!back.record_calls);
        let plain = parse_args_file("--seed 7\n").unwrap();
        assert_eq!(plain.case_timeout, DEFAULT_CASE_TIMEOUT);
        let rec = opts(&["--target", "qemu", "--record", "out"]);
        let text = args_file(&rec, Duration::from_secs(9)).unwrap();
        assert!(text.contains(RECORD_CALLS_FLAG), "{text}");
        let back = parse_args_file(&text).unwrap();
        assert!(back.record_calls);
        assert_eq!(
            back.opts.record, None,
            "the host-side directory stays on the host"
        );
    }

    #[test]
    fn args_file_rejects_what_ovmf_cannot_do() {
        let t = Duration::from_secs(60);
        assert!(args_file(&opts(&["--quirk", "cancel=on"]), t).is_err());
        assert!(args_file(&opts(&["--profile", "legacy"]), t).is_err());
        assert!(args_file(&opts(&["--trace"]), t).is_err());
        assert!(args_file(&opts(&["--filter", "a b"]), t).is_err());
        assert!(args_file(&opts(&[]), Duration::from_millis(1500)).is_err());
        assert!(parse_args_file("--case-timeout").is_err());
        assert!(parse_args_file("--case-timeout 0").is_err());
        assert!(
            parse_args_file("--bogus")
                .unwrap_err()
                .to_string()
                .contains("--bogus")
        );
        let e = "--case-timeout 0".parse::<GuestArgs>().unwrap_err();
        assert_eq!(e.input(), "0");
        assert_eq!(
            e.to_string(),
            "--case-timeout: '0' is not 1..=86400 seconds"
        );
        let e = args_file(&opts(&["--filter", "a b"]), t).unwrap_err();
        assert_eq!(e.input(), "a b");
    }

    #[test]
    fn case_lines_round_trip() {
        let r = CaseReport {
            name: "recv_one_byte".into(),
            group: "transfer".into(),
            passed: false,
            message: Some("expected \"x\"\nline two".into()),
            wall: Duration::from_nanos(1_234_567),
            virtual_ns: 99,
            seed: u64::MAX,
        };
        let line = case_line(&r, true);
        let body = line.strip_prefix("EFISOCK-CASE ").unwrap();
        assert!(!body.contains('\n'));
        let back = parse_case(body).unwrap();
        assert_eq!(back.report, r);
        assert!(back.timeout);
        let ok = CaseReport {
            message: None,
            passed: true,
            ..r
        };
        let back = parse_case(case_line(&ok, false).strip_prefix("EFISOCK-CASE ").unwrap());
        assert_eq!(back.unwrap().report, ok);
        assert!(parse_case("{}").is_err());
        let e = parse_case("not json").unwrap_err();
        assert_eq!(e.input(), "not json");
        assert!(e.to_string().starts_with("CASE line is not JSON ("), "{e}");
        let start = start_line("a/b", 5);
        assert_eq!(
            parse_start(start.strip_prefix("EFISOCK-START ").unwrap()),
            Ok(("a/b".to_string(), 5))
        );
    }
}
