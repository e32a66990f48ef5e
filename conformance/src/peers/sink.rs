//! The sink service: swallows a length-prefixed stream and reports its length
//! and checksum.
//!
//! Protocol: the client sends an 8-byte BE length N
//! ([`sink_request`](super::protocol::sink_request)), then N data bytes. Once
//! N bytes arrived the sink answers the 16-byte [`SinkReport`] (u64 BE count,
//! u64 BE FNV-1a-64 of the N bytes) and FIN, without waiting for the client's
//! FIN: an EDK2 TCP4 client cannot half-close and keep receiving (EFI `Close`
//! is a full close), so the report must not depend on one.
//!
//! If the client's FIN comes before N bytes, the sink still reports what it
//! counted, then FIN; the short count makes the loss visible to the client.
//! Bytes beyond N are read and discarded (never counted), also after the
//! report, so they cannot stall the client. A FIN before the 8-byte header is
//! complete is a malformed request, answered with RST (as the sources do). A
//! reset ends the sink silently, since nothing can be sent any more;
//! [`Sink::progress`] still shows what was counted.
//!
//! Large transfers are verified without the peer keeping the data: the
//! client compares the report with [`pattern_checksum`](crate::pattern::pattern_checksum)
//! (or its own [`Fnv64`]) of what it sent.

use super::protocol::{HeaderReader, SINK_REPORT_LEN, SINK_REQUEST_LEN, SinkReport};
use super::source::{discard_input, input_ended};
use super::{Peer, PeerConnState, PeerIo};
use crate::pattern::Fnv64;

#[derive(Debug, Clone)]
enum Phase {
    /// Reading the 8-byte length.
    Header(HeaderReader<SINK_REQUEST_LEN>),
    /// Counting data bytes up to the announced length.
    Counting,
    /// Sending the report; `sent` bytes of it accepted so far.
    Reporting {
        report: [u8; SINK_REPORT_LEN],
        sent: usize,
    },
    /// Report sent and FIN requested; excess input is discarded.
    Closed,
    /// Malformed request, answered with RST.
    Aborted,
}

/// Reads an 8-byte BE length N and then N bytes, then sends a 16-byte report
/// (u64 BE count, u64 BE FNV-1a-64) and FIN; reports early (short count) at
/// the client's FIN. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Sink {
    phase: Phase,
    expected: Option<u64>,
    sum: Fnv64,
}

impl Default for Sink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink {
    /// A fresh sink.
    pub fn new() -> Self {
        Self {
            phase: Phase::Header(HeaderReader::new()),
            expected: None,
            sum: Fnv64::new(),
        }
    }

    /// The running count and checksum.
    pub fn progress(&self) -> SinkReport {
        SinkReport::of(&self.sum)
    }

    /// The length N the client announced, once its header is complete.
    pub const fn expected(&self) -> Option<u64> {
        self.expected
    }
}

impl Peer for Sink {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        let state = io.state();
        if matches!(self.phase, Phase::Aborted)
            || matches!(
                state,
                PeerConnState::Connecting | PeerConnState::Reset | PeerConnState::TimedOut
            )
        {
            return;
        }
        if let Phase::Header(hdr) = &mut self.phase {
            match hdr.read_from(io) {
                Some(req) => {
                    self.expected = Some(u64::from_be_bytes(req));
                    self.phase = Phase::Counting;
                }
                None if input_ended(state) => {
                    self.phase = Phase::Aborted;
                    io.abort();
                    return;
                }
                None => return,
            }
        }
        if matches!(self.phase, Phase::Counting) {
            let expected = self.expected.unwrap_or(0);
            let mut buf = [0u8; 8192];
            while self.sum.len() < expected {
                let want = (expected - self.sum.len()).min(buf.len() as u64) as usize;
                let n = io.recv(&mut buf[..want]);
                if n == 0 {
                    break;
                }
                self.sum.update(&buf[..n]);
            }
            if self.sum.len() < expected && !input_ended(state) {
                return;
            }
            self.phase = Phase::Reporting {
                report: SinkReport::of(&self.sum).encode(),
                sent: 0,
            };
        }
        discard_input(io);
        if let Phase::Reporting { report, sent } = &mut self.phase {
            while *sent < report.len() {
                let n = io.send(&report[*sent..]);
                if n == 0 {
                    return; // backpressure: resume at the next poll
                }
                *sent += n;
            }
            self.phase = Phase::Closed;
            io.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{fill_pattern, fnv1a64};
    use crate::peers::mem::MemIo;
    use crate::peers::protocol::sink_request;

    fn report_of(io: &MemIo) -> SinkReport {
        let sent: &[u8; SINK_REPORT_LEN] = io.sent().try_into().expect("16-byte report");
        SinkReport::decode(sent)
    }

    fn pattern(n: usize) -> Vec<u8> {
        let mut data = vec![0u8; n];
        fill_pattern(0, &mut data);
        data
    }

    #[test]
    fn chunked_input_with_split_header_reports_after_exactly_n() {
        let data = pattern(123_457);
        let mut stream = sink_request(data.len() as u64).to_vec();
        stream.extend_from_slice(&data);
        let mut io = MemIo::default();
        let mut p = Sink::new();
        // 5-byte first chunk splits the header; 1001-byte chunks after that.
        let (first, rest) = stream.split_at(5);
        io.push_input(first);
        p.poll(&mut io);
        assert_eq!(p.expected(), None, "header incomplete");
        let chunks: Vec<&[u8]> = rest.chunks(1001).collect();
        let (last, init) = chunks.split_last().unwrap();
        for chunk in init {
            io.push_input(chunk);
            p.poll(&mut io);
            assert!(io.sent().is_empty(), "no report before N bytes");
            assert_eq!(io.close_calls(), 0);
        }
        assert_eq!(p.expected(), Some(data.len() as u64));
        io.push_input(last);
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!(r.count, data.len() as u64);
        assert_eq!(r.checksum, fnv1a64(&data));
        assert_eq!(io.close_calls(), 1, "FIN without waiting for the client's");
        assert_eq!(p.progress(), r);
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1, "FIN is sent once");
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn bytes_beyond_n_are_discarded_not_counted() {
        let mut io = MemIo::default();
        let mut p = Sink::new();
        io.push_input(&sink_request(6));
        io.push_input(b"foobar and more");
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!(r.count, 6);
        assert_eq!(r.checksum, 0x8594_4171_f739_67e8); // FNV-1a-64("foobar")
        assert_eq!(io.unread_input(), 0, "excess is drained");
        io.push_input(b"late bytes");
        p.poll(&mut io);
        assert_eq!(io.unread_input(), 0, "drained after the report too");
        assert_eq!(report_of(&io), r);
        assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn early_fin_reports_short_count() {
        let data = pattern(3000);
        let mut io = MemIo::default();
        let mut p = Sink::new();
        io.push_input(&sink_request(10_000));
        io.push_input(&data[..1000]);
        p.poll(&mut io);
        assert!(io.sent().is_empty());
        io.push_input(&data[1000..]); // still queued when the FIN is seen
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!((r.count, r.checksum), (3000, fnv1a64(&data)));
        assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn report_survives_partial_sends() {
        let mut io = MemIo::default().with_window(5);
        io.push_input(&sink_request(3));
        io.push_input(&[1, 2, 3]);
        let mut p = Sink::new();
        p.poll(&mut io);
        assert_eq!(io.sent().len(), 5);
        assert_eq!(io.close_calls(), 0, "no FIN before the whole report");
        for _ in 0..3 {
            io.ack_all();
            p.poll(&mut io);
        }
        let r = report_of(&io);
        assert_eq!((r.count, r.checksum), (3, fnv1a64(&[1, 2, 3])));
        assert_eq!(io.close_calls(), 1);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn zero_length_reports_zero_immediately() {
        let mut io = MemIo::default();
        io.push_input(&sink_request(0));
        let mut p = Sink::new();
        p.poll(&mut io);
        let r = report_of(&io);
        assert_eq!((r.count, r.checksum), (0, fnv1a64(b"")));
        assert_eq!(io.close_calls(), 1, "no need to wait for the client's FIN");
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }

    #[test]
    fn truncated_header_is_reset_and_reset_ends_silently() {
        let mut io = MemIo::default();
        io.push_input(&[0, 0, 1]);
        io.set_state(PeerConnState::PeerFin);
        let mut p = Sink::new();
        p.poll(&mut io);
        assert_eq!((io.abort_calls(), io.close_calls()), (1, 0));
        assert!(io.sent().is_empty());

        let mut io = MemIo::default();
        io.push_input(&sink_request(100));
        io.push_input(&[7; 10]);
        let mut p = Sink::new();
        p.poll(&mut io);
        io.set_state(PeerConnState::Reset);
        p.poll(&mut io);
        assert!(io.sent().is_empty(), "nothing can be sent after a reset");
        assert_eq!(p.progress().count, 10);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }
}
