//! EDK2's sender in front of smoltcp: when Transmit bytes are cut into
//! segments, and so when a Transmit token completes.
//!
//! EDK2 signals a Transmit token when its last byte is copied into a
//! segment for the first time (TcpOutput.c `TcpGetSegmentSock` calls
//! SockImpl.c `SockDataSent`), and it cuts a segment only as
//! `TcpDataToSend` (TcpOutput.c l.166-257) allows: the peer's window, a
//! congestion window starting at one MSS, the sender SWS rule and Nagle.
//! smoltcp runs with no congestion control and Nagle off, and is handed a
//! Transmit's bytes only as that rule allows; it then sends them at once,
//! so "handed to smoltcp" is "cut into a segment". [code-read]
//!
//! The peer's window and SYN options come from `peer_view`.
//!
//! The pure rule is [`data_to_send`]; [`Sender`] keeps the per-connection
//! variables EDK2 keeps in its TCB (SND.NXT, cwnd, ssthresh, the largest
//! window, the persist timer) as offsets into the byte stream.

use smoltcp::iface::SocketHandle;

use super::peer_view::{PeerView, SynOptions};
use crate::device::MTU;

/// EDK2's default send MSS before the peer's SYN (TcpDispatcher.c l.556).
const DEFAULT_SMSS: u32 = 536;
/// EDK2's receive MSS on Ethernet: IP MaxPacketSize minus the TCP header
/// (TcpMisc.c `TcpGetRcvMss`), the ceiling of the send MSS.
const RCV_MSS: u32 = (MTU - 40) as u32;
/// The timestamp option's aligned length, taken off the send MSS when
/// timestamps are on (TcpMisc.c l.161, `TCP_OPTION_TS_ALIGNED_LEN`).
const TS_ALIGNED_LEN: u32 = 12;
/// One EDK2 TCP tick (`TCP_TICK_HZ` = 5).
pub(crate) const TICK_NS: u64 = 200_000_000;
/// RTO bounds (TcpProto.h `TCP_RTO_MIN`, `TCP_RTO_MAX`).
const RTO_MIN_NS: u64 = 5 * TICK_NS;
const RTO_MAX_NS: u64 = 300 * TICK_NS;
/// Socket.h `SOCK_BUFF_LOW_WATER`: a Transmit is taken into the send
/// buffer only while at least this much of it is free.
pub(crate) const LOW_WATER: usize = 2 * 1024;
/// smoltcp's send buffer: it holds only the bytes in flight, which the
/// peer's window bounds (the simulated peers' receive buffers are at most
/// 2 MiB). If it is ever full, cutting stops until ACKs make room.
pub(crate) const IN_FLIGHT_MAX: usize = 4 * 1024 * 1024;

/// What `TcpDataToSend` looks at, in stream offsets (bytes since the SYN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SendInputs {
    /// SND.UNA: bytes the peer acknowledged.
    pub una: u64,
    /// SND.NXT: bytes cut into segments.
    pub nxt: u64,
    /// Bytes in the socket send buffer not yet cut.
    pub unsent: u64,
    /// The peer's current window (scaled).
    pub wnd: u64,
    /// The largest window the peer ever offered (`SndWndMax`).
    pub wnd_max: u64,
    /// Congestion window.
    pub cwnd: u64,
    /// Send MSS.
    pub smss: u64,
    /// Nagle's algorithm is on (ControlOption EnableNagle).
    pub nagle: bool,
    /// The persist timer expired: send what the window allows, whatever
    /// its size (`Force`).
    pub force: bool,
}

/// `TcpDataToSend`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Cut a segment of this many bytes.
    Send(u64),
    /// Nothing to send.
    Idle,
    /// Data waits for the window or the SWS/Nagle rule: arm the persist
    /// timer (TcpOutput.c l.243-256).
    Persist,
}

/// TcpOutput.c `TcpDataToSend`: how many bytes the next segment carries.
pub(crate) fn data_to_send(v: &SendInputs) -> Cut {
    let limit = (v.una + v.wnd).min(v.una + v.cwnd);
    let win = limit.saturating_sub(v.nxt);
    let len = win.min(v.unsent).min(v.smss);
    if v.force {
        return if len > 0 {
            Cut::Send(len)
        } else {
            Cut::Persist
        };
    }
    if len == 0 {
        return if v.unsent == 0 {
            Cut::Idle
        } else {
            Cut::Persist
        };
    }
    // Sender SWS avoidance: a full segment, or half the largest window.
    if len == v.smss || 2 * len >= v.wnd_max {
        return Cut::Send(len);
    }
    // Everything left, and nothing unacknowledged or Nagle off.
    if len == v.unsent && (v.nxt == v.una || !v.nagle) {
        return Cut::Send(len);
    }
    Cut::Persist
}

/// EDK2's per-connection sender variables, in stream offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sender {
    /// The smoltcp socket these variables belong to (a new connection on
    /// the same child starts afresh).
    pub socket: Option<SocketHandle>,
    /// Set from the peer's SYN (`TcpInitTcbPeer`).
    pub ready: bool,
    /// SND.NXT: bytes handed to smoltcp (cut into segments).
    pub nxt: u64,
    /// SND.UNA at the last look.
    pub una: u64,
    pub smss: u64,
    pub cwnd: u64,
    pub ssthresh: u64,
    pub wnd: u64,
    pub wnd_max: u64,
    /// The cwnd ceiling: `TCP_MAX_WIN` shifted by the send window scale.
    pub cwnd_max: u64,
    /// Duplicate ACKs in a row, and the recovery point while in fast
    /// recovery (TcpInput.c `TcpFastRecover`).
    pub dup_acks: u32,
    pub recover: Option<u64>,
    /// The retransmission timer as EDK2 would run it: when data in flight
    /// last made progress, and the RTO (1 s after the handshake's RTT
    /// sample on a LAN, doubling on each expiry).
    pub progress_at: u64,
    pub rto_ns: u64,
    /// Persist timer: when it expires, and its current period.
    pub persist_at: Option<u64>,
    pub probe_ns: u64,
    /// The zero window is being probed (smoltcp's keep-alive is on).
    pub probing: bool,
}

impl Default for Sender {
    fn default() -> Self {
        Sender {
            socket: None,
            ready: false,
            nxt: 0,
            una: 0,
            smss: u64::from(DEFAULT_SMSS),
            cwnd: u64::from(DEFAULT_SMSS),
            ssthresh: u64::from(u32::MAX),
            wnd: 0,
            wnd_max: 0,
            cwnd_max: 0xffff,
            dup_acks: 0,
            recover: None,
            progress_at: 0,
            rto_ns: RTO_MIN_NS,
            persist_at: None,
            probe_ns: 0,
            probing: false,
        }
    }
}

impl Sender {
    /// `TcpInitTcbPeer`: the send MSS from the peer's MSS option (at least
    /// 64, at most the receive MSS), cwnd one MSS, and only then 12 bytes
    /// off the send MSS when both ends use timestamps.
    pub(crate) fn init_from_syn(&mut self, syn: SynOptions, local_ts: bool, wnd: u64, now: u64) {
        let mut smss = syn
            .mss
            .map_or(DEFAULT_SMSS, |m| u32::from(m).clamp(64, RCV_MSS));
        self.cwnd = u64::from(smss);
        if syn.timestamps && local_ts {
            smss -= TS_ALIGNED_LEN;
        }
        self.smss = u64::from(smss);
        self.cwnd_max = 0xffff_u64 << syn.wscale.unwrap_or(0);
        self.wnd = wnd;
        self.wnd_max = wnd;
        self.progress_at = now;
        self.ready = true;
    }

    /// Bytes in flight (cut, not acknowledged).
    pub(crate) fn flight(&self) -> u64 {
        self.nxt - self.una
    }

    /// Take what the peer's frames said since the last look: the window,
    /// and per ACK of new data the cwnd growth (TcpInput.c l.1205-1232);
    /// duplicate ACKs drive NewReno's fast recovery (TcpInput.c l.40-146).
    pub(crate) fn on_peer(&mut self, view: &mut PeerView, una: u64, now: u64) {
        self.wnd = view.wnd;
        self.wnd_max = self.wnd_max.max(view.wnd);
        let acks = std::mem::take(&mut view.acks);
        let dup_candidates = std::mem::take(&mut view.pure_same_window);
        if una > self.una {
            self.una = una;
            self.dup_acks = 0;
            self.progress_at = now;
            self.rto_ns = RTO_MIN_NS;
            match self.recover {
                Some(r) if una >= r => {
                    self.cwnd = self.ssthresh;
                    self.recover = None;
                }
                Some(_) => {}
                None => self.grow(),
            }
        } else if acks > 0 && self.flight() > 0 {
            self.dup_acks += dup_candidates;
            if self.recover.is_some() {
                self.cwnd += self.smss * u64::from(dup_candidates);
            } else if self.dup_acks >= 3 {
                self.ssthresh = (self.flight() / 2).max(2 * self.smss);
                self.cwnd = self.ssthresh + 3 * self.smss;
                self.recover = Some(self.nxt);
            }
        }
        if self.flight() == 0 {
            self.progress_at = now;
        }
    }

    /// Slow start below ssthresh, congestion avoidance above it.
    fn grow(&mut self) {
        if self.cwnd < self.ssthresh {
            self.cwnd += self.smss;
        } else {
            self.cwnd += (self.smss * self.smss / self.cwnd).max(1);
        }
        self.cwnd = self.cwnd.min(self.cwnd_max);
    }

    /// The retransmission timer expired with data in flight (TcpTimer.c
    /// `TcpRexmitTimeout` l.196-199): ssthresh half the flight (at least
    /// 2 MSS), cwnd one MSS, the RTO doubles.
    pub(crate) fn check_rto(&mut self, now: u64) {
        if self.flight() == 0 || now < self.progress_at + self.rto_ns {
            return;
        }
        self.ssthresh = (self.flight() / 2).max(2 * self.smss);
        self.cwnd = self.smss;
        self.recover = None;
        self.dup_acks = 0;
        self.progress_at = now;
        self.rto_ns = (self.rto_ns * 2).min(RTO_MAX_NS);
    }

    /// The inputs of [`data_to_send`] for `unsent` bytes waiting.
    pub(crate) fn inputs(&self, unsent: u64, nagle: bool, force: bool) -> SendInputs {
        SendInputs {
            una: self.una,
            nxt: self.nxt,
            unsent,
            wnd: self.wnd,
            wnd_max: self.wnd_max,
            cwnd: self.cwnd,
            smss: self.smss,
            nagle,
            force,
        }
    }

    /// The persist timer expired at `now`.
    pub(crate) fn persist_due(&self, now: u64) -> bool {
        self.persist_at.is_some_and(|t| t <= now)
    }

    /// `TcpSetProbeTimer`: first at the RTO, then doubling, 1..60 s.
    pub(crate) fn arm_persist(&mut self, now: u64) {
        if self.persist_at.is_some_and(|t| t > now) {
            return;
        }
        self.probe_ns = if self.persist_at.is_none() {
            self.rto_ns
        } else {
            self.probe_ns * 2
        }
        .clamp(RTO_MIN_NS, RTO_MAX_NS);
        self.persist_at = Some(now + self.probe_ns);
    }

    /// Data went out: the persist timer stops (TcpProbeTimeout l.244-248).
    pub(crate) fn stop_persist(&mut self) {
        self.persist_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SendInputs {
        SendInputs {
            una: 0,
            nxt: 0,
            unsent: 0,
            wnd: 65535,
            wnd_max: 65535,
            cwnd: 1460,
            smss: 1448,
            nagle: true,
            force: false,
        }
    }

    #[test]
    fn data_to_send_follows_tcp_data_to_send() {
        use Cut::*;
        let rows: [(&str, SendInputs, Cut); 13] = [
            ("nothing queued", base(), Idle),
            (
                "first flight: one SMSS of a 6004-byte token (cwnd 1460, SMSS 1448)",
                SendInputs {
                    unsent: 6004,
                    ..base()
                },
                Send(1448),
            ),
            (
                "the 12-byte cwnd remainder waits (SWS)",
                SendInputs {
                    unsent: 6004 - 1448,
                    nxt: 1448,
                    ..base()
                },
                Persist,
            ),
            (
                "a small send on an idle connection goes out",
                SendInputs {
                    unsent: 15,
                    ..base()
                },
                Send(15),
            ),
            (
                "Nagle holds a small send while data is unacknowledged",
                SendInputs {
                    unsent: 10,
                    nxt: 10,
                    ..base()
                },
                Persist,
            ),
            (
                "without Nagle it goes out",
                SendInputs {
                    unsent: 10,
                    nxt: 10,
                    nagle: false,
                    ..base()
                },
                Send(10),
            ),
            (
                "half the largest window is enough (SWS rule b)",
                SendInputs {
                    unsent: 5000,
                    nxt: 10,
                    wnd: 1010,
                    wnd_max: 2000,
                    cwnd: 1_000_000,
                    ..base()
                },
                Send(1000),
            ),
            (
                "just under half the largest window waits",
                SendInputs {
                    unsent: 5000,
                    nxt: 10,
                    wnd: 1009,
                    wnd_max: 2000,
                    cwnd: 1_000_000,
                    ..base()
                },
                Persist,
            ),
            (
                "a zero window sends nothing",
                SendInputs {
                    unsent: 100,
                    wnd: 0,
                    ..base()
                },
                Persist,
            ),
            (
                "a forced send ignores SWS and Nagle",
                SendInputs {
                    unsent: 10,
                    nxt: 10,
                    force: true,
                    ..base()
                },
                Send(10),
            ),
            (
                "forced against a zero window: still nothing",
                SendInputs {
                    unsent: 10,
                    wnd: 0,
                    force: true,
                    ..base()
                },
                Persist,
            ),
            (
                "cwnd of 3 MSS: a full segment while room",
                SendInputs {
                    unsent: 100_000,
                    nxt: 2896,
                    cwnd: 3 * 1460,
                    ..base()
                },
                Send(1448),
            ),
            (
                "the peer window bounds below cwnd",
                SendInputs {
                    unsent: 100_000,
                    una: 1000,
                    nxt: 1000,
                    wnd: 700,
                    wnd_max: 1400,
                    cwnd: 100_000,
                    ..base()
                },
                Send(700),
            ),
        ];
        for (name, inputs, want) in rows {
            assert_eq!(data_to_send(&inputs), want, "{name}: {inputs:?}");
        }
    }

    #[test]
    fn syn_sets_mss_then_takes_timestamps_off() {
        let mut s = Sender::default();
        let syn = SynOptions {
            mss: Some(1460),
            wscale: Some(7),
            timestamps: true,
        };
        s.init_from_syn(syn, true, 65535, 0);
        assert_eq!((s.cwnd, s.smss), (1460, 1448));
        assert_eq!(s.cwnd_max, 0xffff << 7);
        let mut t = Sender::default();
        t.init_from_syn(syn, false, 65535, 0);
        assert_eq!((t.cwnd, t.smss), (1460, 1460), "no TS on our side");
        let mut u = Sender::default();
        u.init_from_syn(
            SynOptions {
                mss: Some(9000),
                ..syn
            },
            false,
            1,
            0,
        );
        assert_eq!(u.smss, 1460, "capped at the receive MSS");
        let mut v = Sender::default();
        v.init_from_syn(SynOptions::default(), false, 1, 0);
        assert_eq!(v.smss, 536, "no MSS option");
    }

    #[test]
    fn slow_start_then_avoidance_and_rto_collapse() {
        let mut s = Sender::default();
        s.init_from_syn(
            SynOptions {
                mss: Some(1000),
                ..SynOptions::default()
            },
            false,
            1 << 20,
            0,
        );
        s.ssthresh = 3000;
        let mut view = PeerView {
            wnd: 1 << 20,
            acks: 1,
            ..PeerView::default()
        };
        s.nxt = 1000;
        s.on_peer(&mut view, 1000, 1);
        assert_eq!(s.cwnd, 2000, "slow start: + SMSS per ACK");
        s.nxt = 3000;
        view.acks = 1;
        s.on_peer(&mut view, 3000, 2);
        assert_eq!(s.cwnd, 3000);
        s.nxt = 6000;
        view.acks = 1;
        s.on_peer(&mut view, 6000, 3);
        assert_eq!(s.cwnd, 3333, "avoidance: + SMSS^2/cwnd");
        s.nxt = 9000;
        s.check_rto(3 + RTO_MIN_NS - 1);
        assert_eq!(s.cwnd, 3333, "not yet");
        s.check_rto(3 + RTO_MIN_NS);
        assert_eq!((s.cwnd, s.ssthresh, s.rto_ns), (1000, 2000, 2 * RTO_MIN_NS));
    }

    #[test]
    fn three_duplicate_acks_enter_fast_recovery() {
        let mut s = Sender::default();
        s.init_from_syn(
            SynOptions {
                mss: Some(1000),
                ..SynOptions::default()
            },
            false,
            1 << 20,
            0,
        );
        s.cwnd = 10_000;
        s.nxt = 10_000;
        let mut view = PeerView {
            wnd: 1 << 20,
            ..PeerView::default()
        };
        for _ in 0..2 {
            view.acks = 1;
            view.pure_same_window = 1;
            s.on_peer(&mut view, 0, 1);
        }
        assert_eq!(s.cwnd, 10_000);
        view.acks = 1;
        view.pure_same_window = 1;
        s.on_peer(&mut view, 0, 1);
        assert_eq!((s.ssthresh, s.cwnd, s.recover), (5000, 8000, Some(10_000)));
        view.acks = 1;
        s.on_peer(&mut view, 10_000, 2);
        assert_eq!((s.cwnd, s.recover), (5000, None), "full ACK deflates");
    }

    #[test]
    fn persist_period_starts_at_rto_and_doubles_to_60s() {
        let mut s = Sender::default();
        s.arm_persist(0);
        assert_eq!(s.persist_at, Some(RTO_MIN_NS));
        s.arm_persist(10);
        assert_eq!(s.persist_at, Some(RTO_MIN_NS), "running: unchanged");
        let mut t = RTO_MIN_NS;
        for want_s in [2, 4, 8, 16, 32, 60, 60] {
            s.arm_persist(t);
            assert_eq!(s.probe_ns, want_s * 1_000_000_000);
            t = s.persist_at.expect("armed");
        }
    }
}
