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

use std::fmt;
use std::net::SocketAddrV4;

use super::protocol::{CONNECT_BACK_REQUEST_LEN, HeaderReader, parse_connect_back_request};
use super::source::{PatternSender, discard_input, input_ended};
use super::{Peer, PeerConnState, PeerIo};
use crate::pattern::{find_pattern_mismatch, pattern_byte};

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

/// Why a [`ConnectBackEchoChecker`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EchoCheckFailure {
    /// The echoed byte at stream `offset` was `got` instead of `expected`;
    /// the checker answered with RST.
    Mismatch {
        /// Stream offset of the first wrong byte.
        offset: u64,
        /// The pattern byte that was sent there.
        expected: u8,
        /// The byte that came back.
        got: u8,
    },
    /// The connection reached `state` before all bytes came back: `PeerFin`
    /// (the client closed early; the checker answered with RST), or a
    /// terminal state (refused, reset, timed out).
    Ended {
        /// The state that ended the check.
        state: PeerConnState,
        /// Bytes verified until then.
        verified: u64,
    },
}

impl fmt::Display for EchoCheckFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EchoCheckFailure::Mismatch {
                offset,
                expected,
                got,
            } => write!(
                f,
                "echo mismatch at offset {offset}: expected {expected:#04x}, got {got:#04x}"
            ),
            EchoCheckFailure::Ended { state, verified } => {
                write!(f, "connection {state:?} after {verified} echoed bytes")
            }
        }
    }
}

/// Active side of [`Service::ConnectBackEcho`](super::Service::ConnectBackEcho):
/// once connected, sends N pattern bytes while reading back and verifying
/// the echo; FIN once all N came back intact, RST on the first wrong byte or
/// if the client closes before all N came back.
#[derive(Debug, Clone)]
pub struct ConnectBackEchoChecker {
    sender: PatternSender,
    verified: u64,
    closed: bool,
    failed: Option<EchoCheckFailure>,
}

impl ConnectBackEchoChecker {
    /// A checker of `bytes` echoed pattern bytes.
    pub const fn new(bytes: u64) -> Self {
        Self {
            sender: PatternSender::new(bytes),
            verified: 0,
            closed: false,
            failed: None,
        }
    }

    /// Whether all bytes came back intact and FIN was requested.
    pub const fn is_done(&self) -> bool {
        self.closed
    }

    /// Echoed bytes verified so far.
    pub const fn verified(&self) -> u64 {
        self.verified
    }

    /// Bytes accepted for sending so far.
    pub const fn sent(&self) -> u64 {
        self.sender.sent()
    }

    /// Why the check failed, if it did.
    pub const fn failed(&self) -> Option<EchoCheckFailure> {
        self.failed
    }

    /// Reads and verifies what is available, never beyond the expected total;
    /// returns `false` (after aborting) on a mismatch.
    fn verify_input(&mut self, io: &mut dyn PeerIo) -> bool {
        let mut buf = [0u8; 8192];
        while self.verified < self.sender.total() {
            let want = (self.sender.total() - self.verified).min(buf.len() as u64) as usize;
            let n = io.recv(&mut buf[..want]);
            if n == 0 {
                break;
            }
            if let Some(i) = find_pattern_mismatch(self.verified, &buf[..n]) {
                let offset = self.verified + i as u64;
                self.failed = Some(EchoCheckFailure::Mismatch {
                    offset,
                    expected: pattern_byte(offset),
                    got: buf[i],
                });
                self.verified = offset;
                io.abort();
                return false;
            }
            self.verified += n as u64;
        }
        true
    }
}

impl Peer for ConnectBackEchoChecker {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if self.closed || self.failed.is_some() || state == PeerConnState::Connecting {
            return;
        }
        if matches!(state, PeerConnState::Reset | PeerConnState::TimedOut) {
            self.failed = Some(EchoCheckFailure::Ended {
                state,
                verified: self.verified,
            });
            return;
        }
        if !self.verify_input(io) {
            return;
        }
        if self.verified == self.sender.total() {
            self.closed = true;
            io.close();
            return;
        }
        if state != PeerConnState::Established {
            // The client closed (or the connection ended) with the echo
            // incomplete: all data queued before its FIN was read above.
            self.failed = Some(EchoCheckFailure::Ended {
                state,
                verified: self.verified,
            });
            if state == PeerConnState::PeerFin {
                io.abort();
            }
            return;
        }
        self.sender.pump(io);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::peers::mem::MemIo;
    use crate::peers::protocol::connect_back_request;

    #[test]
    fn parses_split_request_once() {
        let client = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 50000);
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7014);
        for kind in [ConnectBackKind::Send, ConnectBackKind::EchoCheck] {
            let mut io = MemIo::new(local, client);
            let mut p = ConnectBack::new(kind);
            assert_eq!(p.kind(), kind);
            let req = connect_back_request(8080, 123_456);
            for b in req {
                assert_eq!(p.take_connect_back(), None);
                io.push_input(&[b]);
                p.poll(&mut io);
            }
            assert_eq!(
                p.take_connect_back(),
                Some(ConnectBackRequest {
                    to: SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 8080),
                    bytes: 123_456,
                    kind,
                })
            );
            p.poll(&mut io);
            assert_eq!(p.take_connect_back(), None, "request taken once");
            assert_eq!(io.close_calls(), 0, "stays open until client FIN");
            io.set_state(PeerConnState::PeerFin);
            p.poll(&mut io);
            assert_eq!(io.close_calls(), 1);
            assert!(io.misuse().is_empty(), "{:?}", io.misuse());
        }
    }

    #[test]
    fn malformed_requests_are_reset() {
        let mut io = MemIo::default();
        let mut p = ConnectBack::new(ConnectBackKind::Send);
        io.push_input(&connect_back_request(0, 5));
        p.poll(&mut io);
        assert_eq!(io.abort_calls(), 1);
        assert_eq!(p.take_connect_back(), None);

        let mut io = MemIo::default();
        let mut p = ConnectBack::new(ConnectBackKind::Send);
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

    #[test]
    fn request_builds_the_matching_client() {
        let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 9000);
        for kind in [ConnectBackKind::Send, ConnectBackKind::EchoCheck] {
            let req = ConnectBackRequest {
                to,
                bytes: 100,
                kind,
            };
            let mut client = req.client();
            let mut io = MemIo::default();
            client.poll(&mut io);
            assert_eq!(io.sent().len(), 100, "{kind:?} sends the pattern");
            assert_eq!(find_pattern_mismatch(0, io.sent()), None);
            // Only the sender closes without getting an echo back.
            let expect_close = usize::from(kind == ConnectBackKind::Send);
            assert_eq!(io.close_calls(), expect_close, "{kind:?}");
        }
    }

    /// Loops everything the checker sent back to it, `step` bytes at a time.
    fn echo_back(io: &mut MemIo, echoed: &mut usize, step: usize, corrupt_at: Option<usize>) {
        let end = io.sent().len().min(*echoed + step);
        let mut back = io.sent()[*echoed..end].to_vec();
        if let Some(at) = corrupt_at {
            if (*echoed..end).contains(&at) {
                back[at - *echoed] ^= 0x55;
            }
        }
        io.push_input(&back);
        *echoed = end;
    }

    #[test]
    fn echo_checker_closes_after_intact_echo() {
        let mut io = MemIo::default();
        io.set_state(PeerConnState::Connecting);
        let mut c = ConnectBackEchoChecker::new(50_000);
        c.poll(&mut io);
        assert!(io.sent().is_empty(), "nothing sent while connecting");
        io.set_state(PeerConnState::Established);
        c.poll(&mut io);
        assert_eq!(c.sent(), 50_000);
        let mut echoed = 0;
        while echoed < 50_000 {
            assert!(!c.is_done());
            assert_eq!(io.close_calls(), 0, "no FIN before the whole echo");
            echo_back(&mut io, &mut echoed, 7001, None);
            c.poll(&mut io);
            assert_eq!(c.verified(), echoed as u64);
        }
        assert!(c.is_done());
        assert_eq!(c.failed(), None);
        assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
        c.poll(&mut io);
        assert_eq!(io.close_calls(), 1, "FIN is sent once");
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn echo_checker_resets_on_corrupted_byte() {
        let mut io = MemIo::default();
        let mut c = ConnectBackEchoChecker::new(20_000);
        c.poll(&mut io);
        let mut echoed = 0;
        while echoed < 20_000 && c.failed().is_none() {
            echo_back(&mut io, &mut echoed, 3000, Some(12_345));
            c.poll(&mut io);
        }
        assert_eq!(
            c.failed(),
            Some(EchoCheckFailure::Mismatch {
                offset: 12_345,
                expected: pattern_byte(12_345),
                got: pattern_byte(12_345) ^ 0x55,
            })
        );
        assert_eq!(c.verified(), 12_345);
        assert!(!c.is_done());
        assert_eq!((io.abort_calls(), io.close_calls()), (1, 0));
        c.poll(&mut io);
        assert_eq!(io.abort_calls(), 1, "RST is sent once");
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn echo_checker_resets_on_early_fin() {
        let mut io = MemIo::default();
        let mut c = ConnectBackEchoChecker::new(10_000);
        c.poll(&mut io);
        let mut echoed = 0;
        echo_back(&mut io, &mut echoed, 4000, None);
        io.set_state(PeerConnState::PeerFin);
        c.poll(&mut io);
        assert_eq!(c.verified(), 4000, "data queued before the FIN is checked");
        assert_eq!(
            c.failed(),
            Some(EchoCheckFailure::Ended {
                state: PeerConnState::PeerFin,
                verified: 4000,
            })
        );
        assert_eq!((io.abort_calls(), io.close_calls()), (1, 0));
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());

        // A complete echo followed by the client's FIN is a success.
        let mut io = MemIo::default();
        let mut c = ConnectBackEchoChecker::new(10);
        c.poll(&mut io);
        let mut echoed = 0;
        echo_back(&mut io, &mut echoed, 10, None);
        io.set_state(PeerConnState::PeerFin);
        c.poll(&mut io);
        assert!(c.is_done());
        assert_eq!((io.abort_calls(), io.close_calls()), (0, 1));
    }

    #[test]
    fn echo_checker_reports_refused_or_reset_connection() {
        let mut io = MemIo::default();
        io.set_state(PeerConnState::Reset);
        let mut c = ConnectBackEchoChecker::new(10);
        c.poll(&mut io);
        assert_eq!(
            c.failed(),
            Some(EchoCheckFailure::Ended {
                state: PeerConnState::Reset,
                verified: 0,
            })
        );
        assert_eq!(io.abort_calls(), 0, "nothing to reset");
        assert!(c.failed().unwrap().to_string().contains("Reset"));
    }

    #[test]
    fn echo_checker_under_backpressure() {
        let total = 100_000usize;
        let mut io = MemIo::default().with_window(1500).with_per_call_limit(500);
        let mut c = ConnectBackEchoChecker::new(total as u64);
        let mut echoed = 0;
        let mut rounds = 0;
        while !c.is_done() {
            c.poll(&mut io);
            assert!(
                io.sent().len() - echoed <= 1500,
                "never more than the window in flight"
            );
            // The client echoes part of what arrived; acks open the window.
            echo_back(&mut io, &mut echoed, 700, None);
            io.ack(700);
            rounds += 1;
            assert!(rounds < 10_000, "checker made no progress");
            assert_eq!(c.failed(), None);
        }
        assert_eq!(c.verified(), total as u64);
        assert_eq!(io.sent().len(), total);
        assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn zero_byte_echo_check_closes_at_once() {
        let mut io = MemIo::default();
        let mut c = ConnectBackEchoChecker::new(0);
        c.poll(&mut io);
        assert!(c.is_done());
        assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
    }
}
