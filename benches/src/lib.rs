//! # efisock-benches: Poll strategies measured on the simulator
//!
//! Why: EDK2 receives one frame per 10 ms MNP tick unless someone calls
//! `Tcp4.Poll`, so the wait strategy (`efisock::strategies`) can change
//! throughput by orders of magnitude (issue #5). This crate holds the
//! workloads; the criterion bench `poll_strategies` runs each of them for
//! every strategy in [`efisock::STRATEGY_NAMES`] and measures **virtual
//! firmware nanoseconds** (`Sim::now_ns` before and after), i.e. what the
//! workload would take on the firmware under the simulator's cost model,
//! deterministic for a seed. Keeping the workloads in the library lets
//! `cargo test -p efisock-benches` check that each one really moves and
//! verifies its bytes, so a bench figure can never come from a broken run.
//!
//! Run: `cargo bench -p efisock-benches` (see `benches/poll_strategies.rs`).
#![warn(missing_docs)]

pub mod error;
#[cfg(feature = "report")]
pub mod report;
pub mod speed;
pub mod workloads;

pub use speed::{SpeedRow, SpeedTable};
pub use workloads::{BULK_BYTES, Outcome, Plan, Workload};
#[cfg(feature = "sim")]
pub use workloads::{bench_target, bench_target_with_cost};
