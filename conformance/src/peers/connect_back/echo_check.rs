//! The connect-back client that verifies the echo of N pattern bytes.

use std::fmt;

use super::super::source::PatternSender;
use super::super::{Peer, PeerConnState, PeerIo};
use crate::pattern::{find_pattern_mismatch, pattern_byte};

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

/// Active side of [`Service::ConnectBackEcho`](super::super::Service::ConnectBackEcho):
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
