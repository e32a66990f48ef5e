//! Peer hosts: a smoltcp stack per host that behaves like a host kernel
//! (processes frames on arrival, unlimited accept backlog) and runs sans-IO
//! applications through [`ConnHandler`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};

use crate::demux::syn_owner_state;
use crate::device::QueueDevice;
use crate::host_wire::{WireLog, WireSeen};

/// Buffer size of each peer connection, each direction.
pub const PEER_BUFFER: usize = 256 * 1024;
/// Listening sockets kept ready per listening port (emulates a deep backlog).
const SPARE_LISTENERS: usize = 4;
/// A peer's active open gives up after this long (like Linux's ~2 min, shorter).
const PEER_CONNECT_TIMEOUT_NS: u64 = 75_000_000_000;

/// The longest retransmission timeout of any simulated stack (the system
/// under test's and the peer hosts', all smoltcp): `RTTE_MAX_RTO`, the cap
/// RFC 6298 (2.5) allows on the doubling of (5.5). A segment lost before
/// faults heal is retransmitted at most this long after its last
/// transmission, so a wait for a healed network to deliver must last longer.
///
/// The back-off also carries over from the handshake: retransmitted SYNs or
/// SYN-ACKs yield no RTT sample (Karn), and smoltcp does not re-initialise
/// the RTO when data transmission begins (RFC 6298 (5.7) asks for 3 s), so
/// a SYN-ACK retransmitted four times (RTO 1, 2, 4, 8 s) leaves the first
/// data segment with a 16 s RTO. EDK2 keeps a backed-off RTO as well
/// (`TcpBackoffRto`; from its initial 3 s the same handshake gives 48 s).
pub const MAX_RTO_NS: u64 = 60_000_000_000;

/// Connection state as an application on a peer host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerConnState {
    /// Handshake in progress.
    Connecting,
    /// Open both ways.
    Established,
    /// The other side sent FIN; data may still be buffered.
    PeerFin,
    /// Closed gracefully (or closed locally).
    Closed,
    /// Reset by the other side (RST).
    Reset,
    /// The handshake never completed.
    TimedOut,
}

/// A sans-IO application on one connection of a peer host.
///
/// Handlers run inside the simulator's scheduler: they must act only through
/// their [`ConnIo`] and must not call back into `Sim` (doing so panics with a
/// RefCell borrow error, which is a test-harness bug, not a firmware one).
pub trait ConnHandler {
    /// Called whenever anything may have changed, and at requested wake times.
    fn poll(&mut self, io: &mut dyn ConnIo);
}

/// What a [`ConnHandler`] can do with its connection.
pub trait ConnIo {
    /// Virtual time now.
    fn now_ns(&self) -> u64;
    /// Connection state.
    fn state(&self) -> PeerConnState;
    /// Read buffered data; 0 = nothing available now.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Queue data; returns bytes accepted now (bounded buffer).
    fn send(&mut self, data: &[u8]) -> usize;
    /// Bytes queued and not yet acknowledged.
    fn send_queue(&self) -> usize;
    /// Graceful close: FIN after queued data.
    fn close(&mut self);
    /// Reset the connection (RST).
    fn abort(&mut self);
    /// This end's address.
    fn local_addr(&self) -> SocketAddrV4;
    /// The other end's address.
    fn peer_addr(&self) -> SocketAddrV4;
    /// Ask to be polled again at `t_ns`.
    fn wake_at(&mut self, t_ns: u64);
    /// Opens a new connection from this host to `remote`, driven by
    /// `handler` (how a peer connects back to the system under test). The
    /// connection starts once the current round of handlers is done.
    fn connect(&mut self, remote: SocketAddrV4, handler: Box<dyn ConnHandler>);
    /// What arrived from the other side on the wire: the first FIN and RST
    /// and the windows it advertised (see [`WireSeen`]).
    fn wire(&self) -> WireSeen {
        WireSeen::default()
    }
}

pub(crate) struct Listener {
    factory: Box<dyn FnMut() -> Box<dyn ConnHandler>>,
    spares: Vec<SocketHandle>,
}

pub(crate) struct Conn {
    handle: SocketHandle,
    handler: Box<dyn ConnHandler>,
    wake_at: Option<u64>,
    prev: State,
    outcome: Option<PeerConnState>,
    user_closed: bool,
    /// When the application's close reaches the wire (see [`FIN_RELAY_NS`]).
    close_at: Option<u64>,
    connect_deadline: Option<u64>,
    final_polled: bool,
    wire_key: Option<(SocketAddrV4, u16)>,
}

pub(crate) struct Host {
    pub addr: Ipv4Addr,
    iface: Interface,
    pub dev: QueueDevice,
    sockets: SocketSet<'static>,
    listeners: BTreeMap<u16, Listener>,
    conns: Vec<Conn>,
    next_port: u16,
    wire: WireLog,
}

pub(crate) fn instant(ns: u64) -> Instant {
    Instant::from_micros((ns / 1000) as i64)
}

/// How long after a peer application closes its socket its FIN leaves.
///
/// The guest's peers in QEMU sit behind slirp, which relays the host
/// socket's end of stream on a later pass of its poll loop than the data
/// before it: a capture of OVMF's lifecycle cases shows the host's FIN
/// reaching the guest 3-12 ms after the guest's own FIN was acknowledged
/// (the guest, already torn down, answers it with a bare RST). A simulated
/// peer's FIN would otherwise ride on its last data or its ACK.
pub(crate) const FIN_RELAY_NS: u64 = 5_000_000;

fn new_socket(buf: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    );
    // Slow start and congestion avoidance, like a host kernel.
    s.set_congestion_control(tcp::CongestionControl::Reno);
    // The guest's peers in QEMU are slirp's TCP, which acknowledges the
    // guest's segments at once: OVMF's recordings show a 4 KiB Transmit
    // (first segment, then the rest on its ACK) done within 3 Polls and a
    // 64 KiB one signalled before the next wait, where smoltcp's 10 ms
    // delayed ACK held the simulator's for hundreds of Polls.
    s.set_ack_delay(None);
    s
}

struct Io<'a> {
    sock: &'a mut tcp::Socket<'static>,
    now: u64,
    conn_wake: &'a mut Option<u64>,
    outcome: Option<PeerConnState>,
    user_closed: &'a mut bool,
    close_at: &'a mut Option<u64>,
    local: SocketAddrV4,
    spawned: &'a mut Vec<(SocketAddrV4, Box<dyn ConnHandler>)>,
    wire: WireSeen,
}

fn v4(ep: Option<IpEndpoint>) -> SocketAddrV4 {
    match ep {
        Some(IpEndpoint {
            addr: IpAddress::Ipv4(a),
            port,
        }) => SocketAddrV4::new(a, port),
        _ => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

impl ConnIo for Io<'_> {
    fn now_ns(&self) -> u64 {
        self.now
    }
    fn state(&self) -> PeerConnState {
        if let Some(o) = self.outcome {
            return o;
        }
        match self.sock.state() {
            State::SynSent | State::SynReceived => PeerConnState::Connecting,
            State::Established | State::FinWait1 | State::FinWait2 => PeerConnState::Established,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait => {
                PeerConnState::PeerFin
            }
            State::Closed | State::Listen => PeerConnState::Closed,
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.sock.recv_slice(buf).unwrap_or(0)
    }
    fn send(&mut self, data: &[u8]) -> usize {
        if *self.user_closed {
            return 0;
        }
        self.sock.send_slice(data).unwrap_or(0)
    }
    fn send_queue(&self) -> usize {
        self.sock.send_queue()
    }
    fn close(&mut self) {
        if !*self.user_closed {
            *self.user_closed = true;
            *self.close_at = Some(self.now + FIN_RELAY_NS);
        }
    }
    fn abort(&mut self) {
        *self.user_closed = true;
        *self.close_at = None;
        self.sock.abort();
    }
    fn local_addr(&self) -> SocketAddrV4 {
        let l = v4(self.sock.local_endpoint());
        if l.port() == 0 { self.local } else { l }
    }
    fn peer_addr(&self) -> SocketAddrV4 {
        v4(self.sock.remote_endpoint())
    }
    fn wake_at(&mut self, t_ns: u64) {
        *self.conn_wake = Some(self.conn_wake.map_or(t_ns, |w| w.min(t_ns)));
    }
    fn connect(&mut self, remote: SocketAddrV4, handler: Box<dyn ConnHandler>) {
        self.spawned.push((remote, handler));
    }
    fn wire(&self) -> WireSeen {
        self.wire
    }
}

impl Host {
    pub fn new(addr: Ipv4Addr, seed: u64, now: u64) -> Host {
        let mut dev = QueueDevice::default();
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, instant(now));
        // Prefix 0: every destination is on-link; the scheduler routes by address.
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(addr), 0));
        });
        Host {
            addr,
            iface,
            dev,
            sockets: SocketSet::new(vec![]),
            listeners: BTreeMap::new(),
            conns: Vec::new(),
            next_port: 40000 + (seed % 10000) as u16,
            wire: WireLog::default(),
        }
    }

    fn add_listen_socket(&mut self, port: u16) -> SocketHandle {
        let mut s = new_socket(PEER_BUFFER);
        // A fresh socket can always listen on a non-zero port.
        let _ = s.listen(port);
        self.sockets.add(s)
    }

    pub fn listen(&mut self, port: u16, factory: Box<dyn FnMut() -> Box<dyn ConnHandler>>) {
        self.unlisten(port);
        let spares = (0..SPARE_LISTENERS)
            .map(|_| self.add_listen_socket(port))
            .collect();
        self.listeners.insert(port, Listener { factory, spares });
    }

    pub fn unlisten(&mut self, port: u16) {
        if let Some(l) = self.listeners.remove(&port) {
            for h in l.spares {
                self.sockets.remove(h);
            }
        }
    }

    pub fn connect(&mut self, remote: SocketAddrV4, handler: Box<dyn ConnHandler>, now: u64) {
        let mut s = new_socket(PEER_BUFFER);
        self.next_port = if self.next_port >= 60999 {
            40000
        } else {
            self.next_port + 1
        };
        let ep = IpEndpoint::new(IpAddress::Ipv4(*remote.ip()), remote.port());
        let ok = s.connect(self.iface.context(), ep, self.next_port).is_ok();
        let handle = self.sockets.add(s);
        self.conns.push(Conn {
            handle,
            handler,
            wake_at: None,
            prev: State::SynSent,
            outcome: if ok { None } else { Some(PeerConnState::Reset) },
            user_closed: false,
            close_at: None,
            connect_deadline: Some(now + PEER_CONNECT_TIMEOUT_NS),
            final_polled: false,
            wire_key: None,
        });
    }

    /// Run the stack and the applications at `now`; returns transmitted frames.
    pub fn process(&mut self, now: u64) -> Vec<Vec<u8>> {
        for frame in &self.dev.rx {
            self.wire.observe(now, frame);
        }
        for _round in 0..4 {
            self.ingress(now);
            self.iface
                .poll(instant(now), &mut self.dev, &mut self.sockets);
            self.adopt_accepted();
            let changed = self.run_handlers(now);
            if !changed && self.dev.rx.is_empty() {
                break;
            }
        }
        self.iface
            .poll(instant(now), &mut self.dev, &mut self.sockets);
        std::mem::take(&mut self.dev.tx)
    }

    /// Feed the received frames to the stack one at a time, so that each
    /// SYN is judged against the connections the frames before it made. A
    /// bare SYN whose address pair already has a connection belongs to that
    /// connection (a duplicate or retransmission) and is discarded, as a
    /// kernel's exact-match lookup does; it never reaches a spare listener
    /// (see `crate::demux`).
    fn ingress(&mut self, now: u64) {
        while let Some(frame) = self.dev.rx.front() {
            if syn_owner_state(&self.sockets, frame).is_some() {
                self.dev.rx.pop_front();
                continue;
            }
            self.iface
                .poll_ingress_single(instant(now), &mut self.dev, &mut self.sockets);
        }
    }

    fn adopt_accepted(&mut self) {
        let ports: Vec<u16> = self.listeners.keys().copied().collect();
        for port in ports {
            let mut fresh = Vec::new();
            let l = self.listeners.get_mut(&port).expect("port from keys");
            let mut keep = Vec::new();
            for h in std::mem::take(&mut l.spares) {
                let st = self.sockets.get::<tcp::Socket>(h).state();
                // Like a kernel's accept(): a connection reaches the
                // application only once the handshake completed. (Adopting
                // in SYN-RECEIVED let a handler close before the final ACK
                // arrived, and smoltcp then never sent the FIN; found by the
                // fuzzer with a latency spike on that ACK.)
                if st == State::Listen || st == State::SynReceived {
                    keep.push(h);
                } else {
                    fresh.push(h);
                }
            }
            l.spares = keep;
            for h in fresh {
                let handler = (l.factory)();
                self.conns.push(Conn {
                    handle: h,
                    handler,
                    wake_at: None,
                    prev: State::SynReceived,
                    outcome: None,
                    user_closed: false,
                    close_at: None,
                    connect_deadline: None,
                    final_polled: false,
                    wire_key: None,
                });
            }
            let listening = l
                .spares
                .iter()
                .filter(|&&h| self.sockets.get::<tcp::Socket>(h).state() == State::Listen)
                .count();
            for _ in listening..SPARE_LISTENERS {
                let mut s = new_socket(PEER_BUFFER);
                let _ = s.listen(port);
                l.spares.push(self.sockets.add(s));
            }
        }
    }

    fn run_handlers(&mut self, now: u64) -> bool {
        let mut changed = false;
        let mut spawned = Vec::new();
        let local_ip = self.addr;
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let sock = self.sockets.get_mut::<tcp::Socket>(c.handle);
            let st = sock.state();
            if c.outcome.is_none() {
                if let Some(d) = c.connect_deadline {
                    if st == State::SynSent && now >= d {
                        sock.abort();
                        c.outcome = Some(PeerConnState::TimedOut);
                    } else if st != State::SynSent {
                        c.connect_deadline = None;
                    }
                }
                if st == State::Closed && c.outcome.is_none() {
                    c.outcome = Some(match c.prev {
                        _ if c.user_closed => PeerConnState::Closed,
                        State::LastAck | State::TimeWait | State::Closed => PeerConnState::Closed,
                        _ => PeerConnState::Reset,
                    });
                }
            }
            c.prev = st;
            let due = c.wake_at.is_some_and(|w| w <= now);
            if due {
                c.wake_at = None;
            }
            if c.close_at.is_some_and(|t| t <= now) {
                c.close_at = None;
                sock.close();
                changed = true;
            }
            let before = (sock.send_queue(), sock.recv_queue(), sock.state());
            // A closed socket forgets its endpoints: keep the last ones.
            if let (Some(remote), Some(local)) = (sock.remote_endpoint(), sock.local_endpoint()) {
                c.wire_key = Some((v4(Some(remote)), local.port));
            }
            let wire = c
                .wire_key
                .map_or_else(WireSeen::default, |(r, l)| self.wire.get(r, l));
            let mut io = Io {
                sock,
                now,
                conn_wake: &mut c.wake_at,
                outcome: c.outcome,
                user_closed: &mut c.user_closed,
                close_at: &mut c.close_at,
                local: SocketAddrV4::new(local_ip, 0),
                spawned: &mut spawned,
                wire,
            };
            c.handler.poll(&mut io);
            let after = (io.sock.send_queue(), io.sock.recv_queue(), io.sock.state());
            if before != after {
                changed = true;
            }
            if c.outcome.is_some() {
                if c.final_polled {
                    let h = c.handle;
                    self.sockets.remove(h);
                    self.conns.remove(i);
                    continue;
                }
                c.final_polled = true;
            }
            i += 1;
        }
        for (remote, handler) in spawned {
            self.connect(remote, handler, now);
            changed = true;
        }
        changed
    }

    /// Next time this host needs to run (stack timers, wake requests).
    pub fn next_due(&mut self, now: u64) -> Option<u64> {
        let mut t = self
            .iface
            .poll_at(instant(now), &self.sockets)
            .map(|i| (i.total_micros().max(0) as u64) * 1000);
        for c in &self.conns {
            for w in [c.wake_at, c.connect_deadline, c.close_at]
                .into_iter()
                .flatten()
            {
                t = Some(t.map_or(w, |x| x.min(w)));
            }
        }
        t.map(|x| x.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{ipv4_dst, tcp_summary};

    const SEC: u64 = 1_000_000_000;
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

    /// Sends 64 bytes once the connection is established.
    struct SendOnce(bool);

    impl ConnHandler for SendOnce {
        fn poll(&mut self, io: &mut dyn ConnIo) {
            if !self.0 && io.state() == PeerConnState::Established {
                self.0 = io.send(&[7; 64]) == 64;
            }
        }
    }

    /// Does nothing.
    struct Idle;

    impl ConnHandler for Idle {
        fn poll(&mut self, _io: &mut dyn ConnIo) {}
    }

    /// TCP payload length of an IPv4/TCP frame.
    fn payload_len(f: &[u8]) -> usize {
        let ihl = usize::from(f[0] & 0x0f) * 4;
        f.len() - ihl - usize::from(f[ihl + 12] >> 4) * 4
    }

    /// The server's SYN-ACK is lost four times (handshake RTO 1, 2, 4, 8 s),
    /// then its data segment is lost `data_losses` times. Returns when the
    /// server sent that data segment, in ns.
    fn data_sends_after_lossy_handshake(data_losses: usize) -> Vec<u64> {
        let mut server = Host::new(SERVER, 1, 0);
        let mut client = Host::new(CLIENT, 2, 0);
        server.listen(7501, Box::new(|| Box::new(SendOnce(false))));
        client.connect(SocketAddrV4::new(SERVER, 7501), Box::new(Idle), 0);
        // (arrival time, sequence, frame): 1 ms one-way latency.
        let mut wire: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
        let (mut now, mut n, mut synacks) = (0u64, 0u64, 0);
        let mut data_sends = Vec::new();
        while now < 600 * SEC && data_sends.len() <= data_losses {
            for (from_server, out) in [(true, server.process(now)), (false, client.process(now))] {
                for f in out {
                    let s = tcp_summary(&f).expect("TCP");
                    let lost = if from_server && s.syn {
                        synacks += 1;
                        synacks <= 4
                    } else if from_server && payload_len(&f) > 0 {
                        data_sends.push(now);
                        data_sends.len() <= data_losses
                    } else {
                        false
                    };
                    if !lost {
                        n += 1;
                        wire.insert((now + 1_000_000, n), f);
                    }
                }
            }
            let next = [server.next_due(now), client.next_due(now)]
                .into_iter()
                .flatten()
                .chain(wire.keys().next().map(|k| k.0))
                .min()
                .expect("something is due");
            now = next.max(now + 1_000);
            while let Some(entry) = wire.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let f = entry.remove();
                let to_server = ipv4_dst(&f) == Some(SERVER.octets());
                let host = if to_server { &mut server } else { &mut client };
                host.dev.rx.push_back(f);
            }
        }
        assert_eq!(synacks, 5, "the fifth SYN-ACK completed the handshake");
        data_sends
    }

    /// Pins what the fuzzer's completion phase relies on (`MAX_RTO_NS`): the
    /// RTO backed off by a retransmitted handshake carries over to the first
    /// data segment (16 s after SYN-ACK RTOs of 1, 2, 4 and 8 s), keeps
    /// doubling, and never exceeds `MAX_RTO_NS`. A smoltcp upgrade that
    /// changes either breaks this test rather than the fuzzer's bounds.
    #[test]
    fn handshake_backoff_carries_over_and_rto_is_capped() {
        let sends = data_sends_after_lossy_handshake(5);
        let gaps: Vec<u64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
        let expect = [16 * SEC, 32 * SEC, MAX_RTO_NS, MAX_RTO_NS, MAX_RTO_NS];
        for (gap, want) in gaps.iter().zip(expect) {
            // smoltcp counts in milliseconds; the loop steps by at least 1 µs.
            assert!(
                gap.abs_diff(want) < 2_000_000,
                "gaps {gaps:?}, want {expect:?}"
            );
        }
        assert_eq!(gaps.len(), expect.len(), "gaps {gaps:?}");
    }
}
