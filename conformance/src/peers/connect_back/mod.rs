//! The connect-back services: the peer opens a connection to the client.
//!
//! This is how the suite tests `listen`/`accept` on the system under test
//! against a remote active opener. The listener-side [`ConnectBack`] peer only
//! parses the request; opening connections is the host's job, so the request
//! leaves the peer as a [`ConnectBackRequest`] through
//! [`ConnectBack::take_connect_back`], and the host drives the new connection
//! with [`ConnectBackRequest::client`] (see the [module docs of
//! `peers`](super) for the wiring). Which client that is depends on the port
//! the request came to ([`ConnectBackKind`]):
//!
//! - [`ports::CONNECT_BACK`](super::ports::CONNECT_BACK): a
//!   [`ConnectBackSender`] sends N pattern bytes, then FIN.
//! - [`ports::CONNECT_BACK_ECHO`](super::ports::CONNECT_BACK_ECHO): a
//!   [`ConnectBackEchoChecker`] sends N pattern bytes and verifies that the
//!   client (an echo server on the system under test) echoes them back; then
//!   FIN if all N came back intact, RST on the first wrong byte or if the
//!   client closes before all N came back. The FIN comes only after the whole
//!   echo arrived, so the client never receives data after it closed (EDK2
//!   answers that with RST, since EFI `Close` is a full close).
//!
//! Request (both ports): 2-byte BE port, 8-byte BE byte count
//! ([`connect_back_request`](super::protocol::connect_back_request)). The
//! target address is the client's address as the peer sees it. A truncated
//! request or port 0 is malformed and answered with RST. After a valid
//! request the listener connection stays open until the client's FIN,
//! answered with FIN.

mod echo_check;
mod sender;
#[cfg(test)]
mod tests;

use std::net::SocketAddrV4;

use super::protocol::{CONNECT_BACK_REQUEST_LEN, HeaderReader, parse_connect_back_request};
use super::source::{discard_input, input_ended};
use super::{Peer, PeerConnState, PeerIo};
pub use echo_check::{ConnectBackEchoChecker, EchoCheckFailure};
pub use sender::ConnectBackSender;

/// What the host's connect-back client does on the new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectBackKind {
    /// Send N pattern bytes, then FIN ([`ConnectBackSender`];
    /// [`Service::ConnectBack`](super::Service::ConnectBack)).
    Send,
    /// Send N pattern bytes and verify their echo, then FIN; RST on a bad or
    /// short echo ([`ConnectBackEchoChecker`];
    /// [`Service::ConnectBackEcho`](super::Service::ConnectBackEcho)).
    EchoCheck,
}

/// A connect-back request, handed from the listener-side peer to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectBackRequest {
    /// Where to connect: the client's address and the port it asked for.
    pub to: SocketAddrV4,
    /// Pattern bytes to send (and, for [`ConnectBackKind::EchoCheck`], to
    /// get back).
    pub bytes: u64,
    /// Which client drives the new connection.
    pub kind: ConnectBackKind,
}

impl ConnectBackRequest {
    /// A fresh active-side peer for the new connection: a
    /// [`ConnectBackSender`] or a [`ConnectBackEchoChecker`] of
    /// [`bytes`](Self::bytes), as [`kind`](Self::kind) says.
    pub fn client(&self) -> Box<dyn Peer> {
        match self.kind {
            ConnectBackKind::Send => Box::new(ConnectBackSender::new(self.bytes)),
            ConnectBackKind::EchoCheck => Box::new(ConnectBackEchoChecker::new(self.bytes)),
        }
    }
}

/// Listener side of both connect-back services: parses the request and hands
/// it to the host.
#[derive(Debug, Clone)]
pub struct ConnectBack {
    kind: ConnectBackKind,
    header: HeaderReader<CONNECT_BACK_REQUEST_LEN>,
    parsed: bool,
    request: Option<ConnectBackRequest>,
    finished: bool,
}

impl ConnectBack {
    /// A fresh peer whose requests ask for a `kind` client.
    pub const fn new(kind: ConnectBackKind) -> Self {
        Self {
            kind,
            header: HeaderReader::new(),
            parsed: false,
            request: None,
            finished: false,
        }
    }

    /// The kind of client this peer's requests ask for.
    pub const fn kind(&self) -> ConnectBackKind {
        self.kind
    }

    /// The pending request, at most once per connection.
    pub fn take_connect_back(&mut self) -> Option<ConnectBackRequest> {
        self.request.take()
    }
}

impl Peer for ConnectBack {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if self.finished
            || matches!(
                state,
                PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
            )
        {
            return;
        }
        if !self.parsed {
            match self.header.read_from(io) {
                Some(req) => {
                    let (port, bytes) = parse_connect_back_request(&req);
                    if port == 0 {
                        self.finished = true;
                        io.abort();
                        return;
                    }
                    self.parsed = true;
                    self.request = Some(ConnectBackRequest {
                        to: SocketAddrV4::new(*io.peer_addr().ip(), port),
                        bytes,
                        kind: self.kind,
                    });
                }
                None if input_ended(state) => {
                    self.finished = true;
                    io.abort();
                    return;
                }
                None => return,
            }
        }
        discard_input(io);
        if input_ended(state) {
            self.finished = true;
            io.close();
        }
    }
}
