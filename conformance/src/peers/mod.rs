//! Peer services, sans-IO.
//!
//! The suite's remote ends (echo, sink, sources, ...) are written once as pure
//! state machines over [`PeerIo`], so the same logic runs on simulated hosts
//! (`efisock-sim` exposes an identical `ConnIo`; an adapter bridges them) and,
//! for runs inside OVMF, on the real host under tokio. A peer never blocks and
//! never owns a socket: the host calls [`Peer::poll`] whenever anything about
//! the connection changed (data arrived, send space opened, state changed)
//! and at the times the peer asked for with [`PeerIo::wake_at`]. Every peer is
//! incremental and idempotent: an extra poll does no harm.
//!
//! # Hosting
//!
//! A host listens on every port of [`listening_services`]; for each accepted
//! connection it creates a peer with [`make_service`] (or [`make`]) and polls
//! it. Nothing listens on [`ports::REFUSED`], so connecting there is refused.
//!
//! The connect-back services need the host to open a connection. Hosts that
//! support them keep the [`ServicePeer`] returned by [`make_service`], and
//! after each poll call [`ServicePeer::take_connect_back`]; on
//! `Some(req)` (a [`ConnectBackRequest`]) the host connects from its own
//! address to `req.to` and drives the new connection with the peer
//! [`req.client()`](ConnectBackRequest::client) returns:
//!
//! - for [`Service::ConnectBack`] ([`ConnectBackKind::Send`]), a
//!   [`ConnectBackSender`] that sends `req.bytes` pattern bytes and then FIN;
//! - for [`Service::ConnectBackEcho`] ([`ConnectBackKind::EchoCheck`]), a
//!   [`ConnectBackEchoChecker`] that sends `req.bytes` pattern bytes,
//!   verifies that the client echoes them back, then FIN (RST on a wrong
//!   byte or an early close; [`ConnectBackEchoChecker::failed`] says why).
//!
//! Hosts that need concrete (`Send`) types instead of `Box<dyn Peer>` match
//! on `req.kind` and build [`ConnectBackSender::new`] or
//! [`ConnectBackEchoChecker::new`] themselves. Hosts that box peers as
//! `dyn Peer` ([`make`]) cannot see the request, and the client's
//! connect-back cases will then fail with a timeout (they never hang the run).
//!
//! # The witness
//!
//! Hosts also serve every service on its witnessed port
//! ([`witnessed_services`], driven by [`witness::Witnessed`]) and run the
//! witness on [`ports::WITNESS`] ([`witness::WitnessQuery`]), both over one
//! [`witness::Ledger`] per host, so that a case can ask what the peer saw
//! of its connection. Hosts that see the segments themselves report them
//! through [`PeerIo::wire`].
//!
//! # EDK2 and half-close
//!
//! A client on EDK2 TCP4 cannot half-close and keep receiving: EFI `Close`
//! is a full close, and data arriving after it is answered with RST. So no
//! service needs the client's FIN to make progress: the sink is told the
//! length up front ([`protocol::sink_request`]) and reports after exactly
//! that many bytes, and the echo checker closes first, once the whole echo
//! came back.

pub mod accept;
pub mod connect_back;
pub mod echo;
pub mod mem;
pub mod ports;
pub mod protocol;
pub mod sink;
pub mod source;
pub mod witness;

use std::net::SocketAddrV4;

pub use accept::{AcceptClose, AcceptHold};
pub use connect_back::{
    ConnectBack, ConnectBackEchoChecker, ConnectBackKind, ConnectBackRequest, ConnectBackSender,
    EchoCheckFailure,
};
pub use echo::Echo;
pub use sink::Sink;
pub use source::{SourceFin, SourceRst};

/// The state of one peer-side TCP connection, as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerConnState {
    /// Active open in progress (SYN sent, no answer yet).
    Connecting,
    /// Both directions open.
    Established,
    /// The other side sent FIN; received data may still be waiting in `recv`,
    /// and this side may still send.
    PeerFin,
    /// Closed in both directions (gracefully).
    Closed,
    /// The connection was reset (RST received or sent).
    Reset,
    /// The connection timed out (connect or retransmission timeout).
    TimedOut,
}

impl PeerConnState {
    /// Whether the connection is gone (no more sending or receiving).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Closed | Self::Reset | Self::TimedOut)
    }
}

/// The I/O a host offers a peer for one connection (mirrors `efisock-sim`'s
/// `ConnIo`).
pub trait PeerIo {
    /// The host's monotonic time in nanoseconds (virtual time on the
    /// simulator).
    fn now_ns(&self) -> u64;
    /// The connection's current state.
    fn state(&self) -> PeerConnState;
    /// Copies received bytes into `buf`; returns how many, 0 when nothing is
    /// available now.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Queues `data` for sending; returns how many bytes were accepted now
    /// (possibly fewer than offered: backpressure).
    fn send(&mut self, data: &[u8]) -> usize;
    /// Bytes sent but not yet acknowledged by the other side.
    fn send_queue(&self) -> usize;
    /// Sends FIN after all queued data.
    fn close(&mut self);
    /// Resets the connection (RST), dropping queued data.
    fn abort(&mut self);
    /// This side's address.
    fn local_addr(&self) -> SocketAddrV4;
    /// The other side's address.
    fn peer_addr(&self) -> SocketAddrV4;
    /// Asks to be polled again at (or after) `t_ns`, even if nothing changes.
    fn wake_at(&mut self, t_ns: u64);
    /// What arrived from the other side on the wire, if this host sees the
    /// segments themselves (`None`: it knows only what its socket API says;
    /// see [`witness`]).
    fn wire(&self) -> Option<WireView> {
        None
    }
}

/// What a host saw arrive from the other side of a connection, segment by
/// segment (times on the host's clock, as [`PeerIo::now_ns`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireView {
    /// When the first FIN arrived.
    pub fin_at_ns: Option<u64>,
    /// When the first RST arrived.
    pub rst_at_ns: Option<u64>,
    /// The largest receive window the other side advertised, in bytes.
    pub max_window: Option<u32>,
    /// The window scale the other side offered in its SYN or SYN-ACK.
    pub window_scale: Option<u8>,
}

/// One side of a connection, driven by its host.
pub trait Peer {
    /// Makes all the progress possible now. Called whenever anything changed
    /// and at requested wake times; must be incremental and idempotent.
    fn poll(&mut self, io: &mut dyn PeerIo);
}

/// The services every peer host offers, each on a fixed port ([`ports`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Echoes everything; FIN after the client's FIN once all is echoed.
    Echo,
    /// Reads an 8-byte length N, then N bytes; answers a 16-byte
    /// count+checksum report and FIN (early, with a short count, at the
    /// client's FIN; see [`Sink`]).
    Sink,
    /// Reads an 8-byte length N, sends N pattern bytes, then FIN.
    SourceFin,
    /// Reads an 8-byte length N, sends N pattern bytes, waits for the ACK,
    /// then RST.
    SourceRst,
    /// Closes (FIN) immediately on accept.
    AcceptClose,
    /// Accepts and never reads, never closes.
    AcceptHold,
    /// Reads a port and a length N; the host connects back to the client and
    /// sends N pattern bytes, then FIN ([`ConnectBackSender`]).
    ConnectBack,
    /// Reads a port and a length N; the host connects back to the client,
    /// sends N pattern bytes and checks that they are echoed back, then FIN
    /// (RST on a bad or short echo; [`ConnectBackEchoChecker`]).
    ConnectBackEcho,
}

impl Service {
    /// Every service, in port order.
    pub const ALL: [Service; 8] = [
        Service::Echo,
        Service::Sink,
        Service::SourceFin,
        Service::SourceRst,
        Service::AcceptClose,
        Service::AcceptHold,
        Service::ConnectBack,
        Service::ConnectBackEcho,
    ];

    /// The service's well-known port.
    pub const fn port(self) -> u16 {
        match self {
            Service::Echo => ports::ECHO,
            Service::Sink => ports::SINK,
            Service::SourceFin => ports::SOURCE_FIN,
            Service::SourceRst => ports::SOURCE_RST,
            Service::AcceptClose => ports::ACCEPT_CLOSE,
            Service::AcceptHold => ports::ACCEPT_HOLD,
            Service::ConnectBack => ports::CONNECT_BACK,
            Service::ConnectBackEcho => ports::CONNECT_BACK_ECHO,
        }
    }

    /// A short lowercase name (`echo`, `sink`, `source-fin`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Service::Echo => "echo",
            Service::Sink => "sink",
            Service::SourceFin => "source-fin",
            Service::SourceRst => "source-rst",
            Service::AcceptClose => "accept-close",
            Service::AcceptHold => "accept-hold",
            Service::ConnectBack => "connect-back",
            Service::ConnectBackEcho => "connect-back-echo",
        }
    }

    /// The service listening on `port`, if any.
    pub fn for_port(port: u16) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.port() == port)
    }
}

static LISTENING: [(u16, Service); 8] = [
    (ports::ECHO, Service::Echo),
    (ports::SINK, Service::Sink),
    (ports::SOURCE_FIN, Service::SourceFin),
    (ports::SOURCE_RST, Service::SourceRst),
    (ports::ACCEPT_CLOSE, Service::AcceptClose),
    (ports::ACCEPT_HOLD, Service::AcceptHold),
    (ports::CONNECT_BACK, Service::ConnectBack),
    (ports::CONNECT_BACK_ECHO, Service::ConnectBackEcho),
];

/// The ports a peer host listens on and the service behind each.
pub fn listening_services() -> &'static [(u16, Service)] {
    &LISTENING
}

/// A freshly accepted service peer of any kind, as a concrete type so hosts
/// can reach [`ServicePeer::take_connect_back`].
#[derive(Debug)]
pub enum ServicePeer {
    /// See [`Echo`].
    Echo(Echo),
    /// See [`Sink`].
    Sink(Sink),
    /// See [`SourceFin`].
    SourceFin(SourceFin),
    /// See [`SourceRst`].
    SourceRst(SourceRst),
    /// See [`AcceptClose`].
    AcceptClose(AcceptClose),
    /// See [`AcceptHold`].
    AcceptHold(AcceptHold),
    /// See [`ConnectBack`] (with [`ConnectBackKind::Send`]).
    ConnectBack(ConnectBack),
    /// See [`ConnectBack`] (with [`ConnectBackKind::EchoCheck`]).
    ConnectBackEcho(ConnectBack),
}

impl ServicePeer {
    /// The connect-back request this peer produced since the last call, if
    /// it is a [`ConnectBack`] peer (always `None` for other services).
    pub fn take_connect_back(&mut self) -> Option<ConnectBackRequest> {
        match self {
            ServicePeer::ConnectBack(p) | ServicePeer::ConnectBackEcho(p) => p.take_connect_back(),
            _ => None,
        }
    }

    /// Which service this is.
    pub const fn service(&self) -> Service {
        match self {
            ServicePeer::Echo(_) => Service::Echo,
            ServicePeer::Sink(_) => Service::Sink,
            ServicePeer::SourceFin(_) => Service::SourceFin,
            ServicePeer::SourceRst(_) => Service::SourceRst,
            ServicePeer::AcceptClose(_) => Service::AcceptClose,
            ServicePeer::AcceptHold(_) => Service::AcceptHold,
            ServicePeer::ConnectBack(_) => Service::ConnectBack,
            ServicePeer::ConnectBackEcho(_) => Service::ConnectBackEcho,
        }
    }
}

impl Peer for ServicePeer {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        match self {
            ServicePeer::Echo(p) => p.poll(io),
            ServicePeer::Sink(p) => p.poll(io),
            ServicePeer::SourceFin(p) => p.poll(io),
            ServicePeer::SourceRst(p) => p.poll(io),
            ServicePeer::AcceptClose(p) => p.poll(io),
            ServicePeer::AcceptHold(p) => p.poll(io),
            ServicePeer::ConnectBack(p) | ServicePeer::ConnectBackEcho(p) => p.poll(io),
        }
    }
}

/// Every witnessed port and the service behind it (see [`witness`]).
pub fn witnessed_services() -> Vec<(u16, Service)> {
    listening_services()
        .iter()
        .map(|&(port, service)| (ports::witnessed(port), service))
        .collect()
}

/// A new peer for one accepted connection to `service`.
pub fn make_service(service: Service) -> ServicePeer {
    match service {
        Service::Echo => ServicePeer::Echo(Echo::new()),
        Service::Sink => ServicePeer::Sink(Sink::new()),
        Service::SourceFin => ServicePeer::SourceFin(SourceFin::new()),
        Service::SourceRst => ServicePeer::SourceRst(SourceRst::new()),
        Service::AcceptClose => ServicePeer::AcceptClose(AcceptClose::new()),
        Service::AcceptHold => ServicePeer::AcceptHold(AcceptHold::new()),
        Service::ConnectBack => ServicePeer::ConnectBack(ConnectBack::new(ConnectBackKind::Send)),
        Service::ConnectBackEcho => {
            ServicePeer::ConnectBackEcho(ConnectBack::new(ConnectBackKind::EchoCheck))
        }
    }
}

/// A new boxed peer for one accepted connection to `service` (see the module
/// docs for why connect-back hosts should prefer [`make_service`]).
pub fn make(service: Service) -> Box<dyn Peer> {
    Box::new(make_service(service))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_peers_can_move_to_host_threads() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<ServicePeer>();
        assert_send::<ConnectBackSender>();
        assert_send::<ConnectBackEchoChecker>();
    }

    #[test]
    fn port_table_is_consistent() {
        for &(port, service) in listening_services() {
            assert_eq!(service.port(), port);
            assert_eq!(Service::for_port(port), Some(service));
            assert_eq!(make_service(service).service(), service);
        }
        assert_eq!(Service::for_port(ports::REFUSED), None);
        let mut ports: Vec<u16> = listening_services().iter().map(|p| p.0).collect();
        ports.dedup();
        assert_eq!(ports.len(), Service::ALL.len());
    }

    #[test]
    fn connect_back_services_request_their_client_kind() {
        for (service, kind) in [
            (Service::ConnectBack, ConnectBackKind::Send),
            (Service::ConnectBackEcho, ConnectBackKind::EchoCheck),
        ] {
            let mut io = mem::MemIo::default();
            let mut p = make_service(service);
            io.push_input(&protocol::connect_back_request(40_000, 7));
            p.poll(&mut io);
            let req = p.take_connect_back().expect("request");
            assert_eq!((req.to.port(), req.bytes, req.kind), (40_000, 7, kind));
            assert_eq!(p.take_connect_back(), None);
        }
        assert_eq!(Service::ConnectBackEcho.name(), "connect-back-echo");
        assert_eq!(
            Service::for_port(ports::CONNECT_BACK_ECHO),
            Some(Service::ConnectBackEcho)
        );
    }
}
