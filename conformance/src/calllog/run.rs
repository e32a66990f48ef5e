//! Running cases with the call recorder installed.
//!
//! The recording starts once the target is built: the calls the harness
//! makes to set a target up (a static address in the simulated world, a
//! check of the DHCP lease in OVMF) are the harness's, not the case's, and
//! differ by construction.

use std::fmt;

use tracing_subscriber::layer::SubscriberExt as _;

use super::capture::{CallLogHandle, CallRecorder};
use super::file::Recording;
use crate::fidelity::Collect;
use crate::runner::{Case, CaseReport, Plan, Reporter, RunSummary, Target, run_cases, run_one};

/// `make`, then drops what the recorder captured while it ran.
fn after_setup<'a, T, E>(
    make: &'a mut dyn FnMut(u64) -> Result<T, E>,
    handle: &'a CallLogHandle,
) -> impl FnMut(u64) -> Result<T, E> + 'a {
    move |seed| {
        let target = make(seed);
        let _ = handle.take();
        target
    }
}

/// Runs `case` once at `seed` on a target from `make`, recording its calls.
pub fn record_one<T: Target, E: fmt::Display>(
    case: &Case<T>,
    seed: u64,
    make: &mut dyn FnMut(u64) -> Result<T, E>,
) -> (CaseReport, Recording) {
    let (recorder, handle) = CallRecorder::new();
    let subscriber = tracing_subscriber::registry().with(recorder);
    let report = tracing::subscriber::with_default(subscriber, || {
        run_one(case, seed, &mut after_setup(make, &handle))
    });
    let (steps, dropped) = handle.take();
    let recording = Recording {
        id: report.id(),
        seed,
        steps,
        dropped,
    };
    (report, recording)
}

/// [`run_cases`] with every case's calls recorded; the reports go to
/// `reporter` as usual and come back paired with their recordings.
pub fn run_recorded<T: Target, E: fmt::Display>(
    cases: &[Case<T>],
    plan: &Plan,
    make: &mut dyn FnMut(u64) -> Result<T, E>,
    reporter: &mut dyn Reporter,
) -> (RunSummary, Vec<(CaseReport, Recording)>) {
    let (recorder, mut handle) = CallRecorder::new();
    let subscriber = tracing_subscriber::registry().with(recorder);
    let mut collect = Collect::new(reporter);
    let setup_handle = handle.clone();
    let summary = tracing::subscriber::with_default(subscriber, || {
        run_cases(
            cases,
            plan,
            &mut after_setup(make, &setup_handle),
            &mut collect,
            Some(&mut handle),
        )
    });
    let pairs = collect
        .reports
        .into_iter()
        .zip(handle.take_finished())
        .map(|(report, (steps, dropped))| {
            let recording = Recording {
                id: report.id(),
                seed: report.seed,
                steps,
                dropped,
            };
            (report, recording)
        })
        .collect();
    (summary, pairs)
}
