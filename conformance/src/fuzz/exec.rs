//! Runs one [`FuzzCase`] on core + simulator and checks the model after every
//! step, then the completion and liveness phases, then leaks and the
//! contract checker.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use efisock::firmware::{Status, status};
use efisock::{Errno, Interest, Net, Socket};
use efisock_sim::{LinkConfig, MAX_RTO_NS, Sim, SimConfig, SimPlatform};

use super::case::{Direction, FuzzCase, Op};
use super::error::CheckError;
use super::model::{Env, Model};
use super::peer::{Ctl, PEER_PATTERN_BASE, PeerCtl, ScriptedPeer};
use crate::pattern::{fill_pattern, find_pattern_mismatch};

const SUT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
/// Peer port for the case's connection (direction Connect).
const PEER_PORT: u16 = 7500;
/// SUT port for the case's connection (direction Accept).
const SUT_PORT: u16 = 7501;
/// Peer port of the liveness connection.
const LIVENESS_PORT: u16 = 7502;
/// Bytes each way on the liveness connection.
const LIVENESS_BYTES: usize = 8 * 1024;
/// Every wait of the run ends after this much firmware time (a hang is a
/// failure, never a stuck fuzzer).
const WAIT_BOUND: Duration = Duration::from_secs(120);
/// Bound of each operation step. A step that waits longer ends as its own
/// timeout would, which the model accepts (a blocking recv with nothing to
/// come waits exactly this long), so the bound only trades simulated idle
/// time for cases per second; the completion phase has its own, longer one.
const STEP_BOUND: Duration = Duration::from_secs(5);
/// Loop bound of the drain phases (each iteration waits at most a timeout).
const DRAIN_ITERATIONS: usize = 10_000;
/// How long the completion phase waits, once faults healed, for the next
/// byte to arrive (either way). A segment lost just before the heal comes
/// back only when its sender's retransmission timer fires, which can be a
/// whole backed-off RTO later, up to [`MAX_RTO_NS`] (60 s); the healed link
/// then delivers it within milliseconds. A fixed 10 s is not enough: a
/// SYN-ACK retransmitted four times leaves the SUT's first data segment with
/// a 16 s RTO, so its loss just before the heal is repaired at +16 s.
const HEALED_PROGRESS_BOUND: Duration = Duration::from_nanos(MAX_RTO_NS + 5_000_000_000);
/// Poll interval while waiting for the peer to receive the SUT's bytes.
const PEER_POLL: Duration = Duration::from_millis(50);

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

fn env_of(sim: &Sim, case: &FuzzCase) -> Env {
    let mut env = Env {
        timeouts_possible: case.faults.loss > 0.0 || case.faults.spike > 0.0,
        ..Env::default()
    };
    for inj in sim.injected() {
        match inj.status {
            status::CONNECTION_RESET => env.injected_reset = true,
            Status::OUT_OF_RESOURCES => env.injected_no_resources = true,
            Status::TIMEOUT => env.timeouts_possible = true,
            _ => env.injected_other = true,
        }
    }
    env
}

/// The simulator configuration of a case.
pub fn sim_config(case: &FuzzCase) -> SimConfig {
    let mut cfg = SimConfig::new(case.seed);
    cfg.scheduler = case.scheduler;
    cfg.faults = case.faults;
    cfg.tape = case.tape.clone();
    cfg
}

struct Run<'a> {
    case: &'a FuzzCase,
    sim: Sim,
    net: Net<SimPlatform>,
    ctl: Ctl,
    model: Model,
    /// The peer stopped answering at some point (retransmission timeouts
    /// become possible).
    crashed: bool,
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
    let mut run = Run {
        case,
        sim: sim.clone(),
        net,
        ctl,
        model: Model::default(),
        crashed: false,
    };
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
    run.liveness()?;
    run.net
        .shutdown(Duration::from_secs(60))
        .map_err(|e| CheckError::new(format!("Net::shutdown: {e}")))
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

impl Run<'_> {
    fn env(&self) -> Env {
        let mut env = env_of(&self.sim, self.case);
        env.timeouts_possible |= self.crashed;
        env
    }

    /// Opens the case's connection.
    fn open(&mut self) -> Result<Socket<SimPlatform>, CheckError> {
        let peer = self.sim.peer_host();
        let sock = match self.case.direction {
            Direction::Connect => {
                let ctl = Rc::clone(&self.ctl);
                let mut handed = false;
                peer.listen(
                    PEER_PORT,
                    Box::new(move || {
                        // Only the first connection belongs to the script.
                        let c = if handed {
                            Rc::new(RefCell::new(PeerCtl::default()))
                        } else {
                            handed = true;
                            Rc::clone(&ctl)
                        };
                        Box::new(ScriptedPeer(c))
                    }),
                );
                let s = self
                    .net
                    .socket()
                    .map_err(|e| CheckError::new(format!("socket: {e}")))?;
                s.settimeout(Some(Duration::from_secs(30)))
                    .map_err(|e| CheckError::new(e.to_string()))?;
                if let Err(e) = s.connect(SocketAddrV4::new(PEER_IP, PEER_PORT)) {
                    let _ = s.close();
                    return Err(CheckError::new(format!("connect failed: {e}")));
                }
                s
            }
            Direction::Accept => {
                let l = self
                    .net
                    .socket()
                    .map_err(|e| CheckError::new(format!("socket: {e}")))?;
                l.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SUT_PORT))
                    .map_err(|e| CheckError::new(format!("bind: {e}")))?;
                l.listen(1)
                    .map_err(|e| CheckError::new(format!("listen: {e}")))?;
                l.settimeout(Some(Duration::from_secs(30)))
                    .map_err(|e| CheckError::new(e.to_string()))?;
                peer.connect(
                    SocketAddrV4::new(SUT_IP, SUT_PORT),
                    Box::new(ScriptedPeer(Rc::clone(&self.ctl))),
                );
                let r = l.accept();
                let _ = l.close();
                match r {
                    Ok((s, _)) => s,
                    Err(e) => return Err(CheckError::new(format!("accept failed: {e}"))),
                }
            }
        };
        sock.settimeout(Some(Duration::from_millis(200)))
            .map_err(|e| CheckError::new(e.to_string()))?;
        Ok(sock)
    }

    fn steps(&mut self, sock: &Socket<SimPlatform>) -> Result<(), CheckError> {
        for (i, op) in self.case.ops.iter().enumerate() {
            // Each step gets its own bound: a blocking call with nothing to
            // wait for ends (as a timeout) instead of hanging the fuzzer.
            self.net.set_wait_deadline(Some(STEP_BOUND));
            self.step(sock, *op)
                .and_then(|()| self.model.check_peer(&self.ctl.borrow()))
                .map_err(|e| e.at_step(i, *op))?;
        }
        Ok(())
    }

    fn payload(&self, n: usize) -> Vec<u8> {
        let mut data = vec![0u8; n];
        fill_pattern(self.model.sent, &mut data);
        data
    }

    fn step(&mut self, sock: &Socket<SimPlatform>, op: Op) -> Result<(), CheckError> {
        match op {
            Op::Send(n) | Op::SendAll(n) => {
                if self.model.uncertain > 0 || n == 0 {
                    return Ok(());
                }
                let data = self.payload(usize::from(n));
                if matches!(op, Op::Send(_)) {
                    let r = sock.send(&data);
                    let env = self.env();
                    self.model.on_send(&r, data.len(), &self.ctl.borrow(), env)
                } else {
                    match sock.sendall(&data) {
                        Ok(()) => {
                            if self.model.closed {
                                return Err("sendall on a closed socket succeeded".into());
                            }
                            self.model.sent += data.len() as u64;
                            Ok(())
                        }
                        Err(e) => {
                            if !self.model.closed {
                                // Python: how much went out is unknown.
                                self.model.uncertain = data.len() as u64;
                            }
                            let env = self.env();
                            self.model.on_error("sendall", &e, &self.ctl.borrow(), env)
                        }
                    }
                }
            }
            Op::Recv(n) => {
                let r = sock.recv(usize::from(n).max(1));
                let env = self.env();
                self.model.on_recv(&r, &self.ctl.borrow(), env)
            }
            Op::SelectRead | Op::SelectWrite => {
                if self.model.closed {
                    return Ok(());
                }
                let read = op == Op::SelectRead;
                let (r, w): (&[&Socket<SimPlatform>], &[&Socket<SimPlatform>]) =
                    if read { (&[sock], &[]) } else { (&[], &[sock]) };
                let sel = self
                    .net
                    .select(r, w, &[], Some(Duration::ZERO))
                    .map_err(|e| CheckError::new(format!("select: {e}")))?;
                let ready = if read { &sel.read } else { &sel.write };
                if ready.contains(&sock.fileno()) {
                    self.check_ready(sock, read)?;
                }
                Ok(())
            }
            Op::PollerWait(ms) => {
                if self.model.closed {
                    return Ok(());
                }
                let mut poller = self.net.poller();
                poller
                    .register(sock, Interest::BOTH, 7)
                    .map_err(|e| CheckError::new(format!("poller register: {e}")))?;
                let events = poller
                    .poll(Some(Duration::from_millis(u64::from(ms))))
                    .map_err(|e| CheckError::new(format!("poller poll: {e}")));
                let _ = poller.unregister(sock);
                for ev in events? {
                    if ev.token != 7 {
                        return Err(CheckError::new(format!(
                            "poller reported unknown token {}",
                            ev.token
                        )));
                    }
                    if ev.readable {
                        self.check_ready(sock, true)?;
                    }
                    if ev.writable && !self.model.closed {
                        self.check_ready(sock, false)?;
                    }
                }
                Ok(())
            }
            Op::SetTimeout(ms) => {
                let r = sock.settimeout(Some(Duration::from_millis(u64::from(ms))));
                match (r, self.model.closed) {
                    (Ok(()), false) => Ok(()),
                    (Err(e), true) if e.errno() == Some(Errno::EBADF) => Ok(()),
                    (Ok(()), true) => Err("settimeout on a closed socket succeeded".into()),
                    (Err(e), _) => Err(CheckError::new(format!("settimeout: {e}"))),
                }
            }
            Op::SetBlocking(b) => {
                sock.setblocking(b);
                Ok(())
            }
            Op::Sleep(ms) => {
                self.net.sleep(Duration::from_millis(u64::from(ms)));
                Ok(())
            }
            Op::Compute(ms) => {
                self.sim.advance(u64::from(ms) * 1_000_000);
                Ok(())
            }
            Op::PeerWrite(n) => {
                let mut c = self.ctl.borrow_mut();
                if !(c.fin || c.rst) {
                    c.asked += u64::from(n);
                }
                Ok(())
            }
            Op::PeerFin => {
                self.ctl.borrow_mut().fin = true;
                Ok(())
            }
            Op::PeerRst => {
                self.ctl.borrow_mut().rst = true;
                Ok(())
            }
            Op::PeerStall(on) => {
                self.ctl.borrow_mut().stalled = on;
                Ok(())
            }
            Op::PeerCrash(ms) => {
                self.crashed = true;
                self.sim.set_link(LinkConfig {
                    loss: 1.0,
                    ..LinkConfig::default()
                });
                self.net.sleep(Duration::from_millis(u64::from(ms)));
                self.sim.set_link(LinkConfig::default());
                Ok(())
            }
            Op::Close => {
                let r = sock.close();
                if self.model.closed {
                    // Python: closing twice is a no-op.
                    return r.map_err(|e| CheckError::new(format!("second close: {e}")));
                }
                self.model.closed = true;
                match r {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        let env = self.env();
                        self.model.closed = false;
                        let res = self.model.on_error("close", &e, &self.ctl.borrow(), env);
                        self.model.closed = true;
                        res
                    }
                }
            }
        }
    }

    /// Readiness was reported: the nonblocking call must not fail with EAGAIN.
    fn check_ready(&mut self, sock: &Socket<SimPlatform>, read: bool) -> Result<(), CheckError> {
        let was = sock.getblocking();
        let timeout = sock.gettimeout();
        sock.setblocking(false);
        let res = if read {
            let r = sock.recv(4096);
            if matches!(&r, Err(e) if e.errno() == Some(Errno::EAGAIN)) {
                Err("readiness lied: readable, but a nonblocking recv failed with EAGAIN".into())
            } else {
                let env = self.env();
                self.model.on_recv(&r, &self.ctl.borrow(), env)
            }
        } else if self.model.uncertain > 0 {
            Ok(())
        } else {
            let data = self.payload(64);
            let r = sock.send(&data);
            if matches!(&r, Err(e) if e.errno() == Some(Errno::EAGAIN)) {
                Err("readiness lied: writable, but a nonblocking send failed with EAGAIN".into())
            } else {
                let env = self.env();
                self.model.on_send(&r, data.len(), &self.ctl.borrow(), env)
            }
        };
        if was {
            sock.settimeout(timeout)
                .map_err(|e| CheckError::new(e.to_string()))?;
        }
        res
    }

    /// Completion: a healthy connection delivers everything both ways.
    fn complete(&mut self, sock: &Socket<SimPlatform>) -> Result<(), CheckError> {
        // The liveness phase: faults heal, and a healthy connection must
        // then deliver everything (no hang may hide behind the faults).
        if !self.case.faults.is_none() {
            self.sim.heal();
        }
        if !self.model.healthy(&self.ctl.borrow()) {
            return Ok(());
        }
        {
            let mut c = self.ctl.borrow_mut();
            c.fin = true;
            c.stalled = false;
        }
        self.net.set_wait_deadline(Some(WAIT_BOUND));
        sock.settimeout(Some(HEALED_PROGRESS_BOUND))
            .map_err(|e| CheckError::new(e.to_string()))?;
        for _ in 0..DRAIN_ITERATIONS {
            if self.model.eof_seen || !self.model.healthy(&self.ctl.borrow()) {
                break;
            }
            let r = sock.recv(65536);
            if matches!(&r, Err(e) if e.is_timeout()) {
                let c = self.ctl.borrow();
                return Err(CheckError::new(format!(
                    "drain: no progress for {} s after {} of {} bytes (liveness)",
                    HEALED_PROGRESS_BOUND.as_secs(),
                    self.model.received,
                    c.written
                )));
            }
            let env = self.env();
            self.model
                .on_recv(&r, &self.ctl.borrow(), env)
                .map_err(|e| e.context("drain"))?;
        }
        if !self.model.healthy(&self.ctl.borrow()) {
            return Ok(());
        }
        if !self.model.eof_seen {
            return Err("drain: no end of stream within the loop bound".into());
        }
        // The peer must get everything the SUT sent, within the same bound
        // (the SUT's lost segments wait for its RTO too).
        let polls = HEALED_PROGRESS_BOUND.as_millis() / PEER_POLL.as_millis();
        for _ in 0..polls {
            if self.ctl.borrow().got.len() as u64 >= self.model.sent {
                break;
            }
            self.net.sleep(PEER_POLL);
        }
        let got = self.ctl.borrow().got.len() as u64;
        if got != self.model.sent {
            return Err(CheckError::new(format!(
                "the peer received {got} of the {} bytes the SUT sent (liveness)",
                self.model.sent
            )));
        }
        self.model.check_peer(&self.ctl.borrow())
    }

    /// A fresh connection after everything: the stack still works.
    fn liveness(&mut self) -> Result<(), CheckError> {
        self.net.set_wait_deadline(Some(WAIT_BOUND));
        let ctl: Ctl = Rc::new(RefCell::new(PeerCtl {
            asked: LIVENESS_BYTES as u64,
            fin: true,
            ..PeerCtl::default()
        }));
        {
            let ctl = Rc::clone(&ctl);
            self.sim.peer_host().listen(
                LIVENESS_PORT,
                Box::new(move || Box::new(ScriptedPeer(Rc::clone(&ctl)))),
            );
        }
        let s = self
            .net
            .socket()
            .map_err(|e| CheckError::new(format!("liveness socket: {e}")))?;
        let r = (|| -> Result<(), CheckError> {
            s.settimeout(Some(Duration::from_secs(30)))
                .map_err(|e| CheckError::new(e.to_string()))?;
            s.connect(SocketAddrV4::new(PEER_IP, LIVENESS_PORT))
                .map_err(|e| CheckError::new(format!("liveness connect: {e}")))?;
            let mut out = vec![0u8; LIVENESS_BYTES];
            fill_pattern(0, &mut out);
            s.sendall(&out)
                .map_err(|e| CheckError::new(format!("liveness sendall: {e}")))?;
            let mut got = Vec::new();
            for _ in 0..DRAIN_ITERATIONS {
                let chunk = s
                    .recv(65536)
                    .map_err(|e| CheckError::new(format!("liveness recv: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                got.extend_from_slice(&chunk);
            }
            if got.len() != LIVENESS_BYTES
                || find_pattern_mismatch(PEER_PATTERN_BASE, &got).is_some()
            {
                return Err(CheckError::new(format!(
                    "liveness: received {} bytes, expected {LIVENESS_BYTES} intact",
                    got.len()
                )));
            }
            for _ in 0..200 {
                if ctl.borrow().got.len() >= LIVENESS_BYTES {
                    break;
                }
                self.net.sleep(Duration::from_millis(50));
            }
            let c = ctl.borrow();
            if c.got.len() != LIVENESS_BYTES || find_pattern_mismatch(0, &c.got).is_some() {
                return Err(CheckError::new(format!(
                    "liveness: the peer received {} bytes, expected {LIVENESS_BYTES} intact",
                    c.got.len()
                )));
            }
            Ok(())
        })();
        let closed = s.close();
        r?;
        closed.map_err(|e| CheckError::new(format!("liveness close: {e}")))
    }
}
