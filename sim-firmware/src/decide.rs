//! Scheduling decisions that a later tool may record and replay.
//!
//! Every non-deterministic-looking choice the simulator makes about *when*
//! something happens (today: whether a pending notify function is delivered
//! at a firmware-call boundary under [`crate::NotifyMode::Anytime`]) goes
//! through [`Decider`], so that recording or replaying a schedule only has to
//! hook this one place.

use crate::rng::Rng;

/// How many boundaries a notify may be deferred before it must run.
pub const MAX_DEFERRALS: u32 = 4;

/// The decision point for scheduling choices, driven by its own PRNG stream.
#[derive(Debug, Clone)]
pub struct Decider {
    rng: Rng,
    decisions: u64,
}

impl Decider {
    /// A decider for a run seed.
    pub fn new(seed: u64) -> Self {
        Decider {
            rng: Rng::new(seed, 0xDEC1DE),
            decisions: 0,
        }
    }

    /// Deliver a pending notify now (true) or defer it (false)? A notify
    /// already deferred [`MAX_DEFERRALS`] times is always delivered.
    pub fn deliver_notify_now(&mut self, deferrals: u32) -> bool {
        self.decisions += 1;
        deferrals >= MAX_DEFERRALS || self.rng.chance(0.5)
    }

    /// Number of decisions taken so far.
    pub fn decisions(&self) -> u64 {
        self.decisions
    }
}
