//! The MNP side: the NIC queue, one frame per tick or Poll, egress, and
//! when the driver next needs the clock.

use super::*;

impl World {
    pub fn sut_set_address(&mut self, addr: Option<(Ipv4Addr, Ipv4Addr)>, gw: Option<Ipv4Addr>) {
        let s = &mut self.sut;
        s.iface.update_ip_addrs(|a| {
            a.clear();
            if let Some((ad, m)) = addr {
                let prefix = u32::from(m).leading_ones() as u8;
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(ad), prefix));
            }
        });
        s.iface.routes_mut().remove_default_ipv4_route();
        if let Some(g) = gw {
            let _ = s.iface.routes_mut().add_default_ipv4_route(g);
        }
    }

    pub fn sut_enqueue(&mut self, frame: Vec<u8>) {
        if self.sut.nic.len() >= NIC_QUEUE_FRAMES {
            self.stats.frames_dropped += 1;
            return;
        }
        self.stats.frames_delivered += 1;
        if self.sut.nic.is_empty() {
            let grid = self.now.div_ceil(MNP_TICK_NS) * MNP_TICK_NS + self.timer_jitter_ns();
            self.sut.next_mnp = self.sut.next_mnp.max(grid);
        }
        self.sut.nic.push_back(frame);
    }

    /// Let smoltcp run timers and emit what it has queued (no ingress).
    pub fn sut_egress(&mut self) {
        let now = instant(self.now);
        let s = &mut self.sut;
        s.iface.poll(now, &mut s.dev, &mut s.sockets);
        let out = std::mem::take(&mut s.dev.tx);
        let src = self.ip4.address.map(|(a, _)| a.octets()).unwrap_or([0; 4]);
        for f in out {
            if let Some(t) = tcp_summary(&f).filter(|t| t.syn && !t.ack) {
                self.trace(format!(
                    "SYN {}:{} isn={:#010x}",
                    Ipv4Addr::from(t.src),
                    t.src_port,
                    t.seq
                ));
            }
            self.send_frame(src, f);
        }
    }

    /// Process one received frame (MNP tick or Poll), then run the DPCs.
    pub fn sut_one_frame(&mut self) {
        let flushed: Vec<usize> = std::mem::take(&mut self.sut.deferred);
        for e in flushed {
            let _ = self.signal(e);
        }
        if let Some(frame) = self.sut.nic.pop_front() {
            self.now += self.cfg.cost.per_frame_ns;
            if self.admit_frame(&frame) {
                self.sut.dev.rx.push_back(frame);
            } else {
                self.stats.frames_dropped += 1;
            }
        }
        self.sut_egress();
        self.service_all();
        self.sut_egress();
    }

    /// Backlog emulation: drop a SYN for a listener whose backlog is full.
    pub(super) fn admit_frame(&mut self, frame: &[u8]) -> bool {
        let Some(t) = tcp_summary(frame) else {
            return true;
        };
        if !t.syn || t.ack || !self.cfg.quirks.backlog_full_drops_syn {
            return true;
        }
        let src = Ipv4Addr::from(t.src);
        for c in self.sut.children.values() {
            let (Some(l), Some(cfg)) = (&c.listener, &c.cfg) else {
                continue;
            };
            if cfg.port != t.dst_port {
                continue;
            }
            let mut used = l.ready.len();
            for &h in &l.pool {
                let s = self.sut.sockets.get::<tcp::Socket>(h);
                if s.state() == State::Listen {
                    continue;
                }
                if s.remote_endpoint() == Some(IpEndpoint::new(IpAddress::Ipv4(src), t.src_port)) {
                    return true; // retransmitted SYN of a known half-open connection
                }
                used += 1;
            }
            if used >= cfg.opts.backlog {
                self.trace(format!("backlog full on port {}: SYN dropped", cfg.port));
                return false;
            }
        }
        true
    }

    /// Hold a completion's signal until the next MNP tick or Poll.
    pub(super) fn defer_signal(&mut self, event: usize) {
        let next_tick = (self.now / MNP_TICK_NS + 1) * MNP_TICK_NS;
        self.sut.next_mnp = self.sut.next_mnp.max(next_tick);
        self.sut.deferred.push(event);
    }

    pub fn sut_next_due(&mut self) -> Option<u64> {
        let mut best: Option<u64> = None;
        let mut put = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        if !self.sut.nic.is_empty() || !self.sut.deferred.is_empty() {
            put(self.sut.next_mnp.max(self.now));
        }
        if let Some(t) = self.sut.iface.poll_at(instant(self.now), &self.sut.sockets) {
            let t = (t.total_micros().max(0) as u64) * 1000;
            put(if t <= self.now { self.now + 1_000 } else { t });
        }
        for c in self.sut.children.values() {
            if c.sock.is_none() && c.connect.is_none() {
                continue;
            }
            let give_up = c.stall.and_then(|(_, since)| {
                c.cfg
                    .map(|cfg| since + retransmit_budget_ns(cfg.opts.data_retries))
            });
            for d in [c.connect_deadline, c.linger_deadline, give_up]
                .into_iter()
                .flatten()
            {
                put(d);
            }
        }
        best
    }

    pub fn sut_step(&mut self) {
        if (!self.sut.nic.is_empty() || !self.sut.deferred.is_empty())
            && self.now >= self.sut.next_mnp
        {
            self.sut.next_mnp = (self.now / MNP_TICK_NS + 1) * MNP_TICK_NS + self.timer_jitter_ns();
            self.sut_one_frame();
        } else {
            self.sut_egress();
            self.service_all();
            self.sut_egress();
        }
    }
}
