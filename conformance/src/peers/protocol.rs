//! Wire formats of the service requests and replies, for peers and cases.
//!
//! All integers are big-endian. Keeping the encoders next to the parsers
//! means a case and a peer cannot disagree on a format.

use crate::pattern::Fnv64;

/// Length of a source request: the 8-byte BE byte count.
pub const SOURCE_REQUEST_LEN: usize = 8;
/// Length of a sink request (the header before the data): the 8-byte BE
/// byte count.
pub const SINK_REQUEST_LEN: usize = 8;
/// Length of a connect-back request: 2-byte BE port + 8-byte BE byte count.
pub const CONNECT_BACK_REQUEST_LEN: usize = 10;
/// Length of the sink's report: 8-byte BE count + 8-byte BE FNV-1a-64.
pub const SINK_REPORT_LEN: usize = 16;

/// The request a client sends to a source service for `n` bytes.
pub fn source_request(n: u64) -> [u8; SOURCE_REQUEST_LEN] {
    n.to_be_bytes()
}

/// The header a client sends to the sink before its `n` data bytes.
pub fn sink_request(n: u64) -> [u8; SINK_REQUEST_LEN] {
    n.to_be_bytes()
}

/// The request a client sends to a connect-back service (plain or echo-check):
/// connect back to the client's `port` and send `n` bytes.
pub fn connect_back_request(port: u16, n: u64) -> [u8; CONNECT_BACK_REQUEST_LEN] {
    let mut out = [0u8; CONNECT_BACK_REQUEST_LEN];
    out[..2].copy_from_slice(&port.to_be_bytes());
    out[2..].copy_from_slice(&n.to_be_bytes());
    out
}

/// Parses a complete connect-back request into `(port, n)`.
pub fn parse_connect_back_request(req: &[u8; CONNECT_BACK_REQUEST_LEN]) -> (u16, u64) {
    let port = u16::from_be_bytes([req[0], req[1]]);
    let mut n = [0u8; 8];
    n.copy_from_slice(&req[2..]);
    (port, u64::from_be_bytes(n))
}

/// The sink's report for a stream: byte count then checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkReport {
    /// Data bytes counted: the announced length, or fewer if the client's FIN
    /// came first (bytes beyond the announced length are never counted).
    pub count: u64,
    /// FNV-1a-64 of those bytes.
    pub checksum: u64,
}

impl SinkReport {
    /// The report for everything fed to `sum`.
    pub fn of(sum: &Fnv64) -> Self {
        Self {
            count: sum.len(),
            checksum: sum.value(),
        }
    }

    /// Wire encoding.
    pub fn encode(&self) -> [u8; SINK_REPORT_LEN] {
        let mut out = [0u8; SINK_REPORT_LEN];
        out[..8].copy_from_slice(&self.count.to_be_bytes());
        out[8..].copy_from_slice(&self.checksum.to_be_bytes());
        out
    }

    /// Wire decoding.
    pub fn decode(buf: &[u8; SINK_REPORT_LEN]) -> Self {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&buf[..8]);
        b.copy_from_slice(&buf[8..]);
        Self {
            count: u64::from_be_bytes(a),
            checksum: u64::from_be_bytes(b),
        }
    }
}

/// Accumulates a fixed-size header that may arrive split across reads.
#[derive(Debug, Clone)]
pub struct HeaderReader<const N: usize> {
    buf: [u8; N],
    have: usize,
}

impl<const N: usize> Default for HeaderReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> HeaderReader<N> {
    /// An empty header.
    pub const fn new() -> Self {
        Self {
            buf: [0u8; N],
            have: 0,
        }
    }

    /// Reads from `io` only the bytes still missing (never more, so data
    /// following the header stays queued). Returns the header once complete.
    pub fn read_from(&mut self, io: &mut dyn super::PeerIo) -> Option<[u8; N]> {
        while self.have < N {
            let n = io.recv(&mut self.buf[self.have..]);
            if n == 0 {
                return None;
            }
            self.have += n;
        }
        Some(self.buf)
    }

    /// Bytes received so far.
    pub const fn received(&self) -> usize {
        self.have
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = SinkReport {
            count: 0x0102_0304_0506_0708,
            checksum: 0xfedc_ba98_7654_3210,
        };
        let wire = r.encode();
        assert_eq!(&wire[..2], &[1, 2]);
        assert_eq!(SinkReport::decode(&wire), r);
        let req = connect_back_request(0xabcd, 1 << 40);
        assert_eq!(req[0], 0xab);
        assert_eq!(parse_connect_back_request(&req), (0xabcd, 1 << 40));
        assert_eq!(source_request(5), [0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(sink_request(0x0102), [0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
