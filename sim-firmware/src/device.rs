//! A queue-backed smoltcp `Device` (Medium::Ip, MTU 1500): the simulator
//! decides which frames a stack sees and when, and collects what it sends.
//!
//! The device also puts the sequence number EDK2 and host kernels put on a
//! pure ACK (see [`QueueDevice`]), which smoltcp does not after an RTO.

use std::collections::{BTreeMap, VecDeque};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// IP MTU of every simulated NIC (MSS 1460).
pub const MTU: usize = 1500;

/// One direction of a TCP connection as this stack sends it: (local address,
/// local port, remote address, remote port).
type Flow = ([u8; 4], u16, [u8; 4], u16);

/// Frames in (`rx`) and out (`tx`) of one stack.
///
/// # Pure ACKs carry SND.NXT
/// On a retransmission timeout smoltcp (0.14, and upstream master) rewinds
/// its "last sequence number sent" to SND.UNA, and every segment it sends
/// without data, the pure ACKs included, carries that rewound number. The
/// other end's RCV.NXT can be well past it (it received the data whose
/// ACKs were lost), so the pure ACK fails the acceptability test of RFC 9293
/// 3.10.7.4 (SEG.SEQ < RCV.NXT for a zero-length segment) and is dropped
/// together with its ACK field. When both directions are in RTO recovery at
/// once, each side's ACKs are dropped by the other: the connection deadlocks
/// (each retransmits one segment per back-off, the answer is dropped again)
/// until the retries run out. The fuzzer found this as a peer FIN that never
/// arrived after lossy bidirectional traffic had healed.
///
/// EDK2 never rewinds SND.NXT (TcpTimer.c `TcpRexmitTimeout` retransmits
/// from SndUna with `TcpRetransmit`, leaving SndNxt) and sends ACKs at it
/// (TcpOutput.c `TcpSendAck`: `Seg->Seq = Tcb->SndNxt`); Linux likewise
/// (`tcp_acceptable_seq`). So the device tracks the highest sequence number
/// each flow has sent (SND.MAX, which is what those stacks' SND.NXT is) and
/// moves a pure ACK behind it up to it, fixing the checksum. Segments with
/// data, SYN, FIN or RST (retransmissions, keep-alives, probes) are left
/// exactly as smoltcp built them, and smoltcp's own state is untouched: the
/// receiver uses SEG.SEQ of a pure ACK only for the acceptability test.
#[derive(Debug, Default)]
pub struct QueueDevice {
    /// Frames the next `poll` will consume.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames the stack transmitted.
    pub tx: Vec<Vec<u8>>,
    /// SND.MAX of every flow this stack has sent a SYN on (BTreeMap: no
    /// iteration-order dependence anywhere).
    snd_max: BTreeMap<Flow, u32>,
}

/// Receive token holding one frame.
pub struct RxTok(Vec<u8>);
/// Transmit token appending to the device's tx list.
pub struct TxTok<'a> {
    tx: &'a mut Vec<Vec<u8>>,
    snd_max: &'a mut BTreeMap<Flow, u32>,
}

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        pure_ack_at_snd_max(&mut buf, self.snd_max);
        self.tx.push(buf);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _t: Instant) -> Option<(RxTok, TxTok<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((
            RxTok(frame),
            TxTok {
                tx: &mut self.tx,
                snd_max: &mut self.snd_max,
            },
        ))
    }

    fn transmit(&mut self, _t: Instant) -> Option<TxTok<'_>> {
        Some(TxTok {
            tx: &mut self.tx,
            snd_max: &mut self.snd_max,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// `a` before `b` in sequence space (RFC 9293 modular comparison).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Records the segment in `frame` in its flow's SND.MAX and, if it is a pure
/// ACK behind SND.MAX, moves it there (see [`QueueDevice`]).
fn pure_ack_at_snd_max(frame: &mut [u8], snd_max: &mut BTreeMap<Flow, u32>) {
    if frame.len() < 20 || frame[0] >> 4 != 4 || frame[9] != 6 {
        return;
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[2], frame[3]]));
    if ihl < 20 || total > frame.len() || total < ihl + 20 {
        return;
    }
    let tcp = &frame[ihl..total];
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return;
    }
    let flags = tcp[13];
    let (fin, syn, rst, ack) = (
        flags & 0x01 != 0,
        flags & 0x02 != 0,
        flags & 0x04 != 0,
        flags & 0x10 != 0,
    );
    let payload = (tcp.len() - doff) as u32;
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let flow: Flow = (
        [frame[12], frame[13], frame[14], frame[15]],
        u16::from_be_bytes([tcp[0], tcp[1]]),
        [frame[16], frame[17], frame[18], frame[19]],
        u16::from_be_bytes([tcp[2], tcp[3]]),
    );
    if rst {
        // The connection is over on this side (or never existed: an RST
        // answering a stray segment carries the sequence number that
        // segment asked for). Forget it; a new one starts with a SYN.
        snd_max.remove(&flow);
        return;
    }
    let end = seq
        .wrapping_add(payload)
        .wrapping_add(u32::from(syn))
        .wrapping_add(u32::from(fin));
    if syn {
        // A new connection (SYN or SYN-ACK, first or retransmitted): a new
        // sequence space.
        snd_max.insert(flow, end);
        return;
    }
    let Some(max) = snd_max.get_mut(&flow) else {
        return;
    };
    if seq_lt(*max, end) {
        *max = end;
        return;
    }
    if !(ack && payload == 0 && !fin && seq_lt(seq, *max)) {
        return;
    }
    let max = *max;
    frame[ihl + 4..ihl + 8].copy_from_slice(&max.to_be_bytes());
    let sum = tcp_checksum(&frame[12..16], &frame[16..20], &frame[ihl..total]);
    frame[ihl + 16..ihl + 18].copy_from_slice(&sum.to_be_bytes());
}

/// TCP checksum of `segment` (its checksum field is skipped) with the IPv4
/// pseudo-header of `src` → `dst`.
fn tcp_checksum(src: &[u8], dst: &[u8], segment: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            acc += hi | lo;
        }
    };
    add(src);
    add(dst);
    add(&[0, 6]);
    add(&(segment.len() as u16).to_be_bytes());
    add(&segment[..16]);
    add(&segment[18..]);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Destination IPv4 address of a raw IP packet, if it is one.
pub fn ipv4_dst(frame: &[u8]) -> Option<[u8; 4]> {
    if frame.len() >= 20 && frame[0] >> 4 == 4 {
        Some([frame[16], frame[17], frame[18], frame[19]])
    } else {
        None
    }
}

/// A parsed TCP header summary (ports and flags) of a raw IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct TcpSummary {
    /// Source address.
    pub src: [u8; 4],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// Sequence number.
    pub seq: u32,
}

/// Summarise a TCP/IPv4 packet (None for anything else).
pub fn tcp_summary(frame: &[u8]) -> Option<TcpSummary> {
    if frame.len() < 20 || frame[0] >> 4 != 4 || frame[9] != 6 {
        return None;
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let t = frame.get(ihl..ihl + 20)?;
    Some(TcpSummary {
        src: [frame[12], frame[13], frame[14], frame[15]],
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        syn: t[13] & 0x02 != 0,
        ack: t[13] & 0x10 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 4] = [10, 0, 2, 15];
    const B: [u8; 4] = [10, 0, 2, 2];

    /// An IPv4/TCP frame from A:1000 to B:2000 with a valid checksum.
    fn segment(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut f = vec![0u8; total];
        f[0] = 0x45;
        f[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        f[8] = 64;
        f[9] = 6;
        f[12..16].copy_from_slice(&A);
        f[16..20].copy_from_slice(&B);
        f[20..22].copy_from_slice(&1000u16.to_be_bytes());
        f[22..24].copy_from_slice(&2000u16.to_be_bytes());
        f[24..28].copy_from_slice(&seq.to_be_bytes());
        f[28..32].copy_from_slice(&ack.to_be_bytes());
        f[32] = 5 << 4;
        f[33] = flags;
        f[34..36].copy_from_slice(&4096u16.to_be_bytes());
        f[40..].copy_from_slice(payload);
        let sum = tcp_checksum(&A, &B, &f[20..]);
        f[36..38].copy_from_slice(&sum.to_be_bytes());
        assert!(checksum_valid(&f));
        f
    }

    fn seq_of(f: &[u8]) -> u32 {
        u32::from_be_bytes([f[24], f[25], f[26], f[27]])
    }

    /// What the receiving smoltcp stack checks.
    fn checksum_valid(f: &[u8]) -> bool {
        use smoltcp::wire::{IpAddress, TcpPacket};
        let ip = |a: [u8; 4]| IpAddress::Ipv4(a.into());
        TcpPacket::new_checked(&f[20..])
            .expect("TCP header")
            .verify_checksum(&ip(A), &ip(B))
    }

    /// Sends `f` through a transmit token and returns it as transmitted.
    fn send(dev: &mut QueueDevice, f: Vec<u8>) -> Vec<u8> {
        let tok = dev.transmit(Instant::from_micros(0)).expect("token");
        phy::TxToken::consume(tok, f.len(), |buf| buf.copy_from_slice(&f));
        dev.tx.pop().expect("transmitted")
    }

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;

    #[test]
    fn pure_ack_after_an_rto_rewind_carries_snd_max() {
        let mut dev = QueueDevice::default();
        send(&mut dev, segment(SYN, 100, 0, &[]));
        // Data up to 101 + 3000, then a FIN: SND.MAX = 3102.
        send(&mut dev, segment(ACK, 101, 7, &[1; 1500]));
        send(&mut dev, segment(ACK, 1601, 7, &[2; 1500]));
        send(&mut dev, segment(ACK | FIN, 3101, 7, &[]));
        // RTO: smoltcp retransmits from SND.UNA and rewinds.
        let re = send(&mut dev, segment(ACK, 101, 7, &[1; 1500]));
        assert_eq!(
            seq_of(&re),
            101,
            "a retransmission keeps its sequence number"
        );
        // Its next pure ACK would carry the rewound 1601.
        let ack = send(&mut dev, segment(ACK, 1601, 9, &[]));
        assert_eq!(seq_of(&ack), 3102);
        assert!(checksum_valid(&ack));
        // A pure ACK at SND.MAX already is left alone.
        let ok = segment(ACK, 3102, 9, &[]);
        assert_eq!(send(&mut dev, ok.clone()), ok);
    }

    #[test]
    fn data_keepalives_fins_and_resets_are_left_alone() {
        let mut dev = QueueDevice::default();
        send(&mut dev, segment(SYN, 100, 0, &[]));
        send(&mut dev, segment(ACK, 101, 7, &[1; 1000]));
        // Keep-alive: one byte at SND.NXT - 1.
        let ka = segment(ACK, 1100, 7, &[0]);
        assert_eq!(send(&mut dev, ka.clone()), ka);
        let fin = segment(ACK | FIN, 101, 7, &[]);
        assert_eq!(send(&mut dev, fin.clone()), fin);
        let rst = segment(RST | ACK, 101, 7, &[]);
        assert_eq!(send(&mut dev, rst.clone()), rst);
        // The RST ended the flow: nothing is rewritten until a new SYN.
        let after = segment(ACK, 5, 7, &[]);
        assert_eq!(send(&mut dev, after.clone()), after);
    }

    #[test]
    fn a_new_syn_starts_a_new_sequence_space() {
        let mut dev = QueueDevice::default();
        send(&mut dev, segment(SYN, 0xffff_ff00, 0, &[]));
        // Wraps around zero: SND.MAX = 0x0000_00ff.
        send(&mut dev, segment(ACK, 0xffff_ff01, 7, &[3; 510]));
        let ack = send(&mut dev, segment(ACK, 0xffff_ff01, 7, &[]));
        assert_eq!(seq_of(&ack), 0xff);
        assert!(checksum_valid(&ack));
        // Same ports, new connection with a lower ISN: no stale SND.MAX.
        send(&mut dev, segment(SYN, 50, 0, &[]));
        let fresh = segment(ACK, 51, 7, &[]);
        assert_eq!(send(&mut dev, fresh.clone()), fresh);
    }
}
