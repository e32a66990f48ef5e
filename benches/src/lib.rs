//! # efisock-benches: Poll strategies measured on the simulator
//!
//! Why: EDK2 receives one frame per 10 ms MNP tick unless someone calls
//! `Tcp4.Poll`, so the wait strategy (`efisock::strategies`) can change
//! throughput by orders of magnitude. This crate holds the
//! workloads; the criterion bench `poll_strategies` runs each of them for
//! every strategy in [`efisock::STRATEGY_NAMES`] and measures **virtual
//! firmware nanoseconds** (`Sim::now_ns` before and after), i.e. what the
//! workload would take on the firmware under the simulator's cost model,
//! deterministic for a seed. Keeping the workloads in the library lets
//! `cargo test -p efisock-benches` check that each one really moves and
//! verifies its bytes, so a bench figure can never come from a broken run.
//!
//! Run: `cargo bench -p efisock-benches` (see
//! `benches/benches/poll_strategies/main.rs`). Failures are
//! [`error::WorkloadError`]s; a target that cannot be built is an
//! `efisock_conformance::error::SetupError`.
//!
//! One verified run of a workload on a simulated world (feature `sim`, on
//! by default), measured in virtual firmware time:
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use efisock_benches::{Plan, Workload, bench_target};
//!
//! let target = bench_target("busy-poll", 1)?;
//! let workload = Workload::RequestResponse;
//! let prepared = workload.prepare(&target)?;
//! let plan = Plan {
//!     count: 10,
//!     budget: None,
//!     send_unit: 0,
//! };
//! let outcome = workload.run_planned(&target, &prepared, &plan)?;
//! prepared.close()?;
//! assert_eq!(outcome.done, 10);
//! assert!(outcome.elapsed_ns > 0);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod error;
#[cfg(feature = "report")]
pub mod report;
pub mod speed;
pub mod workloads;

pub use speed::{SpeedRow, SpeedTable};
pub use workloads::{BULK_BYTES, Outcome, Plan, Workload};
#[cfg(feature = "sim")]
pub use workloads::{bench_target, bench_target_with_cost};
