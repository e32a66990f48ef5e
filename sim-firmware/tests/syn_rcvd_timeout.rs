//! A half-open (SYN_RCVD) connection on a listener lives ConnectionTimeout
//! (75 s by default) from its SYN, then is reset and frees its backlog slot
//! (EDK2: the CONNECT timer armed on the clone, TcpInput.c l.879;
//! `TcpConnectTimeout` resets and closes it in SYN_RCVD, TcpTimer.c
//! l.143-170; the never-accepted child is destroyed, SockImpl.c
//! l.1023-1025; code-read, edk2-stable202211). The timer ends with the
//! handshake: an established connection may then stay idle for any time.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::Net;
use efisock_sim::{ConnHandler, ConnIo, LinkConfig, PeerConnState, Sim, SimConfig, SimPlatform};

const SUT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
const PORT: u16 = 8080;
const SEC: u64 = 1_000_000_000;
/// EDK2's default ConnectionTimeout, which efisock's listeners keep.
const CONNECTION_TIMEOUT: u64 = 75 * SEC;
/// The smallest MaxSynBackLog EDK2 accepts (TcpDispatcher.c l.630-639).
const BACKLOG: u32 = 5;

fn net_on(sim: &Sim) -> Net<SimPlatform> {
    let net = Net::new(sim.platform());
    net.set_static(SUT, MASK, Some(PEER))
        .expect("static address");
    net.set_wait_deadline(Some(Duration::from_secs(300)));
    net
}

fn listener(net: &Net<SimPlatform>) -> efisock::Socket<SimPlatform> {
    let l = net.socket().expect("socket");
    l.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT))
        .expect("bind");
    l.listen(BACKLOG).expect("listen");
    l
}

/// When the connection got established, and what it ended as.
#[derive(Debug, Default)]
struct Seen {
    established_at: Option<u64>,
    states: Vec<PeerConnState>,
}

/// Records the states; once `send_at` has come (and the connection is
/// open) sends `msg` and closes.
struct Client {
    seen: Rc<RefCell<Seen>>,
    send_at: u64,
    msg: &'static [u8],
    done: bool,
}

impl ConnHandler for Client {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let st = io.state();
        let mut seen = self.seen.borrow_mut();
        if seen.states.last() != Some(&st) {
            seen.states.push(st);
        }
        if st == PeerConnState::Established && seen.established_at.is_none() {
            seen.established_at = Some(io.now_ns());
        }
        if st != PeerConnState::Established || self.done {
            return;
        }
        if io.now_ns() < self.send_at {
            io.wake_at(self.send_at);
            return;
        }
        if io.send(self.msg) == self.msg.len() {
            self.done = true;
            io.close();
        }
    }
}

fn client(sim: &Sim, send_at: u64, msg: &'static [u8]) -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    sim.peer_host().connect(
        SocketAddrV4::new(SUT, PORT),
        Box::new(Client {
            seen: Rc::clone(&seen),
            send_at,
            msg,
            done: false,
        }),
    );
    seen
}

/// Times of the trace lines that contain `needle`.
fn trace_times(sim: &Sim, needle: &str) -> Vec<u64> {
    sim.trace()
        .iter()
        .filter(|l| l.contains(needle))
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.parse().ok())
                .expect("trace lines start with the time in ns")
        })
        .collect()
}

#[test]
fn half_open_connections_are_dropped_after_connection_timeout_and_free_the_backlog() {
    let sim = Sim::new(SimConfig::new(0x5a1));
    let net = net_on(&sim);
    let l = listener(&net);
    let t0 = sim.now_ns();
    // Five SYNs reach the listener; everything after them is lost (the
    // SYN-ACKs, the clients' retransmissions and their give-up RSTs), so
    // five half-open connections fill the backlog.
    let half_open: Vec<_> = (0..BACKLOG).map(|_| client(&sim, 0, b"")).collect();
    sim.set_link(LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    });
    net.sleep(Duration::from_nanos(CONNECTION_TIMEOUT - SEC / 10));
    assert!(
        trace_times(&sim, "half-open connection closed").is_empty(),
        "a half-open connection lives ConnectionTimeout from its SYN; trace:\n{}",
        sim.trace().join("\n")
    );
    net.sleep(Duration::from_secs(1));
    let closed = trace_times(&sim, "half-open connection closed");
    assert_eq!(closed.len(), BACKLOG as usize, "every half-open one ends");
    for t in &closed {
        // The SYNs were processed one per 10 ms MNP tick.
        let age = t - t0;
        assert!(
            (CONNECTION_TIMEOUT..CONNECTION_TIMEOUT + SEC / 10).contains(&age),
            "dropped {age} ns after the SYNs were sent, want 75 s (plus the ticks \
             that processed them)"
        );
    }
    for h in &half_open {
        assert_eq!(
            h.borrow().established_at,
            None,
            "the handshake never completed"
        );
    }

    // The backlog has room again: a new client gets in at once.
    sim.set_link(LinkConfig::default());
    let t1 = sim.now_ns();
    let late = client(&sim, 0, b"late");
    l.settimeout(Some(Duration::from_secs(10)))
        .expect("settimeout");
    let (s, _) = l
        .accept()
        .expect("the freed backlog admits a new connection");
    let at = late.borrow().established_at.expect("established");
    assert!(
        at - t1 < SEC,
        "established {} ms after connecting: its first SYN was admitted",
        (at - t1) / 1_000_000
    );
    s.settimeout(Some(Duration::from_secs(10)))
        .expect("settimeout");
    let mut got = Vec::new();
    loop {
        let chunk = s.recv(64).expect("recv");
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"late");
    s.close().expect("close");
    l.close().expect("close listener");
    net.shutdown(Duration::from_secs(60)).expect("shutdown");
    assert!(sim.finish().is_empty());
}

#[test]
fn an_established_connection_is_not_bound_by_the_connection_timeout() {
    let sim = Sim::new(SimConfig::new(0x5a2));
    let net = net_on(&sim);
    let l = listener(&net);
    // Idle for twice ConnectionTimeout after the handshake, then a message.
    let send_at = sim.now_ns() + 2 * CONNECTION_TIMEOUT;
    let seen = client(&sim, send_at, b"after a long silence");
    net.sleep(Duration::from_nanos(2 * CONNECTION_TIMEOUT + SEC));
    let (s, _) = l.accept().expect("accept");
    s.settimeout(Some(Duration::from_secs(10)))
        .expect("settimeout");
    let mut got = Vec::new();
    loop {
        let chunk = s.recv(64).expect("recv: the idle connection still works");
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"after a long silence");
    s.close().expect("close");
    l.close().expect("close listener");
    net.sleep(Duration::from_secs(15));
    assert_eq!(
        seen.borrow().states.last(),
        Some(&PeerConnState::Closed),
        "states {:?}",
        seen.borrow().states
    );
    net.shutdown(Duration::from_secs(60)).expect("shutdown");
    assert!(sim.finish().is_empty());
}
