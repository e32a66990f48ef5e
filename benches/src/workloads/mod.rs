//! The five Poll-strategy workloads, written against the socket API on a
//! simulated world with the conformance suite's peer services.
//!
//! Why here and not in the bench: the same code is exercised by the unit
//! tests (small sizes), so the bench measures workloads known to transfer
//! and verify every byte. Each workload checks what came back (counts,
//! checksums, echoed bytes) and returns an error instead of a figure when
//! anything is wrong.
//!
//! This module holds the workloads' API (what to run, how much, what it
//! measured); `bodies` holds the socket code of each workload.

mod bodies;

use std::time::Duration;

use efisock::firmware::Platform;
use efisock::{Net, Socket};
use efisock_conformance::peers::ports;
use efisock_conformance::target::SocketTarget;

use crate::error::WorkloadError;
use bodies::{bulk_receive, bulk_send, connect, connect_rate, request_response, select_loop};
#[cfg(feature = "sim")]
use efisock_conformance::error::SetupError;

/// Bytes moved by the bulk workloads: 16 MiB (one iteration of the slowest
/// strategy, timer-only, stays under 5 s of wall time on a 2-core machine).
pub const BULK_BYTES: u64 = 16 << 20;
/// Round trips in [`Workload::RequestResponse`].
pub const ROUND_TRIPS: usize = 1000;
/// Bytes per request (and per response) in [`Workload::RequestResponse`].
pub const RR_BYTES: usize = 64;
/// Connections in [`Workload::SelectLoop`].
pub const SELECT_CONNECTIONS: usize = 32;
/// Rounds per iteration of [`Workload::SelectLoop`]: each round sends
/// [`RR_BYTES`] on every connection and selects until all echoes are back.
pub const SELECT_ROUNDS: usize = 20;
/// Connections opened and closed per iteration of [`Workload::ConnectRate`].
pub const CONNECTS: usize = 50;

/// Per-call timeout of every socket: long enough for timer-only at one
/// frame per 10 ms tick, short enough that a stuck run fails instead of
/// hanging the bench.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Chunk size for bulk send and receive calls.
const CHUNK: usize = 64 * 1024;

/// One benchmarked workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// Receive `n` bytes from the source-fin service to EOF (connect,
    /// request, receive, verify, close).
    BulkReceive(u64),
    /// Send `n` bytes to the sink (length-prefixed), wait for its report,
    /// verify count and checksum, close.
    BulkSend(u64),
    /// Connect to echo, [`ROUND_TRIPS`] × (send [`RR_BYTES`], receive them
    /// back), close.
    RequestResponse,
    /// [`SELECT_ROUNDS`] rounds over [`SELECT_CONNECTIONS`] echo
    /// connections opened beforehand (not measured): send on all, then
    /// `select` for readability and read until every echo is back.
    SelectLoop,
    /// [`CONNECTS`] × (connect to echo, echo one byte, close).
    ConnectRate,
}

/// How much of a workload to do: a count (bytes, round trips, rounds or
/// connections, see [`Workload::unit`]) and an optional budget of firmware
/// time (virtual on the simulator, the firmware clock in OVMF). The budget
/// is checked between steps (a 64 KiB chunk, a round trip, a select round,
/// a connection, a bulk-send unit), so a run stops within one step of it
/// and reports the rate over what was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Work to do, in [`Workload::unit`]s.
    pub count: u64,
    /// Firmware time after which no further step starts.
    pub budget: Option<Duration>,
    /// Bulk send only: bytes per sink connection (each is verified by the
    /// sink's report before the next starts); 0 means one connection.
    pub send_unit: u64,
}

/// What a measured run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Work done and verified, in [`Workload::unit`]s.
    pub done: u64,
    /// Firmware time it took, ns.
    pub elapsed_ns: u64,
    /// `Tcp4.Poll` calls made by the socket layer meanwhile.
    pub polls: u64,
    /// All firmware calls made by the socket layer meanwhile
    /// (`NetStats::calls`, Poll included).
    pub fw_calls: u64,
    /// Whether the budget ended the run before `count`.
    pub budget_hit: bool,
}

impl Outcome {
    /// Units per second of firmware time (0 when nothing was timed).
    pub fn rate(&self) -> f64 {
        if self.elapsed_ns == 0 {
            0.0
        } else {
            self.done as f64 * 1e9 / self.elapsed_ns as f64
        }
    }
}

impl Workload {
    /// The five workloads at their full sizes.
    pub fn all() -> [Workload; 5] {
        [
            Workload::BulkReceive(BULK_BYTES),
            Workload::BulkSend(BULK_BYTES),
            Workload::RequestResponse,
            Workload::SelectLoop,
            Workload::ConnectRate,
        ]
    }

    /// A short stable name (criterion group name).
    pub fn name(&self) -> &'static str {
        match self {
            Workload::BulkReceive(_) => "bulk_receive",
            Workload::BulkSend(_) => "bulk_send",
            Workload::RequestResponse => "request_response",
            Workload::SelectLoop => "select_loop",
            Workload::ConnectRate => "connect_rate",
        }
    }

    /// The workload called `name` (as [`Workload::name`]); bulk sizes are
    /// [`BULK_BYTES`] (a [`Plan`] overrides them).
    pub fn by_name(name: &str) -> Option<Workload> {
        Workload::all().into_iter().find(|w| w.name() == name)
    }

    /// What [`Plan::count`] and [`Outcome::done`] count.
    pub fn unit(&self) -> &'static str {
        match self {
            Workload::BulkReceive(_) | Workload::BulkSend(_) => "bytes",
            Workload::RequestResponse => "round trips",
            Workload::SelectLoop => "rounds",
            Workload::ConnectRate => "connections",
        }
    }

    /// The plan of one unbudgeted [`Workload::run_once`].
    pub fn full_plan(&self) -> Plan {
        let count = match *self {
            Workload::BulkReceive(n) | Workload::BulkSend(n) => n,
            Workload::RequestResponse => ROUND_TRIPS as u64,
            Workload::SelectLoop => SELECT_ROUNDS as u64,
            Workload::ConnectRate => CONNECTS as u64,
        };
        Plan {
            count,
            budget: None,
            send_unit: 0,
        }
    }

    /// Prepares `target` for this workload: the connections that are not
    /// part of the measured work (only [`Workload::SelectLoop`] has any).
    pub fn prepare<T: SocketTarget>(&self, target: &T) -> Result<Prepared<T::P>, WorkloadError> {
        match self {
            Workload::SelectLoop => {
                let mut socks = Vec::with_capacity(SELECT_CONNECTIONS);
                for i in 0..SELECT_CONNECTIONS {
                    socks.push(
                        connect(target, ports::ECHO)
                            .map_err(|e| WorkloadError::Failed(format!("conn {i}: {e}")))?,
                    );
                }
                Ok(Prepared { socks })
            }
            _ => Ok(Prepared { socks: Vec::new() }),
        }
    }

    /// Runs one iteration on `target` at the full size, verifying the data.
    pub fn run_once<T: SocketTarget>(
        &self,
        target: &T,
        prepared: &Prepared<T::P>,
    ) -> Result<(), WorkloadError> {
        let plan = self.full_plan();
        let done = self.run_planned(target, prepared, &plan)?;
        if done.done != plan.count {
            return Err(WorkloadError::Incomplete {
                done: done.done,
                planned: plan.count,
                unit: self.unit(),
            });
        }
        Ok(())
    }

    /// Runs `plan` on `target`, verifying the data, and measures it with
    /// the target's firmware clock and the socket layer's call counters.
    pub fn run_planned<T: SocketTarget>(
        &self,
        target: &T,
        prepared: &Prepared<T::P>,
        plan: &Plan,
    ) -> Result<Outcome, WorkloadError> {
        let net = target.net();
        let before = net.stats();
        let start = net.now();
        let clock = Clock {
            start,
            budget: plan.budget,
        };
        let done = match *self {
            Workload::BulkReceive(_) => bulk_receive(target, plan.count, &clock)?,
            Workload::BulkSend(_) => bulk_send(target, plan, &clock)?,
            Workload::RequestResponse => request_response(target, plan.count, &clock)?,
            Workload::SelectLoop => select_loop(target, &prepared.socks, plan.count, &clock)?,
            Workload::ConnectRate => connect_rate(target, plan.count, &clock)?,
        };
        let elapsed = net.now().saturating_sub(start);
        let after = net.stats();
        let calls = |s: &efisock::NetStats| s.calls.iter().sum::<u64>();
        Ok(Outcome {
            done,
            elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            polls: after.polls - before.polls,
            fw_calls: calls(&after) - calls(&before),
            budget_hit: done < plan.count,
        })
    }
}

/// The budget of one run.
struct Clock {
    start: Duration,
    budget: Option<Duration>,
}

impl Clock {
    fn over<P: Platform + 'static>(&self, net: &Net<P>) -> bool {
        self.budget
            .is_some_and(|b| net.now().saturating_sub(self.start) >= b)
    }
}

/// State a workload keeps across iterations on one target.
pub struct Prepared<P: Platform + 'static> {
    socks: Vec<Socket<P>>,
}

impl<P: Platform + 'static> Prepared<P> {
    /// Closes the prepared connections.
    pub fn close(self) -> Result<(), WorkloadError> {
        for s in self.socks {
            s.close()
                .map_err(|e| WorkloadError::Failed(format!("close: {e}")))?;
        }
        Ok(())
    }
}

/// A fresh simulated world for `seed` using the strategy called `strategy`.
#[cfg(feature = "sim")]
pub fn bench_target(
    strategy: &str,
    seed: u64,
) -> Result<efisock_conformance::sim_target::SimTarget, SetupError> {
    bench_target_with_cost(strategy, seed, None)
}

/// [`bench_target`] with the simulator's cost model replaced by `cost`
/// (cost-model experiments: `efisock-bench-report --cost ...`).
#[cfg(feature = "sim")]
pub fn bench_target_with_cost(
    strategy: &str,
    seed: u64,
    cost: Option<efisock_sim::CostModel>,
) -> Result<efisock_conformance::sim_target::SimTarget, SetupError> {
    let setup = efisock_conformance::sim_target::SimSetup::default();
    let mut config = setup.config(seed)?;
    if let Some(c) = cost {
        config.cost = c;
    }
    let target = efisock_conformance::sim_target::SimTarget::new(config)?;
    let s = efisock::strategy_by_name(strategy)
        .ok_or_else(|| SetupError::UnknownStrategy(strategy.to_string()))?;
    target.net().set_strategy(s);
    Ok(target)
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;

    /// Every workload completes and verifies on every strategy (bulk at a
    /// small size), leaves nothing behind, and takes virtual time.
    #[test]
    fn every_workload_on_every_strategy() {
        let small = [
            Workload::BulkReceive(200_000),
            Workload::BulkSend(200_000),
            Workload::RequestResponse,
            Workload::SelectLoop,
            Workload::ConnectRate,
        ];
        for strategy in efisock::STRATEGY_NAMES {
            for w in small {
                let t = bench_target(strategy, 7).unwrap();
                let p = w.prepare(&t).unwrap();
                let before = t.sim().now_ns();
                w.run_once(&t, &p)
                    .unwrap_or_else(|e| panic!("{strategy} {w:?}: {e}"));
                assert!(t.sim().now_ns() > before, "{strategy} {w:?} took no time");
                p.close().unwrap();
                assert_eq!(t.leftovers(), Vec::<String>::new(), "{strategy} {w:?}");
            }
        }
    }

    /// The same seed gives the same virtual time.
    #[test]
    fn virtual_time_is_deterministic() {
        let run = || {
            let t = bench_target("adaptive-backoff", 42).unwrap();
            let p = Workload::RequestResponse.prepare(&t).unwrap();
            let before = t.sim().now_ns();
            Workload::RequestResponse.run_once(&t, &p).unwrap();
            t.sim().now_ns() - before
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn unknown_strategy_is_an_error() {
        assert!(bench_target("no-such-strategy", 1).is_err());
    }
}
