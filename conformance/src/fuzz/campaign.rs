//! A fuzzing campaign: generate cases, run them, check determinism, shrink
//! failures, report throughput and replay strings.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use efisock_sim::Scheduler;

use super::bugs;
use super::case::FuzzCase;
use super::error::Nondeterminism;
use super::exec::{RunFailure, RunReport, run_case};
use super::generate::{self, Connections};
use super::shrink::{ShrinkBudget, Shrunk, shrink};

/// What to run.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Base seed; case `i` runs with `generate::case_seed(base, i)`.
    pub base_seed: u64,
    /// Schedulers, used round-robin (case `i` gets `schedulers[i % len]`).
    pub schedulers: Vec<Scheduler>,
    /// Swarm faults: never, always, or on every other case.
    pub swarm: SwarmMode,
    /// Stop after this many cases (None: only the time budget).
    pub max_cases: Option<u64>,
    /// Stop after this much wall time (None: only the case budget).
    pub time_budget: Option<Duration>,
    /// Deliberate bug switched on in every case.
    pub bug: Option<String>,
    /// Longest operation list generated (several-connection cases: twice
    /// this).
    pub max_ops: usize,
    /// Which cases hold several connections.
    pub connections: Connections,
    /// Run every n-th case twice and compare the decision and trace hashes
    /// (0: never).
    pub determinism_every: u64,
    /// Stop at the first failure (after shrinking it).
    pub stop_at_first: bool,
    /// Limits of each shrink.
    pub shrink: ShrinkBudget,
}

/// Whether cases get swarm faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmMode {
    /// Only ordering: no faults.
    Off,
    /// Every case gets seed-derived faults.
    On,
    /// Odd cases get faults, even ones none.
    Mixed,
}

/// One failure, shrunk.
#[derive(Debug, Clone)]
pub struct Found {
    /// The case as generated.
    pub original: FuzzCase,
    /// Its failure.
    pub original_message: String,
    /// The shrunk case and its failure.
    pub shrunk: Shrunk,
    /// Cases run before (and including) the failing one.
    pub cases_to_find: u64,
    /// Wall time from the start of the campaign to the failure.
    pub time_to_find: Duration,
}

/// Per-scheduler counters.
#[derive(Debug, Clone, Default)]
pub struct SchedulerStats {
    /// Cases run.
    pub cases: u64,
    /// Cases that failed.
    pub failures: u64,
    /// Virtual firmware time simulated.
    pub virtual_ns: u64,
    /// Simulator decisions taken.
    pub decisions: u64,
    /// Firmware statuses injected.
    pub injections: u64,
    /// Wall time spent in cases.
    pub wall: Duration,
}

/// What a campaign did.
#[derive(Debug, Clone, Default)]
pub struct CampaignReport {
    /// Cases run (not counting determinism re-runs and shrinking).
    pub cases: u64,
    /// Wall time of the campaign, shrinking excluded.
    pub elapsed: Duration,
    /// Per scheduler, in the campaign's order.
    pub per_scheduler: Vec<(Scheduler, SchedulerStats)>,
    /// Cases run twice for the determinism check.
    pub determinism_checks: u64,
    /// Divergences found by the determinism check (each is also a failure).
    pub divergences: u64,
    /// Failures, shrunk.
    pub found: Vec<Found>,
    /// FNV-1a fold of every case's index, decision hash and virtual time,
    /// in order: two runs of the same campaign agree on it exactly when
    /// every case took the same decisions for the same firmware time.
    pub decision_digest: u64,
}

impl CampaignReport {
    /// Cases per second of wall time.
    pub fn cases_per_second(&self) -> f64 {
        self.cases as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

const DIGEST_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn fold_digest(mut h: u64, words: &[u64]) -> u64 {
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Runs one case, turning a panic into a failure.
pub fn run_guarded(case: &FuzzCase) -> Result<RunReport, RunFailure> {
    let outcome = bugs::with_bug(case.bug.as_deref(), || {
        catch_unwind(AssertUnwindSafe(|| run_case(case)))
    });
    match outcome {
        Err(e) => Err(RunFailure::without_run(e.to_string())),
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => {
            let msg = super::exec::panic_message(&*panic);
            Err(RunFailure::without_run(format!("panicked: {msg}")))
        }
    }
}

/// Runs a case twice; a difference in decisions or trace is a failure.
pub fn check_determinism(case: &FuzzCase, first: &RunReport) -> Result<(), Nondeterminism> {
    match run_guarded(case) {
        Ok(second) if second == *first => Ok(()),
        Ok(second) => Err(Nondeterminism::Diverged {
            first: *first,
            second,
        }),
        Err(f) => Err(Nondeterminism::FailedOnRerun(f.message)),
    }
}

/// Silences the panic hook while it lives; restores the previous one after.
type PanicHook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send>;

struct QuietPanics(Option<PanicHook>);

impl QuietPanics {
    fn install() -> QuietPanics {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        QuietPanics(Some(previous))
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            std::panic::set_hook(h);
        }
    }
}

impl Campaign {
    /// Runs the campaign; `progress` gets one line per failure as it is found.
    pub fn run(&self, progress: &mut dyn FnMut(&str)) -> CampaignReport {
        // Panics are failures the report shows with their replay string; the
        // default hook would print each one (and its backtrace) on top.
        let _quiet = QuietPanics::install();
        let mut report = CampaignReport {
            per_scheduler: self
                .schedulers
                .iter()
                .map(|s| (*s, SchedulerStats::default()))
                .collect(),
            decision_digest: DIGEST_BASIS,
            ..CampaignReport::default()
        };
        let start = Instant::now();
        let mut shrinking = Duration::ZERO;
        let n_sched = self.schedulers.len().max(1) as u64;
        for index in 0.. {
            if self.max_cases.is_some_and(|m| index >= m)
                || self
                    .time_budget
                    .is_some_and(|t| start.elapsed().saturating_sub(shrinking) >= t)
            {
                break;
            }
            let sched_idx = (index % n_sched) as usize;
            let scheduler = self
                .schedulers
                .get(sched_idx)
                .copied()
                .unwrap_or(Scheduler::Fifo);
            let swarm = match self.swarm {
                SwarmMode::Off => false,
                SwarmMode::On => true,
                SwarmMode::Mixed => (index / n_sched) % 2 == 1,
            };
            let case = generate::case(
                self.base_seed,
                index,
                scheduler,
                swarm,
                self.bug.as_deref(),
                self.max_ops,
                self.connections,
            );
            let t0 = Instant::now();
            let mut outcome = run_guarded(&case);
            let dt = t0.elapsed();
            report.cases += 1;
            let stats = &mut report.per_scheduler[sched_idx].1;
            stats.cases += 1;
            stats.wall += dt;
            if let Ok(r) = &outcome {
                report.decision_digest = fold_digest(
                    report.decision_digest,
                    &[index, r.decision_hash, r.virtual_ns],
                );
                stats.virtual_ns += r.virtual_ns;
                stats.decisions += r.decisions;
                stats.injections += r.injections as u64;
                if self.determinism_every > 0 && index % self.determinism_every == 0 {
                    report.determinism_checks += 1;
                    if let Err(divergence) = check_determinism(&case, r) {
                        report.divergences += 1;
                        outcome = Err(RunFailure {
                            decisions: r.decisions,
                            decision_hash: r.decision_hash,
                            ..RunFailure::without_run(divergence.to_string())
                        });
                    }
                }
            }
            if let Err(failure) = outcome {
                report.per_scheduler[sched_idx].1.failures += 1;
                let time_to_find = start.elapsed();
                progress(&format!(
                    "FAIL case {} ({} after {:.2} s): {}\n  original: {}",
                    index,
                    scheduler,
                    time_to_find.as_secs_f64(),
                    failure.message,
                    case
                ));
                let t_shrink = Instant::now();
                let shrunk = shrink(&case, &failure, self.shrink, &mut |c| run_guarded(c));
                shrinking += t_shrink.elapsed();
                report.found.push(Found {
                    original: case,
                    original_message: failure.message,
                    shrunk,
                    cases_to_find: index + 1,
                    time_to_find,
                });
                if self.stop_at_first {
                    break;
                }
            }
        }
        report.elapsed = start.elapsed().saturating_sub(shrinking);
        report
    }
}
