//! The case runner, generic over the target.
//!
//! The same case list runs on the simulator and inside OVMF, so nothing here
//! knows about either: a target is anything implementing [`Target`], built
//! fresh for every case execution by a caller-supplied `make(seed)`. Output
//! goes through the [`Reporter`] seam: [`TextReporter`] (the aligned table
//! with replay commands) and [`JsonReporter`] (JSON Lines; schema in
//! [`json`]).

pub mod case;
pub mod exec;
pub mod json;
pub mod report;
pub mod seed;
pub mod text;

pub use case::{Case, CaseError, CaseResult, Context};
pub use exec::{CaseTrace, Plan, Target, matches, replay_command, run_cases, run_one, select};
pub use json::JsonReporter;
pub use report::{CaseReport, Reporter, RunHeader, RunSummary};
pub use seed::{DEFAULT_SEED, derive_seed, fmt_seed, sweep};
pub use text::TextReporter;

#[cfg(test)]
mod tests;
