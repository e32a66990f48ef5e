//! # The ordering fuzzer and the swarm
//!
//! Why: notify ordering, completion timing and the firmware's unusual but
//! legal statuses are where once-a-month firmware bugs hide. This module
//! generates cases ([`case::FuzzCase`]: operations on one TCP stream plus peer
//! actions, or on several connections opened, dialed to a listener with a
//! backlog and accepted, with slots and ports reused), runs them on core + simulator under a chosen notify scheduler
//! (EDK2's FIFO, uniform random, or PCT) and, in swarm mode, with fault knobs
//! derived from the seed, and checks a reference model of Berkeley socket
//! semantics after every step ([`model`]). Then faults heal and the
//! connection must complete (liveness), a fresh connection must work, and
//! nothing may leak or breach the firmware contract.
//!
//! Every simulator decision goes through its decision source and is recorded
//! on a tape. A failure is shrunk ([`shrink`]): first the recorded tape is
//! attached so the run replays exactly, then operations, tape and fault
//! knobs are cut while it still fails. The result is printed as a replay
//! string ([`case`] documents the grammar) with the command that re-runs it:
//!
//! ```text
//! cargo run --release -p efisock-conformance -- fuzz --replay 'efz1/c/…'
//! ```
//!
//! Determinism is checked, not assumed: every n-th case runs twice and the
//! hashes of every decision and of the trace must agree.
//!
//! The same runner backs `tests/ordering.rs` (proptest generates the
//! operations AND the decision tape, so proptest shrinks both) and
//! `tests/fuzz.rs` (a short campaign in every `cargo test`).

pub mod bugs;
pub mod campaign;
pub mod case;
pub mod cli;
pub mod error;
pub mod exec;
pub mod generate;
pub mod model;
pub mod peer;
pub mod shrink;

pub use campaign::{Campaign, CampaignReport, SwarmMode, run_guarded};
pub use case::{Direction, FuzzCase, Op};
pub use error::{CheckError, Nondeterminism, Step};
pub use exec::{RunFailure, RunReport, run_case};
