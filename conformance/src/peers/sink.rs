//! The sink service: swallows a stream and reports its length and checksum.
//!
//! Large transfers are verified without the peer keeping the data: the
//! client compares the report with [`pattern_checksum`](crate::pattern::pattern_checksum)
//! (or its own [`Fnv64`]) of what it sent.

use super::protocol::{SINK_REPORT_LEN, SinkReport};
use super::{Peer, PeerConnState, PeerIo};
use crate::pattern::Fnv64;

/// Reads until the client's FIN, then sends a 16-byte report (u64 BE count,
/// u64 BE FNV-1a-64) and FIN.
#[derive(Debug, Default)]
pub struct Sink {
    sum: Fnv64,
    report: Option<[u8; SINK_REPORT_LEN]>,
    report_sent: usize,
    closed: bool,
}

impl Sink {
    /// A fresh sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The running count and checksum.
    pub fn progress(&self) -> SinkReport {
        SinkReport::of(&self.sum)
    }
}

impl Peer for Sink {
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
        if self.report.is_none() {
            let mut buf = [0u8; 8192];
            loop {
                let n = io.recv(&mut buf);
                if n == 0 {
                    break;
                }
                self.sum.update(&buf[..n]);
            }
            if !matches!(state, PeerConnState::PeerFin | PeerConnState::Closed) {
                return;
            }
            self.report = Some(SinkReport::of(&self.sum).encode());
        }
        if let Some(report) = &self.report {
            while self.report_sent < report.len() {
                let n = io.send(&report[self.report_sent..]);
                if n == 0 {
                    return;
                }
                self.report_sent += n;
            }
            self.closed = true;
            io.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{fill_pattern, fnv1a64};
    use crate::peers::mem::MemIo;

    fn report_of(io: &MemIo) -> SinkReport {
        let sent: &[u8; SINK_REPORT_LEN] = io.sent().try_into().expect("16-byte report");
        SinkReport::decode(sent)
    }

    #[test]
    fn report_is_correct_for_chunked_input() {
        let mut data = vec![0u8; 123_457];
        fill_pattern(0, &mut data);
        let mut io = MemIo::default();
        let mut p = Sink::new();
        for chunk in data.chunks(1001) {
            io.push_input(chunk);
            p.poll(&mut io);
            assert!(io.sent().is_empty(), "no report before FIN");
        }
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!(r.count, data.len() as u64);
        assert_eq!(r.checksum, fnv1a64(&data));
        assert_eq!(io.close_calls(), 1);
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn data_still_queued_at_fin_is_counted() {
        let mut io = MemIo::default();
        io.push_input(b"foobar");
        io.set_state(PeerConnState::PeerFin);
        let mut p = Sink::new();
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!(r.count, 6);
        assert_eq!(r.checksum, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn report_survives_partial_sends() {
        let mut io = MemIo::default().with_window(5);
        io.push_input(&[1, 2, 3]);
        io.set_state(PeerConnState::PeerFin);
        let mut p = Sink::new();
        p.poll(&mut io);
        assert_eq!(io.sent().len(), 5);
        assert_eq!(io.close_calls(), 0);
        for _ in 0..3 {
            io.ack_all();
            p.poll(&mut io);
        }
        let r = report_of(&io);
        assert_eq!((r.count, r.checksum), (3, fnv1a64(&[1, 2, 3])));
        assert_eq!(io.close_calls(), 1);
    }

    #[test]
    fn empty_stream_reports_zero() {
        let mut io = MemIo::default();
        io.set_state(PeerConnState::PeerFin);
        let mut p = Sink::new();
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!((r.count, r.checksum), (0, fnv1a64(b"")));
    }
}
