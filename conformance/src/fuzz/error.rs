//! How a fuzz run fails: a check the run did not pass, and a case that ran
//! differently twice.
//!
//! The `Display` text of a [`CheckError`] becomes [`RunFailure::message`],
//! which the shrinker compares ([`super::shrink::signature`]) and the replay
//! output prints, so it must stay exactly as it reads today.
//!
//! [`RunFailure::message`]: super::exec::RunFailure::message

use std::error::Error;
use std::fmt;

use super::case::Op;
use super::exec::RunReport;

/// The operation of a case during which a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Index in [`FuzzCase::ops`](super::case::FuzzCase::ops).
    pub index: usize,
    /// The operation itself.
    pub op: Op,
}

/// A check a fuzz run did not pass: the reference model rejected what the
/// socket layer reported, a phase (open, drain, liveness, shutdown) did not
/// complete, or the socket layer failed where it must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    step: Option<Step>,
    message: String,
}

impl CheckError {
    /// A failure outside any step (or before the step is known).
    pub fn new(message: impl Into<String>) -> Self {
        CheckError {
            step: None,
            message: message.into(),
        }
    }

    /// The step the failure happened in, if it happened in one.
    pub fn step(&self) -> Option<Step> {
        self.step
    }

    /// What went wrong, without the step.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same failure, attributed to operation `index` (`op`).
    pub fn at_step(self, index: usize, op: Op) -> Self {
        CheckError {
            step: Some(Step { index, op }),
            message: self.message,
        }
    }

    /// The same failure with `context: ` put before the message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        CheckError {
            step: self.step,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(Step { index, op }) = self.step {
            write!(f, "step {index} ({op}): ")?;
        }
        f.write_str(&self.message)
    }
}

impl Error for CheckError {}

impl From<String> for CheckError {
    fn from(message: String) -> Self {
        CheckError::new(message)
    }
}

impl From<&str> for CheckError {
    fn from(message: &str) -> Self {
        CheckError::new(message)
    }
}

/// The same case did not run the same way twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nondeterminism {
    /// Both runs passed, with different decisions or traces.
    Diverged {
        /// The first run.
        first: RunReport,
        /// The re-run.
        second: RunReport,
    },
    /// The first run passed, the re-run failed with this message.
    FailedOnRerun(String),
}

impl fmt::Display for Nondeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nondeterminism::Diverged { first, second } => write!(
                f,
                "nondeterminism: the same case ran twice with different results \
                 (decisions {} vs {}, decision hash {:#x} vs {:#x}, trace hash {:#x} vs {:#x})",
                first.decisions,
                second.decisions,
                first.decision_hash,
                second.decision_hash,
                first.trace_hash,
                second.trace_hash
            ),
            Nondeterminism::FailedOnRerun(message) => write!(
                f,
                "nondeterminism: the case passed once and failed when re-run: {message}"
            ),
        }
    }
}

impl Error for Nondeterminism {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_prefix_is_shown_once_and_context_goes_inside_it() {
        let e = CheckError::new("recv: error x")
            .context("drain")
            .at_step(3, Op::Recv(5));
        assert_eq!(e.to_string(), "step 3 (r5): drain: recv: error x");
        assert_eq!(e.message(), "drain: recv: error x");
        assert_eq!(
            e.step(),
            Some(Step {
                index: 3,
                op: Op::Recv(5)
            })
        );
        assert_eq!(CheckError::from("plain").to_string(), "plain");
    }

    #[test]
    fn nondeterminism_names_both_runs() {
        let first = RunReport {
            decisions: 1,
            decision_hash: 0x10,
            trace_hash: 0x20,
            virtual_ns: 0,
            injections: 0,
        };
        let second = RunReport {
            decisions: 2,
            ..first
        };
        let text = Nondeterminism::Diverged { first, second }.to_string();
        assert!(
            text.contains("(decisions 1 vs 2, decision hash 0x10 vs 0x10"),
            "{text}"
        );
        assert_eq!(
            Nondeterminism::FailedOnRerun("boom".into()).to_string(),
            "nondeterminism: the case passed once and failed when re-run: boom"
        );
    }
}
