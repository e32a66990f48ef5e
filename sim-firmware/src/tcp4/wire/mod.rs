//! The SUT's side of the simulated link: what EDK2 puts on the wire.
//!
//! smoltcp runs the SUT's TCP, but its wire image is not EDK2's. Every
//! frame crossing the boundary between the SUT's NIC and smoltcp is
//! rewritten here (edk2-stable202211, code-read):
//! - **ISN.** smoltcp picks its own ISN and has no setter. Each connection
//!   gets the ISN of the profile's generator ([`IsnScheme`]) and keeps the
//!   offset between the two: outgoing SEQ gets it added, incoming ACK gets
//!   it subtracted. smoltcp never learns; the peer only ever sees EDK2's
//!   numbers. Timestamps are not sequence numbers and stay as they are;
//!   SACK blocks never flow (SACK-permitted is never exchanged).
//! - **IP header.** TCP segments leave with ToS 0, TTL 255 and DF clear
//!   whatever the configuration says (TcpIo.c `TcpSendIpPacket`
//!   l.115-121: the IpIo override), and every datagram takes the next value
//!   of one IP ID counter with a random start (Ip4Output.c l.258
//!   `mIp4Id++`, seeded in Ip4Driver.c l.656).
//! - **SYN options** in EDK2's layout (see `options`): MSS, window scale,
//!   timestamps with TSval the TCP tick counter (`mTcpTick`, 1000 at
//!   driver start, one per 200 ms: TcpTimer.c l.12, l.485) and TSecr 0; no
//!   SACK-permitted. SACK-permitted is also blanked out of incoming SYNs,
//!   as EDK2 ignores it, so smoltcp never sends SACK blocks.
//! - **SYN-ACK window**: the receive buffer shifted by the window scale
//!   (TcpOutput.c `TcpComputeWnd` l.106-126), 32768 for 2 MiB, where
//!   smoltcp offers 65535.
//!
//! Left as smoltcp does it: a SYN-ACK never carries timestamps (EDK2 adds
//! them when the peer's SYN had them; no simulated peer sends any, like
//! QEMU's slirp), and data segments never carry timestamps (EDK2 would,
//! after a peer that offered them, with 12 bytes less payload).

mod capture;
mod ip;
mod isn;
mod options;

use std::collections::BTreeMap;

use smoltcp::wire::{TcpPacket, TcpSeqNumber};

use crate::config::Profile;
use crate::rng::Rng;

pub use capture::{WireDirection, WireFrame, write_pcap};
use isn::IsnGenerator;
pub use isn::IsnScheme;
use options::{SynOptions, blank_sack_permitted, edk2_syn_options, read_syn_options};

/// One TCP connection as the SUT sees it: (local address, local port,
/// remote address, remote port).
pub(crate) type Flow = ([u8; 4], u16, [u8; 4], u16);

/// EDK2's TCP tick (`TCP_TICK` 200 ms, TcpProto.h l.84; the periodic
/// timer of TcpDriver.c l.111-115): the ISN and TSval clock.
pub const TCP_TICK_NS: u64 = 200_000_000;
/// `mTcpTick` when the driver starts (TcpTimer.c l.12).
const TSVAL_AT_START: u32 = 1000;
/// `TCP_OPTION_MAX_WIN` (TcpOption.h l.49).
const MAX_WINDOW_FIELD: usize = 0xffff;
/// Decorrelates the wire generators from every other stream of the seed.
const WIRE_STREAM: u64 = 0x3172_e000;

/// Where smoltcp's sequence space of one connection sits in EDK2's.
#[derive(Debug, Clone, Copy)]
struct SeqShift {
    /// The ISN smoltcp chose (its SYN or SYN-ACK carried it).
    smoltcp_isn: u32,
    /// EDK2's ISN minus smoltcp's.
    offset: u32,
}

/// The rewriting boundary between the SUT's smoltcp stack and its NIC.
pub(crate) struct WireBoundary {
    rng: Rng,
    /// Phase of the 200 ms tick against virtual time 0.
    tick_phase_ns: u64,
    isn: Option<Box<dyn IsnGenerator>>,
    next_ip_id: u16,
    /// Per flow, the shift of its current connection (BTreeMap: no
    /// iteration-order dependence). A new SYN or SYN-ACK replaces it.
    shifts: BTreeMap<Flow, SeqShift>,
    /// Frames seen on the link, when capturing.
    capture: Option<Vec<WireFrame>>,
}

impl WireBoundary {
    /// The boundary of a driver started with `seed`.
    pub(crate) fn new(seed: u64) -> WireBoundary {
        let mut rng = Rng::new(seed, WIRE_STREAM);
        let tick_phase_ns = rng.below(TCP_TICK_NS);
        let next_ip_id = rng.next_u64() as u16;
        WireBoundary {
            rng,
            tick_phase_ns,
            isn: None,
            next_ip_id,
            shifts: BTreeMap::new(),
            capture: None,
        }
    }

    /// TCP ticks run since the driver started, at virtual time `now`.
    fn ticks(&self, now: u64) -> u64 {
        (now + self.tick_phase_ns) / TCP_TICK_NS
    }

    /// A frame smoltcp sent, as EDK2 would put it on the link.
    /// `rcv_capacity` gives the receive buffer size of a flow's socket.
    pub(crate) fn outbound(
        &mut self,
        profile: Profile,
        now: u64,
        mut frame: Vec<u8>,
        rcv_capacity: impl Fn(&Flow) -> Option<usize>,
    ) -> Vec<u8> {
        let Some((ihl, total, is_tcp)) = ip::layout(&frame) else {
            return frame;
        };
        if is_tcp {
            frame = self.outbound_tcp(profile, now, frame, ihl, total, rcv_capacity);
        }
        let id = self.next_ip_id;
        self.next_ip_id = id.wrapping_add(1);
        ip::edk2_header(&mut frame, id, is_tcp);
        frame
    }

    fn outbound_tcp(
        &mut self,
        profile: Profile,
        now: u64,
        mut frame: Vec<u8>,
        ihl: usize,
        total: usize,
        rcv_capacity: impl Fn(&Flow) -> Option<usize>,
    ) -> Vec<u8> {
        let Ok(tcp) = TcpPacket::new_checked(&frame[ihl..total]) else {
            return frame;
        };
        let flow = ip::flow(&frame, ihl, false);
        let (syn, ack, seq) = (tcp.syn(), tcp.ack(), tcp.seq_number().0 as u32);
        if syn {
            let Some(found) = read_syn_options(tcp.options()) else {
                return frame;
            };
            let window = if ack {
                // The SYN-ACK's window is unscaled but computed from the
                // scaled receive window (TcpComputeWnd).
                let shift = found.window_scale.unwrap_or(0);
                rcv_capacity(&flow)
                    .map(|cap| cap.checked_shr(u32::from(shift)).unwrap_or(0))
                    .map(|w| w.min(MAX_WINDOW_FIELD) as u16)
            } else {
                None
            };
            let options = SynOptions {
                mss: found.mss,
                window_scale: found.window_scale,
                // TSecr 0 (TcpOption.c l.138). A SYN-ACK gets TS only after
                // a peer that offered TS, and no simulated peer does.
                timestamp: (!ack).then(|| (self.tsval(now), 0)),
            };
            frame = ip::replace_tcp_options(&frame, ihl, total, &edk2_syn_options(options));
            if let Some(w) = window {
                let total = frame.len();
                let mut tcp = TcpPacket::new_unchecked(&mut frame[ihl..total]);
                tcp.set_window_len(w);
            }
            if self.shifts.get(&flow).is_none_or(|s| s.smoltcp_isn != seq) {
                let ticks = self.ticks(now);
                let rng = &mut self.rng;
                let generator = self
                    .isn
                    .get_or_insert_with(|| profile.isn_scheme().generator(rng));
                let isn = generator.next_isn(&flow, ticks);
                self.shifts.insert(
                    flow,
                    SeqShift {
                        smoltcp_isn: seq,
                        offset: isn.wrapping_sub(seq),
                    },
                );
            }
        }
        let total = frame.len();
        if let Some(shift) = self.shifts.get(&flow) {
            let mut tcp = TcpPacket::new_unchecked(&mut frame[ihl..total]);
            tcp.set_seq_number(TcpSeqNumber(seq.wrapping_add(shift.offset) as i32));
        }
        ip::fill_tcp_checksum(&mut frame, ihl);
        frame
    }

    /// A frame from the link, as smoltcp must see it.
    pub(crate) fn inbound(&mut self, mut frame: Vec<u8>) -> Vec<u8> {
        let Some((ihl, total, true)) = ip::layout(&frame) else {
            return frame;
        };
        if TcpPacket::new_checked(&frame[ihl..total]).is_err() {
            return frame;
        }
        let flow = ip::flow(&frame, ihl, true);
        let mut tcp = TcpPacket::new_unchecked(&mut frame[ihl..total]);
        let mut changed = false;
        if tcp.syn() {
            changed |= blank_sack_permitted(tcp.options_mut());
        }
        let shift = self.shifts.get(&flow).filter(|_| tcp.ack());
        if let Some(shift) = shift {
            let ack = tcp.ack_number().0 as u32;
            tcp.set_ack_number(TcpSeqNumber(ack.wrapping_sub(shift.offset) as i32));
            changed = true;
        }
        if changed {
            ip::fill_tcp_checksum(&mut frame, ihl);
        }
        frame
    }

    /// `mTcpTick` at virtual time `now`.
    fn tsval(&self, now: u64) -> u32 {
        TSVAL_AT_START.wrapping_add(self.ticks(now) as u32)
    }

    /// Records `frame` if a capture is running.
    pub(crate) fn tap(&mut self, t_ns: u64, direction: WireDirection, frame: &[u8]) {
        if let Some(c) = &mut self.capture {
            c.push(WireFrame {
                t_ns,
                direction,
                bytes: frame.to_vec(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal IPv4/TCP SYN from 10.0.2.15:1030 to 10.0.2.2:7 with
    /// smoltcp's options (MSS, WS, SACK-permitted, EOL padding).
    fn smoltcp_syn(seq: u32) -> Vec<u8> {
        let opts = [2, 4, 5, 0xb4, 3, 3, 6, 4, 2, 0, 0, 0];
        let total = 20 + 20 + opts.len();
        let mut f = vec![0u8; total];
        f[0] = 0x45;
        f[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        f[6] = 0x40; // DF, as smoltcp sets it
        f[8] = 64;
        f[9] = 6;
        f[12..16].copy_from_slice(&[10, 0, 2, 15]);
        f[16..20].copy_from_slice(&[10, 0, 2, 2]);
        f[20..22].copy_from_slice(&1030u16.to_be_bytes());
        f[22..24].copy_from_slice(&7u16.to_be_bytes());
        f[24..28].copy_from_slice(&seq.to_be_bytes());
        f[32] = (((20 + opts.len()) / 4) as u8) << 4;
        f[33] = 0x02;
        f[34..36].copy_from_slice(&65535u16.to_be_bytes());
        f[40..].copy_from_slice(&opts);
        ip::edk2_header(&mut f, 0, false);
        ip::fill_tcp_checksum(&mut f, 20);
        f
    }

    #[test]
    fn truncated_and_foreign_packets_pass_unchanged() {
        let syn = smoltcp_syn(77);
        let table: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x45],
            syn[..20].to_vec(),
            syn[..30].to_vec(),
            vec![0x60; 48],
        ];
        let mut w = WireBoundary::new(1);
        for bytes in table {
            assert_eq!(w.inbound(bytes.clone()), bytes);
            let out = w.outbound(Profile::Edk2Stable202211, 0, bytes.clone(), |_| None);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn the_seq_offset_of_a_syn_applies_to_the_acks_that_answer_it() {
        let mut w = WireBoundary::new(2);
        let out = w.outbound(Profile::Edk2Stable202211, 0, smoltcp_syn(1000), |_| None);
        let edk2_isn = u32::from_be_bytes([out[24], out[25], out[26], out[27]]);
        // A retransmitted SYN keeps the ISN; a new smoltcp ISN gets +2048.
        let again = w.outbound(Profile::Edk2Stable202211, 0, smoltcp_syn(1000), |_| None);
        assert_eq!(&again[24..28], &out[24..28]);
        // The peer's SYN-ACK acknowledges EDK2's ISN; smoltcp sees its own.
        let mut reply = smoltcp_syn(5);
        reply[12..16].copy_from_slice(&[10, 0, 2, 2]);
        reply[16..20].copy_from_slice(&[10, 0, 2, 15]);
        reply[20..22].copy_from_slice(&7u16.to_be_bytes());
        reply[22..24].copy_from_slice(&1030u16.to_be_bytes());
        reply[28..32].copy_from_slice(&edk2_isn.wrapping_add(1).to_be_bytes());
        reply[33] = 0x12;
        ip::fill_tcp_checksum(&mut reply, 20);
        let seen = w.inbound(reply);
        assert_eq!(&seen[28..32], &1001u32.to_be_bytes());
        // SACK-permitted blanked to NOPs, nothing else moved.
        assert_eq!(&seen[40..52], &[2, 4, 5, 0xb4, 3, 3, 6, 1, 1, 0, 0, 0]);
        let next = w.outbound(Profile::Edk2Stable202211, 0, smoltcp_syn(9000), |_| None);
        let next_isn = u32::from_be_bytes([next[24], next[25], next[26], next[27]]);
        assert_eq!(next_isn.wrapping_sub(edk2_isn), 2048);
    }
}
