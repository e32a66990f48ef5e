//! EDK2's SYN retransmission schedule in front of smoltcp's.
//!
//! Before any RTT sample EDK2's RTO is 3 s (TcpDispatcher.c l.560), doubled
//! on each expiry (TcpTimer.c `TcpRexmitTimeout`): an unanswered SYN goes
//! out at 0, 3, 9, 21 and 45 s until the 75 s connect timer ends it.
//! smoltcp starts at 1 s (0, 1, 3, 7, 15, 31, 63 s) and has no setter, so
//! the driver drops smoltcp's own SYN retransmissions as they leave and
//! sends the original SYN again at EDK2's times. [code-read]
//!
//! The SYN-ACK of a passive open keeps smoltcp's schedule.

use crate::world::Env;

use super::Edk2Tcp4;
use super::peer_view::{FlowKey, flow_of};

/// EDK2's RTO before an RTT sample (TcpDispatcher.c l.560).
pub(crate) const INITIAL_RTO_NS: u64 = 3_000_000_000;
/// `TCP_RTO_MAX` (TcpProto.h l.88).
const RTO_MAX_NS: u64 = 60_000_000_000;

/// The SYN of a connection in SYN_SENT and when it next goes out.
#[derive(Debug, Clone)]
pub(crate) struct SynRetransmit {
    flow: FlowKey,
    /// The SYN as first sent.
    frame: Vec<u8>,
    /// When the retransmission timer next expires.
    pub(crate) next: u64,
    rto: u64,
    /// The next SYN of this flow to leave is ours, not smoltcp's.
    release: bool,
}

impl SynRetransmit {
    /// The first SYN left at `now`: the timer runs for the initial RTO.
    pub(crate) fn new(flow: FlowKey, frame: Vec<u8>, now: u64) -> SynRetransmit {
        SynRetransmit {
            flow,
            frame,
            next: now + INITIAL_RTO_NS,
            rto: INITIAL_RTO_NS,
            release: false,
        }
    }

    /// The timer expired: send the SYN again, back off.
    fn expire(&mut self) -> Vec<u8> {
        self.rto = (self.rto * 2).min(RTO_MAX_NS);
        self.next += self.rto;
        self.release = true;
        self.frame.clone()
    }
}

/// The flow of a SYN (without ACK) the SUT sends, from the SUT's side.
fn outgoing_syn(frame: &[u8]) -> Option<FlowKey> {
    if frame.len() < 40 || frame[0] >> 4 != 4 || frame[9] != 6 {
        return None;
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let t = frame.get(ihl..ihl + 20)?;
    let flags = t[13];
    (flags & 0x02 != 0 && flags & 0x10 == 0).then(|| {
        (
            u16::from_be_bytes([t[0], t[1]]),
            [frame[16], frame[17], frame[18], frame[19]],
            u16::from_be_bytes([t[2], t[3]]),
        )
    })
}

impl Edk2Tcp4 {
    /// Frames leaving the SUT: a connection's first SYN starts EDK2's
    /// schedule; smoltcp's own SYN retransmissions are dropped.
    pub(super) fn pace_syns(&mut self, cx: &mut Env, out: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut keep = Vec::with_capacity(out.len());
        for f in out {
            let Some(flow) = outgoing_syn(&f) else {
                keep.push(f);
                continue;
            };
            let child = self.children.iter_mut().find(|(_, c)| {
                c.sock.is_some_and(|h| {
                    flow_of(self.sockets.get::<smoltcp::socket::tcp::Socket>(h)) == Some(flow)
                })
            });
            let Some((id, c)) = child else {
                keep.push(f);
                continue;
            };
            match &mut c.syn_rexmit {
                Some(s) if s.flow == flow && s.release => {
                    s.release = false;
                    keep.push(f);
                }
                Some(s) if s.flow == flow => {
                    cx.trace(format!(
                        "child {id}: smoltcp's SYN retransmission held back"
                    ));
                }
                _ => {
                    c.syn_rexmit = Some(SynRetransmit::new(flow, f.clone(), cx.now));
                    keep.push(f);
                }
            }
        }
        keep
    }

    /// SYN_SENT: the retransmission timer expired, the SYN goes again.
    /// Other states: the schedule is over.
    pub(super) fn retransmit_syn(&mut self, cx: &mut Env, id: usize, syn_sent: bool) {
        let c = self.children.get_mut(&id).expect("exists");
        if !syn_sent {
            c.syn_rexmit = None;
            return;
        }
        let Some(s) = c.syn_rexmit.as_mut().filter(|s| s.next <= cx.now) else {
            return;
        };
        let frame = s.expire();
        self.dev.tx.push(frame);
        self.egress(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syns_at_0_3_9_21_45_seconds() {
        let s0 = 1_000;
        let mut s = SynRetransmit::new((1, [0; 4], 2), vec![1], s0);
        let mut at = vec![];
        for _ in 0..5 {
            at.push((s.next - s0) / 1_000_000_000);
            assert_eq!(s.expire(), vec![1]);
        }
        assert_eq!(at, [3, 9, 21, 45, 93]);
        for _ in 0..3 {
            s.expire();
        }
        assert_eq!(s.rto, RTO_MAX_NS, "capped at 60 s");
    }

    #[test]
    fn only_a_syn_without_ack_is_paced() {
        let mut f = vec![0u8; 40];
        f[0] = 0x45;
        f[9] = 6;
        f[16..20].copy_from_slice(&[10, 0, 2, 2]);
        f[20..22].copy_from_slice(&1234u16.to_be_bytes());
        f[22..24].copy_from_slice(&80u16.to_be_bytes());
        f[33] = 0x02;
        assert_eq!(outgoing_syn(&f), Some((1234, [10, 0, 2, 2], 80)));
        f[33] = 0x12;
        assert_eq!(outgoing_syn(&f), None, "SYN-ACK");
        f[33] = 0x10;
        assert_eq!(outgoing_syn(&f), None);
    }
}
