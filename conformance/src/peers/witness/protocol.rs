//! Wire formats of the witness: the tag a witnessed connection starts with,
//! the query, and the peer's view it answers with. All integers big-endian;
//! an absent optional value is encoded as all ones.

/// Length of the tag a client sends first on a witnessed port: its token.
pub const TAG_LEN: usize = 8;
/// Length of a witness query.
pub const QUERY_LEN: usize = 14;
/// Length of the witness's answer.
pub const VIEW_LEN: usize = 72;

/// Which connection of a witnessed exchange a query is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leg {
    /// The connection the client opened to the witnessed service.
    Accepted,
    /// The connection a connect-back service opened to the client.
    ConnectBack,
}

/// When the witness answers a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// At once, with whatever the peer has seen so far.
    Now,
    /// Once the client's FIN or RST arrived and a settling time passed
    /// without anything else ending the connection (see
    /// [`SETTLE_NS`](super::SETTLE_NS)): a RST that follows a FIN is then
    /// part of the answer.
    Ended,
}

/// A witness query: what the client asks about and how long the witness may
/// wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// The token the witnessed connection was tagged with.
    pub token: u64,
    /// Which of its connections.
    pub leg: Leg,
    /// When to answer.
    pub until: Until,
    /// The longest the witness waits for `until`, in milliseconds of the
    /// peer host's clock; then it answers with what it has.
    pub wait_ms: u32,
}

impl Query {
    /// Wire encoding.
    pub fn encode(&self) -> [u8; QUERY_LEN] {
        let mut out = [0u8; QUERY_LEN];
        out[..8].copy_from_slice(&self.token.to_be_bytes());
        out[8] = match self.leg {
            Leg::Accepted => 0,
            Leg::ConnectBack => 1,
        };
        out[9] = match self.until {
            Until::Now => 0,
            Until::Ended => 1,
        };
        out[10..].copy_from_slice(&self.wait_ms.to_be_bytes());
        out
    }

    /// Wire decoding; `None` for an unknown leg or condition.
    pub fn decode(buf: &[u8; QUERY_LEN]) -> Option<Self> {
        let leg = match buf[8] {
            0 => Leg::Accepted,
            1 => Leg::ConnectBack,
            _ => return None,
        };
        let until = match buf[9] {
            0 => Until::Now,
            1 => Until::Ended,
            _ => return None,
        };
        Some(Self {
            token: u64_at(buf, 0),
            leg,
            until,
            wait_ms: u32::from_be_bytes([buf[10], buf[11], buf[12], buf[13]]),
        })
    }
}

/// How the peer host learns that a FIN or RST arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observer {
    /// From the segments themselves (the simulator's hosts see every
    /// segment of the system under test).
    Wire,
    /// From its socket API (end of file, ECONNRESET): the host behind slirp,
    /// which sees slirp's connection, not the guest's.
    Socket,
}

/// What the peer saw of one witnessed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    /// Whether the witness knows the token (false: every other field is
    /// empty).
    pub known: bool,
    /// Whether the connection is over at the peer.
    pub ended: bool,
    /// Whether the peer's service reset the connection itself.
    pub self_reset: bool,
    /// How FIN and RST were observed.
    pub observer: Observer,
    /// The client's port as the peer saw it.
    pub remote_port: u16,
    /// Data bytes the peer's service read (after the tag).
    pub bytes_in: u64,
    /// FNV-1a-64 of those bytes.
    pub checksum_in: u64,
    /// Bytes the peer's service queued for sending.
    pub bytes_out: u64,
    /// Of those, bytes the client acknowledged, as far as the peer host
    /// can tell.
    pub acked_out: u64,
    /// When the client's first FIN arrived, ns after the connection was
    /// registered.
    pub fin_at_ns: Option<u64>,
    /// When the client's first RST arrived, ns after registration.
    pub rst_at_ns: Option<u64>,
    /// The largest window the client advertised, in bytes (`None`: the
    /// host cannot see the client's segments).
    pub max_window: Option<u32>,
    /// The window scale the client offered in its SYN or SYN-ACK (`None`:
    /// not offered, or not observable).
    pub window_scale: Option<u8>,
}

impl PeerView {
    /// The answer for a token the witness does not know.
    pub const UNKNOWN: PeerView = PeerView {
        known: false,
        ended: false,
        self_reset: false,
        observer: Observer::Socket,
        remote_port: 0,
        bytes_in: 0,
        checksum_in: 0,
        bytes_out: 0,
        acked_out: 0,
        fin_at_ns: None,
        rst_at_ns: None,
        max_window: None,
        window_scale: None,
    };

    /// How the client ended the connection, as the peer saw it.
    pub fn ending(&self) -> Ending {
        match (self.fin_at_ns, self.rst_at_ns) {
            (_, Some(_)) if self.self_reset => Ending::PeerReset,
            (None, None) if self.self_reset => Ending::PeerReset,
            (None, None) => Ending::Open,
            (Some(_), None) => Ending::Fin,
            (None, Some(_)) => Ending::Rst,
            (Some(_), Some(_)) => Ending::FinThenRst,
        }
    }

    /// Wire encoding.
    pub fn encode(&self) -> [u8; VIEW_LEN] {
        let mut out = [0u8; VIEW_LEN];
        out[0] = u8::from(self.known)
            | u8::from(self.ended) << 1
            | u8::from(self.self_reset) << 2
            | u8::from(self.observer == Observer::Wire) << 3;
        out[1] = self.window_scale.unwrap_or(u8::MAX);
        out[2..4].copy_from_slice(&self.remote_port.to_be_bytes());
        out[4..8].copy_from_slice(&self.max_window.unwrap_or(u32::MAX).to_be_bytes());
        for (i, v) in [
            self.bytes_in,
            self.checksum_in,
            self.bytes_out,
            self.acked_out,
            self.fin_at_ns.unwrap_or(u64::MAX),
            self.rst_at_ns.unwrap_or(u64::MAX),
        ]
        .into_iter()
        .enumerate()
        {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Wire decoding.
    pub fn decode(buf: &[u8; VIEW_LEN]) -> Self {
        let opt = |v: u64| (v != u64::MAX).then_some(v);
        let window = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        Self {
            known: buf[0] & 1 != 0,
            ended: buf[0] & 2 != 0,
            self_reset: buf[0] & 4 != 0,
            observer: if buf[0] & 8 != 0 {
                Observer::Wire
            } else {
                Observer::Socket
            },
            window_scale: (buf[1] != u8::MAX).then_some(buf[1]),
            remote_port: u16::from_be_bytes([buf[2], buf[3]]),
            max_window: (window != u32::MAX).then_some(window),
            bytes_in: u64_at(buf, 8),
            checksum_in: u64_at(buf, 16),
            bytes_out: u64_at(buf, 24),
            acked_out: u64_at(buf, 32),
            fin_at_ns: opt(u64_at(buf, 40)),
            rst_at_ns: opt(u64_at(buf, 48)),
        }
    }
}

/// How the client ended a connection, as the peer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Neither FIN nor RST arrived (yet).
    Open,
    /// A FIN, and no RST after it.
    Fin,
    /// A RST without a FIN before it.
    Rst,
    /// A FIN, then a RST.
    FinThenRst,
    /// The peer's service reset the connection itself.
    PeerReset,
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_view_round_trip() {
        let q = Query {
            token: 0x0102_0304_0506_0708,
            leg: Leg::ConnectBack,
            until: Until::Ended,
            wait_ms: 5000,
        };
        assert_eq!(Query::decode(&q.encode()), Some(q));
        let mut bad = q.encode();
        bad[8] = 7;
        assert_eq!(Query::decode(&bad), None);
        let v = PeerView {
            known: true,
            ended: true,
            self_reset: false,
            observer: Observer::Wire,
            remote_port: 49152,
            bytes_in: 4096,
            checksum_in: 0xdead_beef,
            bytes_out: 10,
            acked_out: 9,
            fin_at_ns: Some(5),
            rst_at_ns: None,
            max_window: Some(2 << 20),
            window_scale: Some(6),
        };
        assert_eq!(PeerView::decode(&v.encode()), v);
        assert_eq!(v.ending(), Ending::Fin);
        assert_eq!(
            PeerView::decode(&PeerView::UNKNOWN.encode()),
            PeerView::UNKNOWN
        );
        assert_eq!(PeerView::UNKNOWN.ending(), Ending::Open);
    }
}
