//! The connect-back client that sends N pattern bytes, then FIN.

use super::super::source::{PatternSender, discard_input};
use super::super::{Peer, PeerConnState, PeerIo};

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
