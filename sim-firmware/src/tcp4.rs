//! EDK2's TCP4 driver on top of smoltcp: per-child state, token queues,
//! status codes and completion timing, with the contract checker's hooks.
//!
//! smoltcp provides the wire protocol; this module provides what EDK2 adds
//! above it: tokens identified by their event, completions per frame (one
//! frame per 10 ms MNP tick or per Poll), the backlog emulated with a pool of
//! listening sockets, CONNECTION_FIN as a function result, RST on Close with
//! unread data, ports held through TIME_WAIT. Quirks switch each of these.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use efisock::firmware::status::{CONNECTION_FIN, CONNECTION_REFUSED, CONNECTION_RESET};
use efisock::firmware::{
    Status, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConfigData, Tcp4ConnectionState,
    Tcp4ConnectionToken, Tcp4IoToken, Tcp4ListenToken, Tcp4Option, Tcp4ReceiveData,
    Tcp4TransmitData,
};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::breach::BreachKind;
use crate::decide::DecisionKind;
use crate::device::{QueueDevice, tcp_summary};
use crate::host::instant;
use crate::rng::Rng;
use crate::tokens::{self, Frag};
use crate::world::{MNP_TICK_NS, World};

/// Frames the SUT NIC queues before dropping (MNP receive queue).
pub const NIC_QUEUE_FRAMES: usize = 64;
pub(crate) const CHILD_BASE: usize = 0x2_0000;
const SEC: u64 = 1_000_000_000;
const MAX_BUF: u32 = 2 * 1024 * 1024;
const MIN_BUF: u32 = 8 * 1024;

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Accept,
    Transmit,
    Receive,
    Close,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Accept => "accept",
            Kind::Transmit => "transmit",
            Kind::Receive => "receive",
            Kind::Close => "close",
        }
    }
}

/// A token the firmware owns.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub token: usize,
    pub event: usize,
    pub kind: Kind,
    check: u64,
    /// Memory the firmware owns for this token: (address, length).
    pub ranges: Vec<(usize, usize)>,
    frags: Vec<Frag>,
    data: usize,
    len: usize,
    offset: usize,
}

#[derive(Debug, Clone, Copy)]
struct Opts {
    rcv_buf: u32,
    snd_buf: u32,
    backlog: usize,
    conn_timeout_s: u32,
    fin_timeout_s: u32,
    tw_timeout_s: u32,
    nagle: bool,
    data_retries: u32,
}

#[derive(Debug, Clone, Copy)]
struct ChildCfg {
    station: Ipv4Addr,
    mask: Ipv4Addr,
    port: u16,
    remote: Ipv4Addr,
    remote_port: u16,
    active: bool,
    use_default: bool,
    tos: u8,
    ttl: u8,
    opts: Opts,
}

#[derive(Debug, Default)]
pub(crate) struct Child {
    cfg: Option<ChildCfg>,
    sock: Option<SocketHandle>,
    listener: Option<ListenerState>,
    pub passive: bool,
    pub busy: bool,
    /// Handed to the application (created by CreateChild or accepted).
    pub visible: bool,
    connect: Option<Pending>,
    accepts: VecDeque<Pending>,
    txs: VecDeque<Pending>,
    rxs: VecDeque<Pending>,
    close: Option<Pending>,
    error: Option<Status>,
    fin_in: bool,
    prev: Option<State>,
    close_issued: bool,
    graceful_done: bool,
    connect_deadline: Option<u64>,
    linger_deadline: Option<u64>,
    reset_seen: bool,
    /// Retransmission watchdog: (outstanding bytes, since when unchanged).
    stall: Option<(usize, u64)>,
}

#[derive(Debug, Default)]
struct ListenerState {
    pool: Vec<SocketHandle>,
    ready: VecDeque<usize>,
}

pub(crate) struct Sut {
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
    pub nic: VecDeque<Vec<u8>>,
    pub children: BTreeMap<usize, Child>,
    next_child: usize,
    next_ephemeral: u16,
    port_holds: BTreeMap<u16, u64>,
    next_mnp: u64,
    deferred: Vec<usize>,
    /// Inside a Tcp4 call's body: completions may be notified as it returns.
    pub in_call: bool,
}

impl Child {
    /// Configured (Configure succeeded and no reset since).
    pub fn is_configured(&self) -> bool {
        self.cfg.is_some()
    }
}

impl Sut {
    pub fn new(seed: u64) -> Sut {
        let mut dev = QueueDevice::default();
        let mut cfg = Config::new(HardwareAddress::Ip);
        let mut rng = Rng::new(seed, 0x5057);
        cfg.random_seed = rng.next_u64();
        let iface = Interface::new(cfg, &mut dev, instant(0));
        Sut {
            iface,
            dev,
            sockets: SocketSet::new(vec![]),
            nic: VecDeque::new(),
            children: BTreeMap::new(),
            next_child: 0,
            next_ephemeral: 1024 + rng.below(1024) as u16,
            port_holds: BTreeMap::new(),
            next_mnp: 0,
            deferred: Vec::new(),
            in_call: false,
        }
    }

    pub fn child_handle(id: usize) -> usize {
        CHILD_BASE + id * 16
    }
}

fn ip(a: efisock::firmware::Ipv4Address) -> Ipv4Addr {
    Ipv4Addr::from(a.0)
}

fn synchronized(st: State) -> bool {
    !matches!(st, State::Closed | State::Listen | State::SynSent)
}

fn edk2_state(st: State) -> Tcp4ConnectionState {
    match st {
        State::Closed => Tcp4ConnectionState::CLOSED,
        State::Listen => Tcp4ConnectionState::LISTEN,
        State::SynSent => Tcp4ConnectionState::SYN_SENT,
        State::SynReceived => Tcp4ConnectionState::SYN_RECEIVED,
        State::Established => Tcp4ConnectionState::ESTABLISHED,
        State::FinWait1 => Tcp4ConnectionState::FIN_WAIT1,
        State::FinWait2 => Tcp4ConnectionState::FIN_WAIT2,
        State::Closing => Tcp4ConnectionState::CLOSING,
        State::TimeWait => Tcp4ConnectionState::TIME_WAIT,
        State::CloseWait => Tcp4ConnectionState::CLOSE_WAIT,
        State::LastAck => Tcp4ConnectionState::LAST_ACK,
    }
}

/// How long EDK2 retransmits before giving up: RTO doubling from 3 s,
/// capped at 60 s, `retries` times (TcpTimer.c; 12 retries = 513 s).
pub(crate) fn retransmit_budget_ns(retries: u32) -> u64 {
    (0..retries)
        .map(|i| (3u64 << i.min(10)).min(60))
        .sum::<u64>()
        * SEC
}

fn mask_ok(m: Ipv4Addr) -> bool {
    let v = u32::from(m);
    v.leading_ones() + v.trailing_zeros() == 32
}

/// Read the options, replacing out-of-range values by defaults (TcpProto.h).
///
/// # Safety
/// `o` is null or valid for reads.
unsafe fn read_opts(o: *const Tcp4Option) -> Opts {
    let mut opts = Opts {
        rcv_buf: MAX_BUF,
        snd_buf: MAX_BUF,
        backlog: 10,
        conn_timeout_s: 75,
        fin_timeout_s: 2,
        tw_timeout_s: 2,
        nagle: true,
        data_retries: 12,
    };
    if o.is_null() {
        return opts;
    }
    // SAFETY: non-null option pointer is valid for reads (trait contract).
    let o = unsafe { &*o };
    // TCP_COMP_VAL (TcpDispatcher.c `TcpConfigurePcb`): out of range means
    // the default, not the nearest bound. Ranges from TcpProto.h.
    let inr = |v: u32, lo: u32, hi: u32, d: u32| if (lo..=hi).contains(&v) { v } else { d };
    opts.rcv_buf = inr(o.receive_buffer_size, MIN_BUF, MAX_BUF, MAX_BUF);
    opts.snd_buf = inr(o.send_buffer_size, MIN_BUF, MAX_BUF, MAX_BUF);
    opts.backlog = inr(o.max_syn_back_log, 5, 10, 10) as usize;
    opts.conn_timeout_s = inr(o.connection_timeout, 60, 75, 75);
    opts.fin_timeout_s = inr(o.fin_timeout, 2, 4, 2);
    // TimeWaitTimeout 0 disables TIME_WAIT (the connection closes at once).
    opts.tw_timeout_s = match o.time_wait_timeout {
        0 => 0,
        v => inr(v, 2, 60, 2),
    };
    opts.nagle = bool::from(o.enable_nagle);
    opts.data_retries = inr(o.data_retries, 6, 12, 12);
    opts
}

impl World {
    // ---- plumbing ----------------------------------------------------

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
    fn admit_frame(&mut self, frame: &[u8]) -> bool {
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
    fn defer_signal(&mut self, event: usize) {
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

    fn complete(&mut self, p: Pending, st: Status) {
        self.verify(&p, "at completion");
        // SAFETY: `p.token` is a pending token of this kind (trait contract);
        // every token type starts with its completion token.
        unsafe { tokens::set_status(p.token as *mut Tcp4CompletionToken, st) };
        self.trace(format!(
            "complete {} event {:#x} {}",
            p.kind.name(),
            p.event,
            efisock::firmware::status::name(st)
        ));
        tracing::debug!(target: "efisock::sim", token = p.kind.name(), status = efisock::firmware::status::name(st), t_ns = self.now);
        self.signal_completion(p.event);
    }

    /// Signal a completion's event now, or at the next MNP tick / Poll: a
    /// completion produced inside a Tcp4 call is notified as the call
    /// returns when the profile says so, unless a `CompletionInCall`
    /// decision makes it late (the DPC ran after the call).
    fn signal_completion(&mut self, event: usize) {
        let late = self.sut.in_call
            && (!self.cfg.quirks.completions_inside_call || {
                let p = self.p_late_completion();
                self.decider
                    .choose_weighted(DecisionKind::CompletionInCall, &[p])
                    == 1
            });
        if late {
            self.defer_signal(event);
        } else {
            let _ = self.signal(event);
        }
    }

    /// An injected completion (`StatusInjection`) for a pending token of
    /// child `only_child` / with event `only_event` (None: any). Legal ones:
    /// - CONNECTION_RESET for a pending Receive/Transmit of a synchronized
    ///   connection: what a peer RST does (TcpInput.c `TcpInput` → RST in a
    ///   synchronized state sets `SOCK_ERROR(EFI_CONNECTION_RESET)` and
    ///   closes; SockImpl.c `SockConnFlush` completes pending tokens with
    ///   `SockError`). The sim makes it real: it aborts its socket, which
    ///   sends an RST to the peer, and the reset path then runs as for a
    ///   received RST (CLOSED, stored error, tokens flushed).
    /// - TIMEOUT for a pending Connect still in SYN_SENT: what the connect
    ///   timer does (TcpTimer.c `TcpConnectTimeout`: `SOCK_ERROR(EFI_TIMEOUT)`
    ///   then `TcpClose`), via the sim's own connect-timeout path.
    pub fn inject_completion(&mut self, only_child: Option<usize>, only_event: Option<usize>) {
        let p = self.cfg.faults.inject;
        if p <= 0.0 {
            return;
        }
        let mut cands: Vec<(usize, &'static str, Status)> = Vec::new();
        for (&id, c) in &self.sut.children {
            if only_child.is_some_and(|o| o != id) {
                continue;
            }
            let Some(h) = c.sock else { continue };
            let st = self.sut.sockets.get::<tcp::Socket>(h).state();
            let ev_ok = |e: usize| only_event.is_none_or(|o| o == e);
            if st == State::SynSent && c.connect.as_ref().is_some_and(|t| ev_ok(t.event)) {
                cands.push((id, "Connect", Status::TIMEOUT));
            }
            let live = matches!(
                st,
                State::Established | State::CloseWait | State::FinWait1 | State::FinWait2
            );
            if live && !c.close_issued {
                if c.rxs.iter().any(|t| ev_ok(t.event)) {
                    cands.push((id, "Receive", CONNECTION_RESET));
                } else if c.txs.iter().any(|t| ev_ok(t.event)) {
                    cands.push((id, "Transmit", CONNECTION_RESET));
                }
            }
        }
        if cands.is_empty() {
            return;
        }
        let each = p / cands.len() as f64;
        let probs: Vec<f64> = cands.iter().map(|_| each).collect();
        let v = self
            .decider
            .choose_weighted(DecisionKind::StatusInjection, &probs);
        if v == 0 {
            return;
        }
        let (id, call, st) = cands[v - 1];
        self.log_injection(call, st);
        if st == Status::TIMEOUT {
            self.trace(format!("child {id}: injected connect timeout"));
            let c = self.sut.children.get_mut(&id).expect("candidate");
            c.error = Some(Status::TIMEOUT);
            self.drop_socket(id);
            self.flush_tokens(id, Status::TIMEOUT, true);
        } else {
            // The reset path below classifies by the state it interrupts:
            // record the current (synchronized) one, so the error is
            // CONNECTION_RESET as for a peer RST in that state.
            let c = self.sut.children.get_mut(&id).expect("candidate");
            let h = c.sock.expect("candidate has a socket");
            c.prev = Some(self.sut.sockets.get::<tcp::Socket>(h).state());
            self.sut.sockets.get_mut::<tcp::Socket>(h).abort();
            self.sut_egress(); // the RST leaves now
            self.trace(format!("child {id}: injected reset, RST sent"));
            self.service(id);
        }
    }

    /// Re-check caller-owned parts of a pending token.
    fn verify(&mut self, p: &Pending, when: &str) {
        if p.data == 0 {
            return; // completed at submission; no data block was taken over
        }
        let now_hash = match p.kind {
            // SAFETY: pending transmit data and buffers are readable.
            Kind::Transmit => unsafe {
                let (len, frags) = tokens::tx_frags(p.data as *const Tcp4TransmitData);
                if frags.len() != p.frags.len() {
                    0
                } else {
                    tokens::tx_hash(len, &frags)
                }
            },
            Kind::Receive => {
                // SAFETY: pending receive data is readable.
                let (len, frags) = unsafe { tokens::rx_frags(p.data as *const Tcp4ReceiveData) };
                tokens::rx_hash(len, &frags)
            }
            _ => return,
        };
        if now_hash != p.check {
            self.breach(
                BreachKind::ModifiedWhileOwned,
                format!(
                    "{} token {:#x}: caller modified its data {when} while the firmware owned it",
                    p.kind.name(),
                    p.token
                ),
            );
        }
    }

    fn flush_tokens(&mut self, id: usize, st: Status, include_close: bool) {
        let Some(c) = self.sut.children.get_mut(&id) else {
            return;
        };
        let mut all: Vec<Pending> = Vec::new();
        all.extend(c.connect.take());
        all.extend(c.accepts.drain(..));
        all.extend(c.txs.drain(..));
        all.extend(c.rxs.drain(..));
        if include_close {
            all.extend(c.close.take());
        }
        c.connect_deadline = None;
        for p in all {
            self.complete(p, st);
        }
    }

    fn drop_socket(&mut self, id: usize) {
        let Some(c) = self.sut.children.get_mut(&id) else {
            return;
        };
        if let Some(h) = c.sock.take() {
            self.sut.sockets.remove(h);
        }
        if let Some(l) = c.listener.take() {
            for h in l.pool {
                let st = self.sut.sockets.get::<tcp::Socket>(h).state();
                if st == State::Listen {
                    self.sut.sockets.remove(h);
                }
                // Half-open children stay: EDK2 does not destroy them (code-read).
            }
        }
        c.linger_deadline = None;
        c.stall = None;
    }

    pub fn owned_ranges(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for c in self.sut.children.values() {
            let ps = c
                .connect
                .iter()
                .chain(&c.accepts)
                .chain(&c.txs)
                .chain(&c.rxs)
                .chain(&c.close);
            for p in ps {
                for &(a, l) in &p.ranges {
                    out.push((a, l, p.token));
                }
            }
        }
        out
    }

    pub fn pending_events(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for c in self.sut.children.values() {
            let ps = c
                .connect
                .iter()
                .chain(&c.accepts)
                .chain(&c.txs)
                .chain(&c.rxs)
                .chain(&c.close);
            out.extend(ps.map(|p| (p.event, p.token)));
        }
        out
    }

    // ---- DPC: progress every child -----------------------------------

    pub fn service_all(&mut self) {
        let ids: Vec<usize> = self.sut.children.keys().copied().collect();
        for id in ids {
            self.service(id);
        }
    }

    fn service(&mut self, id: usize) {
        if self
            .sut
            .children
            .get(&id)
            .is_some_and(|c| c.listener.is_some())
        {
            self.service_listener(id);
            return;
        }
        let now = self.now;
        let Some(c) = self.sut.children.get_mut(&id) else {
            return;
        };
        // A connect that can never send its SYN (graceful close earlier).
        if c.sock.is_none() {
            if c.connect.is_some() && c.connect_deadline.is_some_and(|d| d <= now) {
                c.connect_deadline = None;
                let p = c.connect.take().expect("checked");
                c.error = Some(Status::TIMEOUT);
                self.complete(p, Status::TIMEOUT);
            }
            return;
        }
        let h = c.sock.expect("checked");
        let st = self.sut.sockets.get::<tcp::Socket>(h).state();
        let prev = c.prev.replace(st);
        // Connect completion / timeout.
        if c.connect.is_some() {
            if synchronized(st) {
                c.connect_deadline = None;
                let p = c.connect.take().expect("checked");
                self.complete(p, Status::SUCCESS);
            } else if st == State::SynSent && c.connect_deadline.is_some_and(|d| d <= now) {
                c.error = Some(Status::TIMEOUT);
                self.drop_socket(id);
                self.flush_tokens(id, Status::TIMEOUT, true);
                return;
            }
        }
        let c = self.sut.children.get_mut(&id).expect("exists");
        // Reset detection: Closed without passing through LAST_ACK/TIME_WAIT.
        if st == State::Closed && !c.reset_seen {
            let was = prev.unwrap_or(State::Closed);
            let reset = !matches!(was, State::Closed | State::LastAck | State::TimeWait);
            if reset {
                c.reset_seen = true;
                let err = match was {
                    State::SynSent if !self.cfg.quirks.connect_closed_port_reports_reset => {
                        CONNECTION_REFUSED
                    }
                    State::SynReceived => CONNECTION_REFUSED,
                    _ => CONNECTION_RESET,
                };
                c.error = Some(err);
                self.trace(format!("child {id}: reset in {was:?}"));
                // SockConnClosed: the Close token (if any) gets SUCCESS, the
                // others the socket error (SockConnFlush).
                if let Some(p) = self.sut.children.get_mut(&id).and_then(|c| c.close.take()) {
                    self.complete(p, Status::SUCCESS);
                }
                self.flush_tokens(id, err, true);
                self.drop_socket(id);
                return;
            }
        }
        if matches!(
            st,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        ) {
            c.fin_in = true;
        }
        // Transmit: copy into the send buffer (segmentation), in order.
        while let Some(front) = self
            .sut
            .children
            .get(&id)
            .and_then(|c| c.txs.front().cloned())
        {
            let sock = self.sut.sockets.get::<tcp::Socket>(h);
            if !sock.may_send() {
                break;
            }
            let want = front.len - front.offset;
            let room = sock.send_capacity() - sock.send_queue();
            let k = want.min(room);
            if k == 0 {
                break;
            }
            // The firmware reads the caller's data now: it must be unchanged.
            self.verify(&front, "before segmentation");
            // SAFETY: pending transmit buffers are readable (trait contract).
            let bytes = unsafe { tokens::gather(&front.frags, front.offset, k) };
            let sock = self.sut.sockets.get_mut::<tcp::Socket>(h);
            let n = sock.send_slice(&bytes).unwrap_or(0);
            self.now += (n as u64 * self.cfg.cost.per_byte_copy_ps) / 1000;
            let c = self.sut.children.get_mut(&id).expect("exists");
            let f = c.txs.front_mut().expect("front");
            f.offset += n;
            if f.offset >= f.len {
                let p = c.txs.pop_front().expect("front");
                self.complete(p, Status::SUCCESS);
            } else if n < k || n == 0 {
                break;
            }
        }
        // Receive: per-segment completions with min(available, DataLength).
        while let Some(front) = self
            .sut
            .children
            .get(&id)
            .and_then(|c| c.rxs.front().cloned())
        {
            let sock = self.sut.sockets.get_mut::<tcp::Socket>(h);
            let avail = sock.recv_queue();
            if avail == 0 {
                break;
            }
            let k = avail.min(front.len);
            // SAFETY: pending receive buffers are readable.
            if !unsafe { tokens::canary_intact(&front.frags, k) } {
                self.breach(
                    BreachKind::ModifiedWhileOwned,
                    format!("receive token {:#x}: caller wrote into its receive buffer while the firmware owned it", front.token),
                );
            }
            let mut buf = vec![0u8; k];
            let n = self
                .sut
                .sockets
                .get_mut::<tcp::Socket>(h)
                .recv_slice(&mut buf)
                .unwrap_or(0);
            buf.truncate(n);
            self.now += (n as u64 * self.cfg.cost.per_byte_copy_ps) / 1000;
            let c = self.sut.children.get_mut(&id).expect("exists");
            let p = c.rxs.pop_front().expect("front");
            self.verify(&p, "before delivery");
            // SAFETY: pending receive data, table and buffers are writable.
            unsafe { tokens::scatter(p.data as *mut Tcp4ReceiveData, &p.frags, &buf) };
            // The scatter rewrote lengths; the caller's view is now final.
            let mut p = p;
            p.kind = Kind::Receive;
            self.finish_rx(p);
        }
        let c = self.sut.children.get_mut(&id).expect("exists");
        let queued = self.sut.sockets.get::<tcp::Socket>(h).recv_queue();
        if c.fin_in && queued == 0 && !c.rxs.is_empty() {
            let ps: Vec<Pending> = c.rxs.drain(..).collect();
            for p in ps {
                self.complete(p, CONNECTION_FIN);
            }
        }
        // Retransmission give-up (DataRetries): no ACK progress for the
        // whole back-off schedule closes the connection with TIMEOUT.
        let sock = self.sut.sockets.get::<tcp::Socket>(h);
        let fin_out = matches!(st, State::FinWait1 | State::Closing | State::LastAck);
        let outstanding = sock.send_queue() + usize::from(fin_out);
        let c = self.sut.children.get_mut(&id).expect("exists");
        c.stall = match c.stall {
            _ if outstanding == 0 || !synchronized(st) => None,
            Some((n, since)) if n == outstanding => Some((n, since)),
            _ => Some((outstanding, now)),
        };
        let retries = c.cfg.expect("configured").opts.data_retries;
        if c.stall
            .is_some_and(|(_, since)| now >= since + retransmit_budget_ns(retries))
        {
            c.error = Some(Status::TIMEOUT);
            self.trace(format!("child {id}: retransmissions exhausted"));
            self.drop_socket(id);
            self.flush_tokens(id, Status::TIMEOUT, true);
            return;
        }
        // Data after the local Close: EDK2 resets (or, quirk off, discards).
        let c = self.sut.children.get_mut(&id).expect("exists");
        let locally_closed = matches!(
            st,
            State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait | State::LastAck
        );
        if c.close_issued && locally_closed {
            let sock = self.sut.sockets.get_mut::<tcp::Socket>(h);
            if sock.recv_queue() > 0 {
                if self.cfg.quirks.data_after_close_sends_rst {
                    sock.abort();
                    self.sut_egress();
                    self.trace(format!("child {id}: data after Close, RST"));
                    self.drop_socket(id);
                    self.flush_tokens(id, Status::ABORTED, false);
                    if let Some(p) = self.sut.children.get_mut(&id).and_then(|c| c.close.take()) {
                        self.complete(p, Status::SUCCESS);
                    }
                    return;
                }
                let n = sock.recv_queue();
                let mut sink = vec![0u8; n];
                let _ = sock.recv_slice(&mut sink);
            }
        }
        // Close: FIN after queued transmits, complete when CLOSED.
        let c = self.sut.children.get_mut(&id).expect("exists");
        if c.close.is_some() {
            if !c.close_issued && c.txs.is_empty() {
                c.close_issued = true;
                self.sut.sockets.get_mut::<tcp::Socket>(h).close();
            }
            let c = self.sut.children.get_mut(&id).expect("exists");
            let cfg = c.cfg.expect("configured");
            match st {
                State::Closed => {
                    c.graceful_done = true;
                    self.drop_socket(id);
                    self.flush_tokens(id, Status::ABORTED, false);
                    if let Some(p) = self.sut.children.get_mut(&id).and_then(|c| c.close.take()) {
                        self.complete(p, Status::SUCCESS);
                    }
                }
                State::TimeWait | State::FinWait2 if c.linger_deadline.is_none() => {
                    let secs = if st == State::TimeWait {
                        cfg.opts.tw_timeout_s
                    } else {
                        cfg.opts.fin_timeout_s
                    };
                    let until = now + u64::from(secs) * SEC;
                    c.linger_deadline = Some(until);
                    if st == State::TimeWait && self.cfg.quirks.time_wait_holds_port {
                        self.sut.port_holds.insert(cfg.port, until);
                    }
                }
                State::FinWait2 | State::TimeWait
                    if c.linger_deadline.is_some_and(|d| d <= now) =>
                {
                    c.graceful_done = true;
                    self.drop_socket(id);
                    self.flush_tokens(id, Status::ABORTED, false);
                    if let Some(p) = self.sut.children.get_mut(&id).and_then(|c| c.close.take()) {
                        self.complete(p, Status::SUCCESS);
                    }
                }
                _ => {}
            }
        }
    }

    fn finish_rx(&mut self, p: Pending) {
        // Lengths were legitimately rewritten by the firmware: no re-verify.
        // SAFETY: pending token, see `complete`.
        unsafe { tokens::set_status(p.token as *mut Tcp4CompletionToken, Status::SUCCESS) };
        self.trace(format!("complete receive event {:#x} SUCCESS", p.event));
        self.signal_completion(p.event);
    }

    fn service_listener(&mut self, id: usize) {
        let cfg = self.sut.children[&id].cfg.expect("listener configured");
        let pool: Vec<SocketHandle> = self.sut.children[&id]
            .listener
            .as_ref()
            .expect("listener")
            .pool
            .clone();
        let mut keep = Vec::new();
        let mut newly = Vec::new();
        for h in pool {
            match self.sut.sockets.get::<tcp::Socket>(h).state() {
                State::Listen | State::SynReceived => keep.push(h),
                State::Closed => {
                    self.sut.sockets.remove(h);
                }
                _ => newly.push(h),
            }
        }
        for h in newly {
            let cid = self.sut.next_child;
            self.sut.next_child += 1;
            let sock = self.sut.sockets.get::<tcp::Socket>(h);
            let st = sock.state();
            // EDK2 clones the listener's TCB and then records both endpoints
            // of the new connection, which GetModeData reports.
            let (mut station, mut remote, mut remote_port) = (cfg.station, cfg.remote, 0);
            if let Some(IpEndpoint {
                addr: IpAddress::Ipv4(a),
                port,
            }) = sock.remote_endpoint()
            {
                remote = a;
                remote_port = port;
            }
            if let Some(IpEndpoint {
                addr: IpAddress::Ipv4(a),
                ..
            }) = sock.local_endpoint()
            {
                station = a;
            }
            let child = Child {
                cfg: Some(ChildCfg {
                    active: false,
                    station,
                    remote,
                    remote_port,
                    ..cfg
                }),
                sock: Some(h),
                passive: true,
                prev: Some(st),
                ..Child::default()
            };
            self.sut.children.insert(cid, child);
            self.trace(format!("listener {id}: child {cid} established"));
            self.sut
                .children
                .get_mut(&id)
                .expect("listener")
                .listener
                .as_mut()
                .expect("l")
                .ready
                .push_back(cid);
        }
        // A never-accepted child that closed dies (SockConnClosed →
        // SockDestroyChild while Parent is set).
        let ready: Vec<usize> = self.sut.children[&id]
            .listener
            .as_ref()
            .expect("l")
            .ready
            .iter()
            .copied()
            .collect();
        for cid in ready {
            let dead = match self.sut.children.get(&cid).and_then(|c| c.sock) {
                None => true,
                Some(h) => self.sut.sockets.get::<tcp::Socket>(h).state() == State::Closed,
            };
            if dead {
                if let Some(c) = self.sut.children.remove(&cid) {
                    if let Some(h) = c.sock {
                        self.sut.sockets.remove(h);
                    }
                }
                let l = self
                    .sut
                    .children
                    .get_mut(&id)
                    .expect("l")
                    .listener
                    .as_mut()
                    .expect("l");
                l.ready.retain(|&r| r != cid);
                self.trace(format!(
                    "listener {id}: unaccepted child {cid} closed and destroyed"
                ));
            }
        }
        // Hand established children to Accept tokens, FIFO.
        loop {
            let c = self.sut.children.get_mut(&id).expect("listener");
            let l = c.listener.as_mut().expect("listener");
            if c.accepts.is_empty() || l.ready.is_empty() {
                break;
            }
            let cid = l.ready.pop_front().expect("ready");
            let p = c.accepts.pop_front().expect("accept");
            let handle = Sut::child_handle(cid);
            // SAFETY: pending listen token is writable (trait contract).
            unsafe { (*(p.token as *mut Tcp4ListenToken)).new_child_handle = handle as _ };
            self.sut.children.get_mut(&cid).expect("child").visible = true;
            self.complete(p, Status::SUCCESS);
        }
        // Keep one listening socket while the backlog has room.
        let c = self.sut.children.get_mut(&id).expect("listener");
        let l = c.listener.as_mut().expect("listener");
        let has_listen = keep
            .iter()
            .any(|&h| self.sut.sockets.get::<tcp::Socket>(h).state() == State::Listen);
        let used = keep.len() + l.ready.len() - usize::from(has_listen);
        if !has_listen && used < cfg.opts.backlog {
            let h = Self::new_listen_socket(&mut self.sut.sockets, &cfg);
            keep.push(h);
        }
        self.sut
            .children
            .get_mut(&id)
            .expect("l")
            .listener
            .as_mut()
            .expect("l")
            .pool = keep;
    }

    fn new_socket(cfg: &ChildCfg) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; cfg.opts.rcv_buf as usize]),
            tcp::SocketBuffer::new(vec![0; cfg.opts.snd_buf as usize]),
        );
        s.set_nagle_enabled(cfg.opts.nagle);
        // EDK2 implements slow start / congestion avoidance (TcpOutput.c).
        s.set_congestion_control(tcp::CongestionControl::Reno);
        s.set_hop_limit(Some(255));
        s
    }

    fn new_listen_socket(set: &mut SocketSet<'static>, cfg: &ChildCfg) -> SocketHandle {
        let mut s = Self::new_socket(cfg);
        let addr = (!cfg.station.is_unspecified()).then_some(IpAddress::Ipv4(cfg.station));
        // Port is non-zero (bound at Configure), so listen cannot fail.
        let _ = s.listen(IpListenEndpoint {
            addr,
            port: cfg.port,
        });
        set.add(s)
    }

    // ---- the Tcp4 functions (argument checks and lock done by the caller) --

    pub fn create_child(&mut self) -> usize {
        let id = self.sut.next_child;
        self.sut.next_child += 1;
        self.sut.children.insert(
            id,
            Child {
                visible: true,
                ..Child::default()
            },
        );
        Sut::child_handle(id)
    }

    pub fn destroy_child(&mut self, id: usize) -> Status {
        let Some(c) = self.sut.children.get_mut(&id) else {
            return Status::INVALID_PARAMETER;
        };
        if c.busy {
            return Status::ACCESS_DENIED;
        }
        if let Some(h) = c.sock {
            let s = self.sut.sockets.get_mut::<tcp::Socket>(h);
            if synchronized(s.state()) {
                s.abort();
                self.sut_egress();
            }
        }
        self.flush_tokens(id, Status::ABORTED, true);
        self.drop_socket(id);
        self.sut.children.remove(&id);
        Status::SUCCESS
    }

    fn port_in_use(&self, port: u16) -> bool {
        if self
            .sut
            .port_holds
            .get(&port)
            .is_some_and(|&t| t > self.now)
        {
            return true;
        }
        self.sut.children.values().any(|c| {
            c.cfg.is_some_and(|cfg| cfg.port == port)
                && (c.listener.is_some() || c.sock.is_some() || !c.passive)
        })
    }

    fn ephemeral_port(&mut self) -> Option<u16> {
        for _ in 0..65536 {
            let p = self.sut.next_ephemeral;
            self.sut.next_ephemeral = if p == u16::MAX { 1025 } else { p + 1 };
            if !self.port_in_use(p) {
                return Some(p);
            }
        }
        None
    }

    /// # Safety
    /// `cfg` is null or valid for reads including its control option.
    pub unsafe fn configure(&mut self, id: usize, cfg: *const Tcp4ConfigData) -> Status {
        if cfg.is_null() {
            let c = self.sut.children.get_mut(&id).expect("caller checked");
            if c.cfg.is_none() {
                return Status::ACCESS_DENIED;
            }
            // The brutal reset: abort everything inside the call, no FIN/RST.
            self.flush_tokens(id, Status::ABORTED, true);
            self.drop_socket(id);
            let c = self.sut.children.get_mut(&id).expect("exists");
            *c = Child {
                visible: c.visible,
                passive: c.passive,
                busy: c.busy,
                ..Child::default()
            };
            return Status::SUCCESS;
        }
        // SAFETY: non-null config is valid for reads (trait contract).
        let d = unsafe { &*cfg };
        let o = d.control_option;
        if !o.is_null() {
            // SAFETY: non-null option pointer is valid for reads.
            let ov = unsafe { &*o };
            if bool::from(ov.enable_selective_ack) || bool::from(ov.enable_path_mtu_discovery) {
                return Status::UNSUPPORTED;
            }
        }
        let ap = &d.access_point;
        let (station, mask, remote) = (
            ip(ap.station_address),
            ip(ap.subnet_mask),
            ip(ap.remote_address),
        );
        let active = bool::from(ap.active_flag);
        let use_default = bool::from(ap.use_default_address);
        if remote.is_broadcast()
            || (active && (ap.remote_port == 0 || remote.is_unspecified()))
            || (!use_default && (station.is_broadcast() || !mask_ok(mask)))
        {
            return Status::INVALID_PARAMETER;
        }
        if self.sut.children[&id].cfg.is_some() {
            return Status::ACCESS_DENIED;
        }
        let q = self.cfg.quirks;
        let (station, mask) = if use_default {
            if q.use_default_address_already_started {
                return Status::ALREADY_STARTED;
            }
            match self.ip4.address {
                Some(a) => a,
                None => return Status::NO_MAPPING,
            }
        } else {
            if station.is_unspecified() && !active && q.listen_any_unsupported {
                return Status::INVALID_PARAMETER;
            }
            match self.ip4.address {
                None => return Status::NO_MAPPING,
                Some((a, _)) if !station.is_unspecified() && a != station => {
                    return Status::INVALID_PARAMETER;
                }
                Some(_) => (station, mask),
            }
        };
        // Injected: while the DHCP client runs, the IP4 child below may be
        // unmapped (lease being renewed); TcpDispatcher.c `TcpConfigurePcb`
        // passes on IP4's EFI_NO_MAPPING (Ip4Dxe/Ip4Impl.c `EfiIp4Configure`)
        // and the instance stays unconfigured, to be configured again later.
        if self.ip4.dhcp_policy {
            if let Some(st) = self.inject("Configure", &[Status::NO_MAPPING]) {
                return st;
            }
        }
        let port = if ap.station_port != 0 {
            if self.port_in_use(ap.station_port) {
                return Status::INVALID_PARAMETER;
            }
            ap.station_port
        } else {
            match self.ephemeral_port() {
                Some(p) => p,
                None => return Status::OUT_OF_RESOURCES,
            }
        };
        // SAFETY: option pointer is null or valid (trait contract).
        let opts = unsafe { read_opts(o) };
        let ccfg = ChildCfg {
            station,
            mask,
            port,
            remote,
            remote_port: ap.remote_port,
            active,
            use_default,
            tos: d.type_of_service,
            ttl: d.time_to_live,
            opts,
        };
        let c = self.sut.children.get_mut(&id).expect("exists");
        c.cfg = Some(ccfg);
        if !active {
            let h = Self::new_listen_socket(&mut self.sut.sockets, &ccfg);
            let c = self.sut.children.get_mut(&id).expect("exists");
            c.listener = Some(ListenerState {
                pool: vec![h],
                ready: VecDeque::new(),
            });
        }
        self.trace(format!(
            "child {id}: configured {station}:{port} active={active}"
        ));
        Status::SUCCESS
    }

    /// Common token admission: the event must not belong to a pending token
    /// of this instance; the same token pointer pending anywhere is a breach.
    fn admit_token(&mut self, id: usize, token: usize, event: usize) -> Result<(), Status> {
        if self.pending_events().iter().any(|&(_, t)| t == token) {
            self.breach(
                BreachKind::TokenReusedWhilePending,
                format!("token {token:#x} submitted again while still pending"),
            );
            return Err(Status::ACCESS_DENIED);
        }
        let c = &self.sut.children[&id];
        let dup = c
            .connect
            .iter()
            .chain(&c.accepts)
            .chain(&c.txs)
            .chain(&c.rxs)
            .chain(&c.close)
            .any(|p| p.event == event);
        if dup {
            self.breach(
                BreachKind::EventReusedWhilePending,
                format!("token {token:#x} uses event {event:#x}, which belongs to a pending token of this instance"),
            );
            return Err(Status::ACCESS_DENIED);
        }
        if !self.events.contains_key(&event) {
            return Err(Status::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// The contract: firmware-referenced memory comes from the pool.
    fn check_pool(&mut self, p: &Pending) {
        if let Some(&(a, l)) = p.ranges.iter().find(|&&(a, l)| !self.pool.contains(a, l)) {
            self.breach(
                BreachKind::NotPoolMemory,
                format!(
                    "{} token {:#x}: {l} bytes at {a:#x} handed to the firmware are not pool memory",
                    p.kind.name(),
                    p.token
                ),
            );
        }
    }

    fn simple_pending(kind: Kind, token: usize, event: usize, size: usize) -> Pending {
        Pending {
            token,
            event,
            kind,
            check: 0,
            ranges: vec![(token, size)],
            frags: vec![],
            data: 0,
            len: 0,
            offset: 0,
        }
    }

    pub fn state_of(&self, id: usize) -> Option<State> {
        let c = &self.sut.children[&id];
        c.sock
            .map(|h| self.sut.sockets.get::<tcp::Socket>(h).state())
    }

    /// # Safety
    /// `token` non-null and valid for reads/writes.
    pub unsafe fn connect(&mut self, id: usize, token: *mut Tcp4ConnectionToken) -> Status {
        let c = &self.sut.children[&id];
        let Some(cfg) = c.cfg else {
            return Status::NOT_STARTED;
        };
        if !cfg.active || c.passive || c.sock.is_some() || c.connect.is_some() {
            return Status::ACCESS_DENIED;
        }
        let graceful_done = c.graceful_done;
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(id, token as usize, event) {
            return s;
        }
        let p = Self::simple_pending(
            Kind::Connect,
            token as usize,
            event,
            size_of::<Tcp4ConnectionToken>(),
        );
        self.check_pool(&p);
        let deadline = self.now + u64::from(cfg.opts.conn_timeout_s) * SEC;
        let c = self.sut.children.get_mut(&id).expect("exists");
        c.connect = Some(p);
        c.connect_deadline = Some(deadline);
        c.reset_seen = false;
        c.fin_in = false;
        if !self.cfg.quirks.stored_error_leaks_into_next_connection {
            c.error = None;
        }
        if graceful_done {
            // EDK2 never clears the FIN control flags: no SYN goes out (code-read).
            self.trace(format!(
                "child {id}: connect after graceful close sends no SYN"
            ));
            return Status::SUCCESS;
        }
        let mut s = Self::new_socket(&cfg);
        let ep = IpEndpoint::new(IpAddress::Ipv4(cfg.remote), cfg.remote_port);
        let local = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(cfg.station)),
            port: cfg.port,
        };
        if s.connect(self.sut.iface.context(), ep, local).is_err() {
            let c = self.sut.children.get_mut(&id).expect("exists");
            c.connect = None;
            c.connect_deadline = None;
            return Status::INVALID_PARAMETER;
        }
        let h = self.sut.sockets.add(s);
        let c = self.sut.children.get_mut(&id).expect("exists");
        c.sock = Some(h);
        c.prev = Some(State::SynSent);
        self.sut_egress(); // SYN inside the call
        Status::SUCCESS
    }

    /// # Safety
    /// `token` non-null and valid.
    pub unsafe fn accept(&mut self, id: usize, token: *mut Tcp4ListenToken) -> Status {
        let c = &self.sut.children[&id];
        if c.cfg.is_none() {
            return Status::NOT_STARTED;
        }
        if c.listener.is_none() {
            return Status::ACCESS_DENIED;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(id, token as usize, event) {
            return s;
        }
        // Injected: no established child to hand over, so EDK2 buffers the
        // token and that allocation fails (SockInterface.c `SockAccept`:
        // `SockBufferToken` == NULL → EFI_OUT_OF_RESOURCES, nothing else).
        if self.sut.children[&id]
            .listener
            .as_ref()
            .is_some_and(|l| l.ready.is_empty())
        {
            if let Some(st) = self.inject("Accept", &[Status::OUT_OF_RESOURCES]) {
                return st;
            }
        }
        let p = Self::simple_pending(
            Kind::Accept,
            token as usize,
            event,
            size_of::<Tcp4ListenToken>(),
        );
        self.check_pool(&p);
        self.sut
            .children
            .get_mut(&id)
            .expect("exists")
            .accepts
            .push_back(p);
        self.service_listener(id);
        Status::SUCCESS
    }

    fn io_state_ok(&self, id: usize, for_rx: bool) -> Result<(), Status> {
        let c = &self.sut.children[&id];
        if c.cfg.is_none() {
            return Err(Status::NOT_STARTED);
        }
        if c.listener.is_some() || c.close.is_some() || c.close_issued {
            return Err(Status::ACCESS_DENIED);
        }
        match self.state_of(id) {
            // SockRcv/SockSend: a closed socket (also after RST) is ACCESS_DENIED.
            None | Some(State::Closed) => Err(Status::ACCESS_DENIED),
            Some(State::SynSent | State::SynReceived | State::Established | State::CloseWait) => {
                Ok(())
            }
            Some(State::LastAck | State::Closing | State::TimeWait) if for_rx => Ok(()),
            Some(_) => Err(Status::ACCESS_DENIED),
        }
    }

    /// # Safety
    /// `token` non-null and valid, with valid transmit data.
    pub unsafe fn transmit(&mut self, id: usize, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: caller-vouched token with a packet pointer.
        let tx = unsafe { (*token).packet.tx_data };
        if tx.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: non-null transmit data, valid by contract.
        let (len, frags) = unsafe { tokens::tx_frags(tx) };
        if !fragments_valid(len, &frags) {
            return Status::INVALID_PARAMETER;
        }
        if let Err(s) = self.io_state_ok(id, false) {
            return s;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(id, token as usize, event) {
            return s;
        }
        // Injected: SockInterface.c `SockSend` buffers every token (either
        // list); `SockBufferToken` == NULL → EFI_OUT_OF_RESOURCES, nothing sent.
        if let Some(st) = self.inject("Transmit", &[Status::OUT_OF_RESOURCES]) {
            return st;
        }
        let mut ranges = vec![(token as usize, size_of::<Tcp4IoToken>())];
        ranges.push((
            tx as usize,
            tokens::block_size(size_of::<Tcp4TransmitData>(), frags.len()),
        ));
        ranges.extend(frags.iter().copied().filter(|f| f.1 > 0));
        // SAFETY: the fragments are readable (contract).
        let check = unsafe { tokens::tx_hash(len, &frags) };
        let p = Pending {
            token: token as usize,
            event,
            kind: Kind::Transmit,
            check,
            ranges,
            frags,
            data: tx as usize,
            len: len as usize,
            offset: 0,
        };
        self.check_pool(&p);
        self.sut
            .children
            .get_mut(&id)
            .expect("exists")
            .txs
            .push_back(p);
        self.service(id);
        self.sut_egress();
        Status::SUCCESS
    }

    /// # Safety
    /// `token` non-null and valid, with valid receive data.
    pub unsafe fn receive(&mut self, id: usize, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: caller-vouched token.
        let rx = unsafe { (*token).packet.rx_data };
        if rx.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: non-null receive data, valid by contract.
        let (len, frags) = unsafe { tokens::rx_frags(rx) };
        if !fragments_valid(len, &frags) {
            return Status::INVALID_PARAMETER;
        }
        if let Err(s) = self.io_state_ok(id, true) {
            return s;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(id, token as usize, event) {
            return s;
        }
        // SockRcv: a stored socket error is delivered through this token,
        // inside the call, and then cleared.
        if let Some(err) = self.sut.children.get_mut(&id).and_then(|c| c.error.take()) {
            let p = Self::simple_pending(
                Kind::Receive,
                token as usize,
                event,
                size_of::<Tcp4IoToken>(),
            );
            self.complete(p, err);
            return Status::SUCCESS;
        }
        let c = &self.sut.children[&id];
        let buffered = c
            .sock
            .map_or(0, |h| self.sut.sockets.get::<tcp::Socket>(h).recv_queue());
        let fin = c.fin_in
            || self.state_of(id).is_some_and(|s| {
                matches!(
                    s,
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                )
            });
        if fin && buffered == 0 && c.rxs.is_empty() && self.cfg.quirks.receive_fin_as_return_value {
            return CONNECTION_FIN;
        }
        // Injected: nothing buffered, so SockInterface.c `SockRcv` buffers
        // the token and that allocation fails (`SockBufferToken` == NULL →
        // EFI_OUT_OF_RESOURCES, nothing else happens).
        if buffered == 0 {
            if let Some(st) = self.inject("Receive", &[Status::OUT_OF_RESOURCES]) {
                return st;
            }
        }
        let mut ranges = vec![(token as usize, size_of::<Tcp4IoToken>())];
        ranges.push((
            rx as usize,
            tokens::block_size(size_of::<Tcp4ReceiveData>(), frags.len()),
        ));
        ranges.extend(frags.iter().copied().filter(|f| f.1 > 0));
        // SAFETY: receive buffers are writable by contract.
        unsafe { tokens::fill_canary(&frags) };
        let check = tokens::rx_hash(len, &frags);
        let p = Pending {
            token: token as usize,
            event,
            kind: Kind::Receive,
            check,
            ranges,
            frags,
            data: rx as usize,
            len: len as usize,
            offset: 0,
        };
        self.check_pool(&p);
        self.sut
            .children
            .get_mut(&id)
            .expect("exists")
            .rxs
            .push_back(p);
        self.service(id);
        Status::SUCCESS
    }

    /// # Safety
    /// `token` non-null and valid.
    pub unsafe fn close(&mut self, id: usize, token: *mut Tcp4CloseToken) -> Status {
        let c = &self.sut.children[&id];
        if c.cfg.is_none() {
            return Status::NOT_STARTED;
        }
        if c.close.is_some() {
            return Status::ACCESS_DENIED;
        }
        let sock = c.sock;
        // SAFETY: caller-vouched token.
        let (event, abort) = unsafe {
            (
                tokens::event_of(token as *const Tcp4CompletionToken),
                bool::from((*token).abort_on_close),
            )
        };
        if let Err(s) = self.admit_token(id, token as usize, event) {
            return s;
        }
        let p = Self::simple_pending(
            Kind::Close,
            token as usize,
            event,
            size_of::<Tcp4CloseToken>(),
        );
        self.check_pool(&p);
        let st = self.state_of(id);
        let is_listener = self.sut.children[&id].listener.is_some();
        let unread = sock.is_some_and(|h| self.sut.sockets.get::<tcp::Socket>(h).recv_queue() > 0);
        let rst = abort || (unread && self.cfg.quirks.close_with_unread_data_sends_rst);
        if is_listener || matches!(st, None | Some(State::Closed | State::SynSent)) || rst {
            if rst && st.is_some_and(synchronized) {
                let h = self.sut.children[&id].sock.expect("state implies socket");
                self.sut.sockets.get_mut::<tcp::Socket>(h).abort();
                self.sut_egress(); // RST inside the call
                self.trace(format!("child {id}: close sends RST"));
            }
            self.flush_tokens(id, Status::ABORTED, false);
            self.drop_socket(id);
            self.complete(p, Status::SUCCESS);
            return Status::SUCCESS;
        }
        self.sut.children.get_mut(&id).expect("exists").close = Some(p);
        self.service(id);
        self.sut_egress();
        Status::SUCCESS
    }

    /// # Safety
    /// `token` null or a token pointer.
    pub unsafe fn cancel(&mut self, id: usize, token: *mut Tcp4CompletionToken) -> Status {
        if self.cfg.quirks.cancel_unsupported {
            return Status::UNSUPPORTED;
        }
        let c = self.sut.children.get_mut(&id).expect("caller checked");
        if c.cfg.is_none() {
            return Status::NOT_STARTED;
        }
        let t = token as usize;
        let mut found: Vec<Pending> = Vec::new();
        if c.connect
            .as_ref()
            .is_some_and(|p| token.is_null() || p.token == t)
        {
            found.extend(c.connect.take());
            c.connect_deadline = None;
        }
        for q in [&mut c.accepts, &mut c.txs, &mut c.rxs] {
            let (hit, keep): (Vec<Pending>, Vec<Pending>) =
                q.drain(..).partition(|p| token.is_null() || p.token == t);
            q.extend(keep);
            found.extend(hit);
        }
        if found.is_empty() {
            return if token.is_null() {
                Status::SUCCESS
            } else {
                Status::NOT_FOUND
            };
        }
        for p in found {
            if p.kind == Kind::Connect {
                self.breach(BreachKind::FirmwareWouldCrash, format!("Cancel of connect token {:#x}: EDK2 keeps the handshake running and later dereferences the freed token (code-read)", p.token));
            }
            if p.kind == Kind::Transmit && p.offset > 0 {
                self.breach(BreachKind::FirmwareWouldCrash, format!("Cancel of partly sent transmit token {:#x}: EDK2 ASSERTs (edk2 issue #9837)", p.token));
            }
            self.complete(p, Status::ABORTED);
        }
        Status::SUCCESS
    }

    /// # Safety
    /// Non-null pointers valid for writes.
    pub unsafe fn get_mode_data(
        &mut self,
        id: usize,
        state: *mut Tcp4ConnectionState,
        config: *mut Tcp4ConfigData,
        ip4: *mut efisock::firmware::Ip4ModeData,
    ) -> Status {
        let c = &self.sut.children[&id];
        let cfg = c.cfg;
        if cfg.is_none() && !config.is_null() {
            return Status::NOT_STARTED;
        }
        let st = if c.listener.is_some() {
            Tcp4ConnectionState::LISTEN
        } else {
            self.state_of(id)
                .map_or(Tcp4ConnectionState::CLOSED, edk2_state)
        };
        // SAFETY: non-null output pointers are writable (trait contract).
        unsafe {
            if !state.is_null() {
                *state = st;
            }
            if let (Some(cfg), false) = (cfg, config.is_null()) {
                let d = &mut *config;
                d.type_of_service = cfg.tos;
                d.time_to_live = cfg.ttl;
                let ap = &mut d.access_point;
                ap.use_default_address = cfg.use_default.into();
                ap.station_address = efisock::firmware::Ipv4Address(cfg.station.octets());
                ap.subnet_mask = efisock::firmware::Ipv4Address(cfg.mask.octets());
                ap.station_port = cfg.port;
                ap.remote_address = efisock::firmware::Ipv4Address(cfg.remote.octets());
                ap.remote_port = cfg.remote_port;
                ap.active_flag = (st != Tcp4ConnectionState::LISTEN).into();
                if !d.control_option.is_null() {
                    let o = &mut *d.control_option;
                    o.receive_buffer_size = cfg.opts.rcv_buf;
                    o.send_buffer_size = cfg.opts.snd_buf;
                    o.max_syn_back_log = cfg.opts.backlog as u32;
                    o.connection_timeout = cfg.opts.conn_timeout_s;
                    o.fin_timeout = cfg.opts.fin_timeout_s;
                    o.time_wait_timeout = cfg.opts.tw_timeout_s;
                    o.enable_nagle = cfg.opts.nagle.into();
                }
            }
            if !ip4.is_null() {
                // Zeroed: the simulator models no IP4 child state beyond TCP's.
                core::ptr::write_bytes(ip4, 0, 1);
            }
        }
        Status::SUCCESS
    }
}

/// EDK2's fragment-table checks for Transmit and Receive: a non-zero
/// DataLength equal to the sum of the fragment lengths, at least one
/// fragment, and no null buffer behind a non-empty fragment.
fn fragments_valid(len: u32, frags: &[(usize, usize)]) -> bool {
    let sum: usize = frags.iter().map(|f| f.1).sum();
    len != 0
        && !frags.is_empty()
        && sum == len as usize
        && !frags.iter().any(|f| f.0 == 0 && f.1 > 0)
}
