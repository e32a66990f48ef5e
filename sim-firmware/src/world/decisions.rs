//! The decisions the environment takes: notify deferral and lateness
//! odds, timer jitter, and injected statuses (and their log).

use efisock::firmware::Status;

use crate::decide::{DecisionKind, Scheduler};

use super::Env;

/// One status the run's decisions injected (see `Faults::inject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// The call that returned it, or the kind of the pending token that
    /// completed with it ("Receive", "Transmit", "Connect").
    pub call: &'static str,
    /// The injected status.
    pub status: Status,
    /// Virtual time of the injection.
    pub t_ns: u64,
}

/// Granularity of `TimerJitter` (100 µs) and its number of options (0..=2 ms).
const JITTER_STEP_NS: u64 = 100_000;
const JITTER_OPTIONS: u32 = 21;

impl Env {
    /// Probability a non-FIFO scheduler defers a notify at a delivery
    /// point: Uniform even odds, pulled towards "late" by `late_bias`;
    /// PCT only defers under `late_bias` (its depth bound is about order).
    pub(super) fn p_defer(&self) -> f64 {
        let late = self.cfg.faults.late_bias;
        match self.decider.scheduler() {
            Scheduler::Fifo => 0.0,
            Scheduler::Uniform => 0.5 * (1.0 + late),
            Scheduler::Pct { .. } => late,
        }
    }

    /// Probability a completion produced inside a call is notified late
    /// (next tick/Poll) although the profile notifies inside the call.
    pub fn p_late_completion(&self) -> f64 {
        let late = self.cfg.faults.late_bias;
        match self.decider.scheduler() {
            Scheduler::Uniform => 0.5 * (1.0 + late),
            Scheduler::Fifo | Scheduler::Pct { .. } => late,
        }
    }

    /// Extra delay for a timer event or MNP tick (`TimerJitter`).
    pub fn timer_jitter_ns(&mut self) -> u64 {
        if !self.cfg.faults.jitter {
            return 0;
        }
        u64::from(
            self.decider
                .choose(DecisionKind::TimerJitter, JITTER_OPTIONS),
        ) * JITTER_STEP_NS
    }

    /// Should `call` return one of `options` (legal EDK2 statuses for it at
    /// this point) instead of its normal result? Logged when it does.
    pub fn inject(&mut self, call: &'static str, options: &[Status]) -> Option<Status> {
        let p = self.cfg.faults.inject;
        if p <= 0.0 || options.is_empty() {
            return None;
        }
        let each = p / options.len() as f64;
        let probs: Vec<f64> = options.iter().map(|_| each).collect();
        let v = self
            .decider
            .choose_weighted(DecisionKind::StatusInjection, &probs);
        if v == 0 {
            return None;
        }
        let status = options[v - 1];
        self.log_injection(call, status);
        Some(status)
    }

    /// Record an injected status in the run's log and trace.
    pub fn log_injection(&mut self, call: &'static str, status: Status) {
        self.injected.push(Injection {
            call,
            status,
            t_ns: self.now,
        });
        self.trace(format!(
            "inject {call} {}",
            efisock::firmware::status::name(status)
        ));
    }
}
