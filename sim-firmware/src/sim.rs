//! The public handle (`Sim`) and the platform objects handed to the core.
//!
//! All firmware calls go through [`Sim::enter`] / [`Sim::exit`], which charge
//! virtual time and deliver notify functions at call boundaries with no
//! borrow of the world held, so a notify function may call back into the
//! simulator (as firmware allows).

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use efisock::firmware::{Platform, Tpl};

use crate::breach::{Breach, BreachKind};
use crate::config::{Faults, LinkConfig, Profile, Quirks, SimConfig};
use crate::decide::{Scheduler, Tape};
use crate::host::ConnHandler;
use crate::world::{Deadline, Injection, SimStats, World};

/// Bound on scheduler steps for one wait (a wait needing more is reported).
pub(crate) const MAX_STEPS: u64 = 20_000_000;
/// Virtual-time horizon of one wait before it counts as hanging (24 h).
pub(crate) const MAX_WAIT_NS: u64 = 24 * 3600 * 1_000_000_000;

/// After the simulator unwound a caller at its deadline
/// ([`Sim::set_deadline_ns`]), the virtual time firmware calls may take
/// before it unwinds the caller again (1 s): a clean-up that hangs too is
/// stopped as well, while one that ends goes through.
pub const DEADLINE_REPEAT_NS: u64 = 1_000_000_000;

/// The simulator. Cheap to clone (shared, single-threaded).
#[derive(Clone)]
pub struct Sim {
    pub(crate) w: Rc<RefCell<World>>,
}

/// Boot services of the simulated firmware.
#[derive(Clone)]
pub struct SimBoot {
    pub(crate) sim: Sim,
}

/// The TCP4 service binding of the simulated NIC.
#[derive(Clone)]
pub struct SimTcp4Service {
    pub(crate) sim: Sim,
}

/// The IPv4 configuration of the simulated NIC.
#[derive(Clone)]
pub struct SimIp4Config2 {
    pub(crate) sim: Sim,
}

/// Everything the core needs, implementing `efisock::firmware::Platform`.
#[derive(Clone)]
pub struct SimPlatform {
    boot: SimBoot,
    tcp4: SimTcp4Service,
    ip4: SimIp4Config2,
}

impl Platform for SimPlatform {
    type Boot = SimBoot;
    type Tcp4Service = SimTcp4Service;
    type Ip4Config = SimIp4Config2;
    fn boot(&self) -> &SimBoot {
        &self.boot
    }
    fn tcp4_service(&self) -> &SimTcp4Service {
        &self.tcp4
    }
    fn ip4_config2(&self) -> &SimIp4Config2 {
        &self.ip4
    }
}

/// A peer host on the simulated network.
#[derive(Clone)]
pub struct SimHost {
    sim: Sim,
    idx: usize,
    addr: Ipv4Addr,
}

impl SimHost {
    /// The host's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Accept connections on `port`; each gets a handler from `factory`.
    /// Backlog is unlimited, like a host kernel's.
    pub fn listen(&self, port: u16, factory: Box<dyn FnMut() -> Box<dyn ConnHandler>>) {
        self.sim.w.borrow_mut().env.hosts[self.idx].listen(port, factory);
    }

    /// Stop listening (later SYNs are answered with RST).
    pub fn unlisten(&self, port: u16) {
        self.sim.w.borrow_mut().env.hosts[self.idx].unlisten(port);
    }

    /// Actively open a connection from this host.
    pub fn connect(&self, remote: SocketAddrV4, handler: Box<dyn ConnHandler>) {
        let mut w = self.sim.w.borrow_mut();
        let now = w.env.now;
        w.env.hosts[self.idx].connect(remote, handler, now);
        w.env.run_host(self.idx);
    }
}

impl Sim {
    /// A world with the SUT NIC (no address yet: OVMF's default policy is
    /// static with no address) and one peer host at 10.0.2.2.
    pub fn new(config: SimConfig) -> Sim {
        Sim {
            w: Rc::new(RefCell::new(World::new(config))),
        }
    }

    /// The platform to hand to the core.
    pub fn platform(&self) -> SimPlatform {
        SimPlatform {
            boot: SimBoot { sim: self.clone() },
            tcp4: SimTcp4Service { sim: self.clone() },
            ip4: SimIp4Config2 { sim: self.clone() },
        }
    }

    /// The run seed.
    pub fn seed(&self) -> u64 {
        self.w.borrow().env.cfg.seed
    }
    /// The firmware profile.
    pub fn profile(&self) -> Profile {
        self.w.borrow().env.cfg.profile
    }
    /// The quirks in effect.
    pub fn quirks(&self) -> Quirks {
        self.w.borrow().env.cfg.quirks
    }
    /// Virtual time now.
    pub fn now_ns(&self) -> u64 {
        self.w.borrow().env.now
    }

    /// The default peer host (10.0.2.2).
    pub fn peer_host(&self) -> SimHost {
        self.add_host(Ipv4Addr::new(10, 0, 2, 2))
    }

    /// Add (or get) a peer host with this address.
    pub fn add_host(&self, addr: Ipv4Addr) -> SimHost {
        let idx = self.w.borrow_mut().env.add_host(addr);
        SimHost {
            sim: self.clone(),
            idx,
            addr,
        }
    }

    /// Change the fault knobs of every link.
    pub fn set_link(&self, link: LinkConfig) {
        self.w.borrow_mut().env.cfg.link = link;
    }

    /// The fault knobs in effect.
    pub fn faults(&self) -> Faults {
        self.w.borrow().env.cfg.faults
    }

    /// Change the fault knobs from now on (packets already in flight keep
    /// their fate).
    pub fn set_faults(&self, faults: Faults) {
        self.w.borrow_mut().env.cfg.faults = faults;
    }

    /// Turn every fault off from now on: `Faults::none()`, and the loss,
    /// duplicate, reorder and jitter of the links (latency and bandwidth
    /// stay). Packets already queued still arrive. A DHCP client left
    /// without a lease by an injected failure starts over with the server's
    /// configured delay. The scheduler stays: it is not a fault. This is the
    /// liveness phase after a swarm run.
    pub fn heal(&self) {
        let mut w = self.w.borrow_mut();
        w.env.cfg.faults = Faults::none();
        let l = &mut w.env.cfg.link;
        l.loss = 0.0;
        l.duplicate = 0.0;
        l.reorder = 0.0;
        l.jitter_ns = 0;
        let d = w.env.cfg.dhcp;
        if w.env.ip4.dhcp_policy
            && w.env.ip4.address.is_none()
            && w.env.ip4.dhcp_deadline.is_none()
            && !d.fail
        {
            w.env.ip4.dhcp_deadline = Some(w.env.now + d.delay_ns);
        }
        w.env.trace("heal: faults off".into());
    }

    /// The scheduler in effect (`NotifyMode::Anytime` maps to `Uniform`).
    pub fn scheduler(&self) -> Scheduler {
        self.w.borrow().env.decider.scheduler()
    }

    /// Every decision value taken so far: with `SimConfig::tape` set to it,
    /// the same configuration replays this run bit for bit.
    pub fn tape(&self) -> Tape {
        self.w.borrow().env.decider.tape()
    }

    /// Running hash over every decision (kind, options, value).
    pub fn decision_hash(&self) -> u64 {
        self.w.borrow().env.decider.hash()
    }

    /// Number of decisions taken so far.
    pub fn decisions(&self) -> u64 {
        self.w.borrow().env.decider.decisions()
    }

    /// Statuses injected so far (`Faults::inject`), in order.
    pub fn injected(&self) -> Vec<Injection> {
        self.w.borrow().env.injected.clone()
    }

    /// Run the world forward without the application calling anything
    /// (timer interrupts deliver notifies when the TPL allows).
    pub fn advance(&self, ns: u64) {
        let target = self.now_ns().saturating_add(ns);
        self.run_until(target, false, |_| false);
    }

    /// Sets a deadline in virtual time (absolute ns on this world's clock),
    /// or lifts it with `None`; a test harness uses it to turn a hang (a
    /// lost completion, a wait that never ends) into a failure. The
    /// simulator never reads the wall clock, and a run that stays before
    /// the deadline is the same, decision for decision and nanosecond for
    /// nanosecond, as one without it (checking costs no virtual time).
    ///
    /// The first firmware call that finds the clock at or past the
    /// deadline on entry records it ([`Sim::deadline_passed_ns`]) and unwinds its
    /// caller before doing anything: the call panics with `std::panic::resume_unwind` (no panic
    /// hook runs) and a message naming the deadline and the seed, which the
    /// harness catches with `catch_unwind`. Never from inside a notify
    /// function (an `efiapi` frame cannot unwind: the next call outside one
    /// does it) nor while already unwinding (the caller's drops still call
    /// the firmware); a caller that caught it and still calls the firmware
    /// [`DEADLINE_REPEAT_NS`] later is unwound again.
    pub fn set_deadline_ns(&self, at_ns: Option<u64>) {
        self.w.borrow_mut().env.deadline = at_ns.map(|at_ns| Deadline {
            at_ns,
            passed_ns: None,
            unwind_ns: at_ns,
        });
    }

    /// The deadline set with [`Sim::set_deadline_ns`], if any.
    pub fn deadline_ns(&self) -> Option<u64> {
        self.w.borrow().env.deadline.map(|d| d.at_ns)
    }

    /// When a firmware call first found the clock at or past the deadline
    /// (virtual ns); `None` while it has not (or no deadline is set).
    pub fn deadline_passed_ns(&self) -> Option<u64> {
        self.w.borrow().env.deadline.and_then(|d| d.passed_ns)
    }

    /// The deadline check on entry of every firmware call (see
    /// [`Sim::set_deadline_ns`]). No borrow of the world is held when it
    /// unwinds.
    fn check_deadline(&self) {
        let unwind = {
            let mut w = self.w.borrow_mut();
            let env = &mut w.env;
            let now = env.now;
            let Some(d) = env.deadline.as_mut() else {
                return;
            };
            if now < d.at_ns {
                return;
            }
            let first = d.passed_ns.is_none();
            d.passed_ns.get_or_insert(now);
            let at_ns = d.at_ns;
            let unwind = now >= d.unwind_ns && env.in_notify == 0 && !std::thread::panicking();
            if unwind {
                d.unwind_ns = now.saturating_add(DEADLINE_REPEAT_NS);
            }
            if first {
                env.trace(format!("deadline {at_ns} ns passed"));
            }
            unwind.then(|| {
                format!(
                    "efisock-sim: virtual-time deadline of {:.3} s reached (t={now}ns seed={:#x}): unwinding the caller",
                    at_ns as f64 / 1e9,
                    env.cfg.seed
                )
            })
        };
        if let Some(message) = unwind {
            std::panic::resume_unwind(Box::new(message));
        }
    }

    /// Breaches recorded so far.
    pub fn breaches(&self) -> Vec<Breach> {
        self.w.borrow().env.breaches.clone()
    }

    /// End-of-test check: leaked children, events, pool allocations.
    /// Idempotent: a second call adds nothing.
    pub fn finish(&self) -> Vec<Breach> {
        let mut w = self.w.borrow_mut();
        if std::mem::replace(&mut w.env.finished, true) {
            return w.env.breaches.clone();
        }
        let children: Vec<usize> = w
            .tcp4
            .children
            .iter()
            .filter(|(_, c)| c.is_visible())
            .map(|(&id, _)| id)
            .collect();
        for id in children {
            w.env.breach(
                BreachKind::LeakedChild,
                format!("TCP4 child {id} was never destroyed"),
            );
        }
        let events: Vec<usize> = w.env.events.keys().copied().collect();
        for e in events {
            w.env.breach(
                BreachKind::LeakedEvent,
                format!("event {e:#x} was never closed"),
            );
        }
        for (a, s) in w.env.pool.live() {
            w.env.breach(
                BreachKind::LeakedPool,
                format!("pool allocation {a:#x} ({s} bytes) was never freed"),
            );
        }
        w.env.breaches.clone()
    }

    /// Counters of the run.
    pub fn stats(&self) -> SimStats {
        let w = self.w.borrow();
        let mut s = w.env.stats.clone();
        s.virtual_ns = w.env.now;
        s
    }

    /// The run's trace (completions, state changes), for determinism checks.
    pub fn trace(&self) -> Vec<String> {
        self.w.borrow().env.trace.clone()
    }

    // ---- call boundaries ---------------------------------------------

    /// Deliver pending notify functions the TPL allows (in the order and
    /// with the deferrals the scheduler's decisions say).
    pub(crate) fn deliver_notifies(&self) {
        // Bounded: a notify that keeps re-signalling itself cannot spin forever.
        for _ in 0..100_000 {
            let call = {
                let mut w = self.w.borrow_mut();
                match w.env.next_notify() {
                    Some(c) => {
                        let prev = w.env.tpl;
                        w.env.tpl = c.tpl;
                        Some((c, prev))
                    }
                    None => None,
                }
            };
            let Some((c, prev)) = call else { return };
            self.w.borrow_mut().env.in_notify += 1;
            // SAFETY: the caller of CreateEvent guaranteed the notify function
            // and context stay valid until CloseEvent; no world borrow is held.
            unsafe { (c.func)(c.event as _, c.ctx as _) };
            let mut w = self.w.borrow_mut();
            w.env.in_notify -= 1;
            w.env.tpl = prev;
        }
    }

    /// Entry of a firmware call: count it, charge time, run what is due.
    pub(crate) fn enter(&self, extra_ns: u64) {
        let target = {
            let mut w = self.w.borrow_mut();
            w.env.stats.firmware_calls += 1;
            w.env.now + w.env.cfg.cost.per_call_ns + extra_ns
        };
        self.run_steps(target);
        // Before the call does anything: an unwound call handed nothing to
        // the firmware.
        self.check_deadline();
        // Non-FIFO schedulers also deliver at call entry (a timer interrupt
        // may have fired just before the call); FIFO keeps EDK2's points.
        if self.w.borrow().env.decider.scheduler() != Scheduler::Fifo {
            self.deliver_notifies();
        }
    }

    /// Exit of a firmware call: completions' notifies run before returning.
    pub(crate) fn exit(&self) {
        self.deliver_notifies();
    }

    fn run_steps(&self, target: u64) {
        let mut w = self.w.borrow_mut();
        for _ in 0..MAX_STEPS {
            match w.next_due() {
                Some(t) if t <= target => {
                    if !w.step_to(t) {
                        break;
                    }
                }
                _ => break,
            }
        }
        if w.env.now < target {
            let _ = w.step_to(target);
        }
    }

    /// Run until `target`, or until `done` holds; notifies run after each
    /// step when the TPL allows (timer interrupts). With `stop_when_idle`,
    /// returns false without advancing the clock as soon as nothing is left
    /// that could ever happen (a wait that would hang).
    pub(crate) fn run_until(
        &self,
        target: u64,
        stop_when_idle: bool,
        mut done: impl FnMut(&mut World) -> bool,
    ) -> bool {
        for _ in 0..MAX_STEPS {
            if done(&mut self.w.borrow_mut()) {
                return true;
            }
            let next = {
                let mut w = self.w.borrow_mut();
                let n = w.next_due();
                match n {
                    Some(t) if t <= target => {
                        if w.step_to(t) {
                            true
                        } else {
                            // Livelock: move on to the target instead.
                            let next = target.min(w.env.now + 1_000);
                            let _ = w.step_to(next);
                            true
                        }
                    }
                    None if stop_when_idle => false,
                    _ => {
                        if w.env.now < target && target != u64::MAX {
                            let _ = w.step_to(target);
                        }
                        false
                    }
                }
            };
            if self.w.borrow().env.tpl < Tpl::CALLBACK.0 {
                self.deliver_notifies();
            }
            if !next {
                return done(&mut self.w.borrow_mut());
            }
        }
        false
    }
}
