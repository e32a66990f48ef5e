//! An in-memory [`PeerIo`]: the test double the peers are unit-tested with.
//!
//! It models exactly what a peer can observe through [`PeerIo`] and nothing
//! more: an input queue the test fills, a send window (bytes accepted but not
//! yet acknowledged, limited to create backpressure), a per-call send limit
//! (partial sends), a state the test sets, and a record of what the peer did
//! (bytes sent, close/abort calls, recv calls, wake requests, and misuse such
//! as sending after `close`). It is public so hosts and cases can reuse it to
//! drive a peer without a network.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::{PeerConnState, PeerIo};

/// An in-memory connection end for driving a peer in tests.
#[derive(Debug, Clone)]
pub struct MemIo {
    now_ns: u64,
    state: PeerConnState,
    inbox: VecDeque<u8>,
    sent: Vec<u8>,
    window: usize,
    per_call_limit: usize,
    unacked: usize,
    close_calls: usize,
    abort_calls: usize,
    recv_calls: usize,
    misuse: Vec<&'static str>,
    wake: Option<u64>,
    local: SocketAddrV4,
    peer: SocketAddrV4,
}

impl Default for MemIo {
    fn default() -> Self {
        Self::new(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7007),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 49152),
        )
    }
}

impl MemIo {
    /// An established connection between `local` (the peer's side) and
    /// `peer` (the client), with an unlimited send window.
    pub fn new(local: SocketAddrV4, peer: SocketAddrV4) -> Self {
        Self {
            now_ns: 0,
            state: PeerConnState::Established,
            inbox: VecDeque::new(),
            sent: Vec::new(),
            window: usize::MAX,
            per_call_limit: usize::MAX,
            unacked: 0,
            close_calls: 0,
            abort_calls: 0,
            recv_calls: 0,
            misuse: Vec::new(),
            wake: None,
            local,
            peer,
        }
    }

    /// Limits unacknowledged bytes to `window` (sends beyond it are refused
    /// until [`MemIo::ack`]).
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }

    /// Limits every `send` call to accept at most `limit` bytes.
    pub fn with_per_call_limit(mut self, limit: usize) -> Self {
        self.per_call_limit = limit;
        self
    }

    /// Sets the connection state the peer observes.
    pub fn set_state(&mut self, state: PeerConnState) {
        self.state = state;
    }

    /// Sets the clock.
    pub fn set_now(&mut self, t_ns: u64) {
        self.now_ns = t_ns;
    }

    /// Makes `data` available to the peer's `recv`.
    pub fn push_input(&mut self, data: &[u8]) {
        self.inbox.extend(data.iter().copied());
    }

    /// Input bytes the peer has not read yet.
    pub fn unread_input(&self) -> usize {
        self.inbox.len()
    }

    /// Acknowledges up to `n` sent bytes, opening the window.
    pub fn ack(&mut self, n: usize) {
        self.unacked -= n.min(self.unacked);
    }

    /// Acknowledges everything sent.
    pub fn ack_all(&mut self) {
        self.unacked = 0;
    }

    /// Every byte the peer's `send` accepted, in order.
    pub fn sent(&self) -> &[u8] {
        &self.sent
    }

    /// How many times the peer called `close`.
    pub fn close_calls(&self) -> usize {
        self.close_calls
    }

    /// How many times the peer called `abort`.
    pub fn abort_calls(&self) -> usize {
        self.abort_calls
    }

    /// How many times the peer called `recv`.
    pub fn recv_calls(&self) -> usize {
        self.recv_calls
    }

    /// Misuse the peer committed (e.g. `"send after close"`), in order.
    pub fn misuse(&self) -> &[&'static str] {
        &self.misuse
    }

    /// The last wake time the peer asked for.
    pub fn wake(&self) -> Option<u64> {
        self.wake
    }

    fn finished_sending(&self) -> bool {
        self.close_calls > 0 || self.abort_calls > 0 || self.state.is_terminal()
    }
}

impl PeerIo for MemIo {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn state(&self) -> PeerConnState {
        self.state
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.recv_calls += 1;
        if matches!(self.state, PeerConnState::Reset | PeerConnState::TimedOut) {
            return 0;
        }
        let n = buf.len().min(self.inbox.len());
        for (dst, src) in buf.iter_mut().zip(self.inbox.drain(..n)) {
            *dst = src;
        }
        n
    }

    fn send(&mut self, data: &[u8]) -> usize {
        if self.finished_sending() {
            self.misuse.push("send after close/abort/terminal state");
            return 0;
        }
        if self.state == PeerConnState::Connecting {
            self.misuse.push("send while connecting");
            return 0;
        }
        let room = self.window.saturating_sub(self.unacked);
        let n = data.len().min(room).min(self.per_call_limit);
        self.sent.extend_from_slice(&data[..n]);
        self.unacked += n;
        n
    }

    fn send_queue(&self) -> usize {
        self.unacked
    }

    fn close(&mut self) {
        if self.close_calls > 0 || self.abort_calls > 0 {
            self.misuse.push("close after close/abort");
        }
        self.close_calls += 1;
    }

    fn abort(&mut self) {
        if self.abort_calls > 0 {
            self.misuse.push("abort after abort");
        }
        self.abort_calls += 1;
        self.state = PeerConnState::Reset;
        self.unacked = 0;
    }

    fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    fn peer_addr(&self) -> SocketAddrV4 {
        self.peer
    }

    fn wake_at(&mut self, t_ns: u64) {
        self.wake = Some(t_ns);
    }
}
