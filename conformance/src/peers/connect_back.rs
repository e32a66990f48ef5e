//! The connect-back service: the peer opens a connection to the client.
//!
//! This is how the suite tests `listen`/`accept` on the system under test
//! against a remote active opener. The listener-side [`ConnectBack`] peer only
//! parses the request; opening connections is the host's job, so the request
//! leaves the peer through [`ConnectBack::take_connect_back`] and the host
//! drives the new connection with a [`ConnectBackSender`] (see the
//! [module docs of `peers`](super) for the wiring).
//!
//! Request: 2-byte BE port, 8-byte BE byte count, on a connection to
//! [`ports::CONNECT_BACK`](super::ports::CONNECT_BACK). The target address is
//! the client's address as the peer sees it. A truncated request or port 0
//! is malformed and answered with RST. After a valid request the listener
//! connection stays open until the client's FIN, answered with FIN.

use std::net::SocketAddrV4;

use super::protocol::{CONNECT_BACK_REQUEST_LEN, HeaderReader, parse_connect_back_request};
use super::source::{PatternSender, discard_input, input_ended};
use super::{Peer, PeerConnState, PeerIo};

/// Listener side: parses the request and hands it to the host.
#[derive(Debug, Clone, Default)]
pub struct ConnectBack {
    header: HeaderReader<CONNECT_BACK_REQUEST_LEN>,
    parsed: bool,
    request: Option<(SocketAddrV4, u64)>,
    finished: bool,
}

impl ConnectBack {
    /// A fresh peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pending request `(connect to, bytes to send)`, at most once per
    /// connection.
    pub fn take_connect_back(&mut self) -> Option<(SocketAddrV4, u64)> {
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
                    self.request = Some((SocketAddrV4::new(*io.peer_addr().ip(), port), bytes));
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

/// Active side: once connected, sends N pattern bytes then FIN. Input from
/// the client is discarded.
#[derive(Debug, Clone)]
pub struct ConnectBackSender {
    sender: PatternSender,
    closed: bool,
    failed: Option<PeerConnState>,
}

impl ConnectBackSender {
    /// A sender of `bytes` pattern bytes.
    pub const fn new(bytes: u64) -> Self {
        Self {
            sender: PatternSender::new(bytes),
            closed: false,
            failed: None,
        }
    }

    /// Whether all bytes were queued and FIN requested.
    pub const fn is_done(&self) -> bool {
        self.closed
    }

    /// The terminal state (reset, timed out, closed) that cut the transfer
    /// short, if any.
    pub const fn failed(&self) -> Option<PeerConnState> {
        self.failed
    }

    /// Bytes accepted for sending so far.
    pub const fn sent(&self) -> u64 {
        self.sender.sent()
    }
}

impl Peer for ConnectBackSender {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if self.closed || self.failed.is_some() || state == PeerConnState::Connecting {
            return;
        }
        if state.is_terminal() {
            self.failed = Some(state);
            return;
        }
        discard_input(io);
        if self.sender.pump(io) {
            self.closed = true;
            io.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::pattern::find_pattern_mismatch;
    use crate::peers::mem::MemIo;
    use crate::peers::protocol::connect_back_request;

    #[test]
    fn parses_split_request_once() {
        let client = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 50000);
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7014);
        let mut io = MemIo::new(local, client);
        let mut p = ConnectBack::new();
        let req = connect_back_request(8080, 123_456);
        for b in req {
            assert_eq!(p.take_connect_back(), None);
            io.push_input(&[b]);
            p.poll(&mut io);
        }
        assert_eq!(
            p.take_connect_back(),
            Some((
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 8080),
                123_456
            ))
        );
        p.poll(&mut io);
        assert_eq!(p.take_connect_back(), None, "request taken once");
        assert_eq!(io.close_calls(), 0, "stays open until client FIN");
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn malformed_requests_are_reset() {
        let mut io = MemIo::default();
        let mut p = ConnectBack::new();
        io.push_input(&connect_back_request(0, 5));
        p.poll(&mut io);
        assert_eq!(io.abort_calls(), 1);
        assert_eq!(p.take_connect_back(), None);

        let mut io = MemIo::default();
        let mut p = ConnectBack::new();
        io.push_input(&[0, 80, 0]);
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        assert_eq!(io.abort_calls(), 1);
        assert_eq!(p.take_connect_back(), None);
    }

    #[test]
    fn sender_waits_for_connection_then_sends_and_fins() {
        let mut io = MemIo::default().with_window(4096);
        io.set_state(PeerConnState::Connecting);
        let mut s = ConnectBackSender::new(10_000);
        s.poll(&mut io);
        assert!(io.sent().is_empty());
        io.set_state(PeerConnState::Established);
        while !s.is_done() {
            s.poll(&mut io);
            io.ack_all();
        }
        assert_eq!(io.sent().len(), 10_000);
        assert_eq!(find_pattern_mismatch(0, io.sent()), None);
        assert_eq!(io.close_calls(), 1);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn sender_reports_refused_connection() {
        let mut io = MemIo::default();
        io.set_state(PeerConnState::Reset);
        let mut s = ConnectBackSender::new(10);
        s.poll(&mut io);
        assert_eq!(s.failed(), Some(PeerConnState::Reset));
        assert!(!s.is_done());
    }
}
