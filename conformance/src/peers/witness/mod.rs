//! The witness: the peer's side of the wire, reported to the case.
//!
//! Cases run on the system under test (inside OVMF, in the guest), while
//! what the other side saw (the bytes that arrived, whether the connection
//! ended with a FIN or a RST, and when, the window the client advertised)
//! is known only to the peer host. The witness brings it back, the same way
//! on the simulator and behind QEMU's slirp:
//!
//! 1. Every service also listens on a *witnessed* port
//!    ([`ports::witnessed`](super::ports::witnessed)). A client opens such a
//!    connection and sends an 8-byte token first ([`protocol::TAG_LEN`]);
//!    the rest is the service's ordinary protocol. The host runs the service
//!    inside a [`Witnessed`] peer, which keeps a record of the connection in
//!    the host's [`Ledger`] under that token.
//! 2. Afterwards the client connects to [`ports::WITNESS`](super::ports::WITNESS)
//!    and sends a [`Query`] naming the token; the [`WitnessQuery`] peer
//!    answers with the [`PeerView`] and closes.
//!
//! Why a token rather than the client's port: slirp connects to the host
//! from a port of its own choosing (libslirp `tcp_fconnect`: "We don't care
//! what port we get"), so the guest cannot name its connection by any
//! address it knows; it can name it by bytes it sent.
//!
//! A record is only as good as the host's view. The simulator's hosts see
//! every segment ([`PeerIo::wire`]): FIN, RST and windows are what the
//! system under test sent ([`Observer::Wire`]). The tokio host behind slirp
//! sees its own socket's connection to slirp ([`Observer::Socket`]): a FIN
//! is end of file, a RST is ECONNRESET, and no window of the guest is
//! visible; slirp may turn one into the other, which the cases' per-target
//! expectations say where it matters.

pub mod protocol;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex, MutexGuard};

pub use protocol::{Ending, Leg, Observer, PeerView, Query, Until};
use protocol::{QUERY_LEN, TAG_LEN, VIEW_LEN};

use super::protocol::HeaderReader;
use super::source::{discard_input, input_ended};
use super::{Peer, PeerConnState, PeerIo, ServicePeer, WireView};
use crate::pattern::Fnv64;

/// How long after the client's FIN a [`Until::Ended`] query still waits for
/// a RST (peer host clock), unless the connection ends first.
pub const SETTLE_NS: u64 = 300_000_000;
/// How often a waiting [`WitnessQuery`] looks at the ledger again.
pub const QUERY_POLL_NS: u64 = 5_000_000;
/// Most records a ledger keeps; the oldest go first.
pub const LEDGER_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
struct Record {
    view: PeerView,
    /// Host time the record was registered.
    start_ns: u64,
    /// Host time the FIN was first noted, for [`SETTLE_NS`].
    fin_noted_ns: Option<u64>,
}

#[derive(Debug, Default)]
struct Records {
    by_key: BTreeMap<(u64, Leg), Record>,
    order: VecDeque<(u64, Leg)>,
}

/// The records of one peer host, shared by its witnessed connections and
/// its witness (cheap to clone: all clones are the same ledger).
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Records>>);

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic elsewhere cannot leave a record half-written that matters
        // more than losing the whole witness, so keep serving.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn register(&self, token: u64, leg: Leg, now: u64, remote_port: u16) {
        let mut r = self.lock();
        let key = (token, leg);
        if r.by_key.contains_key(&key) {
            r.order.retain(|k| *k != key);
        }
        while r.order.len() >= LEDGER_CAPACITY {
            if let Some(old) = r.order.pop_front() {
                r.by_key.remove(&old);
            }
        }
        r.order.push_back(key);
        r.by_key.insert(
            key,
            Record {
                view: PeerView {
                    known: true,
                    remote_port,
                    ..PeerView::UNKNOWN
                },
                start_ns: now,
                fin_noted_ns: None,
            },
        );
    }

    fn update(&self, token: u64, leg: Leg, f: impl FnOnce(&mut Record)) {
        if let Some(rec) = self.lock().by_key.get_mut(&(token, leg)) {
            f(rec);
        }
    }

    /// The view of `(token, leg)` now, and whether it satisfies `until`.
    pub fn answer(&self, token: u64, leg: Leg, until: Until, now: u64) -> (PeerView, bool) {
        let r = self.lock();
        let Some(rec) = r.by_key.get(&(token, leg)) else {
            return (PeerView::UNKNOWN, false);
        };
        let ready = match until {
            Until::Now => true,
            Until::Ended => {
                rec.view.ended
                    || rec.view.rst_at_ns.is_some()
                    || rec
                        .fin_noted_ns
                        .is_some_and(|t| now >= t.saturating_add(SETTLE_NS))
            }
        };
        (rec.view, ready)
    }
}

/// A peer's [`PeerIo`] that counts what the service reads and sends and
/// notices when it resets the connection itself.
struct Counting<'a> {
    io: &'a mut dyn PeerIo,
    tally: &'a mut Tally,
}

#[derive(Debug, Default)]
struct Tally {
    sum: Fnv64,
    out: u64,
    self_reset: bool,
}

impl PeerIo for Counting<'_> {
    fn now_ns(&self) -> u64 {
        self.io.now_ns()
    }
    fn state(&self) -> PeerConnState {
        self.io.state()
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = self.io.recv(buf);
        self.tally.sum.update(&buf[..n]);
        n
    }
    fn send(&mut self, data: &[u8]) -> usize {
        let n = self.io.send(data);
        self.tally.out += n as u64;
        n
    }
    fn send_queue(&self) -> usize {
        self.io.send_queue()
    }
    fn close(&mut self) {
        self.io.close();
    }
    fn abort(&mut self) {
        self.tally.self_reset = true;
        self.io.abort();
    }
    fn local_addr(&self) -> SocketAddrV4 {
        self.io.local_addr()
    }
    fn peer_addr(&self) -> SocketAddrV4 {
        self.io.peer_addr()
    }
    fn wake_at(&mut self, t_ns: u64) {
        self.io.wake_at(t_ns);
    }
    fn wire(&self) -> Option<WireView> {
        self.io.wire()
    }
}

enum Inner {
    Service(ServicePeer),
    Client(Box<dyn Peer>),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inner::Service(s) => write!(f, "Service({})", s.service().name()),
            Inner::Client(_) => f.write_str("Client"),
        }
    }
}

/// A peer that keeps a [`Ledger`] record of its connection: a service on a
/// witnessed port (reads the client's token first), or the connect-back
/// client of such a service (knows the token already).
#[derive(Debug)]
pub struct Witnessed {
    ledger: Ledger,
    leg: Leg,
    tag: HeaderReader<TAG_LEN>,
    token: Option<u64>,
    registered: bool,
    malformed: bool,
    inner: Inner,
    tally: Tally,
    /// The last acknowledged count seen while the connection was open (a
    /// terminal connection's send queue says nothing about acks).
    acked: u64,
}

impl Witnessed {
    /// `service` behind a witnessed port: the first [`TAG_LEN`] bytes the
    /// client sends are its token, the rest goes to the service. A client
    /// that ends before the token is complete is reset.
    pub fn service(ledger: Ledger, service: ServicePeer) -> Self {
        Self::with(ledger, Leg::Accepted, None, Inner::Service(service))
    }

    /// The connect-back `client` of the witnessed connection `token`.
    pub fn connect_back(ledger: Ledger, token: u64, client: Box<dyn Peer>) -> Self {
        Self::with(ledger, Leg::ConnectBack, Some(token), Inner::Client(client))
    }

    fn with(ledger: Ledger, leg: Leg, token: Option<u64>, inner: Inner) -> Self {
        Self {
            ledger,
            leg,
            tag: HeaderReader::new(),
            token,
            registered: false,
            malformed: false,
            inner,
            tally: Tally::default(),
            acked: 0,
        }
    }

    /// The connection this service asks its host to open, with the
    /// witnessed client to drive it (see
    /// [`ServicePeer::take_connect_back`]).
    pub fn take_connect_back(&mut self) -> Option<(SocketAddrV4, Box<dyn Peer>)> {
        let Inner::Service(service) = &mut self.inner else {
            return None;
        };
        let request = service.take_connect_back()?;
        let token = self.token?;
        let client = Witnessed::connect_back(self.ledger.clone(), token, request.client());
        Some((request.to, Box::new(client)))
    }

    /// Samples the acknowledged count unless the connection was reset or
    /// never opened (then the send queue is empty whatever was
    /// acknowledged); a graceful end still counts, as the final poll may be
    /// the first to see the last acknowledgements.
    fn sample_acked(&mut self, io: &dyn PeerIo) {
        let state = io.state();
        let queue_meaningful = !matches!(
            state,
            PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
        );
        if queue_meaningful && !self.tally.self_reset {
            let queued = io.send_queue() as u64;
            self.acked = self.tally.out.saturating_sub(queued);
        }
    }

    fn record(&mut self, io: &dyn PeerIo, token: u64) {
        let now = io.now_ns();
        let state = io.state();
        self.sample_acked(io);
        let tally = &self.tally;
        let acked = self.acked;
        let wire = io.wire();
        let remote_port = io.peer_addr().port();
        self.ledger.update(token, self.leg, |rec| {
            let v = &mut rec.view;
            let since = |t: u64| t.saturating_sub(rec.start_ns);
            if remote_port != 0 {
                v.remote_port = remote_port;
            }
            v.bytes_in = tally.sum.len();
            v.checksum_in = tally.sum.value();
            v.bytes_out = tally.out;
            v.acked_out = acked;
            v.self_reset = tally.self_reset;
            v.ended = state.is_terminal();
            match wire {
                Some(w) => {
                    v.observer = Observer::Wire;
                    v.fin_at_ns = w.fin_at_ns.map(since);
                    v.rst_at_ns = w.rst_at_ns.map(since);
                    v.max_window = w.max_window;
                    v.window_scale = w.window_scale;
                }
                None => {
                    v.observer = Observer::Socket;
                    if v.fin_at_ns.is_none()
                        && matches!(state, PeerConnState::PeerFin | PeerConnState::Closed)
                    {
                        v.fin_at_ns = Some(since(now));
                    }
                    if v.rst_at_ns.is_none() && state == PeerConnState::Reset && !tally.self_reset {
                        v.rst_at_ns = Some(since(now));
                    }
                }
            }
            if v.fin_at_ns.is_some() && rec.fin_noted_ns.is_none() {
                rec.fin_noted_ns = Some(now);
            }
        });
    }
}

impl Peer for Witnessed {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        if self.malformed {
            return;
        }
        let token = match self.token {
            Some(t) => t,
            None => {
                if io.state() == PeerConnState::Connecting {
                    return;
                }
                // A tag that arrived before a reset still names the
                // connection (a host may keep what it read before the RST).
                match self.tag.read_from(io) {
                    Some(tag) => {
                        let t = u64::from_be_bytes(tag);
                        self.token = Some(t);
                        t
                    }
                    None if io.state().is_terminal() => {
                        self.malformed = true;
                        return;
                    }
                    None if input_ended(io.state()) => {
                        self.malformed = true;
                        io.abort();
                        return;
                    }
                    None => return,
                }
            }
        };
        if !self.registered {
            self.registered = true;
            self.ledger
                .register(token, self.leg, io.now_ns(), io.peer_addr().port());
        }
        self.sample_acked(io);
        let mut counting = Counting {
            io: &mut *io,
            tally: &mut self.tally,
        };
        match &mut self.inner {
            Inner::Service(s) => s.poll(&mut counting),
            Inner::Client(c) => c.poll(&mut counting),
        }
        self.record(io, token);
    }
}

/// The witness service: reads a [`Query`], answers with the [`PeerView`]
/// once its condition holds or its wait ran out, then FIN. A malformed
/// query is reset.
#[derive(Debug)]
pub struct WitnessQuery {
    ledger: Ledger,
    request: HeaderReader<QUERY_LEN>,
    query: Option<(Query, u64)>,
    reply: Option<([u8; VIEW_LEN], usize)>,
    done: bool,
}

impl WitnessQuery {
    /// A witness answering from `ledger`.
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            request: HeaderReader::new(),
            query: None,
            reply: None,
            done: false,
        }
    }
}

impl Peer for WitnessQuery {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if self.done
            || matches!(
                state,
                PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
            )
        {
            return;
        }
        let now = io.now_ns();
        if self.query.is_none() {
            match self.request.read_from(io).map(|q| Query::decode(&q)) {
                Some(Some(q)) => {
                    let deadline = now.saturating_add(u64::from(q.wait_ms) * 1_000_000);
                    self.query = Some((q, deadline));
                }
                Some(None) => {
                    self.done = true;
                    io.abort();
                    return;
                }
                None if input_ended(state) => {
                    self.done = true;
                    io.abort();
                    return;
                }
                None => return,
            }
        }
        discard_input(io);
        if self.reply.is_none() {
            let Some((q, deadline)) = self.query else {
                return;
            };
            let (view, ready) = self.ledger.answer(q.token, q.leg, q.until, now);
            if !ready && now < deadline {
                io.wake_at(now.saturating_add(QUERY_POLL_NS).min(deadline));
                return;
            }
            self.reply = Some((view.encode(), 0));
        }
        if let Some((reply, sent)) = &mut self.reply {
            while *sent < VIEW_LEN {
                let n = io.send(&reply[*sent..]);
                if n == 0 {
                    return;
                }
                *sent += n;
            }
            self.done = true;
            io.close();
        }
    }
}
