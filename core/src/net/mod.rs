//! `Net`: the socket layer on one firmware, its shared state and the one
//! wait loop everything blocks in.
//!
//! Why one shared state: completions arrive for tokens, not sockets; select
//! and teardown need to see every socket, every slot and the graveyard at
//! each safe point. Sockets are handles (`SocketId`) into this state, which
//! lives behind an `Rc<RefCell<..>>` (single-threaded, like UEFI boot
//! services). Notify functions never touch it (see `completion`).

mod shutdown;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::mem::ManuallyDrop;
use core::time::Duration;

use crate::calls::completion::{Clock, CompletionQueue, read_clock};
use crate::calls::{Ctx, FIRMWARE_CALLS, Stats, call_index};
use crate::config::NetConfig;
use crate::error::{FirmwareCall, Result};
use crate::firmware::{EventType, Platform, Status, Tpl};
use crate::slots::SlotTable;
use crate::socket::table::State;
use crate::strategy::{PollStrategy, WaitIo, default_strategy};
use crate::time;

/// Counters since the `Net` was created; exact.
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// # let net = efisock::Net::new(platform);
/// # net.set_static(
/// #     std::net::Ipv4Addr::new(10, 0, 2, 15),
/// #     std::net::Ipv4Addr::new(255, 255, 255, 0),
/// #     None,
/// # )?;
/// use efisock::error::FirmwareCall;
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// let stats = net.stats();
/// assert_eq!(stats.calls_of(FirmwareCall::Connect), 1);
/// assert!(stats.polls > 0, "the wait for the handshake polled the firmware");
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Firmware calls, indexed like [`NetStats::CALLS`].
    pub calls: [u64; 14],
    /// `Tcp4.Poll` calls.
    pub polls: u64,
    /// `Stall` calls.
    pub stalls: u64,
    /// Timer waits (`SetTimer` + `WaitForEvent`).
    pub timer_waits: u64,
    /// Strategy steps taken by wait loops.
    pub waits: u64,
    /// Token completions drained.
    pub completions: u64,
    /// Notify records drained (one per signalled token event).
    pub notifies: u64,
    /// Notify records that found the queue full (always 0 unless the
    /// firmware broke its contract).
    pub overflows: u64,
}

impl NetStats {
    /// The order of [`NetStats::calls`].
    pub const CALLS: [FirmwareCall; 14] = FIRMWARE_CALLS;

    /// Calls made to `call`.
    pub fn calls_of(&self, call: FirmwareCall) -> u64 {
        self.calls[call_index(call)]
    }

    /// All firmware calls.
    pub fn total_calls(&self) -> u64 {
        self.calls.iter().sum()
    }
}

/// Live firmware resources; all zero after a successful [`Net::shutdown`].
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// # let net = efisock::Net::new(platform);
/// # net.set_static(
/// #     std::net::Ipv4Addr::new(10, 0, 2, 15),
/// #     std::net::Ipv4Addr::new(255, 255, 255, 0),
/// #     None,
/// # )?;
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// assert_eq!(net.resources().pending_tokens, 1, "the Receive kept armed");
/// drop(s);
/// net.shutdown(std::time::Duration::from_secs(10))?;
/// assert!(net.resources().is_zero());
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// TCP4 children created or accepted and not yet destroyed.
    pub children: usize,
    /// Events created and not closed.
    pub events: usize,
    /// Pool allocations not freed.
    pub pool_allocations: usize,
    /// Tokens the firmware owns.
    pub pending_tokens: usize,
    /// Closed sockets still waiting for the firmware (graveyard entries).
    pub graveyard: usize,
}

impl Resources {
    /// True when nothing is held.
    pub fn is_zero(&self) -> bool {
        *self == Resources::default()
    }
}

/// Shared core of a `Net`.
pub(crate) struct Inner<P: Platform> {
    platform: ManuallyDrop<Box<P>>,
    queue: ManuallyDrop<Box<CompletionQueue>>,
    pub cfg: NetConfig,
    pub stats: Stats,
    pub state: RefCell<State<P>>,
    pub strategy: RefCell<Box<dyn PollStrategy>>,
    /// Firmware time (ns) after which every wait of this `Net` gives up, as
    /// if its own timeout had expired (`Net::set_wait_deadline`).
    pub wait_deadline: core::cell::Cell<Option<u64>>,
}

impl<P: Platform> Inner<P> {
    /// The call context.
    pub fn ctx(&self) -> Ctx<'_, P> {
        Ctx {
            p: &self.platform,
            stats: &self.stats,
            queue: &self.queue,
            cfg: &self.cfg,
        }
    }

    /// Drains the completion queue, advances every socket and the graveyard.
    pub fn safe_point(&self, ctx: &Ctx<'_, P>, st: &mut State<P>) {
        #[cfg(feature = "deliberate-bugs")]
        crate::deliberate::raise_deferred_panic();
        let mut drained = false;
        while let Some(rec) = ctx.queue.pop() {
            drained = true;
            ctx.stats.notify();
            if let Some((kind, instance, status)) = st.slots.complete(rec.slot) {
                ctx.stats.completion();
                let bytes = st.slots.completed_bytes(rec.slot);
                SlotTable::trace_completion(
                    kind,
                    instance,
                    rec.slot,
                    status,
                    bytes,
                    (rec.t_ns, ctx.now()),
                );
            } else {
                tracing::warn!(target: "efisock::completion", slot = rec.slot, "stale completion record ignored");
            }
        }
        let _ = drained;
        let State {
            slots,
            socks,
            corpses,
            ..
        } = st;
        for sock in socks.values_mut() {
            sock.progress(ctx, slots);
        }
        crate::socket::teardown::reap(ctx, slots, corpses);
    }

    /// The one wait loop: safe point → condition → deadline → strategy step.
    /// Returns None when the deadline passed first. The condition is always
    /// checked at least twice, around at least one `Tcp4.Poll` or strategy
    /// step, so a zero timeout means "poll once", never "look at stale state".
    pub fn wait<R>(
        &self,
        st: &mut State<P>,
        deadline: Option<u64>,
        mut cond: impl FnMut(&Ctx<'_, P>, &mut State<P>) -> Option<R>,
    ) -> Option<R> {
        let ctx = self.ctx();
        let deadline = crate::time::earliest(deadline, self.wait_deadline.get());
        if let Ok(mut s) = self.strategy.try_borrow_mut() {
            s.begin();
        }
        let mut stepped = false;
        loop {
            self.safe_point(&ctx, st);
            if let Some(r) = cond(&ctx, st) {
                return Some(r);
            }
            if let Some(d) = deadline {
                if ctx.now() >= d {
                    if stepped {
                        return None;
                    }
                    // A zero (or already expired) timeout still gives the
                    // firmware one Tcp4.Poll, so "check once" sees fresh
                    // completions instead of stale state.
                    stepped = true;
                    ctx.stats.wait_iteration();
                    Io {
                        ctx: &ctx,
                        st: &mut *st,
                        deadline,
                    }
                    .poll_firmware();
                    continue;
                }
            }
            stepped = true;
            ctx.stats.wait_iteration();
            let mut io = Io {
                ctx: &ctx,
                st: &mut *st,
                deadline,
            };
            match self.strategy.try_borrow_mut() {
                Ok(mut s) => s.step(&mut io),
                // Unreachable in practice (strategies cannot re-enter); still
                // make progress rather than spin.
                Err(_) => io.poll_firmware(),
            }
        }
    }
}

/// The `WaitIo` a strategy drives.
struct Io<'a, 'c, P: Platform> {
    ctx: &'a Ctx<'c, P>,
    st: &'a mut State<P>,
    deadline: Option<u64>,
}

impl<P: Platform> WaitIo for Io<'_, '_, P> {
    fn now_ns(&self) -> u64 {
        self.ctx.now()
    }
    fn deadline_ns(&self) -> Option<u64> {
        self.deadline
    }
    fn pending_tokens(&self) -> usize {
        self.st.slots.pending()
    }
    fn last_transmit_ns(&self) -> Option<u64> {
        self.st.slots.last_transmit_ns()
    }
    fn poll_firmware(&mut self) {
        let target = self
            .st
            .socks
            .values()
            .map(|s| (&s.tcp, s.instance))
            .chain(self.st.corpses.iter().map(|c| (&c.tcp, c.instance)))
            .next();
        match target {
            Some((tcp, instance)) => {
                let _ = self.ctx.poll(tcp, instance);
            }
            // Nothing to poll: let time pass (at most 1 ms, capped at the deadline).
            None => {
                let us = crate::strategy::cap_to_deadline(self, 1000);
                self.ctx.stall(us)
            }
        }
    }
    fn stall(&mut self, us: u64) {
        self.ctx.stall(us);
    }
    fn wait_timer(&mut self, us: u64) {
        let timer = match self.st.timer {
            Some(t) => Some(t),
            None => match self.ctx.create_event(
                EventType::TIMER,
                Tpl::APPLICATION,
                None,
                core::ptr::null_mut(),
            ) {
                Ok(t) => {
                    self.st.timer = Some(t);
                    Some(t)
                }
                Err(_) => None,
            },
        };
        let ok = timer.is_some_and(|t| self.ctx.wait_timer(t, us) == Status::SUCCESS);
        if !ok {
            // No timer available: a stall of the same length still lets
            // the firmware's timers run.
            self.ctx.stall(us);
        }
    }
    fn completions(&self) -> u64 {
        self.ctx.queue.recorded()
    }
}

/// The socket layer on one firmware. Cheap to clone (shared state).
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// use efisock::Net;
/// use std::net::Ipv4Addr;
/// use std::time::Duration;
///
/// let net = Net::new(platform);
/// net.set_static(
///     Ipv4Addr::new(10, 0, 2, 15),
///     Ipv4Addr::new(255, 255, 255, 0),
///     Some(Ipv4Addr::new(10, 0, 2, 2)),
/// )?;
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// s.sendall(b"ping")?;
/// assert_eq!(s.recv(4)?, b"ping");
/// drop(s);
/// net.shutdown(Duration::from_secs(10))?;
/// assert!(net.resources().is_zero());
/// # Ok::<(), efisock::Error>(())
/// ```
pub struct Net<P: Platform> {
    pub(crate) inner: Rc<Inner<P>>,
}

impl<P: Platform> Clone for Net<P> {
    fn clone(&self) -> Self {
        Net {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<P: Platform + 'static> Net<P> {
    /// A socket layer with the default configuration.
    pub fn new(platform: P) -> Self {
        Self::with_config(platform, NetConfig::default())
    }

    /// A socket layer with `config`.
    pub fn with_config(platform: P, config: NetConfig) -> Self {
        let platform = Box::new(platform);
        let clock = Clock {
            read: read_clock::<P::Boot>,
            ctx: platform.boot() as *const P::Boot as *const (),
        };
        let limit = config.slot_limit();
        let queue = Box::new(CompletionQueue::new(limit, clock));
        // Losslessness: one record per slot at most.
        debug_assert!(queue.capacity() >= limit);
        let net = Net {
            inner: Rc::new(Inner {
                platform: ManuallyDrop::new(platform),
                queue: ManuallyDrop::new(queue),
                cfg: config,
                stats: Stats::default(),
                state: RefCell::new(State {
                    slots: SlotTable::new(limit),
                    socks: BTreeMap::new(),
                    corpses: Vec::new(),
                    next_id: 3,
                    next_instance: 0,
                    timer: None,
                    down: false,
                }),
                strategy: RefCell::new(default_strategy()),
                wait_deadline: core::cell::Cell::new(None),
            }),
        };
        #[cfg(feature = "deliberate-bugs")]
        {
            let weak = Rc::downgrade(&net.inner);
            crate::deliberate::set_process_hook(alloc::boxed::Box::new(move || {
                let Some(inner) = weak.upgrade() else {
                    return Ok(());
                };
                // The bug: take the state from inside the notify.
                let Ok(mut st) = inner.state.try_borrow_mut() else {
                    return Err(alloc::string::String::from(
                        "the socket state was in use: the notify interrupted efisock \
                         mid-operation (in C: a data race on the socket state)",
                    ));
                };
                let ctx = inner.ctx();
                inner.safe_point(&ctx, &mut st);
                Ok(())
            }));
        }
        net
    }

    /// The configuration in use.
    pub fn config(&self) -> &NetConfig {
        &self.inner.cfg
    }

    /// Replaces the poll strategy used by every wait.
    pub fn set_strategy(&self, strategy: Box<dyn PollStrategy>) {
        *self.inner.strategy.borrow_mut() = strategy;
    }

    /// Name of the current strategy.
    pub fn strategy_name(&self) -> &'static str {
        self.inner.strategy.borrow().name()
    }

    /// Bounds every wait of this `Net` (blocking calls without a timeout
    /// included) to `within` from now; `None` lifts the bound. A wait that
    /// reaches it ends as its own timeout would: `Error::timeout` for socket
    /// calls, nothing ready for select/poll. A test harness uses it so a
    /// hung case is reported instead of hanging a firmware without threads.
    pub fn set_wait_deadline(&self, within: Option<Duration>) {
        let now = self.inner.ctx().now();
        self.inner
            .wait_deadline
            .set(within.map(|d| now.saturating_add(crate::time::nanos(d))));
    }

    /// Waits `d` while the stack keeps progressing (completions are processed).
    pub fn sleep(&self, d: Duration) {
        let inner = &*self.inner;
        let mut st = inner.state.borrow_mut();
        let deadline = time::deadline(inner.ctx().now(), Some(d));
        inner.wait(&mut st, deadline, |_, _| None::<()>);
    }

    /// Monotonic time since the firmware's origin.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.inner.ctx().now())
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        let s = &self.inner.stats;
        let mut calls = [0u64; 14];
        for (i, c) in s.calls.iter().enumerate() {
            calls[i] = c.get();
        }
        NetStats {
            calls,
            polls: s.polls.get(),
            stalls: s.stalls.get(),
            timer_waits: s.timer_waits.get(),
            waits: s.wait_iterations.get(),
            completions: s.completions.get(),
            notifies: s.notifies.get(),
            overflows: self.inner.queue.overflows(),
        }
    }

    /// Live resources.
    pub fn resources(&self) -> Resources {
        let inner = &*self.inner;
        let st = inner.state.borrow();
        Resources {
            children: inner.stats.children.get(),
            events: inner.stats.events.get(),
            pool_allocations: inner.stats.pool.get(),
            pending_tokens: st.slots.pending(),
            graveyard: st.corpses.len(),
        }
    }

    /// Closes every socket, waits (at most `timeout`) for every token to be
    /// signalled, destroys the children, closes events and frees pool memory.
    /// Afterwards `resources()` is all zero and `socket()` fails with
    /// ENETDOWN. If the firmware still owns tokens at the deadline, their
    /// memory is kept (never freed while firmware-owned) and ETIMEDOUT is
    /// returned.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        shutdown::shutdown_all(&self.inner, timeout)
    }
}

impl<P: Platform> Drop for Inner<P> {
    fn drop(&mut self) {
        let timeout = self.cfg.close_timeout;
        let clean = shutdown::shutdown_all(self, timeout).is_ok()
            && self.state.get_mut().slots.pending() == 0;
        if clean {
            // SAFETY: no event exists any more, so no notify function can
            // reach the queue or the clock; dropped exactly once here.
            unsafe {
                ManuallyDrop::drop(&mut self.queue);
                ManuallyDrop::drop(&mut self.platform);
            }
        }
        // Otherwise the firmware still owns tokens whose events point at the
        // queue (and whose notify reads the platform's clock): both are
        // leaked on purpose, never freed under the firmware.
    }
}
