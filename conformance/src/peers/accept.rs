//! The accept-only services: a server that hangs up at once, and one that
//! never reads.
//!
//! [`AcceptClose`] gives clients an immediate EOF (and, if they keep
//! sending, a reset from the peer's stack). [`AcceptHold`] fills the
//! client's send path: its receive window closes and stays closed, which is
//! how the suite creates backpressure for `sendall`, nonblocking `send` and
//! select-for-write cases.

use super::source::discard_input;
use super::{Peer, PeerConnState, PeerIo};

/// Closes (FIN) immediately on accept; later input is discarded.
#[derive(Debug, Default, Clone)]
pub struct AcceptClose {
    closed: bool,
}

impl AcceptClose {
    /// A fresh peer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Peer for AcceptClose {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if matches!(
            state,
            PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
        ) {
            return;
        }
        if !self.closed {
            self.closed = true;
            io.close();
        }
        discard_input(io);
    }
}

/// Accepts and then does nothing: never reads, never sends, never closes.
#[derive(Debug, Default, Clone)]
pub struct AcceptHold {
    _private: (),
}

impl AcceptHold {
    /// A fresh peer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Peer for AcceptHold {
    fn poll(&mut self, _io: &mut dyn PeerIo) {
        // Deliberately nothing: holding the connection unread is the service.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::mem::MemIo;

    #[test]
    fn accept_close_fins_once_at_first_poll() {
        let mut io = MemIo::default();
        let mut p = AcceptClose::new();
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1);
        io.push_input(b"late data");
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1);
        assert_eq!(io.unread_input(), 0);
        assert!(io.sent().is_empty());
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn accept_hold_never_reads_or_closes() {
        let mut io = MemIo::default();
        let mut p = AcceptHold::new();
        io.push_input(&[0u8; 100_000]);
        for state in [
            PeerConnState::Established,
            PeerConnState::PeerFin,
            PeerConnState::Established,
        ] {
            io.set_state(state);
            p.poll(&mut io);
        }
        assert_eq!(io.recv_calls(), 0);
        assert_eq!(io.unread_input(), 100_000);
        assert_eq!((io.close_calls(), io.abort_calls()), (0, 0));
        assert!(io.sent().is_empty());
    }
}
