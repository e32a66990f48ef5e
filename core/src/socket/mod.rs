//! Sockets: Python `socket` semantics over one TCP4 child each.
//!
//! Why this split: `Sock` is the per-socket state machine kept inside the
//! `Net`'s shared state (so completions, select and teardown reach it);
//! `Socket` is the user's handle. `progress` is the single place where
//! signalled tokens change a socket's state, in submission order per socket
//! (connect, then Receive, then Transmits FIFO, then Accept, then Close).
//! The submodules hold one concern each: `connect`, `stream` (send/recv),
//! `listen` (bind/listen/accept), `teardown` (close, shutdown, graveyard).

pub(crate) mod configure;
pub(crate) mod stream;
pub(crate) mod table;
pub(crate) mod teardown;

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
/// s.shutdown(Shutdown::Write)?; // FIN after the data
/// assert_eq!(s.recv(64)?, b"last words");
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

/// Where a socket is in its life, with the Connect token that belongs to
/// that stage.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Created (maybe bound), not connecting or listening.
    Fresh,
    /// The Connect token `slot` is pending.
    Connecting { slot: SlotId },
    /// Connection established (connect succeeded or accepted).
    Connected,
    /// Connect failed or was aborted; the child is unconfigured or dead.
    /// `abandoned_connect`: the Connect token of an attempt we aborted
    /// ourselves, until the firmware signals it (its ABORTED is ours, not
    /// an error to report).
    Failed { abandoned_connect: Option<SlotId> },
    /// Listening with an Accept kept armed while fewer than `backlog`
    /// accepted connections wait for `accept()` (see [`accept_wanted`]).
    Listening { backlog: u32 },
}

/// The write side of a connection and the Close token that ends it.
/// Replaces four fields (shut_wr, fin_wanted, close_slot, close_err) whose
/// combinations were mostly illegal.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum WriteSide {
    /// Sending.
    Open,
    /// `shutdown(Write)`: the graceful Close goes out once the Transmits
    /// drained.
    FinWanted,
    /// Our Close token `slot` was submitted (graceful, or abortive at close).
    Closing { slot: SlotId },
    /// Submitting the deferred Close failed; the error is reported once, to
    /// the `shutdown` that waits for the FIN.
    CloseFailed(Option<Error>),
}

impl WriteSide {
    /// The Close token, if submitted.
    pub(crate) const fn close_slot(&self) -> Option<SlotId> {
        match self {
            WriteSide::Closing { slot } => Some(*slot),
            _ => None,
        }
    }

    /// True once the write side is shut (send fails with EPIPE).
    pub(crate) const fn is_shut(&self) -> bool {
        !matches!(self, WriteSide::Open)
    }

    /// Whether the deferred graceful Close is due now (pure): wanted, and
    /// no Transmit in flight.
    pub(crate) const fn fin_due(&self, transmits_in_flight: bool) -> bool {
        matches!(self, WriteSide::FinWanted) && !transmits_in_flight
    }

    /// What `shutdown(Write)` waits for: Some once the FIN was submitted
    /// (Ok) or its submission failed (the error, once); None while pending.
    pub(crate) fn take_fin_outcome(&mut self) -> Option<Result<(), Error>> {
        match self {
            WriteSide::Closing { .. } => Some(Ok(())),
            WriteSide::CloseFailed(err) => err.take().map(Err),
            WriteSide::Open | WriteSide::FinWanted => None,
        }
    }
}

/// What a signalled Connect token means for the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectDone {
    /// Connected: learn the addresses.
    Connected,
    /// Failed with this error (for SO_ERROR and the next call).
    Failed(Error),
    /// The attempt we aborted ended: stay Failed, report nothing.
    Abandoned,
}

impl Phase {
    /// The Connect token this phase owns, if any.
    pub(crate) const fn connect_slot(self) -> Option<SlotId> {
        match self {
            Phase::Connecting { slot } => Some(slot),
            Phase::Failed { abandoned_connect } => abandoned_connect,
            Phase::Fresh | Phase::Connected | Phase::Listening { .. } => None,
        }
    }

    /// True for `Connecting`.
    pub(crate) const fn is_connecting(self) -> bool {
        matches!(self, Phase::Connecting { .. })
    }

    /// True for `Failed`.
    pub(crate) const fn is_failed(self) -> bool {
        matches!(self, Phase::Failed { .. })
    }

    /// The Connect token completed with `status` (pure): the outcome and
    /// the next phase.
    pub(crate) fn connect_done(self, status: Status) -> (ConnectDone, Phase) {
        let failed = Phase::Failed {
            abandoned_connect: None,
        };
        match self {
            Phase::Failed { .. } => (ConnectDone::Abandoned, failed),
            _ if status == Status::SUCCESS => (ConnectDone::Connected, Phase::Connected),
            _ => (
                ConnectDone::Failed(Error::from_status(FirmwareCall::Connect, status)),
                failed,
            ),
        }
    }

    /// We abort the attempt (timeout): Failed, keeping the Connect token
    /// until the firmware signals it.
    pub(crate) const fn abandon_connect(self) -> Phase {
        Phase::Failed {
            abandoned_connect: self.connect_slot(),
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
    pub rx_eof: bool,
    /// A receive error to raise once (then EOF).
    pub rx_err: Option<Error>,
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
            rx_eof: false,
            rx_err: None,
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
            rx_eof: self.rx_eof || self.shut_rd,
            rx_err: self.rx_err.is_some(),
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
            StatusMeaning::EndOfStream => self.rx_eof = true,
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

    fn receive_failed(&mut self, errno: Errno, status: Status) {
        if errno == Errno::ECONNRESET {
            self.reset = true;
            #[cfg(feature = "deliberate-bugs")]
            if crate::deliberate::is_enabled(crate::deliberate::Bug::EofOnReset) {
                // DELIBERATE BUG (d): the reset reads as a clean end of stream.
                self.rx_eof = true;
                return;
            }
        }
        if errno == Errno::ECONNABORTED && self.write.close_slot().is_some() {
            // Our own teardown aborted it: end of stream, not an error.
            self.rx_eof = true;
            return;
        }
        let err = Error::from_status(FirmwareCall::Receive, status);
        if self.rx_err.is_none() {
            self.rx_err = Some(err.clone());
        }
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
            && !self.rx_eof
            && self.rx_err.is_none()
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
            StatusMeaning::EndOfStream => self.rx_eof = true,
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

/// Whether a listener with `queued` accepted connections waiting for
/// `accept()` keeps an Accept armed: while fewer than `max(backlog, 1)`,
/// and never more than [`teardown::MAX_ACCEPT_QUEUE`].
pub(crate) fn accept_wanted(queued: usize, backlog: u32) -> bool {
    queued < (backlog.max(1) as usize).min(teardown::MAX_ACCEPT_QUEUE)
}

/// What readiness is computed from (pure, for testing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyInputs {
    pub phase: Phase,
    pub rx_queued: bool,
    pub rx_eof: bool,
    pub rx_err: bool,
    pub accept_queued: bool,
    pub budget_free: bool,
    pub shut_wr: bool,
    pub so_error: bool,
    pub reset: bool,
}

/// Readiness of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Readiness {
    pub read: bool,
    pub write: bool,
    pub except: bool,
    pub hup: bool,
}

/// select/poll readiness, POSIX-style:
/// - read: data queued, EOF, a receive error, or (listening) a connection to accept;
///   also a failed connect (recv would return its error at once);
/// - write: connected with send budget free (or write side shut: send fails
///   at once with EPIPE), or a connect that finished (either way);
/// - except: a pending error (SO_ERROR set or a receive error);
/// - hup: the peer's FIN/RST or our read shutdown, and no more data queued.
pub(crate) fn readiness(i: &ReadyInputs) -> Readiness {
    let read = match i.phase {
        Phase::Listening { .. } => i.accept_queued,
        Phase::Failed { .. } => true,
        Phase::Connected => i.rx_queued || i.rx_eof || i.rx_err,
        Phase::Fresh | Phase::Connecting { .. } => false,
    };
    let write = match i.phase {
        Phase::Connected => i.budget_free || i.shut_wr || i.reset,
        Phase::Failed { .. } => true,
        Phase::Connecting { .. } | Phase::Fresh | Phase::Listening { .. } => false,
    };
    let except = i.so_error || i.rx_err;
    let hup = (i.phase == Phase::Connected && (i.rx_eof || i.reset) && !i.rx_queued)
        || i.phase.is_failed();
    Readiness {
        read,
        write,
        except,
        hup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(phase: Phase) -> ReadyInputs {
        ReadyInputs {
            phase,
            rx_queued: false,
            rx_eof: false,
            rx_err: false,
            accept_queued: false,
            budget_free: true,
            shut_wr: false,
            so_error: false,
            reset: false,
        }
    }

    #[test]
    fn connected_socket_with_nothing_queued_is_only_writable() {
        let r = readiness(&base(Phase::Connected));
        assert_eq!(
            r,
            Readiness {
                read: false,
                write: true,
                except: false,
                hup: false
            }
        );
    }

    #[test]
    fn full_budget_is_not_writable() {
        let mut i = base(Phase::Connected);
        i.budget_free = false;
        assert!(!readiness(&i).write);
    }

    #[test]
    fn data_eof_and_error_are_readable() {
        for f in [
            |i: &mut ReadyInputs| i.rx_queued = true,
            |i: &mut ReadyInputs| i.rx_eof = true,
            |i: &mut ReadyInputs| i.rx_err = true,
        ] {
            let mut i = base(Phase::Connected);
            f(&mut i);
            assert!(readiness(&i).read);
        }
    }

    #[test]
    fn eof_with_data_queued_is_not_hup_yet() {
        let mut i = base(Phase::Connected);
        i.rx_eof = true;
        i.rx_queued = true;
        assert!(!readiness(&i).hup);
        i.rx_queued = false;
        assert!(readiness(&i).hup);
    }

    #[test]
    fn listener_readable_only_with_queued_connection() {
        let mut i = base(Phase::Listening { backlog: 1 });
        assert_eq!(readiness(&i), Readiness::default());
        assert!(!readiness(&i).read);
        assert!(!readiness(&i).write);
        i.accept_queued = true;
        assert!(readiness(&i).read);
    }

    #[test]
    fn connecting_becomes_writable_when_connect_finishes() {
        let i = base(Phase::Connecting { slot: 0 });
        assert_eq!(readiness(&i), Readiness::default());
        assert!(readiness(&base(Phase::Connected)).write);
        assert!(
            readiness(&base(Phase::Failed {
                abandoned_connect: None
            }))
            .write
        );
    }

    #[test]
    fn failed_connect_is_writable_readable_and_exceptional() {
        let mut i = base(Phase::Failed {
            abandoned_connect: None,
        });
        i.so_error = true;
        let r = readiness(&i);
        assert!(r.write && r.read && r.except && r.hup);
    }

    /// (phase, status) -> (outcome errno, next phase): the Connect token's
    /// completion, including the attempt we abandoned ourselves.
    #[test]
    fn connect_done_table() {
        let failed = Phase::Failed {
            abandoned_connect: None,
        };
        let connecting = Phase::Connecting { slot: 3 };
        let abandoned = connecting.abandon_connect();
        assert_eq!(
            abandoned,
            Phase::Failed {
                abandoned_connect: Some(3)
            }
        );
        assert_eq!(abandoned.connect_slot(), Some(3));
        assert_eq!(connecting.connect_slot(), Some(3));
        assert_eq!(Phase::Connected.connect_slot(), None);
        assert_eq!(
            connecting.connect_done(Status::SUCCESS),
            (ConnectDone::Connected, Phase::Connected)
        );
        let (outcome, next) = connecting.connect_done(status::CONNECTION_REFUSED);
        assert_eq!(next, failed);
        match outcome {
            ConnectDone::Failed(e) => assert_eq!(e.errno(), Some(Errno::ECONNREFUSED)),
            o => panic!("{o:?}"),
        }
        for st in [Status::ABORTED, Status::SUCCESS] {
            assert_eq!(
                abandoned.connect_done(st),
                (ConnectDone::Abandoned, failed),
                "our own abort is not reported"
            );
        }
        assert!(connecting.is_connecting() && !connecting.is_failed());
        assert!(abandoned.is_failed() && !abandoned.is_connecting());
    }

    /// Every write side: (shut, close slot, FIN due with/without Transmits
    /// in flight, what shutdown(Write) sees).
    #[test]
    fn write_side_table() {
        let err = Error::os(Errno::ENOBUFS, "close: no token slot");
        let rows = [
            (WriteSide::Open, false, None, (false, false), None),
            (WriteSide::FinWanted, true, None, (false, true), None),
            (
                WriteSide::Closing { slot: 7 },
                true,
                Some(7),
                (false, false),
                Some(Ok(())),
            ),
            (
                WriteSide::CloseFailed(Some(err.clone())),
                true,
                None,
                (false, false),
                Some(Err(err.clone())),
            ),
            (
                WriteSide::CloseFailed(None),
                true,
                None,
                (false, false),
                None,
            ),
        ];
        for (mut w, shut, slot, (due_busy, due_idle), outcome) in rows {
            assert_eq!(w.is_shut(), shut, "{w:?}");
            assert_eq!(w.close_slot(), slot, "{w:?}");
            assert_eq!(w.fin_due(true), due_busy, "{w:?}");
            assert_eq!(w.fin_due(false), due_idle, "{w:?}");
            assert_eq!(w.take_fin_outcome(), outcome, "{w:?}");
        }
        let mut failed = WriteSide::CloseFailed(Some(err));
        assert!(failed.take_fin_outcome().is_some());
        assert_eq!(
            failed.take_fin_outcome(),
            None,
            "the error is reported once"
        );
    }

    /// (queued, backlog) -> keep an Accept armed.
    #[test]
    fn accept_wanted_table() {
        let rows = [
            (0, 0, true),
            (1, 0, false),
            (0, 1, true),
            (1, 1, false),
            (2, 3, true),
            (3, 3, false),
            (127, 1000, true),
            (128, 1000, false),
        ];
        for (queued, backlog, want) in rows {
            assert_eq!(accept_wanted(queued, backlog), want, "{queued} {backlog}");
        }
    }

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

    #[test]
    fn fresh_socket_is_not_ready() {
        assert_eq!(
            readiness(&base(Phase::Fresh)),
            Readiness {
                read: false,
                write: false,
                except: false,
                hup: false
            }
        );
    }
}
