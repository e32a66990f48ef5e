//! The MNP side: the NIC queue, one frame per tick or Poll, egress, and
//! when the driver next needs the clock.

use std::net::Ipv4Addr;

use smoltcp::iface::SocketSet;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::device::tcp_summary;
use crate::host::instant;
use crate::world::{Env, MNP_TICK_NS};

use super::child::Stall;
use super::wire::{Flow, WireDirection};
use super::{Edk2Tcp4, NIC_QUEUE_FRAMES, retransmit_budget_ns};

impl Edk2Tcp4 {
    /// The station address and default gateway changed (Ip4Config2, DHCP).
    pub fn set_address(&mut self, addr: Option<(Ipv4Addr, Ipv4Addr)>, gw: Option<Ipv4Addr>) {
        self.sync_addresses(addr);
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(g) = gw {
            let _ = self.iface.routes_mut().add_default_ipv4_route(g);
        }
    }

    /// A frame for the SUT arrives: queued for the next MNP tick, or dropped
    /// when the queue is full.
    pub fn enqueue(&mut self, cx: &mut Env, frame: Vec<u8>) {
        self.wire.tap(cx.now, WireDirection::ToSut, &frame);
        if self.nic.len() >= NIC_QUEUE_FRAMES {
            cx.stats.frames_dropped += 1;
            return;
        }
        cx.stats.frames_delivered += 1;
        if self.nic.is_empty() {
            let grid = cx.now.div_ceil(MNP_TICK_NS) * MNP_TICK_NS + cx.timer_jitter_ns();
            self.next_mnp = self.next_mnp.max(grid);
        }
        self.nic.push_back(frame);
    }

    /// Let smoltcp run timers and emit what it has queued (no ingress).
    pub fn egress(&mut self, cx: &mut Env) {
        let now = instant(cx.now);
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        let out = std::mem::take(&mut self.dev.tx);
        let out = self.pace_syns(cx, out);
        let src = cx.ip4.address.map(|(a, _)| a.octets()).unwrap_or([0; 4]);
        let sockets = &self.sockets;
        for f in out {
            // Everything above sees smoltcp's numbering; the link sees EDK2's.
            let f = self.wire.outbound(cx.cfg.profile, cx.now, f, |flow| {
                rcv_capacity(sockets, flow)
            });
            self.wire.tap(cx.now, WireDirection::FromSut, &f);
            if let Some(t) = tcp_summary(&f).filter(|t| t.syn && !t.ack) {
                cx.trace(format!(
                    "SYN {}:{} isn={:#010x}",
                    Ipv4Addr::from(t.src),
                    t.src_port,
                    t.seq
                ));
            }
            cx.send_frame(src, f);
        }
    }

    /// Process one received frame (MNP tick or Poll), then run the DPCs.
    pub fn one_frame(&mut self, cx: &mut Env) {
        let flushed: Vec<usize> = std::mem::take(&mut self.deferred);
        for e in flushed {
            let _ = cx.signal(e);
        }
        if let Some(frame) = self.nic.pop_front() {
            let frame = self.wire.inbound(frame);
            cx.now += cx.cfg.cost.per_frame_ns;
            if self.admit_frame(cx, &frame) {
                self.observe_ingress(cx.now, &frame);
                self.dev.rx.push_back(frame);
            } else {
                cx.stats.frames_dropped += 1;
            }
        }
        self.egress(cx);
        self.service_all(cx);
        self.egress(cx);
    }

    /// Drop a SYN that belongs to an existing connection (see
    /// `syn_of_existing_connection`), and, emulating the backlog, a SYN for
    /// a listener whose backlog is full.
    pub(super) fn admit_frame(&mut self, cx: &mut Env, frame: &[u8]) -> bool {
        if self.syn_of_existing_connection(cx, frame) {
            return false;
        }
        let Some(t) = tcp_summary(frame) else {
            return true;
        };
        if !t.syn || t.ack || !cx.cfg.quirks.backlog_full_drops_syn {
            return true;
        }
        for c in self.children.values() {
            let (Some(l), Some(cfg)) = (&c.listener, &c.cfg) else {
                continue;
            };
            if cfg.port != t.dst_port {
                continue;
            }
            let mut used = l.ready.len();
            for &h in &l.pool {
                let s = self.sockets.get::<tcp::Socket>(h);
                if s.state() == State::Listen {
                    continue;
                }
                used += 1;
            }
            if used >= cfg.opts.backlog {
                cx.trace(format!("backlog full on port {}: SYN dropped", cfg.port));
                return false;
            }
        }
        true
    }

    /// Hold a completion's signal until the next MNP tick or Poll.
    pub(super) fn defer_signal(&mut self, cx: &mut Env, event: usize) {
        let next_tick = (cx.now / MNP_TICK_NS + 1) * MNP_TICK_NS;
        self.next_mnp = self.next_mnp.max(next_tick);
        self.deferred.push(event);
    }

    /// When the driver next needs to run: a queued frame's tick, smoltcp's
    /// timers, or a connect / linger / retransmission deadline.
    pub fn next_due(&mut self, cx: &mut Env) -> Option<u64> {
        let mut best: Option<u64> = None;
        let mut put = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        if !self.nic.is_empty() || !self.deferred.is_empty() {
            put(self.next_mnp.max(cx.now));
        }
        if let Some(t) = self.iface.poll_at(instant(cx.now), &self.sockets) {
            let t = (t.total_micros().max(0) as u64) * 1000;
            put(if t <= cx.now { cx.now + 1_000 } else { t });
        }
        for c in self.children.values() {
            if c.sock.is_none() && !c.tokens.connecting() {
                continue;
            }
            let give_up = c.stall.and_then(|Stall { since, .. }| {
                c.cfg
                    .map(|cfg| since + retransmit_budget_ns(cfg.opts.data_retries))
            });
            for d in [
                c.tokens.connect_deadline(),
                c.local_close.linger_until,
                give_up,
                c.next_timer(),
            ]
            .into_iter()
            .flatten()
            {
                put(d);
            }
        }
        best
    }

    /// Run what is due now: an MNP tick processes one frame; otherwise
    /// smoltcp's timers run and every child is serviced.
    pub fn step(&mut self, cx: &mut Env) {
        if (!self.nic.is_empty() || !self.deferred.is_empty()) && cx.now >= self.next_mnp {
            self.next_mnp = (cx.now / MNP_TICK_NS + 1) * MNP_TICK_NS + cx.timer_jitter_ns();
            self.one_frame(cx);
        } else {
            self.egress(cx);
            self.service_all(cx);
            self.egress(cx);
        }
    }
}

/// Receive buffer size of the socket holding `flow`, if one does.
fn rcv_capacity(sockets: &SocketSet<'static>, flow: &Flow) -> Option<usize> {
    let (la, lp, ra, rp) = *flow;
    let local = IpEndpoint::new(IpAddress::Ipv4(la.into()), lp);
    let remote = IpEndpoint::new(IpAddress::Ipv4(ra.into()), rp);
    sockets.iter().find_map(|(_, s)| match s {
        smoltcp::socket::Socket::Tcp(t)
            if t.local_endpoint() == Some(local) && t.remote_endpoint() == Some(remote) =>
        {
            Some(t.recv_capacity())
        }
        _ => None,
    })
}
