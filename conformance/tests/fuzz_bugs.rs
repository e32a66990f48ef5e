//! Proof that the fuzzer finds, shrinks and replays the deliberate bugs.
//! For each bug the simulator can reach, a campaign runs with
//! the bug on until the first failure; the test checks that the shrunk case
//! is no larger than the original, that its replay string parses back to the
//! same case, and that replaying it fails again. It prints cases and time to
//! find.
//!
//! ```text
//! cargo test --release -p efisock-conformance --features deliberate-bugs \
//!     --test fuzz_bugs -- --nocapture --test-threads=1
//! ```
//! Bug (c), a completion lost when two notify functions race inside the
//! queue's push, needs two pushes interleaved between a load and a store; the
//! simulator runs notify functions one at a time, so only the loom model
//! (`core/tests/loom_queue.rs`) can find it. `lose_back_to_back_is_loom_only`
//! records that the fuzzer does not.

use efisock_conformance::fuzz::bugs::BUG_NAMES;
use efisock_conformance::fuzz::cli::{DEFAULT_FUZZ_SEED, render};
use efisock_conformance::fuzz::generate::Connections;
use efisock_conformance::fuzz::shrink::ShrinkBudget;
use efisock_conformance::fuzz::{Campaign, FuzzCase, SwarmMode, run_guarded};
use efisock_sim::Scheduler;
use std::time::Duration;

fn hunt(bug: &str, max_cases: u64) -> efisock_conformance::fuzz::CampaignReport {
    let c = Campaign {
        base_seed: DEFAULT_FUZZ_SEED,
        schedulers: vec![
            Scheduler::Fifo,
            Scheduler::Uniform,
            Scheduler::Pct { depth: 3 },
        ],
        swarm: SwarmMode::Mixed,
        max_cases: Some(max_cases),
        time_budget: None,
        bug: Some(bug.to_string()),
        max_ops: 24,
        // The deliberate bugs live in the core's single-connection paths;
        // the hunts keep the cases they were measured with.
        connections: Connections::Single,
        determinism_every: 0,
        stop_at_first: true,
        shrink: ShrinkBudget {
            runs: 300,
            time: Duration::from_secs(60),
        },
    };
    let report = c.run(&mut |line| eprintln!("{line}"));
    println!("{}", render(&c, &report));
    report
}

fn found_shrunk_and_replayed(bug: &str) {
    let report = hunt(bug, 2_000);
    let f = report
        .found
        .first()
        .unwrap_or_else(|| panic!("{bug}: not found in {} cases", report.cases));
    let shrunk = &f.shrunk.case;
    assert!(shrunk.ops.len() <= f.original.ops.len());
    let text = shrunk.to_string();
    let parsed: FuzzCase = text.parse().expect("replay string parses");
    assert_eq!(&parsed, shrunk);
    let replay = run_guarded(&parsed);
    assert!(replay.is_err(), "{bug}: replay of {text} passed");
    println!(
        "{bug}: found after {} cases in {:.2} s; shrunk {} -> {} ops in {} runs; replay fails again",
        f.cases_to_find,
        f.time_to_find.as_secs_f64(),
        f.original.ops.len(),
        shrunk.ops.len(),
        f.shrunk.runs
    );
}

#[test]
fn finds_free_rx_buffer_on_timeout() {
    found_shrunk_and_replayed("free-rx-buffer-on-timeout");
}

#[test]
fn finds_process_inside_notify() {
    found_shrunk_and_replayed("process-inside-notify");
}

#[test]
fn finds_eof_on_reset() {
    found_shrunk_and_replayed("eof-on-reset");
}

#[test]
fn lose_back_to_back_is_loom_only() {
    assert!(BUG_NAMES.contains(&"lose-back-to-back-completion"));
    let report = hunt("lose-back-to-back-completion", 60);
    assert!(
        report.found.is_empty(),
        "the simulator cannot interleave two pushes; if this now fails, the fuzzer found \
         bug (c) and the docs must say so"
    );
}
