//! The error types of the benches' library API.
//!
//! `Display` is the text the bench binaries and the report print; the
//! variants give callers the structure behind it.

use std::error::Error;
use std::fmt;

/// Why a workload produced no figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadError {
    /// A socket call failed or the data that came back was wrong; the text
    /// names the call, the connection and how far the workload had got.
    Failed(String),
    /// The run ended before the plan was complete (no budget was set).
    Incomplete {
        /// Units done.
        done: u64,
        /// Units the plan asked for.
        planned: u64,
        /// What a unit is ([`Workload::unit`](crate::Workload::unit)).
        unit: &'static str,
    },
}

impl WorkloadError {
    /// The same failure with `context: ` put before its text.
    pub fn context(self, context: impl fmt::Display) -> Self {
        WorkloadError::Failed(format!("{context}: {self}"))
    }
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::Failed(message) => f.write_str(message),
            WorkloadError::Incomplete {
                done,
                planned,
                unit,
            } => write!(f, "did {done} of {planned} {unit}"),
        }
    }
}

impl Error for WorkloadError {}

impl From<WorkloadError> for String {
    fn from(e: WorkloadError) -> String {
        e.to_string()
    }
}

/// The plot could not be drawn (the drawing backend's message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError(pub String);

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for PlotError {}

impl From<PlotError> for String {
    fn from(e: PlotError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_says_how_far_it_got_and_context_prefixes() {
        let e = WorkloadError::Incomplete {
            done: 3,
            planned: 5,
            unit: "round trips",
        };
        assert_eq!(e.to_string(), "did 3 of 5 round trips");
        assert_eq!(e.context("sim").to_string(), "sim: did 3 of 5 round trips");
    }
}
