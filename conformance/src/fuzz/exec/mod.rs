//! Runs one [`FuzzCase`] on core + simulator and checks the model after every
//! step, then the completion and liveness phases, then leaks and the
//! contract checker.
//!
//! `session` drives the case's operations against the model; `phases`
//! holds what follows them (completion and liveness).

mod multi;
mod phases;
mod session;

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use efisock::firmware::status;
use efisock::{Errno, Net};
use efisock_sim::{Sim, SimConfig, SimPlatform};

use super::case::{Direction, FuzzCase};
use super::error::CheckError;
use super::peer::{Ctl, PeerCtl};
use session::Run;

const SUT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
/// Every wait of the run ends after this much firmware time (a hang is a
/// failure, never a stuck fuzzer).
const WAIT_BOUND: Duration = Duration::from_secs(120);

/// What a passing run measured (for the determinism check and the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    /// Decisions the simulator took.
    pub decisions: u64,
    /// Hash over every decision (kind, range, value).
    pub decision_hash: u64,
    /// Hash over the simulator's trace (completions and state changes).
    pub trace_hash: u64,
    /// Virtual time at the end.
    pub virtual_ns: u64,
    /// Statuses the firmware injected.
    pub injections: usize,
}

/// A failed run: the message and what the run had done so far.
#[derive(Debug, Clone)]
pub struct RunFailure {
    /// What went wrong, with the step.
    pub message: String,
    /// Decisions taken up to the failure.
    pub decisions: u64,
    /// Hash over those decisions.
    pub decision_hash: u64,
    /// The decisions themselves: replaying them reproduces the run.
    pub tape: efisock_sim::Tape,
    /// Statuses the firmware injected, in order.
    pub injected: Vec<String>,
    /// The simulator's trace (completions, state changes), for `--replay`.
    pub trace: Vec<String>,
}

impl RunFailure {
    /// A failure before or outside a simulated run (bad bug name, a panic
    /// that escaped the run, a determinism check): no decisions to replay.
    pub fn without_run(message: String) -> RunFailure {
        RunFailure {
            message,
            decisions: 0,
            decision_hash: 0,
            tape: efisock_sim::Tape::default(),
            injected: Vec::new(),
            trace: Vec::new(),
        }
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic payload".into())
}

fn fnv(lines: &[String]) -> u64 {
    let mut h = crate::pattern::Fnv64::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    h.value()
}

/// The simulator configuration of a case.
pub fn sim_config(case: &FuzzCase) -> SimConfig {
    let mut cfg = SimConfig::new(case.seed);
    cfg.scheduler = case.scheduler;
    cfg.faults = case.faults;
    cfg.tape = case.tape.clone();
    cfg
}

/// The decision tape and simulator trace of a run of `case` (for
/// `EFISOCK_FUZZ_TRACE=1 … fuzz --replay`), whatever its outcome.
pub fn trace_of(case: &FuzzCase) -> Vec<String> {
    let sim = Sim::new(sim_config(case));
    let outcome = run_on(case, &sim).map_err(|e| e.to_string());
    let mut lines = vec![
        format!("outcome {outcome:?}"),
        format!("tape {}", sim.tape()),
    ];
    lines.extend(sim.trace());
    lines
}

/// Runs `case`. The deliberate bug named in the case must already be switched
/// on by the caller (see `super::bugs`).
pub fn run_case(case: &FuzzCase) -> Result<RunReport, RunFailure> {
    let sim = Sim::new(sim_config(case));
    // A panic is a failure like any other, and keeps the decisions taken up
    // to it so that shrinking can replay it.
    let result = catch_unwind(AssertUnwindSafe(|| run_on(case, &sim))).unwrap_or_else(|panic| {
        Err(CheckError::new(format!(
            "panicked: {}",
            panic_message(&*panic)
        )))
    });
    let fail = |message: String| RunFailure {
        message,
        decisions: sim.decisions(),
        decision_hash: sim.decision_hash(),
        tape: sim.tape(),
        injected: sim
            .injected()
            .iter()
            .map(|i| format!("{:>12} {} -> {}", i.t_ns, i.call, status::name(i.status)))
            .collect(),
        trace: sim.trace(),
    };
    match result {
        Ok(()) => {
            let breaches = sim.finish();
            if !breaches.is_empty() {
                let list: Vec<String> = breaches.iter().map(|b| b.to_string()).collect();
                return Err(fail(format!("contract checker: {}", list.join("; "))));
            }
            Ok(RunReport {
                decisions: sim.decisions(),
                decision_hash: sim.decision_hash(),
                trace_hash: fnv(&sim.trace()),
                virtual_ns: sim.now_ns(),
                injections: sim.injected().len(),
            })
        }
        Err(error) => {
            let message = error.to_string();
            // A breach recorded before the observable failure is the better
            // explanation: report both.
            let breaches = sim.breaches();
            let message = if breaches.is_empty() {
                message
            } else {
                let list: Vec<String> = breaches.iter().map(|b| b.to_string()).collect();
                format!("{message}; contract checker: {}", list.join("; "))
            };
            Err(fail(message))
        }
    }
}

fn run_on(case: &FuzzCase, sim: &Sim) -> Result<(), CheckError> {
    let ctl: Ctl = Rc::new(RefCell::new(PeerCtl::default()));
    let net = Net::new(sim.platform());
    let strategy = efisock::strategy_by_name(&case.strategy)
        .ok_or_else(|| format!("unknown Poll strategy {:?}", case.strategy))?;
    net.set_strategy(strategy);
    net.set_wait_deadline(Some(WAIT_BOUND));
    configure_address(case, sim, &net)?;
    let mut run = Run::new(case, sim.clone(), net, ctl);
    if case.direction == Direction::Multi {
        let mut multi = multi::Multi::new(&run);
        let result = multi.steps(&mut run).and_then(|()| {
            if !case.faults.is_none() {
                sim.heal();
            }
            multi.complete(&mut run)
        });
        multi.close_all();
        result?;
    } else {
        run_single(case, sim, &mut run)?;
    }
    run.liveness()?;
    run.net
        .shutdown(Duration::from_secs(60))
        .map_err(|e| CheckError::new(format!("Net::shutdown: {e}")))
}

/// The case's one connection: opened, driven by the operations, completed.
fn run_single(case: &FuzzCase, sim: &Sim, run: &mut Run<'_>) -> Result<(), CheckError> {
    match run.open() {
        Ok(sock) => {
            let result = run.steps(&sock).and_then(|()| run.complete(&sock));
            let _ = sock.close();
            drop(sock);
            result?;
        }
        // Under faults the connection may legally fail to open (SYNs lost
        // until the retries run out, injected statuses); the liveness phase
        // below must then still work. Without faults it is a failure.
        Err(e) if !case.faults.is_none() => {
            tracing::debug!(target: "efisock::fuzz", "connection not opened under faults: {e}");
            sim.heal();
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Static address normally; DHCP when the swarm made DHCP slow or failing,
/// and then a failure must be a clean error that a healed retry fixes.
fn configure_address(case: &FuzzCase, sim: &Sim, net: &Net<SimPlatform>) -> Result<(), CheckError> {
    if case.faults.dhcp_delay_ns == 0 && !case.faults.dhcp_fail {
        return net
            .set_static(SUT_IP, MASK, Some(PEER_IP))
            .map_err(|e| CheckError::new(format!("set_static: {e}")));
    }
    match net.dhcp(Duration::from_secs(30)) {
        Ok(_) => Ok(()),
        Err(e) if e.is_timeout() || e.errno() == Some(Errno::ETIMEDOUT) => {
            let slow = case.faults.dhcp_delay_ns > 30_000_000_000;
            if !(case.faults.dhcp_fail || slow) {
                return Err(CheckError::new(format!(
                    "dhcp timed out although the server answers: {e}"
                )));
            }
            sim.heal();
            net.dhcp(Duration::from_secs(120))
                .map(|_| ())
                .map_err(|e| CheckError::new(format!("dhcp after healing: {e}")))
        }
        Err(e) => Err(CheckError::new(format!("dhcp: unexpected error {e}"))),
    }
}
