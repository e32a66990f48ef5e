//! Executing cases: selection, one fresh target per case and seed, timing,
//! panic capture, and streaming results to a [`Reporter`].

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::case::{Case, CaseError};
use super::report::{CaseReport, Reporter, RunHeader, RunSummary};
use super::seed::fmt_seed;

/// A platform under test, as far as the runner needs to know it.
pub trait Target {
    /// Virtual (target) time elapsed since the target was built, in ns.
    /// Targets without virtual time report their own monotonic clock.
    fn virtual_ns(&self) -> u64;

    /// Called after a case body succeeded: tear down and report anything the
    /// case left behind (leaked children, events or memory, firmware contract
    /// breaches). An error fails the case with that message.
    fn finish(&mut self) -> Result<(), crate::error::TargetError> {
        Ok(())
    }

    /// Whether the case ran into the target's own bound (the simulator's
    /// virtual-time bound), with the message saying so. Asked after every
    /// case, whatever its result: `Some` fails the case with this message
    /// first, then what the case itself reported (a wait cut short by the
    /// bound ends as a timeout). Targets without a bound of their own keep
    /// the default, `None`.
    fn bound_exceeded(&self) -> Option<String> {
        None
    }
}

/// Per-case capture of the firmware trace (implemented by
/// [`TraceHandle`](crate::trace::TraceHandle)).
pub trait CaseTrace {
    /// Drops anything captured so far; called before each case.
    fn begin(&mut self);
    /// Renders and drops what the case produced; called after each case.
    fn end(&mut self) -> String;
}

/// What to run: the seeds, the case filters, and how to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The base seed (printed with every run).
    pub base_seed: u64,
    /// Seeds to run every selected case with (see [`super::seed::sweep`]).
    pub seeds: Vec<u64>,
    /// Case filters; empty selects everything (see [`matches()`]).
    pub filters: Vec<String>,
    /// Options other than seed and filter that a replay must repeat
    /// (profile, quirks), already split into arguments.
    pub replay_args: Vec<String>,
}

/// Whether a case id (`group/name`) is selected by `filters`: no filters
/// select everything; a filter equal to an existing case id selects exactly
/// that case; any other filter selects every id containing it.
pub fn matches(filters: &[String], all_ids: &[String], id: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            if all_ids.iter().any(|other| other == f) {
                f == id
            } else {
                id.contains(f.as_str())
            }
        })
}

/// The selected cases, in registration order.
pub fn select<'a, T>(cases: &'a [Case<T>], filters: &[String]) -> Vec<&'a Case<T>> {
    let ids: Vec<String> = cases.iter().map(Case::id).collect();
    cases
        .iter()
        .zip(&ids)
        .filter(|(_, id)| matches(filters, &ids, id))
        .map(|(c, _)| c)
        .collect()
}

fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The exact command that re-runs case `id` alone at `seed`.
pub fn replay_command(plan: &Plan, id: &str, seed: u64) -> String {
    let mut cmd = format!(
        "cargo run --release -- --seed {} --filter {}",
        fmt_seed(seed),
        shell_word(id)
    );
    for a in &plan.replay_args {
        cmd.push(' ');
        cmd.push_str(&shell_word(a));
    }
    cmd
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Runs one case once on a fresh target built by `make(seed)`; a setup
/// error (any displayable error) fails the case with its message.
pub fn run_one<T: Target, E: fmt::Display>(
    case: &Case<T>,
    seed: u64,
    make: &mut dyn FnMut(u64) -> Result<T, E>,
) -> CaseReport {
    let started = Instant::now();
    let built = match catch_unwind(AssertUnwindSafe(|| make(seed))) {
        Ok(Ok(target)) => Ok(target),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("panicked: {}", panic_message(&*p))),
    };
    let (passed, message, virtual_ns) = match built {
        Err(e) => (false, Some(format!("target setup failed: {e}")), 0),
        Ok(mut target) => {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let r = (case.run)(&mut target).and_then(|()| {
                    target
                        .finish()
                        .map_err(|e| CaseError::new(format!("after the case: {e}")))
                });
                (r, target.virtual_ns())
            }));
            // Asked before the drop, and after a panic too: a case that the
            // target unwound at its bound must say so.
            let bound = catch_unwind(AssertUnwindSafe(|| {
                target
                    .bound_exceeded()
                    .map(|m| (m, outcome.is_err().then(|| target.virtual_ns())))
            }))
            .ok()
            .flatten();
            // A target left inconsistent by a panic may panic again while
            // dropping; that must not take the whole run down either.
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(target)));
            let (passed, message, virtual_ns) = match (outcome, dropped) {
                (Ok((Ok(()), v)), Ok(())) => (true, None, v),
                (Ok((Ok(()), v)), Err(p)) => (
                    false,
                    Some(format!(
                        "panic while dropping the target: {}",
                        panic_message(&*p)
                    )),
                    v,
                ),
                (Ok((Err(e), v)), _) => (false, Some(e.message), v),
                (Err(p), _) => (false, Some(format!("panicked: {}", panic_message(&*p))), 0),
            };
            match bound {
                None => (passed, message, virtual_ns),
                Some((bound, after_panic)) => {
                    let message = match message {
                        Some(m) if !m.contains(&bound) => {
                            format!("{bound}\nthe case then reported: {m}")
                        }
                        _ => bound,
                    };
                    (false, Some(message), after_panic.unwrap_or(virtual_ns))
                }
            }
        }
    };
    CaseReport {
        name: case.name.into(),
        group: case.group.into(),
        passed,
        message,
        wall: started.elapsed(),
        virtual_ns,
        seed,
    }
}

/// Runs every selected case at every seed of `plan`, streaming to `reporter`.
/// Each execution gets a fresh target from `make(seed)`; when `trace` is
/// given, each case's trace is captured and handed to the reporter.
pub fn run_cases<T: Target, E: fmt::Display>(
    cases: &[Case<T>],
    plan: &Plan,
    make: &mut dyn FnMut(u64) -> Result<T, E>,
    reporter: &mut dyn Reporter,
    mut trace: Option<&mut dyn CaseTrace>,
) -> RunSummary {
    let started = Instant::now();
    let selected = select(cases, &plan.filters);
    let seeds = if plan.seeds.is_empty() {
        vec![plan.base_seed]
    } else {
        plan.seeds.clone()
    };
    reporter.start(&RunHeader {
        case_ids: selected.iter().map(|c| c.id()).collect(),
        seeds: seeds.clone(),
        base_seed: plan.base_seed,
    });
    let mut summary = RunSummary {
        base_seed: plan.base_seed,
        seeds: seeds.clone(),
        ..RunSummary::default()
    };
    for case in &selected {
        for &seed in &seeds {
            if let Some(t) = trace.as_deref_mut() {
                t.begin();
            }
            let report = run_one(case, seed, make);
            let rendered = trace.as_deref_mut().map(|t| t.end());
            let replay = replay_command(plan, &report.id(), seed);
            reporter.case_done(&report, &replay, rendered.as_deref());
            summary.virtual_ns = summary.virtual_ns.saturating_add(report.virtual_ns);
            if report.passed {
                summary.passed += 1;
            } else {
                summary.failed += 1;
                summary.failures.push((report.id(), seed));
            }
        }
    }
    summary.wall = started.elapsed();
    reporter.finish(&summary);
    summary
}
