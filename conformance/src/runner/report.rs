//! What a run produces: one [`CaseReport`] per executed case and a
//! [`RunSummary`], plus the [`Reporter`] seam the text and JSON renderers
//! implement.

use std::borrow::Cow;
use std::time::Duration;

/// The result of one case at one seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// Case name (borrowed from the case list on the host; owned when the
    /// report was parsed from a guest's serial line).
    pub name: Cow<'static, str>,
    /// Case group (see `name`).
    pub group: Cow<'static, str>,
    /// Whether it passed.
    pub passed: bool,
    /// The failure message (or panic message), `None` on success.
    pub message: Option<String>,
    /// Host wall-clock time the case took (target setup included).
    pub wall: Duration,
    /// Target (virtual) time the case took, in nanoseconds.
    pub virtual_ns: u64,
    /// The seed the target was built with.
    pub seed: u64,
}

impl CaseReport {
    /// `group/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.name)
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Case executions that passed (a case counts once per seed).
    pub passed: usize,
    /// Case executions that failed.
    pub failed: usize,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Sum of the cases' virtual time, in nanoseconds.
    pub virtual_ns: u64,
    /// The base seed.
    pub base_seed: u64,
    /// Every seed the run used, in order.
    pub seeds: Vec<u64>,
    /// `(group/name, seed)` of every failure, in order.
    pub failures: Vec<(String, u64)>,
}

impl RunSummary {
    /// Whether nothing failed.
    pub fn success(&self) -> bool {
        self.failed == 0
    }

    /// Cases executed.
    pub fn total(&self) -> usize {
        self.passed + self.failed
    }
}

/// What is being run, given to a [`Reporter`] before the first case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHeader {
    /// `group/name` of every selected case, in run order.
    pub case_ids: Vec<String>,
    /// The seeds each case will run with.
    pub seeds: Vec<u64>,
    /// The base seed.
    pub base_seed: u64,
}

/// Receives results as they happen (so long runs stream their output).
pub trait Reporter {
    /// Called once before any case.
    fn start(&mut self, header: &RunHeader);
    /// Called after each case; `replay` is the exact command that re-runs it
    /// alone, `trace` the rendered firmware trace when tracing is on.
    fn case_done(&mut self, report: &CaseReport, replay: &str, trace: Option<&str>);
    /// Called once at the end.
    fn finish(&mut self, summary: &RunSummary);
}
