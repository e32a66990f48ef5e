//! More status and timing cases: deferred completions, transmit while
//! connecting, AbortOnClose, DestroyChild, reconnect after graceful close.

mod common;
use common::*;
use efisock::firmware::{Platform, Status, Tcp4, Tcp4ServiceBinding};
use efisock_sim::{PeerConnState, SimConfig};

#[test]
fn completions_inside_call_quirk_off_signals_at_next_tick() {
    for inside in [true, false] {
        let mut cfg = SimConfig::new(71);
        cfg.quirks.set("completions_inside_call", inside).unwrap();
        let env = Env::new(cfg);
        listen_source(&env.sim, 19, b"ready".to_vec(), false);
        let (h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
        env.sim.advance(100_000_000);
        let rx = Io::rx(&env, 16);
        assert_eq!(receive(&t, &rx), Status::SUCCESS);
        let now = env.boot_check(rx.tok.event);
        if inside {
            assert_eq!(now, Status::SUCCESS);
        } else {
            assert_eq!(now, Status::NOT_READY);
            assert_eq!(t.poll(), Status::SUCCESS);
            assert_eq!(env.boot_check(rx.tok.event), Status::SUCCESS);
        }
        assert_eq!(rx.received(), b"ready");
        assert_eq!(close(&env, &t, true), Status::SUCCESS);
        rx.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}

#[test]
fn transmit_while_connecting_is_queued_and_sent_after_handshake() {
    let env = Env::new(SimConfig::new(72));
    let seen = listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 9, 0)), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    let tx = Io::tx(&env, b"early");
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert_eq!(env.boot_check(tx.tok.event), Status::NOT_READY);
    assert!(env.wait(tx.tok.event, 1_000_000_000));
    assert_eq!(tx.status(), Status::SUCCESS);
    env.sim.advance(50_000_000);
    assert_eq!(seen.borrow().bytes, b"early");
    // Bad transmit arguments.
    let bad = Io::tx(&env, b"abc");
    bad.set_data_length(4);
    assert_eq!(transmit(&t, &bad), Status::INVALID_PARAMETER);
    bad.set_data_length(3);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    bad.free(&env);
    tx.free(&env);
    c.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn abort_on_close_resets_the_peer() {
    let env = Env::new(SimConfig::new(73));
    let seen = listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    env.sim.advance(10_000_000);
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.sim.advance(10_000_000);
    assert_eq!(seen.borrow().states.last(), Some(&PeerConnState::Reset));
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn destroy_child_aborts_pending_tokens_and_invalidates_the_handle() {
    let env = Env::new(SimConfig::new(74));
    listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    env.destroy(h);
    assert_eq!(rx.status(), Status::ABORTED);
    assert_eq!(env.boot_check(rx.tok.event), Status::SUCCESS);
    assert_eq!(
        env.p.tcp4_service().destroy_child(h),
        Status::INVALID_PARAMETER
    );
    assert!(env.p.tcp4_service().open_tcp4(h).is_err());
    assert_eq!(t.poll(), Status::SUCCESS);
    let rx2 = Io::rx(&env, 8);
    assert_eq!(receive(&t, &rx2), Status::INVALID_PARAMETER);
    rx.free(&env);
    rx2.free(&env);
    assert_clean(&env);
}

#[test]
fn connect_again_after_graceful_close_never_sends_syn() {
    let env = Env::new(SimConfig::new(75));
    let seen = listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    assert_eq!(seen.borrow().accepted, 1);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 80_000_000_000));
    assert_eq!(c.status(), Status::TIMEOUT);
    assert_eq!(seen.borrow().accepted, 1, "no second SYN reached the peer");
    c.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn manual_address_is_write_protected_under_dhcp_and_routes_need_config() {
    use efisock::firmware::{Ip4Config2, Ip4Config2DataType, Ip4Config2ManualAddress, Ipv4Address};
    let env = Env::unaddressed(SimConfig::new(76));
    let dhcp = 1i32;
    let ip = env.p.ip4_config2();
    assert_eq!(
        // SAFETY: `dhcp` is a live i32: 4 readable bytes, copied during the call.
        unsafe {
            ip.set_data(
                Ip4Config2DataType::POLICY,
                4,
                &dhcp as *const i32 as *const _,
            )
        },
        Status::SUCCESS
    );
    let m = Ip4Config2ManualAddress {
        address: Ipv4Address([10, 0, 2, 20]),
        subnet_mask: Ipv4Address([255, 255, 255, 0]),
    };
    assert_eq!(
        // SAFETY: `m` is a live `Ip4Config2ManualAddress` and `data_size` is its
        // size.
        unsafe {
            ip.set_data(
                Ip4Config2DataType::MANUAL_ADDRESS,
                size_of::<Ip4Config2ManualAddress>(),
                &m as *const _ as *const _,
            )
        },
        Status::WRITE_PROTECTED
    );
    assert_eq!(
        // SAFETY: `dhcp` is a live i32, so the 3 bytes claimed are readable.
        unsafe {
            ip.set_data(
                Ip4Config2DataType::POLICY,
                3,
                &dhcp as *const i32 as *const _,
            )
        },
        Status::BAD_BUFFER_SIZE
    );
    let (h, t) = env.child();
    let z = Ipv4Address([0; 4]);
    // SAFETY: the three address pointers are references to the live `z`.
    assert_eq!(unsafe { t.routes(false, &z, &z, &z) }, Status::NOT_STARTED);
    env.destroy(h);
    assert_clean(&env);
}

struct LateSender {
    seen: Shared,
    sent: bool,
}
impl efisock_sim::ConnHandler for LateSender {
    fn poll(&mut self, io: &mut dyn efisock_sim::ConnIo) {
        let st = io.state();
        if self.seen.borrow().states.last() != Some(&st) {
            self.seen.borrow_mut().states.push(st);
        }
        if st == PeerConnState::PeerFin && !self.sent {
            self.sent = io.send(b"too late") > 0;
        }
    }
}

#[test]
fn data_after_local_close_resets_the_connection() {
    for rst in [true, false] {
        let mut cfg = SimConfig::new(77);
        cfg.quirks.set("data_after_close_sends_rst", rst).unwrap();
        let env = Env::new(cfg);
        let seen = shared();
        let s2 = seen.clone();
        env.sim.peer_host().listen(
            6,
            Box::new(move || {
                Box::new(LateSender {
                    seen: s2.clone(),
                    sent: false,
                })
            }),
        );
        let (h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, 6), Status::SUCCESS);
        let cl = CloseTok::new(&env);
        assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
        let done = env.wait(cl.event, 10_000_000_000);
        env.sim.advance(10_000_000);
        let last = *seen.borrow().states.last().unwrap();
        if rst {
            assert!(done);
            assert_eq!(cl.status(), Status::SUCCESS);
            assert_eq!(last, PeerConnState::Reset);
        } else {
            assert_ne!(last, PeerConnState::Reset);
            assert_eq!(reset(&t), Status::SUCCESS);
        }
        cl.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}

#[test]
fn dead_peer_close_times_out_after_retransmissions() {
    let env = Env::new(SimConfig::new(78));
    listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    // The peer vanishes: every packet is lost from now on.
    env.sim.set_link(efisock_sim::LinkConfig {
        loss: 1.0,
        ..Default::default()
    });
    let tx = Io::tx(&env, b"into the void");
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
    let start = env.sim.now_ns();
    // WaitForEvent jumps from one due event to the next (no 1 ms polling).
    assert_eq!(
        efisock::firmware::BootServices::wait_for_event(env.boot(), &[cl.event]),
        Ok(0)
    );
    let took = env.sim.now_ns() - start;
    assert_eq!(cl.status(), Status::TIMEOUT);
    // EDK2 closes on the 13th RTO expiry; the handshake's RTT sample set
    // the RTO to 1 s, so 1+2+4+8+16+32+60x7 = 483 s (TcpTimer.c
    // `TcpRexmitTimeout`, TcpInput.c `TcpComputeRtt`; code-read).
    assert!(
        (483_000_000_000..486_000_000_000).contains(&took),
        "took {took}"
    );
    cl.free(&env);
    tx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn stored_reset_error_leaks_into_next_connections_first_receive() {
    struct Rst;
    impl efisock_sim::ConnHandler for Rst {
        fn poll(&mut self, io: &mut dyn efisock_sim::ConnIo) {
            if io.state() == PeerConnState::Established {
                io.abort();
            }
        }
    }
    for leak in [true, false] {
        let mut cfg = SimConfig::new(79);
        cfg.quirks
            .set("stored_error_leaks_into_next_connection", leak)
            .unwrap();
        let env = Env::new(cfg);
        env.sim.peer_host().listen(5, Box::new(|| Box::new(Rst)));
        listen_echo(&env.sim, 7);
        let (h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, 5), Status::SUCCESS);
        env.sim.advance(10_000_000); // RST arrives
        // Connect again on the same child (CLOSED, still configured); only
        // Receive or Configure(NULL) would clear the stored error.
        let c = ConnTok::new(&env);
        assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
        assert!(env.wait(c.event, 1_000_000_000));
        // Peer resets again right away, so look only at the first Receive.
        let rx = Io::rx(&env, 8);
        let st = receive(&t, &rx);
        if leak {
            assert_eq!(st, Status::SUCCESS);
            assert_eq!(
                env.boot_check(rx.tok.event),
                Status::SUCCESS,
                "completed inside the call"
            );
            assert_eq!(rx.status(), efisock::firmware::status::CONNECTION_RESET);
        } else {
            assert_ne!(env.boot_check(rx.tok.event), Status::SUCCESS);
        }
        assert_eq!(reset(&t), Status::SUCCESS);
        c.free(&env);
        rx.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}

#[test]
fn malformed_fragment_tables_are_invalid_parameter() {
    let env = Env::new(SimConfig::new(75));
    listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    let tx = Io::tx(&env, b"12345678");
    let set_tx_len = |n: u32| tx.set_data_length(n);
    // DataLength 0, then a DataLength that disagrees with the fragments.
    set_tx_len(0);
    assert_eq!(transmit(&t, &tx), Status::INVALID_PARAMETER);
    set_tx_len(9);
    assert_eq!(transmit(&t, &tx), Status::INVALID_PARAMETER);
    let rx = Io::rx(&env, 16);
    rx.set_data_length(0);
    assert_eq!(receive(&t, &rx), Status::INVALID_PARAMETER);
    // Corrected, the same token is accepted: nothing was kept from the refusals.
    set_tx_len(8);
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(env.wait_polling(&t, tx.tok.event, 1_000_000_000));
    assert_eq!(tx.status(), Status::SUCCESS);
    env.destroy(h);
    tx.free(&env);
    rx.free(&env);
    assert_clean(&env);
}
