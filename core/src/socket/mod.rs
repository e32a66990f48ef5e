//! The socket state machine: Python `socket` semantics over one TCP4 child
//! each, without ever waiting.
//!
//! Why this layer: `Sock` is the per-socket state kept in the socket table
//! (so completions, select and teardown reach it); the user's handle and
//! every call that may block live above `Net`, in `api`. `progress` is the
//! single place where signalled tokens change a socket's state, in
//! submission order per socket (connect, then Receive, then Transmits FIFO,
//! then Accept, then Close). The submodules hold one concern each: `phase`
//! (the life and write-side states and their transitions), `readiness`,
//! `configure` (access point, options, `Configure`), `stream` (the send
//! and recv decisions), `table` (the socket table), `teardown` (close
//! decisions and the graveyard).

pub(crate) mod configure;
pub(crate) mod phase;
pub(crate) mod readiness;
pub(crate) mod stream;
pub(crate) mod table;
pub(crate) mod teardown;

pub(crate) use phase::{ConnectDone, Phase, ReadSide, WriteSide};
pub(crate) use readiness::{Readiness, ReadyInputs, accept_wanted, readiness};

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddrV4;
use core::time::Duration;

use crate::calls::Ctx;
use crate::config::MAX_TX_SLOTS;
use crate::error::{Errno, Error, FirmwareCall, StatusMeaning, errno_for};
use crate::firmware::{Handle, Platform, Status, Tcp4, status};
use crate::slots::{SlotId, SlotState, SlotTable, TokenKind};

/// A socket's number (its `fileno()`), unique within a `Net`.
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// # let net = efisock::Net::new(platform);
/// # net.set_static(
/// #     std::net::Ipv4Addr::new(10, 0, 2, 15),
/// #     std::net::Ipv4Addr::new(255, 255, 255, 0),
/// #     None,
/// # )?;
/// let a = net.socket()?;
/// let b = net.socket()?;
/// assert_ne!(a.fileno(), b.fileno());
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SocketId(pub u32);

/// Which directions `Socket::shutdown` closes.
///
/// EFI has no half-close: after `shutdown(Write)` the firmware answers any
/// data the peer still sends with RST (EDK2 `TcpInput`, measured on OVMF),
/// and `recv` then returns end of stream. Read what you expect before
/// shutting the write side down.
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// # let net = efisock::Net::new(platform);
/// # net.set_static(
/// #     std::net::Ipv4Addr::new(10, 0, 2, 15),
/// #     std::net::Ipv4Addr::new(255, 255, 255, 0),
/// #     None,
/// # )?;
/// use efisock::Shutdown;
///
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// s.sendall(b"last words")?;
/// assert_eq!(s.recv(64)?, b"last words"); // the echo, before the FIN
/// s.shutdown(Shutdown::Write)?; // FIN after the data
/// assert_eq!(s.recv(64)?, b"", "the peer closed too: EOF");
/// assert_eq!(
///     s.send(b"more").unwrap_err().errno(),
///     Some(efisock::Errno::EPIPE)
/// );
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shutdown {
    /// SHUT_RD: local only; queued and later data is discarded, recv sees EOF.
    Read,
    /// SHUT_WR: after pending Transmits, a graceful Close (FIN).
    Write,
    /// SHUT_RDWR: both.
    Both,
}

impl Shutdown {
    /// (read, write): the directions this shuts.
    pub(crate) const fn directions(self) -> (bool, bool) {
        match self {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        }
    }
}

/// Per-socket state (lives in the `Net`'s shared state).
pub(crate) struct Sock<T> {
    pub tcp: T,
    pub child: Handle,
    pub instance: u64,
    pub phase: Phase,
    pub configured: bool,
    /// Address given to bind (port 0 = ephemeral).
    pub bound: Option<SocketAddrV4>,
    /// The local address the firmware chose (after Configure).
    pub local: Option<SocketAddrV4>,
    pub peer: Option<SocketAddrV4>,
    pub timeout: Option<Duration>,
    pub reuseaddr: bool,
    /// `SO_LINGER`: `Some(0)` closes abortively (RST); `Some(d)` bounds how
    /// long a graceful close may take before the reset fallback.
    pub linger: Option<core::time::Duration>,
    // receive side
    pub rx: VecDeque<u8>,
    pub read: ReadSide,
    pub recv_slot: Option<SlotId>,
    /// Pending error for SO_ERROR / the next call.
    pub so_error: Option<Error>,
    /// The peer reset the connection (send → ECONNRESET).
    pub reset: bool,
    // send side
    pub tx_pending: VecDeque<SlotId>,
    pub tx_idle: Vec<SlotId>,
    pub tx_queued: usize,
    // listen side
    pub accept_slot: Option<SlotId>,
    pub accept_q: VecDeque<Handle>,
    pub accept_err: Option<Error>,
    // shutdown / close
    pub shut_rd: bool,
    pub write: WriteSide,
}

impl<T> Sock<T> {
    /// A fresh socket on a new child.
    pub fn new(tcp: T, child: Handle, instance: u64) -> Self {
        Sock {
            tcp,
            child,
            instance,
            phase: Phase::Fresh,
            configured: false,
            bound: None,
            local: None,
            peer: None,
            timeout: None,
            reuseaddr: false,
            linger: None,
            rx: VecDeque::new(),
            read: ReadSide::Open,
            recv_slot: None,
            so_error: None,
            reset: false,
            tx_pending: VecDeque::new(),
            tx_idle: Vec::new(),
            tx_queued: 0,
            accept_slot: None,
            accept_q: VecDeque::new(),
            accept_err: None,
            shut_rd: false,
            write: WriteSide::Open,
        }
    }

    /// Readiness inputs for select/poller.
    pub fn readiness(&self, send_budget: usize) -> Readiness {
        readiness(&ReadyInputs {
            phase: self.phase,
            rx_queued: !self.rx.is_empty(),
            rx_eof: self.read.is_ended() || self.shut_rd,
            rx_err: self.read.has_error(),
            accept_queued: !self.accept_q.is_empty() || self.accept_err.is_some(),
            budget_free: self.tx_queued < send_budget && self.tx_pending.len() < MAX_TX_SLOTS,
            shut_wr: self.write.is_shut(),
            so_error: self.so_error.is_some(),
            reset: self.reset,
        })
    }
}

impl<T: Tcp4> Sock<T> {
    /// All slots this socket holds.
    pub fn slots(&self) -> Vec<SlotId> {
        let mut v: Vec<SlotId> = Vec::new();
        v.extend(self.recv_slot);
        v.extend(self.phase.connect_slot());
        v.extend(self.accept_slot);
        v.extend(self.write.close_slot());
        v.extend(self.tx_pending.iter().copied());
        v.extend(self.tx_idle.iter().copied());
        v
    }

    /// Received bytes kept in user space before the Receive is no longer
    /// re-armed (flow control: the firmware window then closes).
    fn rx_limit<P: Platform>(ctx: &Ctx<'_, P>) -> usize {
        ctx.cfg.recv_buffer_size.max(1).saturating_mul(4)
    }

    /// Applies signalled tokens to the state, then re-arms Receive/Accept
    /// and submits a deferred Close. Called at every safe point.
    pub fn progress<P: Platform>(&mut self, ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
        self.progress_connect(ctx, slots);
        self.progress_receive(slots);
        self.progress_transmit(slots);
        self.progress_accept(ctx, slots);
        self.rearm(ctx, slots);
    }

    fn take_done(slots: &mut SlotTable, id: Option<SlotId>) -> Option<Status> {
        let id = id?;
        let slot = slots.get_mut(id)?;
        let (state, status) = slot.state.take().ok()?;
        slot.state = state;
        Some(status)
    }

    fn progress_connect<P: Platform>(&mut self, ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
        let slot = self.phase.connect_slot();
        let Some(status) = Self::take_done(slots, slot) else {
            return;
        };
        if let Some(id) = slot {
            slots.free(ctx, id);
        }
        let (outcome, next) = self.phase.connect_done(status);
        self.phase = next;
        match outcome {
            ConnectDone::Abandoned => {}
            ConnectDone::Connected => self.learn_local(ctx),
            ConnectDone::Failed(e) => self.so_error = Some(e),
        }
    }

    /// Reads the station address/port the firmware chose.
    pub fn learn_local<P: Platform>(&mut self, ctx: &Ctx<'_, P>) {
        let (st, _, cfg) = ctx.mode(&self.tcp, self.instance);
        if st == Status::SUCCESS {
            if let Some(cfg) = cfg {
                let ap = &cfg.access_point;
                self.local = Some(SocketAddrV4::new(
                    ap.station_address.into(),
                    ap.station_port,
                ));
                if ap.active_flag.is_true() || self.phase == Phase::Connected {
                    let remote = SocketAddrV4::new(ap.remote_address.into(), ap.remote_port);
                    if remote.port() != 0 {
                        self.peer = Some(remote);
                    }
                }
            }
        }
    }

    fn progress_receive(&mut self, slots: &mut SlotTable) {
        let Some(status) = Self::take_done_peek(slots, self.recv_slot) else {
            return;
        };
        let id = self.recv_slot.unwrap_or_default();
        match errno_for(FirmwareCall::Receive, status) {
            StatusMeaning::Success => {
                if !self.shut_rd {
                    self.rx.extend(slots.received(id));
                }
            }
            StatusMeaning::EndOfStream => self.end_of_stream(),
            StatusMeaning::Error(errno) => self.receive_failed(errno, status),
        }
        if let Some(slot) = slots.get_mut(id) {
            slot.state = SlotState::Idle;
        }
    }

    /// Reads the status of a Done slot without leaving Done (data is read after).
    fn take_done_peek(slots: &SlotTable, id: Option<SlotId>) -> Option<Status> {
        match slots.state(id?) {
            SlotState::Done(s) => Some(s),
            _ => None,
        }
    }

    fn end_of_stream(&mut self) {
        self.read = core::mem::replace(&mut self.read, ReadSide::Open).ended();
    }

    fn receive_failed(&mut self, errno: Errno, status: Status) {
        if errno == Errno::ECONNRESET {
            self.reset = true;
            #[cfg(feature = "deliberate-bugs")]
            if crate::deliberate::is_enabled(crate::deliberate::Bug::EofOnReset) {
                // DELIBERATE BUG (d): the reset reads as a clean end of stream.
                self.end_of_stream();
                return;
            }
        }
        if errno == Errno::ECONNABORTED && self.write.close_slot().is_some() {
            // Our own teardown aborted it: end of stream, not an error.
            self.end_of_stream();
            return;
        }
        let err = Error::from_status(FirmwareCall::Receive, status);
        self.read = core::mem::replace(&mut self.read, ReadSide::Open).failed(err.clone());
        if self.so_error.is_none() {
            self.so_error = Some(err);
        }
    }

    fn progress_transmit(&mut self, slots: &mut SlotTable) {
        while let Some(&id) = self.tx_pending.front() {
            let Some(status) = Self::take_done(slots, Some(id)) else {
                break;
            };
            self.tx_pending.pop_front();
            let len = slots.get(id).map_or(0, |s| s.len);
            self.tx_queued = self.tx_queued.saturating_sub(len);
            self.tx_idle.push(id);
            if status != Status::SUCCESS {
                let err = Error::from_status(FirmwareCall::Transmit, status);
                if status == status::CONNECTION_RESET {
                    self.reset = true;
                }
                if self.so_error.is_none() && status != Status::ABORTED {
                    self.so_error = Some(err);
                }
            }
        }
    }

    fn progress_accept<P: Platform>(&mut self, ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
        let Some(status) = Self::take_done_peek(slots, self.accept_slot) else {
            return;
        };
        let id = self.accept_slot.unwrap_or_default();
        let child = slots.accepted_child(id);
        if let Some(slot) = slots.get_mut(id) {
            slot.state = SlotState::Idle;
        }
        if status == Status::SUCCESS && !child.is_null() {
            ctx.stats.adopt_child();
            self.accept_q.push_back(child);
        } else if status != Status::ABORTED && self.accept_err.is_none() {
            self.accept_err = Some(Error::from_status(FirmwareCall::Accept, status));
        }
    }

    /// Keeps one Receive armed while connected, one Accept while listening,
    /// and submits a deferred graceful Close once the Transmits drained.
    fn rearm<P: Platform>(&mut self, ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
        if self.write.fin_due(!self.tx_pending.is_empty()) {
            if let Err(e) = teardown::submit_close(ctx, slots, self, false) {
                self.write = WriteSide::CloseFailed(Some(e));
            }
        }
        let closing = self.write.close_slot().is_some();
        if self.phase == Phase::Connected
            && !closing
            && self.read.is_open()
            && (self.rx.len() < Self::rx_limit(ctx) || self.shut_rd)
        {
            self.arm_receive(ctx, slots);
        }
        if let Phase::Listening { backlog } = self.phase {
            if !closing && self.accept_err.is_none() && accept_wanted(self.accept_q.len(), backlog)
            {
                self.arm_accept(ctx, slots);
            }
        }
    }

    fn arm_receive<P: Platform>(&mut self, ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
        let id = match self.recv_slot {
            Some(id) if slots.state(id) == SlotState::Idle => id,
            Some(_) => return,
            None => match slots.alloc(
                ctx,
                TokenKind::Receive,
                ctx.cfg.recv_buffer_size.max(1),
                self.instance,
            ) {
                Ok(id) => {
                    self.recv_slot = Some(id);
                    id
                }
                // Out of slots or pool: retried at the next safe point.
                Err(_) => return,
            },
        };
        let st = slots.submit_receive(ctx, &self.tcp, id);
        if st == Status::OUT_OF_RESOURCES {
            // Transient (EDK2's SockRcv could not buffer the token): the
            // connection is intact, so retry at the next safe point rather
            // than end the stream. Found by the swarm fuzzer: treating it as
            // fatal made recv report end of stream with the peer's data
            // still coming.
            return;
        }
        if st == Status::ACCESS_DENIED && self.connection_ended(ctx) {
            // EDK2's SockRcv refuses a Receive on a connection that is no
            // longer connected before it looks at the stored error, so when
            // an RST (or a retransmission timeout) ends the connection while
            // no Receive was armed, the reason is lost: the firmware only
            // says ACCESS_DENIED. Linux reports ECONNRESET for a connection
            // that ended under the reader, and so do we. Found by the
            // ordering fuzzer (peer RST while the last completion waited).
            self.receive_failed(Errno::ECONNRESET, status::CONNECTION_RESET);
            return;
        }
        match errno_for(FirmwareCall::Receive, st) {
            StatusMeaning::Success => {}
            StatusMeaning::EndOfStream => self.end_of_stream(),
            StatusMeaning::Error(errno) => self.receive_failed(errno, st),
        }
    }

    /// Whether the firmware reports this connection CLOSED (it ended without
    /// our Close).
    fn connection_ended<P: Platform>(&self, ctx: &Ctx<'_, P>) -> bool {
        let (st, state, _) = ctx.mode(&self.tcp, self.instance);
        st == Status::SUCCESS && state == crate::firmware::Tcp4ConnectionState::CLOSED
    }

    fn arm_accept<P: Platform>(&mut self, ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
        let id = match self.accept_slot {
            Some(id) if slots.state(id) == SlotState::Idle => id,
            Some(_) => return,
            None => match slots.alloc(ctx, TokenKind::Accept, 0, self.instance) {
                Ok(id) => {
                    self.accept_slot = Some(id);
                    id
                }
                Err(_) => return,
            },
        };
        let st = slots.submit_accept(ctx, &self.tcp, id);
        if st != Status::SUCCESS && self.accept_err.is_none() {
            self.accept_err = Some(Error::from_status(FirmwareCall::Accept, st));
        }
    }

    /// The pending error for SO_ERROR: taken (cleared).
    pub fn take_so_error(&mut self) -> Option<Error> {
        self.so_error.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_directions() {
        assert_eq!(Shutdown::Read.directions(), (true, false));
        assert_eq!(Shutdown::Write.directions(), (false, true));
        assert_eq!(Shutdown::Both.directions(), (true, true));
    }

    #[test]
    fn shut_rd_makes_readable_and_hup() {
        let mut s: Sock<()> = Sock::new((), core::ptr::null_mut(), 1);
        s.phase = Phase::Connected;
        s.shut_rd = true;
        let r = s.readiness(10);
        assert!(r.read && r.hup && r.write);
    }
}
