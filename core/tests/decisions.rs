//! The socket layer's decisions, pinned on the simulator: what the peer sees
//! when a socket closes, when bind and listen refuse a port, what a second
//! connect and a second listen do, and what the firmware is left owning.
//!
//! Why here and not only in the conformance suite: these are the decisions
//! a mutation of the core must not survive, and the core's own `cargo test`
//! is what a change to the core runs first. Each test names the decision it
//! pins; the peer runs on the simulated host 10.0.2.2.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::error::FirmwareCall;
use efisock::{Errno, Net, Shutdown};
use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig, SimPlatform};

const SUT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// A simulated world and a `Net` on it with a static address.
fn world(seed: u64) -> (Sim, Net<SimPlatform>) {
    let sim = Sim::new(SimConfig::new(seed));
    let net = Net::new(sim.platform());
    net.set_static(SUT, MASK, Some(PEER))
        .expect("static address");
    (sim, net)
}

/// What a peer connection saw: every state it passed through.
type Seen = Rc<RefCell<Vec<PeerConnState>>>;

/// A peer that optionally sends `greeting` once, then only records states
/// and reads (and drops) whatever arrives.
struct Recorder {
    seen: Seen,
    greeting: &'static [u8],
    sent: usize,
}

impl ConnHandler for Recorder {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let state = io.state();
        {
            let mut seen = self.seen.borrow_mut();
            if seen.last() != Some(&state) {
                seen.push(state);
            }
        }
        if state == PeerConnState::Established && self.sent < self.greeting.len() {
            self.sent += io.send(&self.greeting[self.sent..]);
        }
        let mut buf = [0u8; 4096];
        while io.recv(&mut buf) > 0 {}
    }
}

/// Peer port `port` records every connection's states into the returned list.
fn recording_peer(sim: &Sim, port: u16, greeting: &'static [u8]) -> Rc<RefCell<Vec<Seen>>> {
    let conns: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let all = Rc::clone(&conns);
    sim.peer_host().listen(
        port,
        Box::new(move || {
            let seen: Seen = Rc::default();
            all.borrow_mut().push(Rc::clone(&seen));
            Box::new(Recorder {
                seen,
                greeting,
                sent: 0,
            })
        }),
    );
    conns
}

/// How the first recorded connection ended.
fn ending(conns: &Rc<RefCell<Vec<Seen>>>) -> Vec<PeerConnState> {
    conns.borrow()[0].borrow().clone()
}

#[test]
fn close_of_an_ordinary_connection_sends_fin() {
    let (sim, net) = world(1);
    let conns = recording_peer(&sim, 9000, b"");
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9000)).unwrap();
    s.close().unwrap();
    net.sleep(Duration::from_millis(200));
    let seen = ending(&conns);
    assert!(
        seen.contains(&PeerConnState::PeerFin) && !seen.contains(&PeerConnState::Reset),
        "the peer must see FIN, not RST: {seen:?}"
    );
}

#[test]
fn close_with_unread_data_sends_rst() {
    let (sim, net) = world(2);
    let conns = recording_peer(&sim, 9001, b"unread");
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9001)).unwrap();
    let ready = net
        .select(&[&s], &[], &[], Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ready.read, [s.fileno()], "the greeting arrived");
    s.close().unwrap();
    net.sleep(Duration::from_millis(200));
    let seen = ending(&conns);
    assert_eq!(
        seen.last(),
        Some(&PeerConnState::Reset),
        "unread data: RST, as Linux does: {seen:?}"
    );
}

#[test]
fn linger_zero_close_sends_rst() {
    let (sim, net) = world(3);
    let conns = recording_peer(&sim, 9002, b"");
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9002)).unwrap();
    s.set_linger(Some(Duration::ZERO)).unwrap();
    s.close().unwrap();
    net.sleep(Duration::from_millis(200));
    assert_eq!(ending(&conns).last(), Some(&PeerConnState::Reset));
}

#[test]
fn bind_refuses_a_port_another_socket_of_the_net_holds() {
    let (_sim, net) = world(4);
    let a = net.socket().unwrap();
    let b = net.socket().unwrap();
    let c = net.socket().unwrap();
    a.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45000))
        .unwrap();
    let err = b
        .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45000))
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EADDRINUSE));
    c.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45001))
        .expect("another port is free");
}

#[test]
fn bind_checks_the_address_and_binds_once() {
    let (_sim, net) = world(5);
    let s = net.socket().unwrap();
    let err = s
        .bind(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 99), 45002))
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EADDRNOTAVAIL));
    s.bind(SocketAddrV4::new(SUT, 45002)).unwrap();
    assert_eq!(s.getsockname().unwrap(), SocketAddrV4::new(SUT, 45002));
    let err = s.bind(SocketAddrV4::new(SUT, 45003)).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EINVAL));
}

/// A port held by another instance of the firmware (here: a listener of a
/// second `Net` on the same firmware, which `bind` cannot see).
fn port_held_elsewhere(sim: &Sim, port: u16) -> efisock::Socket<SimPlatform> {
    let other = Net::new(sim.platform());
    let holder = other.socket().unwrap();
    holder
        .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
        .unwrap();
    holder.listen(5).unwrap();
    holder
}

#[test]
fn a_held_port_fails_at_once_without_so_reuseaddr() {
    let (sim, net) = world(6);
    let _holder = port_held_elsewhere(&sim, 45010);
    let s = net.socket().unwrap();
    s.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45010))
        .unwrap();
    let t0 = net.now();
    let err = s.listen(5).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EADDRINUSE));
    assert!(
        net.now() - t0 < Duration::from_millis(100),
        "no SO_REUSEADDR: no wait for the port ({:?})",
        net.now() - t0
    );
}

#[test]
fn a_held_port_is_waited_for_with_so_reuseaddr() {
    let (sim, net) = world(7);
    let _holder = port_held_elsewhere(&sim, 45011);
    let s = net.socket().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45011))
        .unwrap();
    let t0 = net.now();
    let err = s.listen(5).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::EADDRINUSE));
    assert!(
        net.now() - t0 >= efisock::REUSE_WAIT,
        "SO_REUSEADDR waits REUSE_WAIT for the port ({:?})",
        net.now() - t0
    );
}

#[test]
fn a_second_listen_updates_the_backlog() {
    let (sim, net) = world(8);
    let s = net.socket().unwrap();
    s.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45020))
        .unwrap();
    s.listen(1).unwrap();
    let sut = SocketAddrV4::new(SUT, 45020);
    for _ in 0..4 {
        sim.peer_host().connect(
            sut,
            Box::new(Recorder {
                seen: Rc::default(),
                greeting: b"",
                sent: 0,
            }),
        );
    }
    net.sleep(Duration::from_millis(500));
    // The listener's child plus one accepted connection waiting for accept().
    assert_eq!(net.resources().children, 2, "backlog 1 holds one");
    s.listen(3).unwrap();
    net.sleep(Duration::from_millis(500));
    assert_eq!(net.resources().children, 4, "backlog 3 holds three");
}

#[test]
fn a_second_connect_after_a_refusal_uses_a_fresh_child() {
    let (sim, net) = world(9);
    let s = net.socket().unwrap();
    let err = s.connect(SocketAddrV4::new(PEER, 9010)).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ECONNREFUSED));
    let _conns = recording_peer(&sim, 9010, b"");
    let created = net.stats().calls_of(FirmwareCall::CreateChild);
    s.connect(SocketAddrV4::new(PEER, 9010))
        .expect("the retry connects");
    assert_eq!(s.getpeername().unwrap(), SocketAddrV4::new(PEER, 9010));
    let stats = net.stats();
    assert_eq!(
        stats.calls_of(FirmwareCall::CreateChild),
        created + 1,
        "EDK2 does not reset a failed child's control flags: the retry needs a fresh one"
    );
    assert_eq!(
        stats.calls_of(FirmwareCall::DestroyChild),
        1,
        "the refused child went to the graveyard and was destroyed"
    );
}

#[test]
fn a_connected_socket_keeps_a_receive_pending_in_the_firmware() {
    let (sim, net) = world(10);
    let _conns = recording_peer(&sim, 9020, b"");
    let s = net.socket().unwrap();
    assert_eq!(net.resources().pending_tokens, 0);
    s.connect(SocketAddrV4::new(PEER, 9020)).unwrap();
    assert_eq!(net.resources().pending_tokens, 1, "the armed Receive");
    s.shutdown(Shutdown::Write).unwrap();
    s.close().unwrap();
    net.shutdown(Duration::from_secs(10)).unwrap();
    assert!(net.resources().is_zero(), "{:?}", net.resources());
}

#[test]
fn an_accepted_socket_knows_its_peer() {
    let (sim, net) = world(11);
    let s = net.socket().unwrap();
    s.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45030))
        .unwrap();
    s.listen(5).unwrap();
    sim.peer_host().connect(
        SocketAddrV4::new(SUT, 45030),
        Box::new(Recorder {
            seen: Rc::default(),
            greeting: b"",
            sent: 0,
        }),
    );
    s.settimeout(Some(Duration::from_secs(5))).unwrap();
    let (child, peer) = s.accept().unwrap();
    assert_eq!(*peer.ip(), PEER);
    assert_ne!(peer.port(), 0);
    assert_eq!(child.getpeername().unwrap(), peer);
    assert_eq!(child.getsockname().unwrap(), SocketAddrV4::new(SUT, 45030));
}

/// A peer that resets the connection as soon as it is established.
struct Resetter;

impl ConnHandler for Resetter {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        if io.state() == PeerConnState::Established {
            io.abort();
        }
    }
}

#[test]
fn a_peer_reset_is_hup_and_error_then_econnreset_on_every_send() {
    let (sim, net) = world(12);
    sim.peer_host()
        .listen(9030, Box::new(|| Box::new(Resetter)));
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9030)).unwrap();
    let mut poller = net.poller();
    poller.register(&s, efisock::Interest::READABLE, 7).unwrap();
    let events = poller.poll(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(events.len(), 1);
    let e = events[0];
    assert!(
        e.readable && e.error && e.hup,
        "a reset reads as readable, error and hang-up: {e:?}"
    );
    let err = s.recv(10).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ECONNRESET));
    for _ in 0..2 {
        let err = s.send(b"x").unwrap_err();
        assert_eq!(
            err.errno(),
            Some(Errno::ECONNRESET),
            "send keeps raising it"
        );
    }
}

#[test]
fn shutdown_read_leaves_the_write_side_open() {
    let (sim, net) = world(13);
    let conns = recording_peer(&sim, 9040, b"");
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9040)).unwrap();
    s.shutdown(Shutdown::Read).unwrap();
    assert_eq!(s.recv(10).unwrap(), b"", "read side shut: EOF");
    assert_eq!(s.send(b"still sending").unwrap(), 13);
    net.sleep(Duration::from_millis(100));
    assert!(
        !ending(&conns).contains(&PeerConnState::PeerFin),
        "no FIN for a read shutdown: {:?}",
        ending(&conns)
    );
    s.shutdown(Shutdown::Write).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    net.sleep(Duration::from_millis(100));
    assert!(ending(&conns).contains(&PeerConnState::PeerFin));
}

#[test]
fn a_timed_out_connect_is_aborted_and_a_new_attempt_starts_fresh() {
    let (_sim, net) = world(14);
    let nobody = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 77), 9050);
    let s = net.socket().unwrap();
    s.settimeout(Some(Duration::from_millis(300))).unwrap();
    let err = s.connect(nobody).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        net.resources().pending_tokens,
        0,
        "Configure(NULL) aborted the Connect token"
    );
    assert_eq!(s.so_error(), 0, "our own abort is not an error to report");
    let err = s
        .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 45040))
        .unwrap_err();
    assert_eq!(
        err.errno(),
        Some(Errno::EINVAL),
        "no bind after a connect attempt, even an aborted one"
    );
    s.setblocking(false);
    assert_eq!(
        s.connect_ex(nobody),
        Errno::EINPROGRESS.code(),
        "a new attempt, not EALREADY"
    );
}

#[test]
fn poller_registrations_follow_python_selectors() {
    let (sim, net) = world(15);
    let _conns = recording_peer(&sim, 9060, b"");
    let a = net.socket().unwrap();
    let b = net.socket().unwrap();
    a.connect(SocketAddrV4::new(PEER, 9060)).unwrap();
    b.connect(SocketAddrV4::new(PEER, 9060)).unwrap();
    let mut poller = net.poller();
    assert!(poller.is_empty());
    assert_eq!(poller.len(), 0);
    poller.register(&a, efisock::Interest::WRITABLE, 1).unwrap();
    poller.register(&b, efisock::Interest::READABLE, 2).unwrap();
    assert_eq!(poller.len(), 2);
    assert!(!poller.is_empty());
    let twice = poller.register(&a, efisock::Interest::READABLE, 3);
    assert_eq!(twice.unwrap_err().errno(), Some(Errno::EINVAL));
    b.close().unwrap();
    let events = poller.poll(Some(Duration::ZERO)).unwrap();
    let tokens: Vec<_> = events.iter().map(|e| (e.token, e.error, e.hup)).collect();
    assert_eq!(
        tokens,
        [(1, false, false), (2, true, true)],
        "the closed socket is reported once with error and hup"
    );
    assert_eq!(poller.len(), 1, "and then dropped");
    assert_eq!(
        poller.unregister(&b).unwrap_err().errno(),
        Some(Errno::EINVAL)
    );
    poller.unregister(&a).unwrap();
    assert!(poller.is_empty());
}

#[test]
fn socket_options_read_back() {
    let (_sim, net) = world(16);
    let s = net.socket().unwrap();
    assert!(!s.reuseaddr());
    s.set_reuseaddr(true).unwrap();
    assert!(s.reuseaddr());
    s.set_reuseaddr(false).unwrap();
    assert!(!s.reuseaddr());
    assert_eq!(s.linger(), None);
    s.set_linger(Some(Duration::from_secs(3))).unwrap();
    assert_eq!(s.linger(), Some(Duration::from_secs(3)));
    assert_eq!(s.gettimeout(), None);
    assert!(s.getblocking());
    s.setblocking(false);
    assert_eq!(s.gettimeout(), Some(Duration::ZERO));
    assert!(!s.getblocking());
    s.settimeout(Some(Duration::from_millis(250))).unwrap();
    assert_eq!(s.gettimeout(), Some(Duration::from_millis(250)));
    assert!(s.getblocking());
    assert_eq!(s.so_error(), 0);
    assert_eq!(s.getpeername().unwrap_err().errno(), Some(Errno::ENOTCONN));
    assert_eq!(
        s.getsockname().unwrap(),
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)
    );
    s.close().unwrap();
    assert_eq!(s.so_error(), Errno::EBADF.code(), "closed");
    assert_eq!(s.settimeout(None).unwrap_err().errno(), Some(Errno::EBADF));
}

#[test]
fn rearming_the_receive_costs_one_receive_call_and_nothing_else() {
    let (sim, net) = world(17);
    let _conns = recording_peer(&sim, 9070, b"abc");
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9070)).unwrap();
    let before = net.stats();
    s.settimeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(s.recv(3).unwrap());
    }
    assert_eq!(got, b"abc");
    let after = net.stats();
    assert!(after.calls_of(FirmwareCall::Receive) > before.calls_of(FirmwareCall::Receive));
    assert_eq!(
        after.calls_of(FirmwareCall::GetModeData),
        before.calls_of(FirmwareCall::GetModeData),
        "a Receive accepted by the firmware needs no state query"
    );
}

/// A peer that answers our FIN with RST.
struct ResetOnFin;

impl ConnHandler for ResetOnFin {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        if io.state() == PeerConnState::PeerFin {
            io.abort();
        }
    }
}

#[test]
fn a_reset_after_our_fin_is_still_econnreset() {
    let (sim, net) = world(18);
    sim.peer_host()
        .listen(9080, Box::new(|| Box::new(ResetOnFin)));
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9080)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    s.settimeout(Some(Duration::from_secs(5))).unwrap();
    let err = s.recv(10).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ECONNRESET), "{err}");
}

/// A peer that never reads: what we send stays unacknowledged once its
/// window is full.
struct Deaf;

impl ConnHandler for Deaf {
    fn poll(&mut self, _io: &mut dyn ConnIo) {}
}

#[test]
fn a_blocking_close_waits_only_for_its_own_teardown() {
    let (sim, net) = world(19);
    let _conns = recording_peer(&sim, 9090, b"");
    sim.peer_host().listen(9091, Box::new(|| Box::new(Deaf)));
    let stuck = net.socket().unwrap();
    stuck.connect(SocketAddrV4::new(PEER, 9091)).unwrap();
    stuck.setblocking(false);
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..8 {
        let _ = stuck.send(&chunk);
        net.sleep(Duration::from_millis(50));
    }
    // Nonblocking: returns at once; its FIN waits behind unacknowledged
    // data, in the graveyard.
    stuck.close().unwrap();
    net.sleep(Duration::from_millis(100));
    assert_eq!(net.resources().graveyard, 1);
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9090)).unwrap();
    let t0 = net.now();
    s.close().unwrap();
    assert!(
        net.now() - t0 < Duration::from_secs(1),
        "the other socket's teardown is not ours to wait for ({:?})",
        net.now() - t0
    );
    assert_eq!(net.resources().graveyard, 1, "the stuck one is still there");
}

#[test]
fn connect_ex_reports_a_timeout_as_eagain() {
    let (_sim, net) = world(20);
    let s = net.socket().unwrap();
    s.settimeout(Some(Duration::from_millis(200))).unwrap();
    let nobody = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 77), 9092);
    assert_eq!(s.connect_ex(nobody), Errno::EAGAIN.code(), "as CPython");
}

#[test]
fn closing_a_socket_that_never_configured_asks_the_firmware_nothing() {
    let (_sim, net) = world(21);
    let s = net.socket().unwrap();
    let before = net.stats();
    s.close().unwrap();
    let after = net.stats();
    assert_eq!(
        after.calls_of(FirmwareCall::GetModeData),
        before.calls_of(FirmwareCall::GetModeData),
        "no Close was submitted, so there is no connection state to ask for"
    );
    assert_eq!(after.calls_of(FirmwareCall::DestroyChild), 1);
}

#[test]
fn a_listener_is_torn_down_within_its_nonblocking_close() {
    let (_sim, net) = world(22);
    let s = net.socket().unwrap();
    s.listen(5).unwrap();
    s.setblocking(false);
    s.close().unwrap();
    // The reset completes the pending Accept inside the call; the corpse is
    // buried in the same safe point.
    assert_eq!(net.resources().graveyard, 0);
    assert_eq!(net.resources().pending_tokens, 0);
    assert_eq!(net.resources().children, 0);
}

#[test]
fn a_full_receive_buffer_arms_no_further_receive() {
    // The socket buffers at most 4 Receive buffers of unread data; at that
    // limit no Receive may stay armed (the firmware would keep filling it).
    let limit = 4 * efisock::NetConfig::default().recv_buffer_size;
    let greeting: &'static [u8] = Box::leak(vec![0x5a; limit].into_boxed_slice());
    let (sim, net) = world(21);
    let _conns = recording_peer(&sim, 9110, greeting);
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, 9110)).unwrap();
    let conn_tokens = net.resources().pending_tokens;
    assert_eq!(conn_tokens, 1, "connected: one Receive armed");
    for _ in 0..300 {
        net.sleep(Duration::from_millis(10));
    }
    assert_eq!(
        net.resources().pending_tokens,
        0,
        "with exactly the limit buffered, no Receive is armed"
    );
    s.settimeout(Some(Duration::from_secs(5))).unwrap();
    let first = s.recv(4096).unwrap();
    assert_eq!(first.len(), 4096);
    net.sleep(Duration::from_millis(1));
    assert_eq!(
        net.resources().pending_tokens,
        1,
        "below the limit again, the next safe point arms the Receive"
    );
    let mut total = first.len();
    while total < limit {
        total += s.recv(65536).unwrap().len();
    }
    assert_eq!(total, limit, "every byte the peer sent was buffered");
}
