//! Proof that the existing detectors find efisock's deliberate bugs.
//!
//! Each test switches one bug of `efisock::deliberate` on (for this thread
//! only), runs the unchanged conformance cases on the simulator in suite
//! order, seed after seed, until one fails, and checks that the failure is
//! the detector this bug should trip. It prints the case that caught it, how
//! many case runs that took, the wall time, and the replay command.
//!
//! ```text
//! cargo test -p efisock-conformance --features deliberate-bugs \
//!     --test deliberate -- --nocapture --test-threads=1
//! ```
//! Bug (c), a lost completion in the queue, is found by the loom model
//! instead (`core/tests/loom_queue.rs`): the simulator never nests notify
//! functions, so only real interleavings can show it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use efisock::deliberate::{self, Bug};
use efisock_conformance::cases;
use efisock_conformance::runner::DEFAULT_SEED;
use efisock_conformance::sim_target::{SimSetup, SimTarget};

/// Seeds tried per bug before giving up.
const MAX_SEEDS: u64 = 3;

struct Caught {
    case: String,
    seed: u64,
    /// The case's own verdict (`None`: the case passed).
    failure: Option<String>,
    /// What the simulator's contract checker and the shutdown reported.
    breaches: Vec<String>,
}

/// Runs one case with `bug` on; returns the case's failure and the
/// leftovers (contract breaches, leaks) the simulator saw. Unlike
/// `run_one`, the leftovers are collected even when the case itself fails,
/// so the test can tell which detector fired.
fn run_case(
    case: &efisock_conformance::runner::Case<SimTarget>,
    seed: u64,
    bug: Bug,
) -> (Option<String>, Vec<String>) {
    let mut target = SimSetup::default().build(seed).expect("sim target");
    deliberate::enable(bug);
    let outcome = catch_unwind(AssertUnwindSafe(|| (case.run)(&mut target)));
    let breaches = catch_unwind(AssertUnwindSafe(|| target.leftovers()))
        .unwrap_or_else(|_| vec!["panic during shutdown".into()]);
    deliberate::disable_all();
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.message),
        Err(_) => Some("panicked".into()),
    };
    (failure, breaches)
}

/// Runs the suite with `bug` on until a case fails or the simulator
/// reports a breach.
fn hunt(bug: Bug) -> Option<Caught> {
    let started = Instant::now();
    let mut runs = 0;
    for seed in DEFAULT_SEED..DEFAULT_SEED + MAX_SEEDS {
        for case in cases::all::<SimTarget>() {
            runs += 1;
            let (failure, breaches) = run_case(&case, seed, bug);
            if failure.is_some() || !breaches.is_empty() {
                let id = case.id();
                println!(
                    "{bug:?}: caught by {id} (seed {seed:#x}) after {runs} case runs in {:.2?}\n  case: {}\n  simulator: {}\n  replay: EFISOCK_SEED={seed:#x} (case {id} with Bug::{bug:?} enabled)",
                    started.elapsed(),
                    failure.as_deref().unwrap_or("passed"),
                    breaches.first().map_or("silent", String::as_str),
                );
                return Some(Caught {
                    case: id,
                    seed,
                    failure,
                    breaches,
                });
            }
        }
    }
    println!(
        "{bug:?}: NOT caught in {runs} case runs ({:.2?})",
        started.elapsed()
    );
    None
}

#[test]
fn free_rx_buffer_on_timeout_is_caught_by_the_contract_checker() {
    let caught = hunt(Bug::FreeRxBufferOnTimeout).expect("bug (a) went unnoticed");
    assert!(
        caught
            .breaches
            .iter()
            .any(|b| b.contains("while the firmware owns")),
        "caught by {} seed {:#x}, but the contract checker did not report FreedWhileOwned: {:?} {:?}",
        caught.case,
        caught.seed,
        caught.failure,
        caught.breaches
    );
}

#[test]
fn eof_on_reset_is_caught_by_the_reset_cases() {
    let caught = hunt(Bug::EofOnReset).expect("bug (d) went unnoticed");
    assert!(
        caught.case.contains("reset") && caught.failure.is_some(),
        "caught by {} seed {:#x} rather than by a failing reset case: {:?} {:?}",
        caught.case,
        caught.seed,
        caught.failure,
        caught.breaches
    );
}

#[test]
fn bugs_are_off_unless_switched_on() {
    for bug in Bug::ALL {
        assert!(!deliberate::is_enabled(bug));
    }
    deliberate::enable(Bug::EofOnReset);
    assert!(deliberate::is_enabled(Bug::EofOnReset));
    assert!(!deliberate::is_enabled(Bug::FreeRxBufferOnTimeout));
    deliberate::disable(Bug::EofOnReset);
    assert!(!deliberate::is_enabled(Bug::EofOnReset));
}
