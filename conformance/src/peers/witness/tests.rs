use super::protocol::{Ending, Leg, Observer, PeerView, Query, Until, VIEW_LEN};
use super::*;
use crate::pattern::fnv1a64;
use crate::peers::mem::MemIo;
use crate::peers::{Service, make_service, protocol as svc};

const MS: u64 = 1_000_000;

fn ask(ledger: &Ledger, io: &mut MemIo, q: Query) -> WitnessQuery {
    let mut w = WitnessQuery::new(ledger.clone());
    io.push_input(&q.encode());
    w.poll(io);
    w
}

fn view_of(io: &MemIo) -> PeerView {
    let bytes: &[u8; VIEW_LEN] = io.sent().try_into().expect("one whole view");
    PeerView::decode(bytes)
}

fn query(token: u64, until: Until, wait_ms: u32) -> Query {
    Query {
        token,
        leg: Leg::Accepted,
        until,
        wait_ms,
    }
}

#[test]
fn echo_bytes_fin_and_settle() {
    let ledger = Ledger::new();
    let mut conn = MemIo::default();
    let mut peer = Witnessed::service(ledger.clone(), make_service(Service::Echo));
    conn.push_input(&42u64.to_be_bytes()[..5]);
    peer.poll(&mut conn);
    assert_eq!(
        ledger.answer(42, Leg::Accepted, Until::Now, 0).0,
        PeerView::UNKNOWN
    );
    conn.push_input(&42u64.to_be_bytes()[5..]);
    conn.push_input(b"hello");
    conn.set_now(10 * MS);
    peer.poll(&mut conn);
    assert_eq!(conn.sent(), b"hello", "the token is not echoed");

    // The query waits: no FIN yet.
    let mut qio = MemIo::default();
    qio.set_now(20 * MS);
    let mut w = ask(&ledger, &mut qio, query(42, Until::Ended, 5000));
    assert!(qio.sent().is_empty());
    assert_eq!(qio.wake(), Some(20 * MS + QUERY_POLL_NS));

    conn.set_now(30 * MS);
    conn.set_state(PeerConnState::PeerFin);
    peer.poll(&mut conn);
    qio.set_now(30 * MS + SETTLE_NS - 1);
    w.poll(&mut qio);
    assert!(qio.sent().is_empty(), "still settling");
    qio.set_now(30 * MS + SETTLE_NS);
    w.poll(&mut qio);
    let v = view_of(&qio);
    assert_eq!(qio.close_calls(), 1);
    assert!(v.known && !v.ended && !v.self_reset);
    assert_eq!(v.observer, Observer::Socket);
    assert_eq!((v.bytes_in, v.checksum_in), (5, fnv1a64(b"hello")));
    assert_eq!(v.fin_at_ns, Some(20 * MS), "relative to registration");
    assert_eq!(v.ending(), Ending::Fin);
    assert_eq!(v.remote_port, 49152);
}

#[test]
fn rst_from_the_client_is_not_a_self_reset() {
    let ledger = Ledger::new();
    let mut conn = MemIo::default();
    let mut peer = Witnessed::service(ledger.clone(), make_service(Service::AcceptHold));
    conn.push_input(&7u64.to_be_bytes());
    peer.poll(&mut conn);
    conn.set_state(PeerConnState::Reset);
    conn.set_now(3 * MS);
    peer.poll(&mut conn);
    let (v, ready) = ledger.answer(7, Leg::Accepted, Until::Ended, 3 * MS);
    assert!(ready && v.ended);
    assert_eq!((v.ending(), v.rst_at_ns), (Ending::Rst, Some(3 * MS)));

    // The source-rst service resets by itself: that is not the client's RST.
    let mut conn = MemIo::default();
    let mut peer = Witnessed::service(ledger.clone(), make_service(Service::SourceRst));
    conn.push_input(&8u64.to_be_bytes());
    conn.push_input(&svc::source_request(3));
    peer.poll(&mut conn);
    conn.ack_all();
    peer.poll(&mut conn);
    assert_eq!(conn.abort_calls(), 1);
    let (v, _) = ledger.answer(8, Leg::Accepted, Until::Now, 0);
    assert_eq!(
        (v.ending(), v.bytes_out, v.acked_out),
        (Ending::PeerReset, 3, 3)
    );
}

#[test]
fn wire_observations_win_over_socket_states() {
    let ledger = Ledger::new();
    let mut conn = WireIo {
        mem: MemIo::default(),
        wire: WireView::default(),
    };
    let mut peer = Witnessed::service(ledger.clone(), make_service(Service::SourceFin));
    conn.mem.set_now(100);
    conn.mem.push_input(&9u64.to_be_bytes());
    conn.mem.push_input(&svc::source_request(0));
    peer.poll(&mut conn);
    // The service closed first; the client's RST is visible only on the wire.
    conn.wire = WireView {
        fin_at_ns: None,
        rst_at_ns: Some(150),
        max_window: Some(2 << 20),
        window_scale: Some(6),
    };
    conn.mem.set_state(PeerConnState::Closed);
    peer.poll(&mut conn);
    let (v, _) = ledger.answer(9, Leg::Accepted, Until::Now, 0);
    assert_eq!(v.observer, Observer::Wire);
    assert_eq!((v.ending(), v.rst_at_ns), (Ending::Rst, Some(50)));
    assert_eq!((v.max_window, v.window_scale), (Some(2 << 20), Some(6)));
}

#[test]
fn unknown_tokens_wait_then_answer_unknown_and_bad_queries_reset() {
    let ledger = Ledger::new();
    let mut qio = MemIo::default();
    let mut w = ask(&ledger, &mut qio, query(1, Until::Now, 10));
    assert!(qio.sent().is_empty(), "an unknown token may still register");
    qio.set_now(10 * MS);
    w.poll(&mut qio);
    assert_eq!(view_of(&qio), PeerView::UNKNOWN);

    let mut qio = MemIo::default();
    let mut bad = query(1, Until::Now, 10).encode();
    bad[9] = 9;
    qio.push_input(&bad);
    WitnessQuery::new(ledger.clone()).poll(&mut qio);
    assert_eq!(qio.abort_calls(), 1);

    let mut conn = MemIo::default();
    conn.push_input(&[1, 2, 3]);
    conn.set_state(PeerConnState::PeerFin);
    Witnessed::service(ledger, make_service(Service::Echo)).poll(&mut conn);
    assert_eq!(conn.abort_calls(), 1, "a short tag is malformed");
}

#[test]
fn connect_back_leg_is_recorded_under_the_same_token() {
    let ledger = Ledger::new();
    let mut conn = MemIo::default();
    let mut peer = Witnessed::service(ledger.clone(), make_service(Service::ConnectBack));
    conn.push_input(&5u64.to_be_bytes());
    conn.push_input(&svc::connect_back_request(44_060, 3));
    peer.poll(&mut conn);
    let (to, mut client) = peer.take_connect_back().expect("request");
    assert_eq!(to.port(), 44_060);
    let mut back = MemIo::default();
    client.poll(&mut back);
    assert_eq!(back.sent().len(), 3);
    let (v, _) = ledger.answer(5, Leg::ConnectBack, Until::Now, 0);
    assert!(v.known);
    assert_eq!(v.bytes_out, 3);
    assert!(ledger.answer(5, Leg::Accepted, Until::Now, 0).0.known);
}

#[test]
fn the_ledger_forgets_the_oldest_beyond_its_capacity() {
    let ledger = Ledger::new();
    for t in 0..=LEDGER_CAPACITY as u64 {
        ledger.register(t, Leg::Accepted, 0, 1);
    }
    assert!(!ledger.answer(0, Leg::Accepted, Until::Now, 0).0.known);
    assert!(ledger.answer(1, Leg::Accepted, Until::Now, 0).0.known);
}

/// A [`MemIo`] whose host also reports wire observations.
struct WireIo {
    mem: MemIo,
    wire: WireView,
}

impl PeerIo for WireIo {
    fn now_ns(&self) -> u64 {
        self.mem.now_ns()
    }
    fn state(&self) -> PeerConnState {
        self.mem.state()
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.mem.recv(buf)
    }
    fn send(&mut self, data: &[u8]) -> usize {
        self.mem.send(data)
    }
    fn send_queue(&self) -> usize {
        self.mem.send_queue()
    }
    fn close(&mut self) {
        self.mem.close();
    }
    fn abort(&mut self) {
        self.mem.abort();
    }
    fn local_addr(&self) -> SocketAddrV4 {
        self.mem.local_addr()
    }
    fn peer_addr(&self) -> SocketAddrV4 {
        self.mem.peer_addr()
    }
    fn wake_at(&mut self, t_ns: u64) {
        self.mem.wake_at(t_ns);
    }
    fn wire(&self) -> Option<WireView> {
        Some(self.wire)
    }
}
