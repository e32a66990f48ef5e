//! The network: peer hosts and the links between them and the SUT.

use std::net::Ipv4Addr;

use crate::decide::DecisionKind;
use crate::device::ipv4_dst;
use crate::host::Host;
use crate::rng::Rng;

use super::Env;

impl Env {
    /// Index of the peer host at `addr`, added if new.
    pub fn add_host(&mut self, addr: Ipv4Addr) -> usize {
        if let Some(i) = self.hosts.iter().position(|h| h.addr == addr) {
            return i;
        }
        let hseed = Rng::new(self.cfg.seed, 0x4057 + self.hosts.len() as u64).next_u64();
        self.hosts.push(Host::new(addr, hseed, self.now));
        self.host_last.push(u64::MAX);
        self.hosts.len() - 1
    }

    /// Put a packet on the link from `src` towards its destination. Its
    /// fate is one `PacketFate` decision: deliver (0), drop, duplicate,
    /// reorder (delay past later ones) or latency spike, with the link's
    /// and the fault knobs' probabilities combined as independent causes;
    /// magnitudes are `LinkDelay` decisions.
    pub fn send_frame(&mut self, src: [u8; 4], frame: Vec<u8>) {
        let Some(dst) = ipv4_dst(&frame) else { return };
        self.stats.frames_sent += 1;
        let link = self.cfg.link;
        let f = self.cfg.faults;
        let either = |a: f64, b: f64| 1.0 - (1.0 - a.clamp(0.0, 1.0)) * (1.0 - b.clamp(0.0, 1.0));
        let fate = self.decider.choose_weighted(
            DecisionKind::PacketFate,
            &[
                either(link.loss, f.loss),
                either(link.duplicate, f.duplicate),
                either(link.reorder, f.reorder),
                f.spike,
            ],
        );
        if fate == 1 {
            self.stats.frames_dropped += 1;
            return;
        }
        let copies = if fate == 2 { 2 } else { 1 };
        let busy = self.link_busy.entry((src, dst)).or_insert(0);
        let start = (*busy).max(self.now);
        let ser = (frame.len() as u64 * 8)
            .saturating_mul(1_000_000_000)
            .checked_div(link.bandwidth_bps)
            .unwrap_or(0);
        *busy = start + ser;
        let us = |ns: u64| u32::try_from(ns / 1_000).unwrap_or(u32::MAX);
        for _ in 0..copies {
            let jitter = self
                .decider
                .choose(DecisionKind::LinkDelay, us(link.jitter_ns));
            let mut t = start + ser + link.latency_ns + u64::from(jitter) * 1_000;
            if fate == 3 {
                // Late enough to arrive after packets sent later.
                let base = link.latency_ns.max(1_000_000);
                t += base
                    + u64::from(self.decider.choose(DecisionKind::LinkDelay, us(base))) * 1_000;
            } else if fate == 4 {
                t += (u64::from(self.decider.choose(DecisionKind::LinkDelay, 50)) + 1) * 10_000_000;
            }
            self.pkt_seq += 1;
            self.inflight.insert((t, self.pkt_seq), frame.clone());
        }
    }

    /// Let peer host `i` process what arrived and send what it has.
    pub fn run_host(&mut self, i: usize) {
        let now = self.now;
        let out = self.hosts[i].process(now);
        self.host_last[i] = now;
        let src = self.hosts[i].addr.octets();
        for f in out {
            self.send_frame(src, f);
        }
    }
}
