//! The simulated machine: [`World`] is the SUT's TCP4 driver (`tcp4`) and
//! the [`Env`] around it — virtual clock, DXE event table (`events`), the
//! decisions and injected statuses (`decisions`), pool, network links and
//! peer hosts (`network`), IPv4 configuration — plus the scheduler loop
//! that advances them together.
//!
//! `World` never calls foreign code: notify functions are only *queued* here
//! and called by `Sim` with no borrow of the world held, so they may re-enter.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use efisock::firmware::Tpl;

use crate::breach::{Breach, BreachKind};
use crate::config::{BreachPolicy, SimConfig};
use crate::decide::Decider;
use crate::device::ipv4_dst;
use crate::host::Host;
use crate::pool::Pool;
use crate::tcp4::Edk2Tcp4;

mod decisions;
mod events;
mod network;

pub use decisions::Injection;
pub(crate) use events::EventRec;

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

/// IPv4 configuration state of the SUT NIC.
pub(crate) struct Ip4State {
    pub dhcp_policy: bool,
    pub address: Option<(Ipv4Addr, Ipv4Addr)>,
    pub gateway: Option<Ipv4Addr>,
    pub dhcp_deadline: Option<u64>,
    /// A DHCP lease was obtained at least once since boot (EDK2's
    /// `DhcpSuccess`, never cleared).
    pub dhcp_success: bool,
    pub notify: BTreeMap<i32, Vec<usize>>,
}

pub(crate) const EVENT_BASE: usize = 0x1_0000;
/// The DXE core's timer tick: OVMF's 8254 timer driver runs at
/// `DEFAULT_TIMER_TICK_DURATION` (OvmfPkg/8254TimerDxe/8254Timer.h, 100000 x
/// 100 ns = 10 ms).
pub(crate) const TIMER_TICK_NS: u64 = 10_000_000;
/// MNP polls the NIC from a periodic timer event of one tick
/// (MnpImpl.h `MNP_SYS_POLL_INTERVAL`).
pub(crate) const MNP_TICK_NS: u64 = TIMER_TICK_NS;

/// When a timer event armed at `now` with `delay_ns` is signalled.
///
/// The DXE core's system time advances only in `CoreTimerTick`, once per
/// tick; `CoreSetTimer` sets the trigger time to that system time plus the
/// delay, and a trigger is checked only on a tick (MdeModulePkg/Core/Dxe/
/// Event/Timer.c). So a timer fires on the first tick at or after "last
/// tick + delay": a 1 ms timer waits until the next tick, 0 to 10 ms away. A
/// zero delay is signalled at once (`CoreSetTimer` signals the check event
/// itself). Measured by `probe/one_ms_timers_wait_for_the_tick`.
pub(crate) fn timer_due(now: u64, delay_ns: u64) -> u64 {
    if delay_ns == 0 {
        return now;
    }
    let last_tick = now / TIMER_TICK_NS * TIMER_TICK_NS;
    last_tick
        .saturating_add(delay_ns)
        .div_ceil(TIMER_TICK_NS)
        .saturating_mul(TIMER_TICK_NS)
}
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
    /// The caller's deadline in virtual time (`Sim::set_deadline_ns`).
    pub deadline: Option<Deadline>,
    /// Notify functions running now (nested calls included): the
    /// simulator never unwinds out of one (it is an `efiapi` frame).
    pub in_notify: u32,
}

/// A deadline in virtual time set by the simulator's caller
/// (`Sim::set_deadline_ns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// The deadline (ns on the virtual clock).
    pub at_ns: u64,
    /// When a firmware call first found the clock at or past it.
    pub passed_ns: Option<u64>,
    /// From when on the next firmware call unwinds its caller.
    pub unwind_ns: u64,
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
                dhcp_success: false,
                notify: BTreeMap::new(),
            },
            cfg,
            same_time_steps: 0,
            finished: false,
            deadline: None,
            in_notify: 0,
        };
        env.add_host(Ipv4Addr::new(10, 0, 2, 2));
        World { env, tcp4 }
    }
}

impl Env {
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

    /// Count steps that do not advance the clock. Returns false (and
    /// resets the count) when too many in a row found nothing to do: a
    /// scheduler livelock, reported instead of spinning.
    fn note_step_time(&mut self, t: u64) -> bool {
        if t > self.now {
            self.same_time_steps = 0;
            return true;
        }
        self.same_time_steps += 1;
        if self.same_time_steps > SAME_TIME_STEP_LIMIT {
            debug_assert!(false, "efisock-sim scheduler livelock at t={}", self.now);
            self.trace(format!("scheduler livelock at t={}", self.now));
            self.same_time_steps = 0;
            return false;
        }
        true
    }

    /// Signal every timer event due at `now` and re-arm the periodic ones
    /// (a periodic timer may fire late by a `TimerJitter` decision).
    fn fire_timers(&mut self, now: u64) {
        let due: Vec<usize> = self
            .events
            .iter()
            .filter(|(_, e)| e.timer.is_some_and(|(d, _)| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let periodic = self
                .events
                .get(&id)
                .is_some_and(|e| e.timer.is_some_and(|(_, p)| p > 0));
            let jitter = if periodic { self.timer_jitter_ns() } else { 0 };
            if let Some(e) = self.events.get_mut(&id) {
                let (d, period) = e.timer.expect("filtered");
                e.timer = if period > 0 {
                    Some((timer_due(d.max(now), period) + jitter, period))
                } else {
                    None
                };
            }
            let _ = self.signal(id);
        }
    }

    /// Run the peer hosts whose timers are due (once per instant).
    fn run_due_hosts(&mut self, now: u64) {
        for i in 0..self.hosts.len() {
            let due = self.hosts[i].next_due(now).is_some_and(|t| t <= now);
            if due && self.host_last[i] != now {
                self.run_host(i);
            }
        }
    }
}

impl World {
    /// A frame arrives at its destination: the SUT's NIC or a peer host.
    fn deliver(&mut self, frame: Vec<u8>) {
        let Some(dst) = ipv4_dst(&frame) else { return };
        let dst = Ipv4Addr::from(dst);
        if self.tcp4.is_local(dst, self.env.ip4.address) {
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
        if !self.env.note_step_time(t) {
            return false;
        }
        self.env.now = self.env.now.max(t);
        let now = self.env.now;
        self.env.fire_timers(now);
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
            self.env.ip4.dhcp_success = true;
            let d = self.env.cfg.dhcp;
            self.set_address(Some((d.address, d.mask)), Some(d.gateway));
        }
        self.env.run_due_hosts(now);
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

#[cfg(test)]
mod tests {
    use super::{TIMER_TICK_NS, timer_due};

    const MS: u64 = 1_000_000;

    #[test]
    fn timers_fire_on_the_tick_after_last_tick_plus_delay() {
        // (now, delay) -> due
        let table = [
            (0, 0, 0),
            (3 * MS, 0, 3 * MS),
            (3 * MS, MS, TIMER_TICK_NS),
            (0, MS, TIMER_TICK_NS),
            (9 * MS, MS, TIMER_TICK_NS),
            (10 * MS, MS, 20 * MS),
            (3 * MS, 10 * MS, 10 * MS),
            (3 * MS, 15 * MS, 20 * MS),
            (12 * MS, 25 * MS, 40 * MS),
        ];
        for (now, delay, due) in table {
            assert_eq!(timer_due(now, delay), due, "now {now} delay {delay}");
        }
    }
}
