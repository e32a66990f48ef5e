//! The echo service: everything the client sends comes back.
//!
//! At most one buffer of unechoed data is held; while it cannot be sent
//! (backpressure) nothing more is read, so a client that does not read its
//! echo eventually stalls on its own sends, as with a real echo server.

use super::{Peer, PeerConnState, PeerIo};

const CHUNK: usize = 16 * 1024;

/// Echoes all data; sends FIN after the client's FIN once everything was
/// echoed.
#[derive(Debug)]
pub struct Echo {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    echoed: u64,
    closed: bool,
}

impl Default for Echo {
    fn default() -> Self {
        Self::new()
    }
}

impl Echo {
    /// A fresh echo peer.
    pub fn new() -> Self {
        Self {
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            echoed: 0,
            closed: false,
        }
    }

    /// Bytes echoed (accepted by `send`) so far.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }
}

impl Peer for Echo {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if self.closed
            || matches!(
                state,
                PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
            )
        {
            return;
        }
        loop {
            while self.start < self.end {
                let n = io.send(&self.buf[self.start..self.end]);
                if n == 0 {
                    return; // backpressure: wait for the next poll
                }
                self.start += n;
                self.echoed += n as u64;
            }
            self.start = 0;
            self.end = io.recv(&mut self.buf);
            if self.end == 0 {
                break;
            }
        }
        if matches!(state, PeerConnState::PeerFin | PeerConnState::Closed) {
            self.closed = true;
            io.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::fill_pattern;
    use crate::peers::mem::MemIo;

    #[test]
    fn echoes_everything_then_fin_after_client_fin() {
        let mut io = MemIo::default();
        let mut p = Echo::new();
        let mut data = vec![0u8; 100_000];
        fill_pattern(0, &mut data);
        io.push_input(&data[..40_000]);
        p.poll(&mut io);
        assert_eq!(io.sent(), &data[..40_000]);
        assert_eq!(io.close_calls(), 0);
        io.push_input(&data[40_000..]);
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        assert_eq!(io.sent(), &data[..]);
        assert_eq!(io.close_calls(), 1);
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1, "close is sent once");
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn backpressure_holds_reading_and_loses_nothing() {
        let mut io = MemIo::default().with_window(1000).with_per_call_limit(300);
        let mut p = Echo::new();
        let mut data = vec![0u8; 50_000];
        fill_pattern(7, &mut data);
        io.push_input(&data);
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        assert_eq!(io.sent().len(), 1000, "window limits what is accepted");
        assert!(io.unread_input() > 0, "reading stops under backpressure");
        assert_eq!(io.close_calls(), 0, "no FIN before all is echoed");
        let mut rounds = 0;
        while io.close_calls() == 0 {
            io.ack(700);
            p.poll(&mut io);
            rounds += 1;
            assert!(rounds < 1000, "echo made no progress");
        }
        assert_eq!(io.sent(), &data[..]);
        assert_eq!(p.echoed(), data.len() as u64);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn does_nothing_after_reset() {
        let mut io = MemIo::default();
        io.push_input(b"abc");
        io.set_state(PeerConnState::Reset);
        let mut p = Echo::new();
        p.poll(&mut io);
        assert!(io.sent().is_empty());
        assert_eq!(io.close_calls(), 0);
    }
}
