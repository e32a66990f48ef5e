//! proptest over core + simulator: operations AND the decision tape are
//! generated, so a failure shrinks to a minimal operation list and a minimal
//! schedule.
//!
//! The runner and the reference model are `efisock_conformance::fuzz` (the
//! same ones the `fuzz` command uses): after every step the bytes each side
//! received are exactly what the other sent, EOF/ECONNRESET/errors are
//! explained by what happened, and readiness never lies; then faults heal,
//! the connection must complete, a fresh one must work, and the simulator
//! must report no leak and no contract breach.
//!
//! `cargo test -p efisock-conformance --test ordering`; more cases with
//! `PROPTEST_CASES=500`. A failure prints its replay string and command.
//! Failures are persisted in `conformance/proptest-regressions/ordering.txt`
//! (commit that file).

use efisock_conformance::fuzz::{Direction, FuzzCase, Op, run_guarded};
use efisock_sim::{Faults, Scheduler, Tape};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u16..3000).prop_map(Op::Send),
        1 => (1u16..20_000).prop_map(Op::SendAll),
        3 => (1u16..4096).prop_map(Op::Recv),
        2 => Just(Op::SelectRead),
        1 => Just(Op::SelectWrite),
        1 => (0u16..30).prop_map(Op::PollerWait),
        1 => prop_oneof![Just(0u16), Just(1), Just(20), Just(200)].prop_map(Op::SetTimeout),
        1 => any::<bool>().prop_map(Op::SetBlocking),
        1 => (0u16..60).prop_map(Op::Sleep),
        1 => (0u16..60).prop_map(Op::Compute),
        3 => (1u16..6000).prop_map(Op::PeerWrite),
        1 => Just(Op::PeerFin),
        1 => Just(Op::PeerRst),
        1 => any::<bool>().prop_map(Op::PeerStall),
        1 => Just(Op::Close),
        1 => (0u16..2000).prop_map(Op::PeerCrash),
    ]
}

fn check(case: FuzzCase) -> Result<(), TestCaseError> {
    match run_guarded(&case) {
        Ok(_) => Ok(()),
        Err(f) => Err(TestCaseError::fail(format!(
            "{}\n  replay: {case}\n  command: {}",
            f.message,
            case.replay_command()
        ))),
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/ordering.txt",
            ),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Ordering only: the tape picks which notify runs and when; no faults.
    #[test]
    fn ordering_model(
        seed in any::<u64>().no_shrink(),
        strategy in prop::sample::select(efisock::STRATEGY_NAMES),
        accept in any::<bool>(),
        ops in prop::collection::vec(op(), 1..16),
        tape in prop::collection::vec(0u32..4, 0..64),
    ) {
        check(FuzzCase {
            seed,
            scheduler: Scheduler::Uniform,
            strategy: strategy.to_string(),
            faults: Faults::none(),
            tape: Some(Tape::from_values(tape)),
            direction: if accept { Direction::Accept } else { Direction::Connect },
            bug: None,
            ops,
        })?;
    }

    /// Swarm: seed-derived faults on top, then the liveness phase.
    #[test]
    fn swarm_model(
        seed in any::<u64>().no_shrink(),
        strategy in prop::sample::select(efisock::STRATEGY_NAMES),
        fault_seed in any::<u64>().no_shrink(),
        ops in prop::collection::vec(op(), 1..16),
        tape in prop::collection::vec(0u32..4, 0..64),
    ) {
        check(FuzzCase {
            seed,
            scheduler: Scheduler::Uniform,
            strategy: strategy.to_string(),
            faults: Faults::swarm(fault_seed),
            tape: Some(Tape::from_values(tape)),
            direction: Direction::Connect,
            bug: None,
            ops,
        })?;
    }
}
