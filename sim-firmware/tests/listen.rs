//! Passive opens: Accept, the emulated backlog, closed listeners.

mod common;
use std::net::SocketAddrV4;

use common::*;
use efisock::firmware::{Platform, Status, Tcp4ConnectionState, Tcp4ServiceBinding};
use efisock_sim::{ConnHandler, ConnIo, PeerConnState, SimConfig};

struct Watch(Shared);
impl ConnHandler for Watch {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let st = io.state();
        let mut s = self.0.borrow_mut();
        if s.states.last() != Some(&st) {
            s.states.push(st);
        }
    }
}

fn watch_connect(env: &Env, port: u16) -> Shared {
    let s = shared();
    env.sim
        .peer_host()
        .connect(SocketAddrV4::new(SUT, port), Box::new(Watch(s.clone())));
    s
}

fn state(t: &efisock_sim::SimTcp4) -> Tcp4ConnectionState {
    let mut st = Tcp4ConnectionState::CLOSED;
    let r = get_state(t, &mut st);
    assert_eq!(r, Status::SUCCESS);
    st
}

#[test]
fn backlog_full_drops_syn_until_accept_makes_room() {
    let env = Env::new(SimConfig::new(21));
    let (h, t) = env.child();
    // MaxSynBackLog range is 5..=10 (TcpProto.h); 2 would mean the default 10.
    let mut opt = options(5, 0);
    let cfg = passive_cfg(80);
    assert_eq!(configure_opt(&t, &cfg, &mut opt), Status::SUCCESS);
    assert_eq!(state(&t), Tcp4ConnectionState::LISTEN);
    let peers: Vec<Shared> = (0..6).map(|_| watch_connect(&env, 80)).collect();
    env.sim.advance(3_000_000_000);
    let est = |s: &Shared| s.borrow().states.last() == Some(&PeerConnState::Established);
    assert_eq!(peers.iter().filter(|s| est(s)).count(), 5, "backlog of 5");
    let third = peers.iter().find(|s| !est(s)).unwrap().clone();
    assert_eq!(
        third.borrow().states.last(),
        Some(&PeerConnState::Connecting),
        "SYN dropped silently, no RST"
    );

    // Accept completes inside the call with a ready child.
    let a = ListenTok::new(&env);
    assert_eq!(accept(&t, &a), Status::SUCCESS);
    assert_eq!(env.boot_check(a.event), Status::SUCCESS);
    assert_eq!(a.status(), Status::SUCCESS);
    let child_h = a.new_child();
    let child = env
        .p
        .tcp4_service()
        .open_tcp4(child_h)
        .expect("accepted child opens");
    assert_eq!(state(&child), Tcp4ConnectionState::ESTABLISHED);
    let c = ConnTok::new(&env);
    assert_eq!(
        connect_tok(&child, &c),
        Status::ACCESS_DENIED,
        "accepted child is passive"
    );

    // Room in the backlog: the third client's retransmitted SYN gets in.
    env.sim.advance(20_000_000_000);
    assert_eq!(
        third.borrow().states.last(),
        Some(&PeerConnState::Established)
    );

    let a2 = ListenTok::new(&env);
    assert_eq!(accept(&t, &a2), Status::SUCCESS);
    assert!(env.wait(a2.event, 1_000_000_000));
    let h2 = a2.new_child();
    assert_ne!(h2, child_h);
    // The other accepted-never children are firmware-internal; tear down.

    assert_eq!(close(&env, &child, true), Status::SUCCESS);
    env.destroy(child_h);
    env.destroy(h2);
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
    c.free(&env);
    a.free(&env);
    a2.free(&env);
    assert_clean(&env);
}

#[test]
fn backlog_quirk_off_answers_excess_syn_with_rst() {
    let mut cfg0 = SimConfig::new(22);
    cfg0.quirks.set("backlog_full_drops_syn", false).unwrap();
    let env = Env::new(cfg0);
    let (h, t) = env.child();
    let mut opt = options(5, 0);
    let cfg = passive_cfg(80);
    assert_eq!(configure_opt(&t, &cfg, &mut opt), Status::SUCCESS);
    let peers: Vec<Shared> = (0..6).map(|_| watch_connect(&env, 80)).collect();
    env.sim.advance(3_000_000_000);
    let last: Vec<_> = peers
        .iter()
        .map(|s| *s.borrow().states.last().unwrap())
        .collect();
    assert_eq!(
        last.iter()
            .filter(|s| **s == PeerConnState::Established)
            .count(),
        5,
        "{last:?}"
    );
    assert_eq!(
        last.iter().filter(|s| **s == PeerConnState::Reset).count(),
        1,
        "{last:?}"
    );
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn accept_pending_then_completes_on_connection_and_data_flows() {
    let env = Env::new(SimConfig::new(23));
    let (h, t) = env.child();
    assert_eq!(configure(&t, &passive_cfg(8080)), Status::SUCCESS);
    let a = ListenTok::new(&env);
    assert_eq!(accept(&t, &a), Status::SUCCESS);
    assert_eq!(env.boot_check(a.event), Status::NOT_READY);
    let seen = shared();
    let data = b"from the peer".to_vec();
    peer_connect(
        &env.sim,
        8080,
        Box::new(SourceH {
            seen: seen.clone(),
            data: data.clone(),
            sent: 0,
        }),
    );
    assert!(env.wait(a.event, 2_000_000_000));
    let ch = a.new_child();
    let child = env.p.tcp4_service().open_tcp4(ch).unwrap();
    let rx = Io::rx(&env, 100);
    assert_eq!(receive(&child, &rx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(rx.received(), data);
    assert_eq!(close(&env, &child, true), Status::SUCCESS);
    env.destroy(ch);
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
    rx.free(&env);
    a.free(&env);
    assert_clean(&env);
}

struct SourceH {
    seen: Shared,
    data: Vec<u8>,
    sent: usize,
}
impl ConnHandler for SourceH {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        self.seen.borrow_mut().states.push(io.state());
        if io.state() == PeerConnState::Established && self.sent < self.data.len() {
            self.sent += io.send(&self.data[self.sent..]);
        }
    }
}

#[test]
fn closed_listener_answers_syn_with_rst() {
    let env = Env::new(SimConfig::new(24));
    let (h, t) = env.child();
    assert_eq!(configure(&t, &passive_cfg(81)), Status::SUCCESS);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    let s = watch_connect(&env, 81);
    env.sim.advance(1_000_000_000);
    assert_eq!(s.borrow().states.last(), Some(&PeerConnState::Reset));
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn legacy_rejects_listen_on_any_address() {
    let env = Env::new(SimConfig::new(25).with_profile(efisock_sim::Profile::Legacy));
    let (h, t) = env.child();
    let mut cfg = passive_cfg(80);
    cfg.access_point.use_default_address = false.into();
    cfg.access_point.subnet_mask = addr(std::net::Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(configure(&t, &cfg), Status::INVALID_PARAMETER);
    cfg.access_point.station_address = addr(SUT);
    assert_eq!(configure(&t, &cfg), Status::SUCCESS);
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn explicit_port_in_use_is_invalid_parameter() {
    let env = Env::new(SimConfig::new(26));
    let (h1, t1) = env.child();
    let (h2, t2) = env.child();
    assert_eq!(configure(&t1, &passive_cfg(90)), Status::SUCCESS);
    assert_eq!(configure(&t2, &passive_cfg(90)), Status::INVALID_PARAMETER);
    assert_eq!(
        configure(&t1, &passive_cfg(91)),
        Status::ACCESS_DENIED,
        "already configured"
    );
    assert_eq!(reset(&t1), Status::SUCCESS);
    assert_eq!(configure(&t2, &passive_cfg(90)), Status::SUCCESS);
    assert_eq!(reset(&t2), Status::SUCCESS);
    env.destroy(h1);
    env.destroy(h2);
    assert_clean(&env);
}

struct Delayed {
    at: Option<u64>,
    sent: bool,
}
impl ConnHandler for Delayed {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        if io.state() != PeerConnState::Established || self.sent {
            return;
        }
        let at = *self.at.get_or_insert(io.now_ns() + 1_000_000_000);
        if io.now_ns() >= at {
            self.sent = io.send(b"wake") == 4;
        } else {
            io.wake_at(at);
        }
    }
}

#[test]
fn peer_wake_at_schedules_a_later_poll() {
    let env = Env::new(SimConfig::new(27));
    let (h, t) = env.child();
    assert_eq!(configure(&t, &passive_cfg(7070)), Status::SUCCESS);
    peer_connect(
        &env.sim,
        7070,
        Box::new(Delayed {
            at: None,
            sent: false,
        }),
    );
    let a = ListenTok::new(&env);
    assert_eq!(accept(&t, &a), Status::SUCCESS);
    assert!(env.wait(a.event, 1_000_000_000));
    let accepted_at = env.sim.now_ns();
    let ch = a.new_child();
    let child = env.p.tcp4_service().open_tcp4(ch).unwrap();
    let rx = Io::rx(&env, 16);
    assert_eq!(receive(&child, &rx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 3_000_000_000));
    assert_eq!(rx.received(), b"wake");
    assert!(env.sim.now_ns() - accepted_at >= 990_000_000);
    assert_eq!(close(&env, &child, true), Status::SUCCESS);
    env.destroy(ch);
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
    rx.free(&env);
    a.free(&env);
    assert_clean(&env);
}
