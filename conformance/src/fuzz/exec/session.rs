//! One run's state and its operation steps: opening the case's connection,
//! executing every [`Op`] and checking the model after each.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::firmware::{Status, status};
use efisock::{Errno, Interest, Net, Socket};
use efisock_sim::{LinkConfig, Sim, SimPlatform};

use super::super::case::{Direction, FuzzCase, Op};
use super::super::error::CheckError;
use super::super::model::{Env, Model};
use super::super::peer::{Ctl, PeerCtl, ScriptedPeer};
use super::{PEER_IP, SUT_IP};
use crate::pattern::fill_pattern;

/// Peer port for the case's connection (direction Connect).
const PEER_PORT: u16 = 7500;
/// SUT port for the case's connection (direction Accept).
const SUT_PORT: u16 = 7501;
/// Bound of each operation step. A step that waits longer ends as its own
/// timeout would, which the model accepts (a blocking recv with nothing to
/// come waits exactly this long), so the bound only trades simulated idle
/// time for cases per second; the completion phase has its own, longer one.
pub(super) const STEP_BOUND: Duration = Duration::from_secs(5);

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

pub(super) struct Run<'a> {
    pub(super) case: &'a FuzzCase,
    pub(super) sim: Sim,
    pub(super) net: Net<SimPlatform>,
    pub(super) ctl: Ctl,
    pub(super) model: Model,
    /// The peer stopped answering at some point (retransmission timeouts
    /// become possible).
    pub(super) crashed: bool,
}

impl<'a> Run<'a> {
    /// A run of `case` on `sim` with the socket layer `net` (address
    /// already configured) and the script's peer control `ctl`.
    pub(super) fn new(case: &'a FuzzCase, sim: Sim, net: Net<SimPlatform>, ctl: Ctl) -> Self {
        Run {
            case,
            sim,
            net,
            ctl,
            model: Model::default(),
            crashed: false,
        }
    }
}

impl Run<'_> {
    pub(super) fn env(&self) -> Env {
        let mut env = env_of(&self.sim, self.case);
        env.timeouts_possible |= self.crashed;
        env
    }

    /// Opens the case's connection.
    pub(super) fn open(&mut self) -> Result<Socket<SimPlatform>, CheckError> {
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
            Direction::Multi => {
                return Err(CheckError::new(
                    "a several-connection case opens its connections in its operations",
                ));
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

    pub(super) fn steps(&mut self, sock: &Socket<SimPlatform>) -> Result<(), CheckError> {
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
        fill_pattern(self.model.base + self.model.sent, &mut data);
        data
    }

    /// The operations that act on the world rather than on a connection
    /// (time passing, the peer crashing); None for any other.
    pub(super) fn world_step(&mut self, op: Op) -> Option<Result<(), CheckError>> {
        match op {
            Op::Sleep(ms) => self.net.sleep(Duration::from_millis(u64::from(ms))),
            Op::Compute(ms) => self.sim.advance(u64::from(ms) * 1_000_000),
            Op::PeerCrash(ms) => {
                self.crashed = true;
                self.sim.set_link(LinkConfig {
                    loss: 1.0,
                    ..LinkConfig::default()
                });
                self.net.sleep(Duration::from_millis(u64::from(ms)));
                self.sim.set_link(LinkConfig::default());
            }
            _ => return None,
        }
        Some(Ok(()))
    }

    /// One operation on the connection `sock`, checked against the model.
    pub(super) fn step(&mut self, sock: &Socket<SimPlatform>, op: Op) -> Result<(), CheckError> {
        if let Some(r) = self.world_step(op) {
            return r;
        }
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
            // Connection management belongs to several-connection cases
            // (`super::multi`), which handle it before reaching here.
            Op::Slot(_)
            | Op::Open
            | Op::Listen(_)
            | Op::Unlisten
            | Op::Dial
            | Op::Accept
            | Op::Sleep(_)
            | Op::Compute(_)
            | Op::PeerCrash(_) => Ok(()),
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
}
