//! Shrinking a failing case to a minimal one, deterministically.
//!
//! First the failing run's recorded decision tape is attached to the case, so
//! the run replays exactly whatever scheduler found it. Then, greedily and
//! within a budget of runs and time: drop chunks of operations (halves down
//! to single ops), cut the tape (past its end every decision takes the
//! EDK2-faithful default, so a shorter tape is a simpler schedule), zero tape
//! chunks, halve operation arguments, and switch fault knobs off. A candidate
//! is kept when it still fails *the same way* ([`signature`]: the message
//! without step numbers and figures), so shrinking cannot slide from the bug
//! that was found to a different one.

use std::time::{Duration, Instant};

use efisock_sim::{Faults, Tape};

use super::case::{FuzzCase, Op};
use super::exec::{RunFailure, RunReport};

/// The result of shrinking.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing case found.
    pub case: FuzzCase,
    /// Its failure.
    pub message: String,
    /// Runs spent shrinking.
    pub runs: u32,
    /// Wall time spent shrinking.
    pub elapsed: Duration,
    /// Whether the recorded tape replayed the failure (if not, only the
    /// operations were shrunk, with the original seed-driven schedule).
    pub tape_replayed: bool,
}

/// Limits of one shrink.
#[derive(Debug, Clone, Copy)]
pub struct ShrinkBudget {
    /// Maximum runs.
    pub runs: u32,
    /// Maximum wall time.
    pub time: Duration,
}

impl Default for ShrinkBudget {
    fn default() -> Self {
        ShrinkBudget {
            runs: 400,
            time: Duration::from_secs(60),
        }
    }
}

/// The class of a failure: its message without the step prefix, with every
/// word that contains a digit (counts, times, addresses like `0x55f1e0`)
/// replaced by `#`, cut to 60 characters.
pub fn signature(message: &str) -> String {
    let body = match message.strip_prefix("step ") {
        Some(rest) => rest.split_once("): ").map_or(rest, |(_, b)| b),
        None => message,
    };
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for ch in body.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' {
            word.push(ch);
        } else {
            flush(&mut word, &mut out);
            out.push(ch);
        }
    }
    flush(&mut word, &mut out);
    out.chars().take(60).collect()
}

struct Shrinker<'a> {
    run: &'a mut dyn FnMut(&FuzzCase) -> Result<RunReport, RunFailure>,
    best: FuzzCase,
    message: String,
    signature: String,
    runs: u32,
    start: Instant,
    budget: ShrinkBudget,
}

impl Shrinker<'_> {
    fn out_of_budget(&self) -> bool {
        self.runs >= self.budget.runs || self.start.elapsed() >= self.budget.time
    }

    /// Runs `candidate`; keeps it if it fails. Returns whether it was kept.
    fn try_keep(&mut self, candidate: FuzzCase) -> bool {
        if self.out_of_budget() || candidate == self.best {
            return false;
        }
        self.runs += 1;
        match (self.run)(&candidate) {
            Err(f) if signature(&f.message) == self.signature => {
                self.best = candidate;
                self.message = f.message;
                true
            }
            _ => false,
        }
    }

    fn tape_values(&self) -> Vec<u32> {
        self.best
            .tape
            .as_ref()
            .map(|t| t.values().to_vec())
            .unwrap_or_default()
    }

    fn with_tape(&self, values: Vec<u32>) -> FuzzCase {
        let mut c = self.best.clone();
        c.tape = Some(Tape::from_values(values));
        c
    }

    fn shrink_ops(&mut self) -> bool {
        let mut progress = false;
        let mut chunk = self.best.ops.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < self.best.ops.len() && !self.out_of_budget() {
                let mut c = self.best.clone();
                let end = (i + chunk).min(c.ops.len());
                c.ops.drain(i..end);
                if self.try_keep(c) {
                    progress = true;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        progress
    }

    fn shrink_tape(&mut self) -> bool {
        let mut progress = false;
        // Cut the tail: binary search for the shortest failing prefix.
        let values = self.tape_values();
        let (mut lo, mut hi) = (0usize, values.len());
        while lo < hi && !self.out_of_budget() {
            let mid = lo + (hi - lo) / 2;
            if self.try_keep(self.with_tape(values[..mid].to_vec())) {
                hi = mid;
                progress = true;
            } else {
                lo = mid + 1;
            }
        }
        // Zero chunks (a zero is the faithful choice).
        let mut chunk = self.tape_values().len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < self.tape_values().len() && !self.out_of_budget() {
                let mut v = self.tape_values();
                let end = (i + chunk).min(v.len());
                if v[i..end].iter().any(|&x| x != 0) {
                    v[i..end].iter_mut().for_each(|x| *x = 0);
                    if self.try_keep(self.with_tape(v)) {
                        progress = true;
                    }
                }
                i += chunk;
            }
            if chunk == 1 || self.out_of_budget() {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        // Trailing zeros are implied.
        let mut v = self.tape_values();
        while v.last() == Some(&0) {
            v.pop();
        }
        if self.best.tape.is_some() {
            self.best.tape = Some(Tape::from_values(v));
        }
        progress
    }

    fn shrink_args(&mut self) -> bool {
        let mut progress = false;
        for i in 0..self.best.ops.len() {
            loop {
                if self.out_of_budget() {
                    return progress;
                }
                let smaller = match self.best.ops[i] {
                    Op::Send(n) if n > 1 => Op::Send(n / 2),
                    Op::SendAll(n) if n > 1 => Op::SendAll(n / 2),
                    Op::Recv(n) if n > 1 => Op::Recv(n / 2),
                    Op::PeerWrite(n) if n > 1 => Op::PeerWrite(n / 2),
                    Op::PollerWait(n) if n > 0 => Op::PollerWait(n / 2),
                    Op::Sleep(n) if n > 0 => Op::Sleep(n / 2),
                    Op::Compute(n) if n > 0 => Op::Compute(n / 2),
                    Op::PeerCrash(n) if n > 0 => Op::PeerCrash(n / 2),
                    _ => break,
                };
                let mut c = self.best.clone();
                c.ops[i] = smaller;
                if !self.try_keep(c) {
                    break;
                }
                progress = true;
            }
        }
        progress
    }

    fn shrink_faults(&mut self) -> bool {
        if self.best.faults.is_none() {
            return false;
        }
        let mut progress = false;
        if self.try_keep(FuzzCase {
            faults: Faults::none(),
            ..self.best.clone()
        }) {
            return true;
        }
        let knobs: [fn(&mut Faults); 8] = [
            |f| f.loss = 0.0,
            |f| f.duplicate = 0.0,
            |f| f.reorder = 0.0,
            |f| f.spike = 0.0,
            |f| f.jitter = false,
            |f| f.inject = 0.0,
            |f| {
                f.dhcp_delay_ns = 0;
                f.dhcp_fail = false;
            },
            |f| f.late_bias = 0.0,
        ];
        for knob in knobs {
            let mut c = self.best.clone();
            knob(&mut c.faults);
            if c.faults != self.best.faults && self.try_keep(c) {
                progress = true;
            }
        }
        progress
    }
}

/// Shrinks `case`, whose run failed with `failure`, using `run` to re-run
/// candidates.
pub fn shrink(
    case: &FuzzCase,
    failure: &RunFailure,
    budget: ShrinkBudget,
    run: &mut dyn FnMut(&FuzzCase) -> Result<RunReport, RunFailure>,
) -> Shrunk {
    let start = Instant::now();
    let mut s = Shrinker {
        run,
        best: case.clone(),
        message: failure.message.clone(),
        signature: signature(&failure.message),
        runs: 0,
        start,
        budget,
    };
    // Attach the recorded schedule; keep it only if it replays the failure.
    let mut taped = case.clone();
    taped.tape = Some(failure.tape.clone());
    let tape_replayed = s.try_keep(taped);
    loop {
        let mut progress = s.shrink_ops();
        progress |= s.shrink_faults();
        if tape_replayed {
            progress |= s.shrink_tape();
        }
        progress |= s.shrink_args();
        if !progress || s.out_of_budget() {
            break;
        }
    }
    // An empty tape and no tape are the same run; keep the one the replay
    // string parses back to.
    if s.best.tape.as_ref().is_some_and(|t| t.is_empty()) {
        s.best.tape = None;
    }
    Shrunk {
        case: s.best,
        message: s.message,
        runs: s.runs,
        elapsed: start.elapsed(),
        tape_replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signature_ignores_steps_figures_and_addresses() {
        let a = signature("step 7 (s1): free_pool(0x55f1f4e5eae0) owned [t=248689416ns]");
        let b = signature("step 2 (r9): free_pool(0x7f46bae669c0) owned [t=200349400ns]");
        assert_eq!(a, b);
        assert_ne!(
            a,
            signature("step 2 (r9): end of stream although the peer sent no FIN")
        );
    }
}
