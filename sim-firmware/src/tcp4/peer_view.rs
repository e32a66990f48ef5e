//! What the driver learns from the peer's frames: the window and SYN
//! options per flow (for `sender`), and the delayed-ACK timing it sets on
//! smoltcp before smoltcp sees a data segment.
//!
//! smoltcp keeps the peer's window private, so the driver reads each frame
//! it hands smoltcp (one call in `mnp.rs` `one_frame`).

use std::collections::BTreeMap;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::sender::TICK_NS;

/// The options of the peer's SYN or SYN-ACK that shape the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SynOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub timestamps: bool,
}

/// What the driver reads from one frame it hands smoltcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerFrame {
    /// (local port, remote address, remote port) from the SUT's side.
    pub flow: FlowKey,
    pub syn: bool,
    pub ack: bool,
    pub rst: bool,
    pub psh: bool,
    pub fin: bool,
    /// The window field as sent (unscaled).
    pub window: u16,
    pub payload: usize,
    /// The SYN's options (None for other segments).
    pub options: Option<SynOptions>,
}

/// A connection from the SUT's side: (local port, remote address, remote port).
pub(crate) type FlowKey = (u16, [u8; 4], u16);

/// The flow of a connected smoltcp socket.
pub(crate) fn flow_of(sock: &tcp::Socket) -> Option<FlowKey> {
    let local = sock.local_endpoint()?;
    match sock.remote_endpoint()? {
        IpEndpoint {
            addr: IpAddress::Ipv4(a),
            port,
        } => Some((local.port, a.octets(), port)),
    }
}

impl PeerFrame {
    /// Parse an IPv4/TCP frame addressed to the SUT (None otherwise).
    pub(crate) fn parse(frame: &[u8]) -> Option<PeerFrame> {
        if frame.len() < 20 || frame[0] >> 4 != 4 || frame[9] != 6 {
            return None;
        }
        let ihl = usize::from(frame[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([frame[2], frame[3]])).min(frame.len());
        let tcp = frame.get(ihl..total)?;
        if tcp.len() < 20 {
            return None;
        }
        let doff = usize::from(tcp[12] >> 4) * 4;
        if doff < 20 || doff > tcp.len() {
            return None;
        }
        let flags = tcp[13];
        let syn = flags & 0x02 != 0;
        Some(PeerFrame {
            flow: (
                u16::from_be_bytes([tcp[2], tcp[3]]),
                [frame[12], frame[13], frame[14], frame[15]],
                u16::from_be_bytes([tcp[0], tcp[1]]),
            ),
            syn,
            ack: flags & 0x10 != 0,
            rst: flags & 0x04 != 0,
            psh: flags & 0x08 != 0,
            fin: flags & 0x01 != 0,
            window: u16::from_be_bytes([tcp[14], tcp[15]]),
            payload: tcp.len() - doff,
            options: syn.then(|| syn_options(&tcp[20..doff])),
        })
    }
}

/// MSS, window scale and timestamps from a SYN's option bytes.
fn syn_options(mut o: &[u8]) -> SynOptions {
    let mut out = SynOptions::default();
    while let Some(&kind) = o.first() {
        match kind {
            0 => break,
            1 => o = &o[1..],
            _ => {
                let Some(&len) = o.get(1) else { break };
                let len = usize::from(len);
                if len < 2 || len > o.len() {
                    break;
                }
                match (kind, len) {
                    (2, 4) => out.mss = Some(u16::from_be_bytes([o[2], o[3]])),
                    (3, 3) => out.wscale = Some(o[2].min(14)),
                    (8, 10) => out.timestamps = true,
                    _ => {}
                }
                o = &o[len..];
            }
        }
    }
    out
}

/// What the driver has seen the peer send on one flow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PeerView {
    pub syn: Option<SynOptions>,
    /// The peer's current window, scaled.
    pub wnd: u64,
    /// Frames with ACK since the sender last looked, and whether one of
    /// them was a pure ACK with an unchanged window (a duplicate candidate).
    pub acks: u32,
    pub pure_same_window: u32,
}

/// The peers' views, per flow.
#[derive(Debug, Default)]
pub(crate) struct PeerBook {
    flows: BTreeMap<FlowKey, PeerView>,
}

impl PeerBook {
    /// Record a frame about to be handed to smoltcp.
    pub(crate) fn observe(&mut self, f: &PeerFrame) {
        if f.rst {
            return;
        }
        if f.syn {
            // A (new) handshake: what was known of the flow is stale.
            let v = self.flows.entry(f.flow).or_default();
            *v = PeerView {
                syn: f.options,
                wnd: u64::from(f.window),
                ..PeerView::default()
            };
            return;
        }
        let Some(v) = self.flows.get_mut(&f.flow) else {
            return;
        };
        if !f.ack {
            return;
        }
        let shift = v.syn.and_then(|s| s.wscale).unwrap_or(0);
        let wnd = u64::from(f.window) << shift;
        v.acks += 1;
        if f.payload == 0 && wnd == v.wnd {
            v.pure_same_window += 1;
        }
        v.wnd = wnd;
    }

    /// The view of a flow, if its SYN was seen.
    pub(crate) fn get_mut(&mut self, flow: &FlowKey) -> Option<&mut PeerView> {
        self.flows.get_mut(flow)
    }

    /// Forget a flow (its connection is gone).
    pub(crate) fn forget(&mut self, flow: &FlowKey) {
        self.flows.remove(flow);
    }
}

/// How long the ACK of a data segment arriving at `now` waits: nothing
/// when the segment asks for an ACK now (PSH, FIN), else until the next
/// 200 ms TCP tick (ticks at multiples of `TICK_NS` from boot).
pub(crate) fn ack_delay_ns(now: u64, ack_now: bool) -> u64 {
    if ack_now {
        0
    } else {
        (now / TICK_NS + 1) * TICK_NS - now
    }
}

impl super::Edk2Tcp4 {
    /// A frame is about to reach smoltcp at `now`: note what the peer said
    /// on its flow, and set when smoltcp acknowledges its data.
    pub(super) fn observe_ingress(&mut self, now: u64, frame: &[u8]) {
        let Some(f) = PeerFrame::parse(frame) else {
            return;
        };
        self.peers.observe(&f);
        if f.payload > 0 || f.fin {
            self.delay_ack_to_tick(now, &f);
        }
    }

    /// EDK2's delayed ACK (TcpOutput.c `TcpToSendAck`): at once for a
    /// segment with PSH or FIN (TcpInput.c l.499, l.507-509), otherwise at
    /// the next 200 ms tick (TcpTimer.c l.509-511), or with the next
    /// segment. smoltcp arms its delayed-ACK timer with the socket's ACK
    /// delay when a segment arrives and sends at once when more than one
    /// MSS is unacknowledged, so the delay is set to the time left to the
    /// tick before smoltcp sees the segment. Ticks fall at multiples of
    /// 200 ms from boot.
    fn delay_ack_to_tick(&mut self, now: u64, f: &PeerFrame) {
        let delay_ns = ack_delay_ns(now, f.psh || f.fin);
        let sockets = &mut self.sockets;
        let h = self
            .children
            .values()
            .filter_map(|c| c.sock)
            .find(|&h| flow_of(sockets.get::<tcp::Socket>(h)) == Some(f.flow));
        if let Some(h) = h {
            sockets
                .get_mut::<tcp::Socket>(h)
                .set_ack_delay(Some(smoltcp::time::Duration::from_micros(delay_ns / 1000)));
        }
    }

    /// The connection on `sock` is gone: forget its flow.
    pub(super) fn forget_flow(&mut self, sock: SocketHandle) {
        if let Some(f) = flow_of(self.sockets.get::<tcp::Socket>(sock)) {
            self.peers.forget(&f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delayed_ack_waits_for_the_next_tick() {
        assert_eq!(ack_delay_ns(0, false), TICK_NS);
        assert_eq!(ack_delay_ns(150_000_000, false), 50_000_000);
        assert_eq!(ack_delay_ns(TICK_NS, false), TICK_NS);
        assert_eq!(ack_delay_ns(150_000_000, true), 0, "PSH or FIN");
    }

    #[test]
    fn peer_frames_give_window_scale_and_options() {
        // SYN-ACK from 10.0.2.2:80 to port 1234: MSS 1460, WS 7, TS.
        let mut f = vec![0u8; 20 + 40];
        f[0] = 0x45;
        f[2..4].copy_from_slice(&60u16.to_be_bytes());
        f[9] = 6;
        f[12..16].copy_from_slice(&[10, 0, 2, 2]);
        let t = &mut f[20..];
        t[0..2].copy_from_slice(&80u16.to_be_bytes());
        t[2..4].copy_from_slice(&1234u16.to_be_bytes());
        t[12] = 10 << 4;
        t[13] = 0x12;
        t[14..16].copy_from_slice(&1000u16.to_be_bytes());
        t[20..40].copy_from_slice(&[
            2, 4, 5, 180, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0,
        ]);
        let p = PeerFrame::parse(&f).expect("tcp");
        assert_eq!(p.flow, (1234, [10, 0, 2, 2], 80));
        let syn = SynOptions {
            mss: Some(1460),
            wscale: Some(7),
            timestamps: true,
        };
        assert_eq!(p.options, Some(syn));
        let mut book = PeerBook::default();
        book.observe(&p);
        assert_eq!(
            book.get_mut(&p.flow).expect("seen").wnd,
            1000,
            "SYN window unscaled"
        );
        // A later ACK: its window is scaled by 7.
        f[20 + 13] = 0x10;
        let p2 = PeerFrame::parse(&f).expect("tcp");
        book.observe(&p2);
        let v = book.get_mut(&p.flow).expect("seen");
        assert_eq!((v.wnd, v.acks), (1000 << 7, 1));
    }
}
