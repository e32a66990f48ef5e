//! The single decision source: every nondeterministic choice of a run.
//!
//! Every choice the simulator makes that EDK2 does not fix (which pending
//! notify runs next, whether it runs now, whether a completion's notify
//! runs as its call returns, what happens to a packet, timer jitter,
//! injected statuses) is one call of [`Decider::choose`] (or a weighted
//! variant) with a [`DecisionKind`] and a number of options `n`. The value
//! is in `0..n`, and **0 always means the EDK2-faithful / no-fault
//! default**. Only real choices (`n >= 2`) are decisions: they are counted,
//! recorded on the run's [`Tape`] and folded into a running FNV-1a hash
//! over (kind, n, value), so two runs took the same decisions exactly when
//! their hashes and decision counts agree.
//!
//! Where a decision point exists is a function of the configuration alone
//! (scheduler, fault knobs, the run so far), never of a random draw, so a
//! recorded tape lines up with the decisions of a replay. Where the value
//! comes from:
//! - with a tape (`SimConfig::tape`): decision `i` takes `tape[i] % n`,
//!   and 0 past the end of the tape, so an empty tape is the faithful run
//!   and a test generator shrinks towards it. The fault knobs still decide
//!   which options exist (e.g. `PacketFate` offers "drop" only when some
//!   loss is configured; its value indexes the enabled fates in the order
//!   drop, duplicate, reorder, spike), and the scheduler decides which
//!   notify decisions exist (none under [`Scheduler::Fifo`]): the tape
//!   replaces the scheduler's and the fault generator's *values* only;
//! - without a tape: notify decisions from the scheduler (uniform, or PCT,
//!   see [`Scheduler`], which documents the PCT adaptation), the others from a separate fault
//!   stream with the probabilities of the fault knobs.

mod sched;
mod tape;

use crate::rng::Rng;

pub use sched::{PCT_INITIAL_HORIZON, ParseSchedulerError, Scheduler};
pub use tape::{MAX_RUN, ParseTapeError, Tape, TapeNumber};

pub(crate) use sched::Pct;

/// How many delivery points a notify may be deferred before it must run.
pub const MAX_DEFERRALS: u32 = 4;

/// What a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    /// Which pending notify (among those runnable at the highest pending
    /// TPL, in FIFO order) runs next; 0 = the FIFO head.
    NotifyPick,
    /// At a notify delivery point: deliver now (0) or defer (1), bounded
    /// by [`MAX_DEFERRALS`].
    NotifyDefer,
    /// A completion produced inside a Tcp4 call: notify as the call returns
    /// (0, the profile's `completions_inside_call`) or at the next MNP
    /// tick / Poll (1).
    CompletionInCall,
    /// A packet put on a link: deliver (0), or one of the enabled fates
    /// drop, duplicate, reorder (delay past later ones), latency spike.
    PacketFate,
    /// A magnitude for a packet: link jitter, reorder or spike delay
    /// (0 = the smallest).
    LinkDelay,
    /// Extra delay of a timer event or MNP tick in 100 µs units, 0..=2 ms
    /// (0 = none); only with the jitter knob on.
    TimerJitter,
    /// A firmware call returns (or a pending token completes with) an
    /// unusual but legal status instead of its normal result (0 = normal).
    StatusInjection,
}

impl DecisionKind {
    fn code(self) -> u8 {
        match self {
            DecisionKind::NotifyPick => 1,
            DecisionKind::NotifyDefer => 2,
            DecisionKind::CompletionInCall => 3,
            DecisionKind::PacketFate => 4,
            DecisionKind::LinkDelay => 5,
            DecisionKind::TimerJitter => 6,
            DecisionKind::StatusInjection => 7,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The decision source of one run.
#[derive(Debug, Clone)]
pub struct Decider {
    scheduler: Scheduler,
    sched_rng: Rng,
    fault_rng: Rng,
    pct: Option<Pct>,
    tape: Option<Tape>,
    recorded: Vec<u32>,
    hash: u64,
}

impl Decider {
    /// A decider for a run seed, with the FIFO scheduler and no tape.
    pub fn new(seed: u64) -> Self {
        Self::with(seed, Scheduler::Fifo, None)
    }

    /// A decider for a run seed, scheduler and optional replay tape.
    pub fn with(seed: u64, scheduler: Scheduler, tape: Option<Tape>) -> Self {
        let pct = match scheduler {
            Scheduler::Pct { depth } => Some(Pct::new(seed, depth)),
            _ => None,
        };
        Decider {
            scheduler,
            sched_rng: Rng::new(seed, 0xDEC1DE),
            fault_rng: Rng::new(seed, 0x11A4),
            pct,
            tape,
            recorded: Vec::new(),
            hash: FNV_OFFSET,
        }
    }

    /// The scheduler in effect.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler
    }

    /// The core: a decision of `kind` among `n` options. With a tape the
    /// tape decides; otherwise `draw` does. `n < 2` is no decision (0).
    fn decide(&mut self, kind: DecisionKind, n: u32, draw: impl FnOnce(&mut Self) -> u32) -> u32 {
        if n < 2 {
            return 0;
        }
        let i = self.recorded.len();
        let v = match &self.tape {
            Some(t) => t.get(i).map_or(0, |v| v % n),
            None => draw(self).min(n - 1),
        };
        self.recorded.push(v);
        for b in [kind.code()]
            .into_iter()
            .chain(n.to_le_bytes())
            .chain(v.to_le_bytes())
        {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        v
    }

    /// A decision uniform over `0..n` (from the fault stream when no tape).
    pub fn choose(&mut self, kind: DecisionKind, n: u32) -> u32 {
        self.decide(kind, n, |d| d.fault_rng.below(u64::from(n)) as u32)
    }

    /// A decision among "default" and options `1..=probs.len()` with these
    /// probabilities (the default gets the rest; if they sum above 1 they
    /// are scaled down). Options with probability <= 0 do not exist. Returns
    /// the chosen option's 1-based index into `probs`, or 0.
    pub fn choose_weighted(&mut self, kind: DecisionKind, probs: &[f64]) -> usize {
        let enabled: Vec<(usize, f64)> = probs
            .iter()
            .enumerate()
            .filter(|(_, p)| **p > 0.0)
            .map(|(i, p)| (i + 1, p.min(1.0)))
            .collect();
        let n = enabled.len() as u32 + 1;
        let v = self.decide(kind, n, |d| {
            let total: f64 = enabled.iter().map(|e| e.1).sum();
            let scale = if total > 1.0 { 1.0 / total } else { 1.0 };
            let mut u = d.fault_rng.unit();
            for (k, (_, p)) in enabled.iter().enumerate() {
                let p = p * scale;
                if u < p {
                    return k as u32 + 1;
                }
                u -= p;
            }
            0
        });
        if v == 0 { 0 } else { enabled[v as usize - 1].0 }
    }

    /// Defer a pending notify at a delivery point? `p_defer` is the
    /// scheduler's deferral probability (no decision when <= 0); a notify
    /// already deferred [`MAX_DEFERRALS`] times is always delivered.
    pub fn defer_notify(&mut self, deferrals: u32, p_defer: f64) -> bool {
        if deferrals >= MAX_DEFERRALS || p_defer <= 0.0 {
            return false;
        }
        self.decide(DecisionKind::NotifyDefer, 2, |d| {
            u32::from(d.sched_rng.chance(p_defer))
        }) == 1
    }

    /// Compatibility with the first Anytime mode: deliver a pending notify
    /// now (true) or defer it (false), even odds, bounded.
    pub fn deliver_notify_now(&mut self, deferrals: u32) -> bool {
        !self.defer_notify(deferrals, 0.5)
    }

    /// Which of these runnable notify events (FIFO order) runs next.
    pub fn pick_notify(&mut self, cands: &[usize]) -> usize {
        if cands.len() < 2 || self.scheduler == Scheduler::Fifo {
            return 0;
        }
        let n = cands.len() as u32;
        self.decide(DecisionKind::NotifyPick, n, |d| match &mut d.pct {
            Some(p) => p.pick(cands) as u32,
            None => d.sched_rng.below(u64::from(n)) as u32,
        }) as usize
    }

    /// A notify event was queued (PCT assigns its priority).
    pub fn note_queued(&mut self, event: usize) {
        if let Some(p) = &mut self.pct {
            p.note_queued(event);
        }
    }

    /// A notify event was closed.
    pub fn forget(&mut self, event: usize) {
        if let Some(p) = &mut self.pct {
            p.forget(event);
        }
    }

    /// Number of decisions taken so far.
    pub fn decisions(&self) -> u64 {
        self.recorded.len() as u64
    }

    /// Running FNV-1a hash over every decision's (kind, n, value).
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Every decision value taken so far, as a tape that replays this run.
    pub fn tape(&self) -> Tape {
        Tape::from_values(self.recorded.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tape_overrides_and_defaults_past_the_end() {
        let mut d = Decider::with(1, Scheduler::Uniform, Some(Tape::from_values(vec![7, 3])));
        assert_eq!(d.choose(DecisionKind::PacketFate, 5), 2);
        assert_eq!(d.choose(DecisionKind::PacketFate, 5), 3);
        assert_eq!(d.choose(DecisionKind::PacketFate, 5), 0);
        assert_eq!(d.choose(DecisionKind::PacketFate, 1), 0);
        assert_eq!(d.decisions(), 3);
        assert_eq!(d.tape().values(), &[2, 3, 0]);
        // Weighted: the value indexes the enabled options only.
        let mut d = Decider::with(1, Scheduler::Fifo, Some(Tape::from_values(vec![1, 2])));
        assert_eq!(
            d.choose_weighted(DecisionKind::PacketFate, &[0.0, 0.1, 0.0, 0.2]),
            2
        );
        assert_eq!(
            d.choose_weighted(DecisionKind::PacketFate, &[0.0, 0.1, 0.0, 0.2]),
            4
        );
    }
}
