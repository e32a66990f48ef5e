//! The source services: the client asks for N bytes and gets the pattern.
//!
//! [`SourceFin`] ends the stream with FIN (clean EOF at the client);
//! [`SourceRst`] ends it with RST only after the client acknowledged every
//! byte, so the client is guaranteed to have all data in its receive path
//! before the reset arrives — the case for "data then reset" semantics.
//!
//! A request that ends (client FIN) before its 8 bytes arrived is malformed:
//! the peer resets the connection, which the client sees as an error rather
//! than a misleading empty stream. Bytes after the request are read and
//! discarded so they cannot stall the client.

use super::protocol::{HeaderReader, SOURCE_REQUEST_LEN};
use super::{Peer, PeerConnState, PeerIo};
use crate::pattern::fill_pattern;

/// Sends `total` pattern bytes from offset 0 through a [`PeerIo`], resuming
/// where backpressure stopped it. Shared by the sources and
/// [`ConnectBackSender`](super::ConnectBackSender).
#[derive(Debug, Clone)]
pub struct PatternSender {
    total: u64,
    sent: u64,
}

impl PatternSender {
    /// A sender of `total` bytes.
    pub const fn new(total: u64) -> Self {
        Self { total, sent: 0 }
    }

    /// Sends as much as the connection accepts now; returns whether all
    /// `total` bytes have been accepted.
    pub fn pump(&mut self, io: &mut dyn PeerIo) -> bool {
        let mut buf = [0u8; 8192];
        while self.sent < self.total {
            let n = (self.total - self.sent).min(buf.len() as u64) as usize;
            fill_pattern(self.sent, &mut buf[..n]);
            let accepted = io.send(&buf[..n]);
            if accepted == 0 {
                return false; // backpressure: resume at the next poll
            }
            self.sent += accepted as u64;
        }
        true
    }

    /// Bytes accepted so far.
    pub const fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes to send in all.
    pub const fn total(&self) -> u64 {
        self.total
    }
}

/// Reads and discards everything available.
pub(crate) fn discard_input(io: &mut dyn PeerIo) {
    let mut buf = [0u8; 4096];
    while io.recv(&mut buf) > 0 {}
}

/// Whether the client can no longer send (so a missing header never comes).
pub(crate) fn input_ended(state: PeerConnState) -> bool {
    matches!(state, PeerConnState::PeerFin | PeerConnState::Closed)
}

#[derive(Debug, Clone)]
enum Phase {
    Request(HeaderReader<SOURCE_REQUEST_LEN>),
    Sending(PatternSender),
    Draining,
    Done,
}

/// Shared state machine of both sources; `rst` selects the ending.
#[derive(Debug, Clone)]
struct Source {
    phase: Phase,
    rst: bool,
}

impl Source {
    fn new(rst: bool) -> Self {
        Self {
            phase: Phase::Request(HeaderReader::new()),
            rst,
        }
    }

    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if matches!(self.phase, Phase::Done)
            || matches!(
                state,
                PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
            )
        {
            return;
        }
        if let Phase::Request(hdr) = &mut self.phase {
            match hdr.read_from(io) {
                Some(req) => {
                    self.phase = Phase::Sending(PatternSender::new(u64::from_be_bytes(req)))
                }
                None if input_ended(state) => {
                    self.phase = Phase::Done;
                    io.abort();
                    return;
                }
                None => return,
            }
        }
        discard_input(io);
        if let Phase::Sending(sender) = &mut self.phase {
            if !sender.pump(io) {
                return;
            }
            if self.rst {
                self.phase = Phase::Draining;
            } else {
                self.phase = Phase::Done;
                io.close();
                return;
            }
        }
        if matches!(self.phase, Phase::Draining) && io.send_queue() == 0 {
            self.phase = Phase::Done;
            io.abort();
        }
    }
}

/// Reads an 8-byte BE length N, sends N pattern bytes, then FIN.
#[derive(Debug, Clone)]
pub struct SourceFin(Source);

impl Default for SourceFin {
    fn default() -> Self {
        Self::new()
    }
}

impl SourceFin {
    /// A fresh source.
    pub fn new() -> Self {
        Self(Source::new(false))
    }
}

impl Peer for SourceFin {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        self.0.poll(io);
    }
}

/// Reads an 8-byte BE length N, sends N pattern bytes, waits until all are
/// acknowledged, then RST.
#[derive(Debug, Clone)]
pub struct SourceRst(Source);

impl Default for SourceRst {
    fn default() -> Self {
        Self::new()
    }
}

impl SourceRst {
    /// A fresh source.
    pub fn new() -> Self {
        Self(Source::new(true))
    }
}

impl Peer for SourceRst {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        self.0.poll(io);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::find_pattern_mismatch;
    use crate::peers::mem::MemIo;
    use crate::peers::protocol::source_request;

    fn run_until_quiet(p: &mut dyn Peer, io: &mut MemIo, ack: bool) {
        for _ in 0..10_000 {
            let before = (io.sent().len(), io.close_calls(), io.abort_calls());
            p.poll(io);
            if ack {
                io.ack_all();
            }
            if before == (io.sent().len(), io.close_calls(), io.abort_calls()) {
                return;
            }
        }
        panic!("peer never settled");
    }

    #[test]
    fn source_fin_sends_exact_length_then_fin() {
        for n in [0u64, 1, 8191, 8192, 8193, 1 << 20] {
            let mut io = MemIo::default()
                .with_window(20_000)
                .with_per_call_limit(3000);
            let mut p = SourceFin::new();
            let req = source_request(n);
            io.push_input(&req[..3]); // split request
            p.poll(&mut io);
            assert!(io.sent().is_empty());
            io.push_input(&req[3..]);
            run_until_quiet(&mut p, &mut io, true);
            assert_eq!(io.sent().len() as u64, n, "n = {n}");
            assert_eq!(find_pattern_mismatch(0, io.sent()), None);
            assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
            assert!(io.misuse().is_empty(), "{:?}", io.misuse());
        }
    }

    #[test]
    fn source_rst_waits_for_ack_then_resets() {
        let mut io = MemIo::default();
        let mut p = SourceRst::new();
        io.push_input(&source_request(5000));
        p.poll(&mut io);
        assert_eq!(io.sent().len(), 5000);
        assert_eq!(find_pattern_mismatch(0, io.sent()), None);
        assert_eq!(io.abort_calls(), 0, "no RST while data is unacknowledged");
        io.ack(4999);
        p.poll(&mut io);
        assert_eq!(io.abort_calls(), 0);
        io.ack(1);
        p.poll(&mut io);
        assert_eq!((io.abort_calls(), io.close_calls()), (1, 0));
        p.poll(&mut io);
        assert_eq!(io.abort_calls(), 1);
    }

    #[test]
    fn truncated_request_is_reset() {
        let mut io = MemIo::default();
        let mut p = SourceFin::new();
        io.push_input(&[0, 0, 1]);
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        assert_eq!(io.abort_calls(), 1);
        assert!(io.sent().is_empty());
    }

    #[test]
    fn extra_client_bytes_are_discarded() {
        let mut io = MemIo::default();
        let mut p = SourceFin::new();
        io.push_input(&source_request(10));
        io.push_input(b"trailing garbage");
        p.poll(&mut io);
        assert_eq!(io.sent().len(), 10);
        assert_eq!(io.unread_input(), 0);
        assert_eq!(io.close_calls(), 1);
    }
}
