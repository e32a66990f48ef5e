//! Several-connection cases: what a program that serves and opens many
//! connections does. The operations open connections from the SUT to the
//! peer's service, have the peer dial the SUT's listener, accept, close and
//! reopen (so connection slots, ephemeral ports, the peer's listening
//! sockets and the firmware's listener pool are all reused), and act on the
//! connection in the current slot with every single-connection operation.
//!
//! Each connection has its own reference model and peer script, with its
//! own pattern offset (so bytes delivered to the wrong connection never
//! match). Beyond the per-connection checks of [`super::super::model`]:
//! - `connect` and `accept` fail only for a reason the environment gives
//!   (a timeout while packets can be lost, an injected status);
//! - `accept` returns each dialed connection once, with the dialing peer's
//!   address, and never one nobody dialed;
//! - once faults heal, every connection still open completes both ways,
//!   and every dialed connection still alive on the peer is accepted while
//!   the listener is open (an accept that never returns is a failure).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::{Errno, Error, Socket};
use efisock_sim::SimPlatform;

use super::super::case::{Op, SLOTS};
use super::super::error::CheckError;
use super::super::model::{Env, Model};
use super::super::peer::{Ctl, PeerCtl, RoutedPeer, ScriptedPeer, Scripts};
use super::phases::HEALED_PROGRESS_BOUND;
use super::session::{Run, STEP_BOUND};
use super::{PEER_IP, SUT_IP, WAIT_BOUND};

/// The peer's service the SUT connects to.
const SERVICE_PORT: u16 = 7600;
/// The SUT's listening port.
const LISTEN_PORT: u16 = 7601;
/// Timeout of `connect` (the retransmitted SYNs of a lossy link fit in it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of every other call on a connection or the listener (as the
/// single-connection cases use).
const CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// Pattern offsets of successive connections are this far apart (far
/// beyond any stream a case sends).
const STREAM_SPACING: u64 = 1 << 32;

/// One connection slot: its socket, model and peer script.
#[derive(Default)]
struct Slot {
    sock: Option<Socket<SimPlatform>>,
    model: Model,
    ctl: Ctl,
}

/// A connection the peer dialed to the SUT's listener.
struct Dialed {
    ctl: Ctl,
    accepted: bool,
    /// The listener open when it was dialed (its generation), if any.
    listener: Option<u64>,
}

/// The state of a several-connection run beside the single-connection
/// [`Run`] it drives.
pub(super) struct Multi {
    slots: Vec<Slot>,
    current: usize,
    listener: Option<Socket<SimPlatform>>,
    /// A listener was open on the port before (reopening may then find the
    /// port still used by its accepted connections: EADDRINUSE).
    listened_before: bool,
    /// Listeners opened so far; the open one is the latest.
    generation: u64,
    dialed: Vec<Dialed>,
    scripts: Scripts,
    next_base: u64,
}

/// The peer saw an RST from the SUT on a connection the SUT's application
/// never closed, while no packet could be lost or delayed past a timeout
/// and no status was injected: nothing explains it (EDK2 resets an open
/// connection only after its retries, a keep-alive or connection timeout,
/// or a segment it cannot accept).
fn unexplained_reset_of_peer(ctl: &PeerCtl, closed_by_sut: bool, env: Env) -> bool {
    ctl.reset_by_sut
        && !ctl.rst
        && !closed_by_sut
        && !env.timeouts_possible
        && !env.injected_reset
        && !env.injected_no_resources
        && !env.injected_other
}

fn legal_failure(e: &Error, env: Env) -> bool {
    let timeout = e.is_timeout() || e.errno() == Some(Errno::ETIMEDOUT);
    (timeout && env.timeouts_possible)
        || env.injected_reset
        || env.injected_no_resources
        || env.injected_other
}

impl Multi {
    /// Puts the peer's service up.
    pub(super) fn new(run: &Run<'_>) -> Multi {
        let scripts: Scripts = Rc::new(RefCell::new(BTreeMap::new()));
        {
            let scripts = Rc::clone(&scripts);
            run.sim.peer_host().listen(
                SERVICE_PORT,
                Box::new(move || Box::new(RoutedPeer::new(Rc::clone(&scripts)))),
            );
        }
        Multi {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            current: 0,
            listener: None,
            listened_before: false,
            generation: 0,
            dialed: Vec::new(),
            scripts,
            next_base: 0,
        }
    }

    /// The operations, each checked.
    pub(super) fn steps(&mut self, run: &mut Run<'_>) -> Result<(), CheckError> {
        for (i, op) in run.case.ops.iter().enumerate() {
            run.net.set_wait_deadline(Some(STEP_BOUND));
            self.step(run, *op).map_err(|e| e.at_step(i, *op))?;
        }
        Ok(())
    }

    fn step(&mut self, run: &mut Run<'_>, op: Op) -> Result<(), CheckError> {
        match op {
            Op::Slot(k) => {
                self.current = usize::from(k).min(self.slots.len() - 1);
                Ok(())
            }
            Op::Open => self.open(run),
            Op::Listen(backlog) => self.listen(run, backlog),
            Op::Unlisten => self.unlisten(run),
            Op::Dial => {
                self.dial(run);
                Ok(())
            }
            Op::Accept => self.accept(run),
            op => {
                let slot = &mut self.slots[self.current];
                match &slot.sock {
                    Some(sock) => with_slot(run, &mut slot.model, &slot.ctl, |run| {
                        run.step(sock, op)?;
                        run.model.check_peer(&run.ctl.borrow())
                    }),
                    None => run.world_step(op).unwrap_or(Ok(())),
                }
            }
        }
    }

    fn new_ctl(&mut self) -> Ctl {
        self.next_base += STREAM_SPACING;
        Rc::new(RefCell::new(PeerCtl {
            base: self.next_base,
            ..PeerCtl::default()
        }))
    }

    /// Closes what the current slot holds (checked like the `C` operation).
    fn vacate(&mut self, run: &mut Run<'_>) -> Result<(), CheckError> {
        let slot = &mut self.slots[self.current];
        if let Some(sock) = slot.sock.take() {
            with_slot(run, &mut slot.model, &slot.ctl, |run| {
                run.step(&sock, Op::Close)
            })?;
        }
        Ok(())
    }

    fn fill(&mut self, sock: Socket<SimPlatform>, ctl: Ctl) -> Result<(), CheckError> {
        sock.settimeout(Some(CALL_TIMEOUT))
            .map_err(|e| CheckError::new(format!("settimeout: {e}")))?;
        let base = ctl.borrow().base;
        self.slots[self.current] = Slot {
            sock: Some(sock),
            model: Model {
                base,
                ..Model::default()
            },
            ctl,
        };
        Ok(())
    }

    fn open(&mut self, run: &mut Run<'_>) -> Result<(), CheckError> {
        self.vacate(run)?;
        run.net.set_wait_deadline(Some(WAIT_BOUND));
        let s = run
            .net
            .socket()
            .map_err(|e| CheckError::new(format!("socket: {e}")))?;
        s.settimeout(Some(CONNECT_TIMEOUT))
            .map_err(|e| CheckError::new(format!("settimeout: {e}")))?;
        if let Err(e) = s.connect(SocketAddrV4::new(PEER_IP, SERVICE_PORT)) {
            let _ = s.close();
            if legal_failure(&e, run.env()) {
                return Ok(());
            }
            return Err(CheckError::new(format!(
                "connect: error {e} is not explained by anything that happened"
            )));
        }
        let port = s
            .getsockname()
            .map_err(|e| CheckError::new(format!("getsockname: {e}")))?
            .port();
        let ctl = self.new_ctl();
        self.scripts.borrow_mut().insert(port, Rc::clone(&ctl));
        self.fill(s, ctl)
    }

    fn listen(&mut self, run: &mut Run<'_>, backlog: u8) -> Result<(), CheckError> {
        if let Some(l) = &self.listener {
            // Python: listen() again only changes the backlog.
            return l
                .listen(u32::from(backlog))
                .map_err(|e| CheckError::new(format!("listen again: {e}")));
        }
        let l = run
            .net
            .socket()
            .map_err(|e| CheckError::new(format!("socket: {e}")))?;
        let r = l
            .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LISTEN_PORT))
            .and_then(|()| l.listen(u32::from(backlog)));
        match r {
            Ok(()) => {
                l.settimeout(Some(CALL_TIMEOUT))
                    .map_err(|e| CheckError::new(format!("settimeout: {e}")))?;
                self.listener = Some(l);
                self.listened_before = true;
                self.generation += 1;
                Ok(())
            }
            Err(e) => {
                let _ = l.close();
                // Without SO_REUSEADDR the port stays in use while the
                // connections the previous listener accepted live on it.
                let in_use = e.errno() == Some(Errno::EADDRINUSE) && self.listened_before;
                if in_use || legal_failure(&e, run.env()) {
                    Ok(())
                } else {
                    Err(CheckError::new(format!(
                        "listen: error {e} is not explained by anything that happened"
                    )))
                }
            }
        }
    }

    fn unlisten(&mut self, run: &mut Run<'_>) -> Result<(), CheckError> {
        match self.listener.take() {
            Some(l) => l.close().or_else(|e| {
                if legal_failure(&e, run.env()) {
                    Ok(())
                } else {
                    Err(CheckError::new(format!("listener close: {e}")))
                }
            }),
            None => Ok(()),
        }
    }

    fn dial(&mut self, run: &mut Run<'_>) {
        let ctl = self.new_ctl();
        run.sim.peer_host().connect(
            SocketAddrV4::new(SUT_IP, LISTEN_PORT),
            Box::new(ScriptedPeer(Rc::clone(&ctl))),
        );
        let listener = self.listener.as_ref().map(|_| self.generation);
        self.dialed.push(Dialed {
            ctl,
            accepted: false,
            listener,
        });
    }

    /// The dialed connection `from` is: each is accepted once, and only
    /// connections the peer dialed are.
    fn claim(&mut self, from: SocketAddrV4) -> Result<Ctl, CheckError> {
        if *from.ip() != PEER_IP {
            return Err(CheckError::new(format!(
                "accept returned a connection from {from}, but only {PEER_IP} dials"
            )));
        }
        let port = from.port();
        let with_port = |d: &Dialed| d.ctl.borrow().local_port == port;
        if let Some(d) = self.dialed.iter_mut().find(|d| with_port(d) && !d.accepted) {
            d.accepted = true;
            return Ok(Rc::clone(&d.ctl));
        }
        Err(CheckError::new(if self.dialed.iter().any(with_port) {
            format!("accept returned the connection from {from} a second time")
        } else {
            format!("accept returned a connection from {from} that the peer never dialed")
        }))
    }

    fn accept(&mut self, run: &mut Run<'_>) -> Result<(), CheckError> {
        if self.listener.is_none() {
            return Ok(());
        }
        self.vacate(run)?;
        let r = self.listener.as_ref().map(Socket::accept);
        match r {
            Some(Ok((s, from))) => {
                let ctl = self.claim(from)?;
                self.fill(s, ctl)
            }
            Some(Err(e)) if e.is_timeout() || e.errno() == Some(Errno::EAGAIN) => Ok(()),
            Some(Err(e)) if legal_failure(&e, run.env()) => Ok(()),
            Some(Err(e)) => Err(CheckError::new(format!(
                "accept: error {e} is not explained by anything that happened"
            ))),
            None => Ok(()),
        }
    }

    /// Completion: faults heal; every open connection completes both ways,
    /// then every dialed connection still alive on the peer is accepted and
    /// completes while the listener is open.
    pub(super) fn complete(&mut self, run: &mut Run<'_>) -> Result<(), CheckError> {
        self.check_resets(run)?;
        for k in 0..self.slots.len() {
            self.current = k;
            let slot = &mut self.slots[k];
            if let Some(sock) = slot.sock.take() {
                let r = with_slot(run, &mut slot.model, &slot.ctl, |run| run.complete(&sock))
                    .map_err(|e| e.context(format!("connection slot {k}")));
                let _ = sock.close();
                r?;
            }
        }
        if self.listener.is_none() {
            return Ok(());
        }
        run.net.set_wait_deadline(Some(WAIT_BOUND));
        if let Some(l) = &self.listener {
            l.settimeout(Some(HEALED_PROGRESS_BOUND))
                .map_err(|e| CheckError::new(format!("settimeout: {e}")))?;
        }
        self.current = 0;
        while let Some(pending) = self.awaited_dial() {
            let r = self.listener.as_ref().map(Socket::accept);
            match r {
                Some(Ok((s, from))) => {
                    let ctl = self.claim(from).map_err(|e| e.context("completion"))?;
                    self.fill(s, ctl)?;
                    let slot = &mut self.slots[0];
                    let sock = slot.sock.take().expect("just filled");
                    let r = with_slot(run, &mut slot.model, &slot.ctl, |run| run.complete(&sock))
                        .map_err(|e| e.context(format!("connection accepted from {from}")));
                    let _ = sock.close();
                    r?;
                }
                Some(Err(e)) if e.is_timeout() => {
                    // The peer may have given up meanwhile (its connect
                    // timer ran out under faults): then nothing is owed.
                    if self.awaited_dial().is_some() {
                        return Err(CheckError::new(format!(
                            "accept: no connection within {} s after healing, although the \
                             peer's connection from port {pending} is open (liveness)",
                            HEALED_PROGRESS_BOUND.as_secs()
                        )));
                    }
                }
                Some(Err(e)) if legal_failure(&e, run.env()) => return Ok(()),
                Some(Err(e)) => {
                    return Err(CheckError::new(format!(
                        "accept after healing: error {e} is not explained by anything that happened"
                    )));
                }
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// No connection the SUT holds open, or that waits on its open
    /// listener, was reset from the SUT's side without a reason.
    fn check_resets(&self, run: &Run<'_>) -> Result<(), CheckError> {
        let env = run.env();
        for (k, slot) in self.slots.iter().enumerate() {
            if slot.sock.is_some()
                && unexplained_reset_of_peer(&slot.ctl.borrow(), slot.model.closed, env)
            {
                return Err(CheckError::new(format!(
                    "connection slot {k}: the peer was reset by the SUT, whose application \
                     never closed the connection"
                )));
            }
        }
        let open = self.listener.as_ref().map(|_| self.generation);
        for d in &self.dialed {
            let c = d.ctl.borrow();
            if !d.accepted
                && open.is_some()
                && d.listener == open
                && unexplained_reset_of_peer(&c, false, env)
            {
                return Err(CheckError::new(format!(
                    "the connection the peer dialed from port {} was reset by the SUT before \
                     it was accepted, with the listener open",
                    c.local_port
                )));
            }
        }
        Ok(())
    }

    /// The peer port of a connection dialed to the open listener that is
    /// still alive on the peer and not yet accepted. (One dialed to a
    /// listener closed since may live on, unaccepted, in that listener's
    /// backlog; one dialed while none listened was refused, or is accepted
    /// by a later listener when a retransmitted SYN finds it.)
    fn awaited_dial(&self) -> Option<u16> {
        let open = self.listener.as_ref().map(|_| self.generation);
        self.dialed
            .iter()
            .filter(|d| !d.accepted && open.is_some() && d.listener == open)
            .map(|d| d.ctl.borrow())
            .find(|c| !c.peer_state_closed)
            .map(|c| c.local_port)
    }

    /// Closes every socket the run still holds.
    pub(super) fn close_all(&mut self) {
        for slot in &mut self.slots {
            if let Some(s) = slot.sock.take() {
                let _ = s.close();
            }
        }
        if let Some(l) = self.listener.take() {
            let _ = l.close();
        }
    }
}

/// Runs `f` with `model` and `ctl` as the run's current connection.
fn with_slot<R>(
    run: &mut Run<'_>,
    model: &mut Model,
    ctl: &Ctl,
    f: impl FnOnce(&mut Run<'_>) -> R,
) -> R {
    std::mem::swap(&mut run.model, model);
    let previous = std::mem::replace(&mut run.ctl, Rc::clone(ctl));
    let r = f(run);
    run.ctl = previous;
    std::mem::swap(&mut run.model, model);
    r
}
