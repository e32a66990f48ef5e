//! A hang is a failure: a simulated case that would wait forever fails at
//! its virtual-time bound (`sim_target::CASE_BOUND`) with a message naming
//! the bound, the seed and the replay command, like any other failure.
//!
//! The cases here are test-only (not in `cases::all`). Each run happens on
//! its own thread under a wall-clock guard that belongs to this test alone
//! (the simulator never reads the wall clock): without the bound, the
//! guard fails the test instead of letting it hang.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use efisock_conformance::cases::util::connect;
use efisock_conformance::peers::ports;
use efisock_conformance::runner::{
    Case, CaseResult, Context, DEFAULT_SEED, Plan, RunSummary, TextReporter, run_cases,
};
use efisock_conformance::sim_target::{CASE_BOUND, SimSetup, SimTarget, bound_message};
use efisock_conformance::target::SocketTarget;

/// Wall time after which the guard declares the run hung. A bounded run
/// of these cases takes a few seconds even unoptimised.
const WALL_GUARD: Duration = Duration::from_secs(300);

/// A blocking `recv` with no timeout from the echo peer, which never
/// sends unless sent to: waits forever without the bound.
fn recv_from_silent_peer(t: &mut SimTarget) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.settimeout(None).context("settimeout")?;
    let got = s.recv(1).context("recv")?;
    Err(efisock_conformance::runner::CaseError::new(format!(
        "the silent peer sent {got:?}"
    )))
}

/// A case that keeps waiting whatever its waits report: no error of its
/// own ever ends it.
fn wait_whatever_happens(t: &mut SimTarget) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.settimeout(Some(Duration::from_millis(100)))
        .context("settimeout")?;
    loop {
        let _ = s.recv(1);
        let _ = t.net().now();
    }
}

/// Runs `case` once on the default simulator setup, in the suite's text
/// format, on a thread under [`WALL_GUARD`].
fn run(case: Case<SimTarget>) -> (RunSummary, String, u64) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let setup = SimSetup::default();
        let plan = Plan {
            base_seed: DEFAULT_SEED,
            seeds: vec![DEFAULT_SEED],
            filters: Vec::new(),
            replay_args: Vec::new(),
        };
        let mut reporter = TextReporter::new(Vec::new());
        let summary = run_cases(
            &[case],
            &plan,
            &mut |seed| setup.build(seed),
            &mut reporter,
            None,
        );
        let text = String::from_utf8(reporter.into_inner()).expect("utf-8 report");
        let virt = summary.virtual_ns;
        let _ = tx.send((summary, text, virt));
    });
    rx.recv_timeout(WALL_GUARD).unwrap_or_else(|_| {
        panic!(
            "{}/{} still running after {WALL_GUARD:?} of wall time: the virtual-time bound did not end it",
            case.group, case.name
        )
    })
}

fn check_common(summary: &RunSummary, out: &str, virt: u64, id: &str) {
    assert_eq!((summary.passed, summary.failed), (0, 1), "{out}");
    assert!(
        out.starts_with(&format!("FAIL  {id}  wall ")),
        "the case fails: {out}"
    );
    assert_eq!(
        bound_message(CASE_BOUND),
        "case exceeded its virtual-time bound of 120 s (lost completion or endless wait?)"
    );
    assert!(
        out.contains(&format!("\n      {}\n", bound_message(CASE_BOUND))),
        "the message names the bound: {out}"
    );
    assert!(
        out.contains(&format!("\n      seed {:#x}\n", DEFAULT_SEED)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\n      replay: cargo run --release -- --seed {:#x} --filter {id}\n",
            DEFAULT_SEED
        )),
        "{out}"
    );
    // Stopped by the first firmware call at the bound (an idle wait calls
    // the firmware at least every millisecond).
    let bound_ns = CASE_BOUND.as_nanos() as u64;
    assert!(
        (bound_ns..bound_ns + 10_000_000).contains(&virt),
        "ended at {virt} ns of virtual time, not at the bound: {out}"
    );
    assert!(
        out.contains("\n      the case then reported: panicked: efisock-sim: virtual-time deadline of 120.000 s reached (t="),
        "the simulator unwound the case at the bound: {out}"
    );
}

#[test]
fn blocking_recv_from_a_silent_peer_fails_at_the_bound() {
    let case = Case {
        name: "recv_from_silent_peer",
        group: "bound",
        about: "blocking recv, no timeout, from a peer that never sends",
        run: recv_from_silent_peer,
    };
    let (summary, out, virt) = run(case);
    check_common(&summary, &out, virt, "bound/recv_from_silent_peer");
}

#[test]
fn a_case_that_ignores_its_timeouts_fails_at_the_bound() {
    let case = Case {
        name: "wait_whatever_happens",
        group: "bound",
        about: "ignores every timeout and waits again",
        run: wait_whatever_happens,
    };
    let (summary, out, virt) = run(case);
    check_common(&summary, &out, virt, "bound/wait_whatever_happens");
}
