//! Notify schedulers: FIFO (EDK2), uniform random, and PCT.
//!
//! The PCT adaptation is documented on [`Scheduler`] (public docs).

use core::fmt;
use core::str::FromStr;
use std::collections::BTreeMap;

use crate::rng::Rng;

/// First estimate of the number of PCT steps in a run.
pub const PCT_INITIAL_HORIZON: u64 = 64;

/// Who picks the notify decisions.
///
/// # PCT adapted to notify events
/// PCT (Burckhardt, Kothari, Musuvathi, Nagarakatte, ASPLOS 2010; the
/// scheduler of the `shuttle` crate) gives every thread a random priority,
/// always runs the highest-priority runnable thread, and at `depth - 1`
/// change points drawn uniformly over the run's `k` steps lowers the
/// running thread's priority below all others. Here:
/// - a "thread" is a notify event: it gets a random priority the first
///   time it is queued and keeps it across later signals (so a token event
///   that recurs keeps its place), until a change point lowers it;
/// - a "step" is a `NotifyPick` with at least two runnable candidates
///   (steps with one candidate have nothing to order, so they do not use
///   up change points);
/// - the step horizon `k` is unknown in advance, so it is estimated by
///   doubling: it starts at [`PCT_INITIAL_HORIZON`] steps; when the run
///   passes the horizon, the horizon doubles and the change points not yet
///   reached are redrawn uniformly over the new, later half. A run of `k`
///   steps thus places its change points within a factor of two of PCT's
///   uniform-over-`k` distribution;
/// - at a change point, the candidate that would run (highest priority)
///   drops below every priority handed out so far, and the pick is made
///   again (so the next-highest runs);
/// - PCT orders notifies and does not defer them (`NotifyDefer` exists
///   under PCT only with `Faults::late_bias`), and with a replay tape the
///   tape's values replace PCT's picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// EDK2-faithful: notify decisions always take 0 (FIFO within the
    /// highest pending TPL, delivered at call return / timer points only).
    Fifo,
    /// Every notify decision uniform from the seed.
    Uniform,
    /// PCT with this bug depth (>= 1): `depth - 1` priority change points.
    Pct {
        /// Bug depth; `depth - 1` change points are drawn.
        depth: u32,
    },
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheduler::Fifo => f.write_str("fifo"),
            Scheduler::Uniform => f.write_str("uniform"),
            Scheduler::Pct { depth } => write!(f, "pct{depth}"),
        }
    }
}

/// Why a string is not a [`Scheduler`]; each variant holds the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseSchedulerError {
    /// Neither `fifo`, `uniform` nor `pct<depth>`.
    Unknown(String),
    /// `pct` followed by something other than decimal digits.
    DepthNotDecimal(String),
    /// `pct0`: PCT needs a depth of at least 1.
    DepthZero(String),
    /// The depth does not fit in `u32`.
    DepthTooLarge(String),
}

impl fmt::Display for ParseSchedulerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseSchedulerError::Unknown(s) => write!(
                f,
                "unknown scheduler {s:?} (expected \"fifo\", \"uniform\" or \"pct<depth>\", e.g. \"pct3\")"
            ),
            ParseSchedulerError::DepthNotDecimal(s) => write!(
                f,
                "scheduler {s:?}: the PCT depth after \"pct\" must be a decimal number, e.g. \"pct3\""
            ),
            ParseSchedulerError::DepthZero(s) => {
                write!(f, "scheduler {s:?}: the PCT depth must be at least 1")
            }
            ParseSchedulerError::DepthTooLarge(s) => {
                write!(f, "scheduler {s:?}: the PCT depth does not fit in u32")
            }
        }
    }
}

impl std::error::Error for ParseSchedulerError {}

impl FromStr for Scheduler {
    type Err = ParseSchedulerError;
    fn from_str(s: &str) -> Result<Self, ParseSchedulerError> {
        match s {
            "fifo" => Ok(Scheduler::Fifo),
            "uniform" => Ok(Scheduler::Uniform),
            _ => {
                let Some(d) = s.strip_prefix("pct") else {
                    return Err(ParseSchedulerError::Unknown(s.to_string()));
                };
                if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseSchedulerError::DepthNotDecimal(s.to_string()));
                }
                match d.parse::<u32>() {
                    Ok(0) => Err(ParseSchedulerError::DepthZero(s.to_string())),
                    Ok(depth) => Ok(Scheduler::Pct { depth }),
                    Err(_) => Err(ParseSchedulerError::DepthTooLarge(s.to_string())),
                }
            }
        }
    }
}

/// PCT state (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Pct {
    rng: Rng,
    prio: BTreeMap<usize, u64>,
    /// Steps (picks among >= 2 candidates) taken so far.
    steps: u64,
    horizon: u64,
    /// Change points not yet reached, ascending step numbers.
    changes: Vec<u64>,
    /// Next "lowest" priority to hand out at a change point (decreasing).
    low: u64,
}

/// Random priorities live above this, lowered ones below it.
const LOW_BASE: u64 = 1 << 32;

impl Pct {
    pub fn new(seed: u64, depth: u32) -> Pct {
        let mut rng = Rng::new(seed, 0x9C7);
        let n = depth.saturating_sub(1) as usize;
        let mut changes: Vec<u64> = (0..n).map(|_| 1 + rng.below(PCT_INITIAL_HORIZON)).collect();
        changes.sort_unstable();
        Pct {
            rng,
            prio: BTreeMap::new(),
            steps: 0,
            horizon: PCT_INITIAL_HORIZON,
            changes,
            low: LOW_BASE,
        }
    }

    /// An event was queued: give it a priority if it never had one.
    pub fn note_queued(&mut self, event: usize) {
        if !self.prio.contains_key(&event) {
            let p = LOW_BASE + 1 + self.rng.below(u64::MAX - LOW_BASE - 1);
            self.prio.insert(event, p);
        }
    }

    /// An event was closed.
    pub fn forget(&mut self, event: usize) {
        self.prio.remove(&event);
    }

    fn best(&mut self, cands: &[usize]) -> usize {
        let mut best = 0;
        let mut best_p = 0;
        for (i, &e) in cands.iter().enumerate() {
            self.note_queued(e);
            let p = self.prio[&e];
            if i == 0 || p > best_p {
                best = i;
                best_p = p;
            }
        }
        best
    }

    /// One step over >= 2 candidates: the index to run.
    pub fn pick(&mut self, cands: &[usize]) -> usize {
        self.steps += 1;
        if self.steps > self.horizon {
            // Adaptive doubling: redraw the unreached change points over
            // the new half of the horizon.
            let old = self.horizon;
            self.horizon = old.saturating_mul(2);
            let span = self.horizon - old;
            for c in &mut self.changes {
                *c = old + 1 + self.rng.below(span);
            }
            self.changes.sort_unstable();
        }
        let mut i = self.best(cands);
        while self.changes.first() == Some(&self.steps) {
            self.changes.remove(0);
            self.low -= 1;
            self.prio.insert(cands[i], self.low);
            i = self.best(cands);
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_text_and_say_what_is_wrong() {
        assert_eq!(
            "pct0".parse::<Scheduler>(),
            Err(ParseSchedulerError::DepthZero("pct0".into()))
        );
        assert_eq!(
            "pct+3".parse::<Scheduler>(),
            Err(ParseSchedulerError::DepthNotDecimal("pct+3".into()))
        );
        assert_eq!(
            "pct99999999999".parse::<Scheduler>(),
            Err(ParseSchedulerError::DepthTooLarge("pct99999999999".into()))
        );
        let e = "lifo".parse::<Scheduler>().unwrap_err();
        assert_eq!(e, ParseSchedulerError::Unknown("lifo".into()));
        assert!(e.to_string().starts_with("unknown scheduler \"lifo\""));
    }
}
