//! Per-function statuses of the simulated EDK2 TCP4 through the raw trait.

mod common;
use common::*;
use efisock::firmware::status::{CONNECTION_FIN, CONNECTION_RESET};
use efisock::firmware::{Status, Tcp4, Tcp4ConnectionState};
use efisock_sim::{PeerConnState, Profile, SimConfig};

#[test]
fn unconfigured_calls_report_not_started() {
    let env = Env::new(SimConfig::new(1));
    let (h, t) = env.child();
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::NOT_STARTED);
    let r = Io::rx(&env, 16);
    assert_eq!(receive(&t, &r), Status::NOT_STARTED);
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::NOT_STARTED);
    assert_eq!(reset(&t), Status::ACCESS_DENIED);
    assert_eq!(t.poll(), Status::SUCCESS);
    c.free(&env);
    r.free(&env);
    cl.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn no_address_reports_no_mapping_until_dhcp_completes() {
    let env = Env::unaddressed(SimConfig::new(2));
    let (h, t) = env.child();
    let cfg = active_cfg(PEER, 7, 0);
    assert_eq!(configure(&t, &cfg), Status::NO_MAPPING);
    // Select DHCP; the lease arrives after 3.5 s.
    let dhcp: i32 = 1;
    // SAFETY: `dhcp` is a live i32: 4 readable bytes, copied during the call.
    let st = unsafe {
        efisock::firmware::Ip4Config2::set_data(
            efisock::firmware::Platform::ip4_config2(&env.p),
            efisock::firmware::Ip4Config2DataType::POLICY,
            4,
            &dhcp as *const i32 as *const _,
        )
    };
    assert_eq!(st, Status::SUCCESS);
    env.sim.advance(3_000_000_000);
    assert_eq!(configure(&t, &cfg), Status::NO_MAPPING);
    env.sim.advance(600_000_000);
    // The SetData(DHCP) above, before the boot's first lease, replaced the
    // default interface this child holds: it stays unmapped, a fresh child
    // maps (measured on OVMF: efisock-smoke `unmapped_child_after_lease`,
    // efi-target/OBSERVED.md; Ip4Config2Impl.c `Ip4Config2SetPolicy`).
    assert_eq!(configure(&t, &cfg), Status::NO_MAPPING);
    let (h2, fresh) = env.child();
    assert_eq!(configure(&fresh, &cfg), Status::SUCCESS);
    env.destroy(h2);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn connect_echo_and_receive_fin_as_return_value() {
    let env = Env::new(SimConfig::new(3));
    let seen = listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS);
    let mut st = Tcp4ConnectionState::CLOSED;
    let _ = get_state(&t, &mut st);
    assert_eq!(st, Tcp4ConnectionState::ESTABLISHED);
    // Connect again on an established child: ACCESS_DENIED.
    let c2 = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c2), Status::ACCESS_DENIED);
    c2.free(&env);

    let tx = Io::tx(&env, b"hello, firmware");
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(env.wait(tx.tok.event, 1_000_000_000));
    assert_eq!(tx.status(), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(rx.status(), Status::SUCCESS);
    assert_eq!(rx.received(), b"hello, firmware");
    assert_eq!(seen.borrow().bytes, b"hello, firmware");

    // Half-close from the peer: shut our side, peer echoes FIN back after ours.
    // Here the peer closes first: make it see our FIN by closing gracefully.
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
    assert!(env.wait(cl.event, 10_000_000_000));
    assert_eq!(cl.status(), Status::SUCCESS);
    cl.free(&env);
    tx.free(&env);
    rx.free(&env);
    env.destroy(h);
    assert!(seen.borrow().states.contains(&PeerConnState::PeerFin));
    assert_clean(&env);
}

#[test]
fn receive_returns_connection_fin_when_fin_in_and_nothing_buffered() {
    let env = Env::new(SimConfig::new(4));
    listen_source(&env.sim, 19, b"bye".to_vec(), true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(rx.received(), b"bye");
    env.sim.advance(100_000_000);
    rx.rearm_rx();
    assert_eq!(
        receive(&t, &rx),
        CONNECTION_FIN,
        "FIN must be the function result"
    );
    // Token not signalled.
    assert_eq!(env.boot_check(rx.tok.event), Status::NOT_READY);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn receive_fin_quirk_off_completes_token_with_connection_fin() {
    let mut cfg = SimConfig::new(4);
    cfg.quirks
        .set("receive_fin_as_return_value", false)
        .unwrap();
    let env = Env::new(cfg);
    listen_source(&env.sim, 19, b"".to_vec(), true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    env.sim.advance(100_000_000);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(rx.status(), CONNECTION_FIN);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn pending_receive_completes_with_connection_fin_when_fin_arrives() {
    let env = Env::new(SimConfig::new(5));
    // Peer sends nothing and closes after 50 ms.
    listen_source(&env.sim, 19, Vec::new(), true);
    let (h, t) = env.child();
    let cfg = active_cfg(PEER, 19, 0);
    assert_eq!(configure(&t, &cfg), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    // Receive while connecting: accepted, pending.
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert!(env.wait(c.event, 1_000_000_000));
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(rx.status(), CONNECTION_FIN);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    c.free(&env);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn connect_to_closed_port_completes_connection_reset() {
    let env = Env::new(SimConfig::new(6));
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9999), CONNECTION_RESET);
    env.destroy(h);
    assert_clean(&env);

    let mut cfg = SimConfig::new(6);
    cfg.quirks
        .set("connect_closed_port_reports_reset", false)
        .unwrap();
    let env = Env::new(cfg);
    let (h, t) = env.child();
    assert_eq!(
        connect(&env, &t, PEER, 9999),
        efisock::firmware::status::CONNECTION_REFUSED
    );
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn connect_to_silent_host_times_out_after_75s() {
    let env = Env::new(SimConfig::new(7));
    let (h, t) = env.child();
    let start = env.sim.now_ns();
    // 10.0.2.99 does not exist: SYNs vanish.
    assert_eq!(
        connect(&env, &t, std::net::Ipv4Addr::new(10, 0, 2, 99), 80),
        Status::TIMEOUT
    );
    let took = env.sim.now_ns() - start;
    assert!(
        (75_000_000_000..76_000_000_000).contains(&took),
        "took {took}"
    );
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn configure_null_aborts_every_pending_token_including_close() {
    let env = Env::new(SimConfig::new(8));
    let seen = listen_sink(&env.sim, 9, false);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
    // The peer never reads nor closes: the close stays pending (FIN_WAIT_2).
    env.sim.advance(100_000_000);
    assert_eq!(env.boot_check(cl.event), Status::NOT_READY);
    let frames_before = env.sim.stats().frames_sent;
    assert_eq!(reset(&t), Status::SUCCESS);
    // Completed inside the call.
    assert_eq!(env.boot_check(rx.tok.event), Status::SUCCESS);
    assert_eq!(env.boot_check(cl.event), Status::SUCCESS);
    assert_eq!(rx.status(), Status::ABORTED);
    assert_eq!(cl.status(), Status::ABORTED);
    assert_eq!(env.sim.stats().frames_sent, frames_before, "no FIN, no RST");
    env.sim.advance(1_000_000_000);
    assert!(!seen.borrow().states.contains(&PeerConnState::Reset));
    rx.free(&env);
    cl.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn close_with_unread_data_sends_rst_seen_by_peer() {
    let env = Env::new(SimConfig::new(9));
    let seen = listen_source(&env.sim, 19, b"unread data".to_vec(), false);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    env.sim.advance(200_000_000); // data arrives, nobody reads
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
    assert_eq!(
        env.boot_check(cl.event),
        Status::SUCCESS,
        "completes inside the call"
    );
    assert_eq!(cl.status(), Status::SUCCESS);
    env.sim.advance(100_000_000);
    assert_eq!(seen.borrow().states.last(), Some(&PeerConnState::Reset));
    cl.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn peer_reset_completes_pending_tokens_with_connection_reset() {
    struct Resetter;
    impl efisock_sim::ConnHandler for Resetter {
        fn poll(&mut self, io: &mut dyn efisock_sim::ConnIo) {
            if io.state() == PeerConnState::Established {
                let mut b = [0u8; 8];
                if io.recv(&mut b) > 0 {
                    io.abort();
                }
            }
        }
    }
    let env = Env::new(SimConfig::new(10));
    env.sim
        .peer_host()
        .listen(5, Box::new(|| Box::new(Resetter)));
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 5), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    let tx = Io::tx(&env, b"x");
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(rx.status(), CONNECTION_RESET);
    assert_eq!(
        tx.status(),
        Status::SUCCESS,
        "its bytes were segmented before the RST"
    );
    // The socket is closed now: later Receive/Transmit are ACCESS_DENIED
    // (SockRcv/SockSend state check) and GetModeData reports CLOSED.
    let rx2 = Io::rx(&env, 8);
    assert_eq!(receive(&t, &rx2), Status::ACCESS_DENIED);
    let mut st = Tcp4ConnectionState::ESTABLISHED;
    let _ = get_state(&t, &mut st);
    assert_eq!(st, Tcp4ConnectionState::CLOSED);
    // The stored error leaks into the next connection's first Receive.
    listen_echo(&env.sim, 7);
    let cfg7 = active_cfg(PEER, 7, 0);
    assert_eq!(reset(&t), Status::SUCCESS);
    assert_eq!(
        configure(&t, &cfg7),
        Status::SUCCESS,
        "Configure(NULL) clears it"
    );
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 1_000_000_000));
    assert_eq!(receive(&t, &rx2), Status::SUCCESS);
    assert_eq!(
        env.boot_check(rx2.tok.event),
        Status::NOT_READY,
        "cleared by Configure(NULL)"
    );
    assert_eq!(reset(&t), Status::SUCCESS);
    c.free(&env);
    rx.free(&env);
    rx2.free(&env);
    tx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn time_wait_holds_the_station_port() {
    let env = Env::new(SimConfig::new(11));
    listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    let cfg = active_cfg(PEER, 7, 5555);
    assert_eq!(configure(&t, &cfg), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 1_000_000_000));
    assert_eq!(c.status(), Status::SUCCESS);
    // Active close: we send FIN first, peer echoes FIN: we reach TIME_WAIT.
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
    env.sim.advance(300_000_000);
    let mut st = Tcp4ConnectionState::CLOSED;
    let _ = get_state(&t, &mut st);
    assert_eq!(st, Tcp4ConnectionState::TIME_WAIT);
    let (h2, t2) = env.child();
    assert_eq!(
        configure(&t2, &cfg),
        Status::INVALID_PARAMETER,
        "port held in TIME_WAIT"
    );
    // Close completes when TIME_WAIT (2 s) expires; then the port is free.
    assert!(env.wait(cl.event, 3_000_000_000));
    assert_eq!(cl.status(), Status::SUCCESS);
    assert_eq!(reset(&t), Status::SUCCESS);
    assert_eq!(configure(&t2, &cfg), Status::SUCCESS);
    c.free(&env);
    cl.free(&env);
    env.destroy(h);
    env.destroy(h2);
    assert_clean(&env);
}

#[test]
fn cancel_aborts_pending_and_legacy_is_unsupported() {
    for profile in [Profile::Edk2Stable202211, Profile::Legacy] {
        let env = Env::new(SimConfig::new(12).with_profile(profile));
        listen_sink(&env.sim, 9, true);
        let (h, t) = env.child();
        let mut cfg = active_cfg(PEER, 9, 0);
        if profile == Profile::Legacy {
            // Legacy: UseDefaultAddress is ALREADY_STARTED; pass the address.
            assert_eq!(configure(&t, &cfg), Status::ALREADY_STARTED);
            cfg.access_point.use_default_address = false.into();
            cfg.access_point.station_address = addr(SUT);
            cfg.access_point.subnet_mask = addr(std::net::Ipv4Addr::new(255, 255, 255, 0));
        }
        assert_eq!(configure(&t, &cfg), Status::SUCCESS);
        let c = ConnTok::new(&env);
        assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
        assert!(env.wait(c.event, 1_000_000_000));
        let rx = Io::rx(&env, 64);
        assert_eq!(receive(&t, &rx), Status::SUCCESS);
        let st = cancel(&t, &rx.tok);
        if profile == Profile::Legacy {
            assert_eq!(st, Status::UNSUPPORTED);
            assert_eq!(reset(&t), Status::SUCCESS);
            assert_eq!(rx.status(), Status::ABORTED);
        } else {
            assert_eq!(st, Status::SUCCESS);
            assert_eq!(env.boot_check(rx.tok.event), Status::SUCCESS);
            assert_eq!(rx.status(), Status::ABORTED);
            assert_eq!(cancel(&t, &rx.tok), Status::NOT_FOUND);
            assert_eq!(reset(&t), Status::SUCCESS);
        }
        c.free(&env);
        rx.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}

#[test]
fn event_identity_same_event_twice_is_access_denied() {
    let env = Env::new(SimConfig::new(13));
    listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    let rx1 = Io::rx(&env, 64);
    let rx2 = Io::rx(&env, 64);
    rx2.tok.set_event(rx1.tok.event);
    assert_eq!(receive(&t, &rx1), Status::SUCCESS);
    assert_eq!(receive(&t, &rx2), Status::ACCESS_DENIED);
    let b = env.sim.breaches();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].kind, efisock_sim::BreachKind::EventReusedWhilePending);
    rx2.tok.set_event(rx2.tok.event);
    assert_eq!(reset(&t), Status::SUCCESS);
    rx1.free(&env);
    rx2.free(&env);
    env.destroy(h);
}
