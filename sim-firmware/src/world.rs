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
use crate::decide::{Decider, DecisionKind, Scheduler};
use crate::device::ipv4_dst;
use crate::host::Host;
use crate::pool::Pool;
use crate::rng::Rng;
use crate::tcp4::Edk2Tcp4;

/// One status the run's decisions injected (see `Faults::inject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injection {
    /// The call that returned it, or the kind of the pending token that
    /// completed with it ("Receive", "Transmit", "Connect").
    pub call: &'static str,
    /// The injected status.
    pub status: Status,
    /// Virtual time of the injection.
    pub t_ns: u64,
}

/// Granularity of `TimerJitter` (100 µs) and its number of options (0..=2 ms).
const JITTER_STEP_NS: u64 = 100_000;
const JITTER_OPTIONS: u32 = 21;

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

/// Everything in the simulated machine around the TCP4 driver: the clock,
/// the DXE event table and notify queue, the decision source, pool memory
/// and the contract checker's findings, the network and its peer hosts,
/// and the IPv4 configuration. The driver borrows it as its context on
/// every call, the way smoltcp hands its sockets a `Context`.
pub(crate) struct Env {
    pub cfg: SimConfig,
    pub now: u64,
    pub tpl: usize,
    pub events: BTreeMap<usize, EventRec>,
    next_event: usize,
    pub notify_q: VecDeque<usize>,
    pub decider: Decider,
    pub injected: Vec<Injection>,
    pub pool: Pool,
    pub breaches: Vec<Breach>,
    pub stats: SimStats,
    pub trace: Vec<String>,
    pub hosts: Vec<Host>,
    host_last: Vec<u64>,
    inflight: BTreeMap<(u64, u64), Vec<u8>>,
    pkt_seq: u64,
    link_busy: BTreeMap<([u8; 4], [u8; 4]), u64>,
    pub ip4: Ip4State,
    same_time_steps: u32,
    pub finished: bool,
}

/// The simulated machine: the environment and the SUT's TCP4 driver, kept
/// apart so that the driver can borrow the environment while it runs.
pub(crate) struct World {
    pub env: Env,
    pub tcp4: Edk2Tcp4,
}

pub(crate) fn ev_id(e: *mut core::ffi::c_void) -> usize {
    e as usize
}

impl World {
    /// A world for `cfg`, with the default peer host at 10.0.2.2.
    pub fn new(cfg: SimConfig) -> World {
        let seed = cfg.seed;
        let tcp4 = Edk2Tcp4::new(seed);
        let mut env = Env {
            now: 0,
            tpl: Tpl::APPLICATION.0,
            events: BTreeMap::new(),
            next_event: 0,
            notify_q: VecDeque::new(),
            decider: Decider::with(seed, cfg.effective_scheduler(), cfg.tape.clone()),
            injected: Vec::new(),
            pool: Pool::default(),
            breaches: Vec::new(),
            stats: SimStats::default(),
            trace: Vec::new(),
            hosts: Vec::new(),
            host_last: Vec::new(),
            inflight: BTreeMap::new(),
            pkt_seq: 0,
            link_busy: BTreeMap::new(),
            ip4: Ip4State {
                dhcp_policy: false,
                address: None,
                gateway: None,
                dhcp_deadline: None,
                notify: BTreeMap::new(),
            },
            cfg,
            same_time_steps: 0,
            finished: false,
        };
        env.add_host(Ipv4Addr::new(10, 0, 2, 2));
        World { env, tcp4 }
    }
}

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

    // ---- breaches ----------------------------------------------------

    /// Report a contract breach (recorded, or a panic under
    /// `BreachPolicy::Panic`).
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

    /// Append a line to the run's trace, stamped with virtual time.
    pub fn trace(&mut self, line: String) {
        self.trace.push(format!("{:>12} {line}", self.now));
    }

    // ---- events ------------------------------------------------------

    /// CreateEvent: a new event handle.
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
            self.decider.note_queued(id);
        }
        Status::SUCCESS
    }

    // ---- decisions ---------------------------------------------------

    /// Probability a non-FIFO scheduler defers a notify at a delivery
    /// point: Uniform even odds, pulled towards "late" by `late_bias`;
    /// PCT only defers under `late_bias` (its depth bound is about order).
    fn p_defer(&self) -> f64 {
        let late = self.cfg.faults.late_bias;
        match self.decider.scheduler() {
            Scheduler::Fifo => 0.0,
            Scheduler::Uniform => 0.5 * (1.0 + late),
            Scheduler::Pct { .. } => late,
        }
    }

    /// Probability a completion produced inside a call is notified late
    /// (next tick/Poll) although the profile notifies inside the call.
    pub fn p_late_completion(&self) -> f64 {
        let late = self.cfg.faults.late_bias;
        match self.decider.scheduler() {
            Scheduler::Uniform => 0.5 * (1.0 + late),
            Scheduler::Fifo | Scheduler::Pct { .. } => late,
        }
    }

    /// Extra delay for a timer event or MNP tick (`TimerJitter`).
    pub fn timer_jitter_ns(&mut self) -> u64 {
        if !self.cfg.faults.jitter {
            return 0;
        }
        u64::from(
            self.decider
                .choose(DecisionKind::TimerJitter, JITTER_OPTIONS),
        ) * JITTER_STEP_NS
    }

    /// Should `call` return one of `options` (legal EDK2 statuses for it at
    /// this point) instead of its normal result? Logged when it does.
    pub fn inject(&mut self, call: &'static str, options: &[Status]) -> Option<Status> {
        let p = self.cfg.faults.inject;
        if p <= 0.0 || options.is_empty() {
            return None;
        }
        let each = p / options.len() as f64;
        let probs: Vec<f64> = options.iter().map(|_| each).collect();
        let v = self
            .decider
            .choose_weighted(DecisionKind::StatusInjection, &probs);
        if v == 0 {
            return None;
        }
        let status = options[v - 1];
        self.log_injection(call, status);
        Some(status)
    }

    /// Record an injected status in the run's log and trace.
    pub fn log_injection(&mut self, call: &'static str, status: Status) {
        self.injected.push(Injection {
            call,
            status,
            t_ns: self.now,
        });
        self.trace(format!(
            "inject {call} {}",
            efisock::firmware::status::name(status)
        ));
    }

    /// Pop the next notify allowed at the current TPL. The candidates are
    /// the queued notifies of the highest pending TPL, in FIFO order; a
    /// `NotifyDefer` decision may defer them all to a later delivery point
    /// (each candidate at most `MAX_DEFERRALS` times, so none waits
    /// forever), and a `NotifyPick` decision picks one (0 = FIFO head, the
    /// DXE core's order). Under `Scheduler::Fifo` neither is a decision.
    pub fn next_notify(&mut self) -> Option<NotifyCall> {
        let events = &self.events;
        self.notify_q.retain(|id| events.contains_key(id));
        let best_tpl = self
            .notify_q
            .iter()
            .filter_map(|id| self.events.get(id).map(|e| e.tpl))
            .filter(|&t| t > self.tpl)
            .max()?;
        let cands: Vec<usize> = self
            .notify_q
            .iter()
            .copied()
            .filter(|id| self.events[id].tpl == best_tpl)
            .collect();
        let most = cands
            .iter()
            .map(|id| self.events[id].deferrals)
            .max()
            .unwrap_or(0);
        let p_defer = self.p_defer();
        if self.decider.defer_notify(most, p_defer) {
            for id in &cands {
                if let Some(e) = self.events.get_mut(id) {
                    e.deferrals += 1;
                }
            }
            return None;
        }
        let id = cands[self.decider.pick_notify(&cands)];
        let pos = self
            .notify_q
            .iter()
            .position(|&q| q == id)
            .expect("candidate is queued");
        self.notify_q.remove(pos);
        let e = self.events.get_mut(&id).expect("checked above");
        e.queued = false;
        if e.ty & EventType::NOTIFY_SIGNAL.bits() != 0 {
            // DXE core clears SignalCount of NOTIFY_SIGNAL events on dispatch.
            e.signaled = false;
        }
        let func = e.func?;
        self.stats.notifies_delivered += 1;
        Some(NotifyCall {
            event: id,
            func,
            ctx: e.ctx,
            tpl: e.tpl,
        })
    }

    // ---- network -----------------------------------------------------

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

impl World {
    /// A frame arrives at its destination: the SUT's NIC or a peer host.
    fn deliver(&mut self, frame: Vec<u8>) {
        let Some(dst) = ipv4_dst(&frame) else { return };
        let dst = Ipv4Addr::from(dst);
        if self.env.ip4.address.is_some_and(|(a, _)| a == dst) {
            self.tcp4.enqueue(&mut self.env, frame);
        } else if let Some(i) = self.env.hosts.iter().position(|h| h.addr == dst) {
            self.env.stats.frames_delivered += 1;
            self.env.hosts[i].dev.rx.push_back(frame);
            self.env.run_host(i);
        } else {
            self.env.stats.frames_dropped += 1;
        }
    }

    // ---- scheduler ---------------------------------------------------

    /// The earliest time anything is due, if anything ever will be.
    pub fn next_due(&mut self) -> Option<u64> {
        let now = self.env.now;
        let mut best: Option<u64> = None;
        let mut put = |t: u64| best = Some(best.map_or(t, |b: u64| b.min(t)));
        for e in self.env.events.values() {
            if let Some((t, _)) = e.timer {
                put(t);
            }
        }
        if let Some((&(t, _), _)) = self.env.inflight.iter().next() {
            put(t);
        }
        if let Some(t) = self.env.ip4.dhcp_deadline {
            put(t);
        }
        for i in 0..self.env.hosts.len() {
            if let Some(t) = self.env.hosts[i].next_due(now) {
                // A stack asking to run again at the instant it just ran
                // would spin: nudge it by a microsecond.
                let t = if t <= self.env.host_last[i] {
                    self.env.host_last[i] + 1_000
                } else {
                    t
                };
                put(t);
            }
        }
        if let Some(t) = self.tcp4.next_due(&mut self.env) {
            put(t);
        }
        best.map(|b| b.max(now))
    }

    /// Advance the clock to `t` and run everything due at or before it.
    /// Returns false when a step at an unchanged time found nothing to do
    /// many times in a row: a scheduler bug, reported instead of spinning.
    pub fn step_to(&mut self, t: u64) -> bool {
        self.env.stats.scheduler_steps += 1;
        if t <= self.env.now {
            self.env.same_time_steps += 1;
            if self.env.same_time_steps > SAME_TIME_STEP_LIMIT {
                debug_assert!(
                    false,
                    "efisock-sim scheduler livelock at t={}",
                    self.env.now
                );
                self.env
                    .trace(format!("scheduler livelock at t={}", self.env.now));
                self.env.same_time_steps = 0;
                return false;
            }
        } else {
            self.env.same_time_steps = 0;
        }
        self.env.now = self.env.now.max(t);
        let now = self.env.now;
        // Timers.
        let due: Vec<usize> = self
            .env
            .events
            .iter()
            .filter(|(_, e)| e.timer.is_some_and(|(d, _)| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let periodic = self
                .env
                .events
                .get(&id)
                .is_some_and(|e| e.timer.is_some_and(|(_, p)| p > 0));
            let jitter = if periodic {
                self.env.timer_jitter_ns()
            } else {
                0
            };
            if let Some(e) = self.env.events.get_mut(&id) {
                let (d, period) = e.timer.expect("filtered");
                e.timer = if period > 0 {
                    Some((d.max(now) + period + jitter, period))
                } else {
                    None
                };
            }
            let _ = self.env.signal(id);
        }
        // Link deliveries.
        while let Some((&(t, seq), _)) = self.env.inflight.iter().next() {
            if t > now {
                break;
            }
            let frame = self.env.inflight.remove(&(t, seq)).expect("present");
            self.deliver(frame);
        }
        // DHCP.
        if self.env.ip4.dhcp_deadline.is_some_and(|d| d <= now) {
            self.env.ip4.dhcp_deadline = None;
            let d = self.env.cfg.dhcp;
            self.set_address(Some((d.address, d.mask)), Some(d.gateway));
        }
        // Peer host timers.
        for i in 0..self.env.hosts.len() {
            let due = self.env.hosts[i].next_due(now).is_some_and(|t| t <= now);
            if due && self.env.host_last[i] != now {
                self.env.run_host(i);
            }
        }
        self.tcp4.step(&mut self.env);
        self.env.stats.virtual_ns = self.env.now;
        true
    }

    // ---- Ip4Config2 --------------------------------------------------

    /// Set the SUT's address and gateway, then signal the Ip4Config2
    /// address notifications.
    pub fn set_address(&mut self, addr: Option<(Ipv4Addr, Ipv4Addr)>, gw: Option<Ipv4Addr>) {
        self.env.ip4.address = addr;
        self.env.ip4.gateway = gw;
        self.tcp4.set_address(addr, gw);
        self.env.trace(format!("ip4 address {addr:?}"));
        let evs: Vec<usize> = self.env.ip4.notify.get(&0).cloned().unwrap_or_default();
        for e in evs {
            let _ = self.env.signal(e);
        }
    }
}
