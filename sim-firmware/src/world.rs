//! The simulated world: virtual clock, DXE event table, pool, network links,
//! peer hosts, IPv4 configuration, and the SUT's TCP state (see `tcp4`).
//!
//! `World` never calls foreign code: notify functions are only *queued* here
//! and called by `Sim` with no borrow of the world held, so they may re-enter.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use efisock::firmware::{EventNotifyFn, EventType, Status, Tpl};

use crate::breach::{Breach, BreachKind};
use crate::config::{BreachPolicy, SimConfig};
use crate::decide::Decider;
use crate::device::ipv4_dst;
use crate::host::Host;
use crate::pool::Pool;
use crate::rng::Rng;
use crate::tcp4::Sut;

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// `Tcp4.Poll` calls.
    pub polls: u64,
    /// Firmware calls of any kind.
    pub firmware_calls: u64,
    /// Packets put on a link.
    pub frames_sent: u64,
    /// Packets handed to a host or the SUT NIC.
    pub frames_delivered: u64,
    /// Packets lost on a link or dropped by a full NIC queue / backlog.
    pub frames_dropped: u64,
    /// Notify functions called.
    pub notifies_delivered: u64,
    /// Virtual time now.
    pub virtual_ns: u64,
    /// Scheduler steps taken (a measure of simulation work).
    pub scheduler_steps: u64,
}

pub(crate) struct EventRec {
    pub ty: u32,
    pub tpl: usize,
    pub func: Option<EventNotifyFn>,
    pub ctx: usize,
    pub signaled: bool,
    pub queued: bool,
    pub deferrals: u32,
    pub timer: Option<(u64, u64)>,
}

/// A notify ready to call (copied out so no borrow is held while calling).
pub(crate) struct NotifyCall {
    pub event: usize,
    pub func: EventNotifyFn,
    pub ctx: usize,
    pub tpl: usize,
}

/// IPv4 configuration state of the SUT NIC.
pub(crate) struct Ip4State {
    pub dhcp_policy: bool,
    pub address: Option<(Ipv4Addr, Ipv4Addr)>,
    pub gateway: Option<Ipv4Addr>,
    pub dhcp_deadline: Option<u64>,
    pub notify: BTreeMap<i32, Vec<usize>>,
}

pub(crate) const EVENT_BASE: usize = 0x1_0000;
pub(crate) const MNP_TICK_NS: u64 = 10_000_000;
/// Steps at one instant before the scheduler declares a livelock.
const SAME_TIME_STEP_LIMIT: u32 = 100_000;

pub(crate) struct World {
    pub cfg: SimConfig,
    pub now: u64,
    pub tpl: usize,
    pub events: BTreeMap<usize, EventRec>,
    next_event: usize,
    pub notify_q: VecDeque<usize>,
    pub decider: Decider,
    pub pool: Pool,
    pub breaches: Vec<Breach>,
    pub stats: SimStats,
    pub trace: Vec<String>,
    pub hosts: Vec<Host>,
    host_last: Vec<u64>,
    inflight: BTreeMap<(u64, u64), Vec<u8>>,
    pkt_seq: u64,
    link_busy: BTreeMap<([u8; 4], [u8; 4]), u64>,
    link_rng: Rng,
    pub ip4: Ip4State,
    pub sut: Sut,
    same_time_steps: u32,
    pub finished: bool,
}

pub(crate) fn ev_id(e: *mut core::ffi::c_void) -> usize {
    e as usize
}

impl World {
    pub fn new(cfg: SimConfig) -> World {
        let seed = cfg.seed;
        let sut = Sut::new(seed);
        let mut w = World {
            now: 0,
            tpl: Tpl::APPLICATION.0,
            events: BTreeMap::new(),
            next_event: 0,
            notify_q: VecDeque::new(),
            decider: Decider::new(seed),
            pool: Pool::default(),
            breaches: Vec::new(),
            stats: SimStats::default(),
            trace: Vec::new(),
            hosts: Vec::new(),
            host_last: Vec::new(),
            inflight: BTreeMap::new(),
            pkt_seq: 0,
            link_busy: BTreeMap::new(),
            link_rng: Rng::new(seed, 0x11A4),
            ip4: Ip4State {
                dhcp_policy: false,
                address: None,
                gateway: None,
                dhcp_deadline: None,
                notify: BTreeMap::new(),
            },
            sut,
            cfg,
            same_time_steps: 0,
            finished: false,
        };
        w.add_host(Ipv4Addr::new(10, 0, 2, 2));
        w
    }

    pub fn add_host(&mut self, addr: Ipv4Addr) -> usize {
        if let Some(i) = self.hosts.iter().position(|h| h.addr == addr) {
            return i;
        }
        let hseed = Rng::new(self.cfg.seed, 0x4057 + self.hosts.len() as u64).next_u64();
        self.hosts.push(Host::new(addr, hseed, self.now));
        self.host_last.push(u64::MAX);
        self.hosts.len() - 1
    }

    // ---- breaches ----------------------------------------------------

    pub fn breach(&mut self, kind: BreachKind, message: String) {
        let b = Breach {
            kind,
            message,
            t_ns: self.now,
            seed: self.cfg.seed,
        };
        tracing::warn!(target: "efisock::sim", "{b}");
        if self.cfg.breach_policy == BreachPolicy::Panic {
            panic!("{b}");
        }
        self.breaches.push(b);
    }

    pub fn trace(&mut self, line: String) {
        self.trace.push(format!("{:>12} {line}", self.now));
    }

    // ---- events ------------------------------------------------------

    pub fn create_event(
        &mut self,
        ty: u32,
        tpl: usize,
        func: Option<EventNotifyFn>,
        ctx: usize,
    ) -> usize {
        let id = EVENT_BASE + self.next_event * 16;
        self.next_event += 1;
        self.events.insert(
            id,
            EventRec {
                ty,
                tpl,
                func,
                ctx,
                signaled: false,
                queued: false,
                deferrals: 0,
                timer: None,
            },
        );
        id
    }

    /// SignalEvent: mark signalled, queue the notify of a NOTIFY_SIGNAL event
    /// unless it is already queued.
    pub fn signal(&mut self, id: usize) -> Status {
        let Some(e) = self.events.get_mut(&id) else {
            return Status::INVALID_PARAMETER;
        };
        e.signaled = true;
        if e.ty & EventType::NOTIFY_SIGNAL.bits() != 0 && e.func.is_some() && !e.queued {
            e.queued = true;
            e.deferrals = 0;
            self.notify_q.push_back(id);
        }
        Status::SUCCESS
    }

    /// Pop the next notify allowed at the current TPL (FIFO within the
    /// highest pending TPL). `anytime` lets the decider defer each candidate.
    pub fn next_notify(&mut self, anytime: bool) -> Option<NotifyCall> {
        let best_tpl = self
            .notify_q
            .iter()
            .filter_map(|id| self.events.get(id).map(|e| e.tpl))
            .filter(|&t| t > self.tpl)
            .max()?;
        let mut idx = 0;
        while idx < self.notify_q.len() {
            let id = self.notify_q[idx];
            let Some(e) = self.events.get(&id) else {
                self.notify_q.remove(idx);
                continue;
            };
            if e.tpl != best_tpl {
                idx += 1;
                continue;
            }
            if anytime {
                let d = e.deferrals;
                if !self.decider.deliver_notify_now(d) {
                    if let Some(e) = self.events.get_mut(&id) {
                        e.deferrals += 1;
                    }
                    idx += 1;
                    continue;
                }
            }
            self.notify_q.remove(idx);
            let e = self.events.get_mut(&id).expect("checked above");
            e.queued = false;
            if e.ty & EventType::NOTIFY_SIGNAL.bits() != 0 {
                // DXE core clears SignalCount of NOTIFY_SIGNAL events on dispatch.
                e.signaled = false;
            }
            let func = e.func?;
            self.stats.notifies_delivered += 1;
            return Some(NotifyCall {
                event: id,
                func,
                ctx: e.ctx,
                tpl: e.tpl,
            });
        }
        None
    }

    // ---- network -----------------------------------------------------

    /// Put a packet on the link from `src` towards its destination.
    pub fn send_frame(&mut self, src: [u8; 4], frame: Vec<u8>) {
        let Some(dst) = ipv4_dst(&frame) else { return };
        self.stats.frames_sent += 1;
        let link = self.cfg.link;
        let rng = &mut self.link_rng;
        if rng.chance(link.loss) {
            self.stats.frames_dropped += 1;
            return;
        }
        let copies = if rng.chance(link.duplicate) { 2 } else { 1 };
        let busy = self.link_busy.entry((src, dst)).or_insert(0);
        let start = (*busy).max(self.now);
        let ser = (frame.len() as u64 * 8)
            .saturating_mul(1_000_000_000)
            .checked_div(link.bandwidth_bps)
            .unwrap_or(0);
        *busy = start + ser;
        for _ in 0..copies {
            let mut t = start + ser + link.latency_ns + rng.below(link.jitter_ns);
            if rng.chance(link.reorder) {
                t += link.latency_ns.max(1_000_000) + rng.below(link.latency_ns.max(1_000_000));
            }
            self.pkt_seq += 1;
            self.inflight.insert((t, self.pkt_seq), frame.clone());
        }
    }

    fn deliver(&mut self, frame: Vec<u8>) {
        let Some(dst) = ipv4_dst(&frame) else { return };
        let dst = Ipv4Addr::from(dst);
        if self.ip4.address.is_some_and(|(a, _)| a == dst) {
            self.sut_enqueue(frame);
        } else if let Some(i) = self.hosts.iter().position(|h| h.addr == dst) {
            self.stats.frames_delivered += 1;
            self.hosts[i].dev.rx.push_back(frame);
            self.run_host(i);
        } else {
            self.stats.frames_dropped += 1;
        }
    }

    pub fn run_host(&mut self, i: usize) {
        let now = self.now;
        let out = self.hosts[i].process(now);
        self.host_last[i] = now;
        let src = self.hosts[i].addr.octets();
        for f in out {
            self.send_frame(src, f);
        }
    }

    // ---- scheduler ---------------------------------------------------

    /// The earliest time anything is due, if anything ever will be.
    pub fn next_due(&mut self) -> Option<u64> {
        let now = self.now;
        let mut best: Option<u64> = None;
        let mut put = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        for e in self.events.values() {
            if let Some((t, _)) = e.timer {
                put(t);
            }
        }
        if let Some((&(t, _), _)) = self.inflight.iter().next() {
            put(t);
        }
        if let Some(t) = self.ip4.dhcp_deadline {
            put(t);
        }
        for i in 0..self.hosts.len() {
            if let Some(t) = self.hosts[i].next_due(now) {
                // A stack asking to run again at the instant it just ran
                // would spin: nudge it by a microsecond.
                let t = if t <= self.host_last[i] {
                    self.host_last[i] + 1_000
                } else {
                    t
                };
                put(t);
            }
        }
        if let Some(t) = self.sut_next_due() {
            put(t);
        }
        best.map(|b| b.max(now))
    }

    /// Advance the clock to `t` and run everything due at or before it.
    /// Returns false when a step at an unchanged time found nothing to do
    /// many times in a row: a scheduler bug, reported instead of spinning.
    pub fn step_to(&mut self, t: u64) -> bool {
        self.stats.scheduler_steps += 1;
        if t <= self.now {
            self.same_time_steps += 1;
            if self.same_time_steps > SAME_TIME_STEP_LIMIT {
                debug_assert!(false, "efisock-sim scheduler livelock at t={}", self.now);
                self.trace(format!("scheduler livelock at t={}", self.now));
                self.same_time_steps = 0;
                return false;
            }
        } else {
            self.same_time_steps = 0;
        }
        self.now = self.now.max(t);
        let now = self.now;
        // Timers.
        let due: Vec<usize> = self
            .events
            .iter()
            .filter(|(_, e)| e.timer.is_some_and(|(d, _)| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            if let Some(e) = self.events.get_mut(&id) {
                let (d, period) = e.timer.expect("filtered");
                e.timer = if period > 0 {
                    Some((d.max(now) + period, period))
                } else {
                    None
                };
            }
            let _ = self.signal(id);
        }
        // Link deliveries.
        while let Some((&(t, seq), _)) = self.inflight.iter().next() {
            if t > now {
                break;
            }
            let frame = self.inflight.remove(&(t, seq)).expect("present");
            self.deliver(frame);
        }
        // DHCP.
        if self.ip4.dhcp_deadline.is_some_and(|d| d <= now) {
            self.ip4.dhcp_deadline = None;
            let d = self.cfg.dhcp;
            self.set_address(Some((d.address, d.mask)), Some(d.gateway));
        }
        // Peer host timers.
        for i in 0..self.hosts.len() {
            let due = self.hosts[i].next_due(now).is_some_and(|t| t <= now);
            if due && self.host_last[i] != now {
                self.run_host(i);
            }
        }
        self.sut_step();
        self.stats.virtual_ns = self.now;
        true
    }

    // ---- Ip4Config2 --------------------------------------------------

    pub fn set_address(&mut self, addr: Option<(Ipv4Addr, Ipv4Addr)>, gw: Option<Ipv4Addr>) {
        self.ip4.address = addr;
        self.ip4.gateway = gw;
        self.sut_set_address(addr, gw);
        self.trace(format!("ip4 address {addr:?}"));
        let evs: Vec<usize> = self.ip4.notify.get(&0).cloned().unwrap_or_default();
        for e in evs {
            let _ = self.signal(e);
        }
    }
}
