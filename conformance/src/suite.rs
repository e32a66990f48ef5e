//! The suite driver: what the binary does with parsed [`RunOptions`].
//!
//! [`run`] is the one entry point for a target that exists: it validates the
//! target kind, applies filters, lists or runs the cases with the right
//! reporter, installs the trace recorder for `--trace`, and returns the exit
//! status. The simulator target and the case list are supplied by the
//! integration step (`CASES.md` is the plan); until then the binary calls
//! [`no_cases_registered`], which says so and verifies nothing.

use std::io::Write;

use tracing_subscriber::layer::SubscriberExt;

use crate::cli::{RunOptions, TargetKind};
use crate::runner::{
    Case, JsonReporter, Reporter, RunHeader, RunSummary, Target, TextReporter, run_cases, select,
};
use crate::trace::TraceRecorder;

/// Exit status: every case passed.
pub const EXIT_PASS: u8 = 0;
/// Exit status: at least one case failed.
pub const EXIT_FAIL: u8 = 1;
/// Exit status: usage error, unsupported target, or nothing to run.
pub const EXIT_USAGE: u8 = 2;

/// The message when `--target qemu` reaches the in-process driver: the
/// QEMU run is driven by `qemu::run` (feature `qemu`, on by default), which
/// the binary dispatches to before [`run`].
pub const QEMU_NOT_IN_PROCESS: &str = "--target qemu is run by the qemu module (feature `qemu`, \
     on by default), not by the in-process driver; rebuild with the feature or use --target sim";

/// `Some(exit status)` if `opts` asks for a target that cannot run.
pub fn unsupported_target(opts: &RunOptions, err: &mut dyn Write) -> Option<u8> {
    match opts.target {
        TargetKind::Sim => None,
        TargetKind::Qemu => {
            let _ = writeln!(err, "{QEMU_NOT_IN_PROCESS}");
            Some(EXIT_USAGE)
        }
    }
}

/// Reports that no cases exist yet (no rows, a zero summary) and returns
/// [`EXIT_USAGE`]: nothing was verified.
pub fn no_cases_registered(opts: &RunOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if let Some(code) = unsupported_target(opts, err) {
        return code;
    }
    let _ = writeln!(
        err,
        "no cases registered: the simulator target and the cases are added by the \
         integration step (planned list: conformance/CASES.md)"
    );
    if opts.list {
        return EXIT_USAGE;
    }
    let mut reporter = reporter_for(opts, out);
    reporter.start(&RunHeader {
        case_ids: Vec::new(),
        seeds: opts.plan().seeds,
        base_seed: opts.seed,
    });
    reporter.finish(&RunSummary {
        base_seed: opts.seed,
        seeds: opts.plan().seeds,
        ..RunSummary::default()
    });
    EXIT_USAGE
}

fn reporter_for<'a>(opts: &RunOptions, out: &'a mut dyn Write) -> Box<dyn Reporter + 'a> {
    if opts.json {
        Box::new(JsonReporter::new(out))
    } else {
        Box::new(TextReporter::new(out))
    }
}

fn list<T>(opts: &RunOptions, cases: &[&Case<T>], out: &mut dyn Write) {
    let width = cases.iter().map(|c| c.id().len()).max().unwrap_or(0);
    for c in cases {
        let _ = if opts.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"type": "case_info", "id": c.id(), "group": c.group,
                                   "name": c.name, "about": c.about})
            )
        } else {
            writeln!(out, "{:<width$}  {}", c.id(), c.about)
        };
    }
}

/// Lists or runs `cases` as `opts` asks; each execution gets a fresh target
/// from `make(seed)` (which applies `opts.profile` and `opts.quirks`).
/// Returns the exit status.
pub fn run<T: Target, E: std::fmt::Display>(
    opts: &RunOptions,
    cases: &[Case<T>],
    make: &mut dyn FnMut(u64) -> Result<T, E>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if let Some(code) = unsupported_target(opts, err) {
        return code;
    }
    if cases.is_empty() {
        return no_cases_registered(opts, out, err);
    }
    let selected = select(cases, &opts.filters);
    if selected.is_empty() {
        let _ = writeln!(
            err,
            "no case matches --filter {}",
            opts.filters.join(" --filter ")
        );
        return EXIT_USAGE;
    }
    if opts.list {
        list(opts, &selected, out);
        return EXIT_PASS;
    }
    let plan = opts.plan();
    let mut reporter = reporter_for(opts, out);
    let summary = if let Some(dir) = &opts.record {
        let (summary, pairs) = crate::calllog::run_recorded(cases, &plan, make, &mut *reporter);
        drop(reporter);
        if let Err(e) = write_recordings(pairs.iter().map(|(_, r)| r), dir, err) {
            let _ = writeln!(err, "error: --record: {e}");
            return EXIT_FAIL;
        }
        summary
    } else if opts.trace {
        let (recorder, mut handle) = TraceRecorder::new();
        let subscriber = tracing_subscriber::registry().with(recorder);
        let summary = tracing::subscriber::with_default(subscriber, || {
            run_cases(cases, &plan, make, &mut *reporter, Some(&mut handle))
        });
        drop(reporter);
        let table = handle.run_summary();
        let _ = if opts.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"type": "trace_summary", "table": table})
            )
        } else {
            write!(out, "\nfirmware calls, whole run:\n{table}")
        };
        summary
    } else {
        run_cases(cases, &plan, make, &mut *reporter, None)
    };
    if summary.success() {
        EXIT_PASS
    } else {
        EXIT_FAIL
    }
}

/// Writes call-level recordings into `dir` (`--record`), one file per case
/// and seed, and says where on `err`.
pub fn write_recordings<'a>(
    recordings: impl Iterator<Item = &'a crate::calllog::Recording>,
    dir: &str,
    err: &mut dyn Write,
) -> Result<(), crate::calllog::CallLogError> {
    let dir = std::path::Path::new(dir);
    let mut n = 0;
    for r in recordings {
        r.write_to(dir)?;
        n += 1;
    }
    let _ = writeln!(
        err,
        "recorded {n} call-level log(s) in {} (replay one with --replay-log FILE)",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Command, parse};
    use crate::runner::CaseResult;

    struct Clock(u64);

    impl Target for Clock {
        fn virtual_ns(&self) -> u64 {
            self.0
        }
    }

    fn traced(t: &mut Clock) -> CaseResult {
        t.0 = 2_000;
        tracing::info!(target: "efisock::fw", instance = 1u64, call = "Tcp4.Poll", args = "",
                       status = "SUCCESS", t_ns = 1_000u64, elapsed_ns = 1_000u64);
        Ok(())
    }

    fn fails(_t: &mut Clock) -> CaseResult {
        crate::ensure!(1 + 1 == 3, "arithmetic is broken");
        Ok(())
    }

    const CASES: &[Case<Clock>] = &[
        Case {
            name: "poll",
            group: "trace",
            about: "emits one call",
            run: traced,
        },
        Case {
            name: "fails",
            group: "meta",
            about: "always fails",
            run: fails,
        },
    ];

    fn go(args: &[&str], cases: &[Case<Clock>]) -> (u8, String, String) {
        let Ok(Command::Run(opts)) = parse(args.iter().copied()) else {
            panic!()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            &opts,
            cases,
            &mut |_| Ok::<_, std::convert::Infallible>(Clock(0)),
            &mut out,
            &mut err,
        );
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn exit_codes() {
        assert_eq!(go(&["--filter", "trace/poll"], CASES).0, EXIT_PASS);
        assert_eq!(go(&[], CASES).0, EXIT_FAIL);
        let (code, _, err) = go(&["--filter", "zzz"], CASES);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("no case matches --filter zzz"), "{err}");
        let (code, _, err) = go(&["--target", "qemu"], CASES);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("qemu module"), "{err}");
    }

    #[test]
    fn trace_flag_captures_the_case_events() {
        let (code, out, _) = go(&["--trace", "--filter", "trace/poll"], CASES);
        assert_eq!(code, EXIT_PASS, "{out}");
        let tail = out
            .split("firmware calls, whole run:\n")
            .nth(1)
            .expect(&out);
        assert!(tail.lines().any(|l| l.starts_with("Tcp4.Poll ")), "{out}");
        assert!(
            out.contains("      [   0.000001000] #1 Tcp4.Poll() = SUCCESS  <0.000001>"),
            "{out}"
        );
        let (_, out, _) = go(&["--filter", "trace/poll"], CASES);
        assert!(
            !out.contains("Tcp4.Poll"),
            "no trace without --trace: {out}"
        );
    }

    #[test]
    fn list_prints_ids_and_descriptions() {
        let (code, out, _) = go(&["--list"], CASES);
        assert_eq!(code, EXIT_PASS);
        assert_eq!(
            out,
            "trace/poll  emits one call\nmeta/fails  always fails\n"
        );
        let (_, out, _) = go(&["--list", "--json", "--filter", "meta"], CASES);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["id"], "meta/fails");
    }

    #[test]
    fn empty_registry_says_so_without_rows() {
        let (code, out, err) = go(&[], &[]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("no cases registered"), "{err}");
        assert!(!out.contains("PASS") && !out.contains("FAIL"), "{out}");
        assert!(out.lines().any(|l| l == "0 passed, 0 failed"), "{out}");
    }
}
