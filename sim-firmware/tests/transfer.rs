//! Data transfer: per-segment Receive, 1 MiB each way with checksums, the
//! cost of not calling Poll, backpressure, and determinism.

mod common;
use common::*;
use efisock::firmware::{Status, Tcp4};
use efisock_sim::{LinkConfig, SimConfig, SimTcp4};

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// Receive until FIN with one 64 KiB token, polling; returns bytes.
fn receive_all(env: &Env, t: &SimTcp4, poll: bool) -> Vec<u8> {
    let rx = Io::rx(env, 65536);
    let mut out = Vec::new();
    loop {
        rx.rearm_rx();
        let st = receive(t, &rx);
        if st == efisock::firmware::status::CONNECTION_FIN {
            break;
        }
        assert_eq!(st, Status::SUCCESS);
        let ok = if poll {
            env.wait_polling(t, rx.tok.event, 60_000_000_000)
        } else {
            env.wait(rx.tok.event, 600_000_000_000)
        };
        assert!(ok, "receive stalled");
        if rx.status() == efisock::firmware::status::CONNECTION_FIN {
            break;
        }
        assert_eq!(rx.status(), Status::SUCCESS);
        out.extend(rx.received());
    }
    rx.free(env);
    out
}

#[test]
fn receive_completes_per_segment() {
    let env = Env::new(SimConfig::new(31));
    listen_source(&env.sim, 19, pattern(3000, 1), false);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    let rx = Io::rx(&env, 65536);
    let mut sizes = Vec::new();
    while sizes.iter().sum::<usize>() < 3000 {
        rx.rearm_rx();
        assert_eq!(receive(&t, &rx), Status::SUCCESS);
        assert!(env.wait(rx.tok.event, 1_000_000_000));
        sizes.push(rx.received().len());
    }
    // Each completion carries what the frames processed so far delivered,
    // never the whole 3000 bytes in one completion.
    assert_eq!(sizes.iter().sum::<usize>(), 3000);
    assert!(sizes.iter().all(|&s| s <= 1460), "{sizes:?}");
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn one_mib_each_way_with_checksum() {
    let env = Env::new(SimConfig::new(32));
    let up = pattern(1 << 20, 7);
    let sink = listen_sink(&env.sim, 9, true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    // Eight fragments: exercises the gather path.
    let tx = Io::tx_frags(&env, &up, 8);
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(env.wait_polling(&t, tx.tok.event, 60_000_000_000));
    assert_eq!(tx.status(), Status::SUCCESS);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    assert_eq!(checksum(&sink.borrow().bytes), checksum(&up));
    assert_eq!(sink.borrow().bytes.len(), up.len());
    tx.free(&env);
    env.destroy(h);

    let down = pattern(1 << 20, 9);
    listen_source(&env.sim, 19, down.clone(), true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    let got = receive_all(&env, &t, true);
    assert_eq!(got.len(), down.len());
    assert_eq!(checksum(&got), checksum(&down));
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn without_poll_receive_is_paced_by_the_10ms_mnp_tick() {
    let run = |poll: bool| {
        let env = Env::new(SimConfig::new(33));
        listen_source(&env.sim, 19, pattern(200_000, 3), true);
        let (h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
        let start = env.sim.now_ns();
        let got = receive_all(&env, &t, poll);
        assert_eq!(got.len(), 200_000);
        let took = env.sim.now_ns() - start;
        assert_eq!(close(&env, &t, false), Status::SUCCESS);
        env.destroy(h);
        assert_clean(&env);
        took
    };
    let slow = run(false);
    let fast = run(true);
    // ~137 segments at one frame per 10 ms.
    assert!(slow >= 1_300_000_000, "without Poll took {slow} ns");
    assert!(fast * 10 < slow, "Poll {fast} ns vs no Poll {slow} ns");
}

#[test]
fn full_send_buffer_keeps_transmit_pending() {
    let env = Env::new(SimConfig::new(34));
    let sink = listen_sink(&env.sim, 9, false); // never reads
    let (h, t) = env.child();
    let mut opt = options(10, 8192);
    let cfg = active_cfg(PEER, 9, 0);
    assert_eq!(configure_opt(&t, &cfg, &mut opt), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 1_000_000_000));
    // Peer window (256 KiB) + our send buffer (8 KiB) < 1 MiB.
    let tx = Io::tx(&env, &pattern(1 << 20, 1));
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(!env.wait(tx.tok.event, 5_000_000_000), "must stay pending");
    assert!(sink.borrow().bytes.is_empty());
    assert_eq!(reset(&t), Status::SUCCESS);
    assert_eq!(tx.status(), Status::ABORTED);
    tx.free(&env);
    c.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn lossy_link_still_delivers_exactly() {
    let mut cfg = SimConfig::new(35);
    cfg.link = LinkConfig {
        latency_ns: 2_000_000,
        bandwidth_bps: 100_000_000,
        loss: 0.02,
        duplicate: 0.01,
        reorder: 0.02,
        jitter_ns: 500_000,
    };
    let env = Env::new(cfg);
    let data = pattern(100_000, 5);
    listen_source(&env.sim, 19, data.clone(), true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    let got = receive_all(&env, &t, true);
    assert_eq!(checksum(&got), checksum(&data));
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.destroy(h);
    assert!(env.sim.stats().frames_dropped > 0);
    assert_clean(&env);
}

fn scenario(seed: u64) -> (Vec<String>, efisock_sim::SimStats, u16) {
    let mut cfg = SimConfig::new(seed);
    cfg.link.loss = 0.01;
    cfg.link.jitter_ns = 300_000;
    let env = Env::new(cfg);
    listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS);
    let mut cd: efisock::firmware::Tcp4ConfigData = active_cfg(PEER, 7, 0);
    // SAFETY: `cd` is live and writable, and its `control_option` is null, so
    // the firmware writes only `cd` itself; every other output is null.
    let _ = unsafe {
        t.get_mode_data(
            core::ptr::null_mut(),
            &mut cd,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    let tx = Io::tx(&env, &pattern(50_000, 2));
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(env.wait(tx.tok.event, 10_000_000_000));
    let rx = Io::rx(&env, 4096);
    let mut n = 0;
    while n < 50_000 {
        rx.rearm_rx();
        assert_eq!(receive(&t, &rx), Status::SUCCESS);
        assert!(env.wait(rx.tok.event, 10_000_000_000));
        n += rx.received().len();
    }
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    tx.free(&env);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
    (
        env.sim.trace(),
        env.sim.stats(),
        cd.access_point.station_port,
    )
}

#[test]
fn same_seed_same_run_different_seed_different_isn_and_port() {
    let a = scenario(0xFEED);
    let b = scenario(0xFEED);
    assert_eq!(a.0, b.0, "trace differs for the same seed");
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    let c = scenario(0xBEEF);
    assert_ne!(a.2, c.2, "ephemeral port should depend on the seed");
    let isn = |t: &[String]| t.iter().find(|l| l.contains("isn=")).cloned().unwrap();
    assert_ne!(
        isn(&a.0).split("isn=").nth(1),
        isn(&c.0).split("isn=").nth(1)
    );
    assert!((1024..2048).contains(&a.2));
}

#[test]
fn a_bulk_receive_burst_waits_in_the_nic_queue_instead_of_being_dropped() {
    // QEMU holds what virtio-net's ring cannot take (NIC_QUEUE_FRAMES): a
    // fast source's bursts are never dropped at the NIC, so no segment waits
    // for a retransmission timeout.
    let env = Env::new(SimConfig::new(36));
    let data = pattern(1 << 20, 6);
    listen_source(&env.sim, 20, data.clone(), true);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 20), Status::SUCCESS);
    let got = receive_all(&env, &t, true);
    assert_eq!(checksum(&got), checksum(&data));
    assert_eq!(env.sim.stats().frames_dropped, 0, "a burst was dropped");
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.destroy(h);
    assert_clean(&env);
}
