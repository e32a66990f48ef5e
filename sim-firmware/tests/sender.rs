//! EDK2's sender: a Transmit completes when its last byte is cut into a
//! segment, which the peer's window, the congestion window (from one MSS)
//! and Nagle decide (TcpOutput.c `TcpDataToSend`, `TcpGetSegmentSock` ->
//! SockImpl.c `SockDataSent`; code-read). A zero window is probed without
//! end (TcpTimer.c `TcpProbeTimeout`).

mod common;
use std::cell::Cell;
use std::rc::Rc;

use common::*;
use efisock::firmware::{Status, Tcp4, Tcp4ConnectionState};
use efisock_sim::{ConnHandler, ConnIo, SimConfig};

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

/// The token's event was signalled (CheckEvent, which runs nothing else
/// that could complete it: no frame is processed by it).
fn signalled(env: &Env, io: &Io) -> bool {
    env.boot_check(io.tok.event) == Status::SUCCESS
}

fn signalled_close(env: &Env, close: &CloseTok) -> bool {
    env.boot_check(close.event) == Status::SUCCESS
}

/// Reads nothing until `open` is set, then everything.
struct Gate {
    open: Rc<Cell<bool>>,
    seen: Shared,
}
impl ConnHandler for Gate {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        if !self.open.get() {
            return;
        }
        let mut buf = [0u8; 16384];
        loop {
            let n = io.recv(&mut buf);
            if n == 0 {
                break;
            }
            self.seen.borrow_mut().bytes.extend_from_slice(&buf[..n]);
        }
    }
}

#[test]
fn big_transmit_to_a_peer_that_never_reads_completes_only_as_the_window_allows() {
    let env = Env::new(SimConfig::new(0x5E4D));
    listen_sink(&env.sim, 9, false);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    // 200 KiB of the peer's 256 KiB receive buffer (host::PEER_BUFFER).
    let first = Io::tx(&env, &pattern(200 * 1024, 1));
    assert_eq!(transmit(&t, &first), Status::SUCCESS);
    assert!(
        !signalled(&env, &first),
        "cwnd is one MSS: the token cannot be cut inside the call"
    );
    assert_eq!(t.poll(), Status::SUCCESS);
    assert!(
        !signalled(&env, &first),
        "one ACK grows cwnd by one MSS only"
    );
    let start = env.sim.now_ns();
    assert!(env.wait_polling(&t, first.tok.event, 10_000_000_000));
    assert_eq!(first.status(), Status::SUCCESS);
    // Slow start from 1 MSS to 256 KiB takes several round trips, each at
    // least one frame the SUT processes.
    assert!(env.sim.now_ns() > start, "completed only after Polls");
    // The rest of the window takes part of a second token, never all of it.
    let second = Io::tx(&env, &pattern(64 * 1024, 2));
    assert_eq!(transmit(&t, &second), Status::SUCCESS);
    assert!(!signalled(&env, &second));
    assert!(!env.wait_polling(&t, second.tok.event, 5_000_000_000));
    let mut st = Tcp4ConnectionState::CLOSED;
    assert_eq!(get_state(&t, &mut st), Status::SUCCESS);
    assert_eq!(st, Tcp4ConnectionState::ESTABLISHED);
    // A graceful Close with that token still uncut: EDK2 is in FIN_WAIT_1
    // from the Close on, its FIN queued behind the data (TcpMisc.c
    // `TcpOnAppClose`), as OVMF's recording of close/with_pending_transmit
    // shows.
    let close = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &close), Status::SUCCESS);
    assert!(!signalled_close(&env, &close));
    assert_eq!(get_state(&t, &mut st), Status::SUCCESS);
    assert_eq!(st, Tcp4ConnectionState::FIN_WAIT1);
    assert_eq!(reset(&t), Status::SUCCESS);
    assert_eq!(second.status(), Status::ABORTED);
    assert_eq!(close.status(), Status::ABORTED);
    first.free(&env);
    second.free(&env);
    close.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn nagle_holds_a_second_small_transmit_until_the_ack() {
    for nagle in [true, false] {
        let env = Env::new(SimConfig::new(0x4A61));
        listen_echo(&env.sim, 7);
        let (h, t) = env.child();
        let mut opt = options(10, 0);
        opt.enable_nagle = nagle.into();
        let cfg = active_cfg(PEER, 7, 0);
        assert_eq!(configure_opt(&t, &cfg, &mut opt), Status::SUCCESS);
        let c = ConnTok::new(&env);
        assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
        assert!(env.wait(c.event, 1_000_000_000));
        let a = Io::tx(&env, b"first ten!");
        let b = Io::tx(&env, b"second ten");
        assert_eq!(transmit(&t, &a), Status::SUCCESS);
        assert!(
            signalled(&env, &a),
            "nothing in flight: cut inside the call"
        );
        assert_eq!(transmit(&t, &b), Status::SUCCESS);
        if nagle {
            assert!(!signalled(&env, &b), "Nagle: held while 10 B are unacked");
            assert!(env.wait_polling(&t, b.tok.event, 1_000_000_000));
        } else {
            assert!(signalled(&env, &b), "EnableNagle FALSE: cut at once");
        }
        assert_eq!(b.status(), Status::SUCCESS);
        assert_eq!(reset(&t), Status::SUCCESS);
        a.free(&env);
        b.free(&env);
        c.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}

#[test]
fn a_zero_window_is_probed_beyond_the_retransmission_give_up() {
    let env = Env::new(SimConfig::new(0x2E50));
    let open = Rc::new(Cell::new(false));
    let seen = shared();
    let (o2, s2) = (open.clone(), seen.clone());
    env.sim.peer_host().listen(
        9,
        Box::new(move || {
            Box::new(Gate {
                open: o2.clone(),
                seen: s2.clone(),
            })
        }),
    );
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    let data = pattern(256 * 1024 + 64 * 1024, 3);
    let tx = Io::tx(&env, &data);
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    // 700 s: past DataRetries' 483 s and the old 513 s watchdog.
    let sleep = |ns: u64| {
        let timer = relative_timer(&env, ns);
        assert_eq!(
            efisock::firmware::BootServices::wait_for_event(env.boot(), &[timer]),
            Ok(0)
        );
        env.close_event(timer);
    };
    sleep(100_000_000_000);
    let frames_before = env.sim.stats().frames_sent;
    sleep(600_000_000_000);
    // Each probe is a segment and the peer's ACK: ten in 600 s at 60 s.
    let frames = env.sim.stats().frames_sent - frames_before;
    assert!((18..=24).contains(&frames), "{frames} frames in 600 s");
    assert!(
        !signalled(&env, &tx),
        "neither cut (the window stayed shut) nor given up: {:?}",
        tx.status()
    );
    let mut st = Tcp4ConnectionState::CLOSED;
    assert_eq!(get_state(&t, &mut st), Status::SUCCESS);
    assert_eq!(st, Tcp4ConnectionState::ESTABLISHED, "not given up");
    // Probes from the persist timer: first after the RTO (1 s), then
    // doubling to 60 s (TcpTimer.c `TcpSetProbeTimer`; code-read).
    let probes: Vec<u64> = env
        .sim
        .trace()
        .iter()
        .filter(|l| l.contains("zero-window probe"))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    let gaps_s: Vec<u64> = probes
        .windows(2)
        .map(|w| (w[1] - w[0] + 500_000_000) / 1_000_000_000)
        .collect();
    assert!(gaps_s.len() >= 12, "probed throughout: {gaps_s:?}");
    assert_eq!(gaps_s[..6], [2, 4, 8, 16, 32, 60], "{gaps_s:?}");
    assert!(gaps_s[6..].iter().all(|&g| g == 60), "{gaps_s:?}");
    open.set(true);
    assert!(env.wait_polling(&t, tx.tok.event, 120_000_000_000));
    assert_eq!(tx.status(), Status::SUCCESS);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    assert_eq!(checksum(&seen.borrow().bytes), checksum(&data));
    tx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn an_unanswered_syn_is_retransmitted_at_3_9_21_and_45_seconds() {
    let env = Env::new(SimConfig::new(0x5717));
    env.sim.set_link(efisock_sim::LinkConfig {
        loss: 1.0,
        ..Default::default()
    });
    let (h, t) = env.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 9, 0)), Status::SUCCESS);
    let c = ConnTok::new(&env);
    let start = env.sim.now_ns();
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    // EDK2's RTO before an RTT sample is 3 s, doubling (TcpDispatcher.c
    // l.560, TcpTimer.c `TcpRexmitTimeout`; code-read). smoltcp's own
    // schedule would add SYNs at 1, 7, 15, 31 and 63 s.
    env.sim.advance(74_000_000_000);
    let syn_ms: Vec<u64> = env
        .sim
        .trace()
        .iter()
        .filter(|l| l.contains(" SYN ") && l.contains("isn="))
        .map(|l| {
            let t: u64 = l.split_whitespace().next().unwrap().parse().unwrap();
            (t - start) / 1_000_000
        })
        .collect();
    assert_eq!(syn_ms, [0, 3_000, 9_000, 21_000, 45_000]);
    assert!(
        !env.wait(c.event, 900_000_000),
        "the connect timer runs 75 s"
    );
    assert!(env.wait(c.event, 200_000_000), "connect timer at 75 s");
    assert_eq!(c.status(), Status::TIMEOUT);
    c.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn cancel_is_a_hazard_once_the_data_joined_the_send_buffer() {
    let env = Env::new(SimConfig::new(0xCA9C));
    listen_sink(&env.sim, 9, false);
    let (h, t) = env.child();
    let mut opt = options(10, 8192);
    let cfg = active_cfg(PEER, 9, 0);
    assert_eq!(configure_opt(&t, &cfg, &mut opt), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 1_000_000_000));
    // The first token joins the 8 KiB buffer whole (free >= 2 KiB) and
    // outgrows the peer's 256 KiB window; the second waits for room.
    let first = Io::tx(&env, &pattern(300 * 1024, 4));
    let second = Io::tx(&env, &pattern(1024, 5));
    assert_eq!(transmit(&t, &first), Status::SUCCESS);
    assert_eq!(transmit(&t, &second), Status::SUCCESS);
    assert!(!env.wait_polling(&t, first.tok.event, 3_000_000_000));
    // Waiting list: EDK2 drops the token and nothing refers to it.
    assert_eq!(cancel(&t, &second.tok), Status::SUCCESS);
    assert_eq!(second.status(), Status::ABORTED);
    assert!(env.sim.breaches().is_empty(), "{:?}", env.sim.breaches());
    // Processing list: its bytes stay in the send buffer and a later
    // SockDataSent walks a list without it (SockImpl.c; code-read).
    assert_eq!(cancel(&t, &first.tok), Status::SUCCESS);
    assert_eq!(reset(&t), Status::SUCCESS);
    first.free(&env);
    second.free(&env);
    c.free(&env);
    env.destroy(h);
    let b = env.sim.finish();
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(
        b[0].to_string().contains("joined the send buffer"),
        "{}",
        b[0]
    );
}
