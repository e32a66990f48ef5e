//! The single decision source: tape text form, replay bit for bit,
//! determinism of the decision hash, PCT, swarm fault knobs, heal, and
//! status injection with a consistent firmware state.

mod common;
use std::cell::RefCell;

use common::*;
use efisock::firmware::status::CONNECTION_RESET;
use efisock::firmware::{BootServices, Event, EventType, Status, Tcp4, TimerDelay, Tpl};
use efisock_sim::{Faults, PeerConnState, Scheduler, SimConfig, SimStats, Tape};

thread_local! {
    static LOG: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "efiapi" fn mark(_e: Event, ctx: *mut core::ffi::c_void) {
    LOG.with(|l| l.borrow_mut().push(ctx as usize));
}

fn notify_event(env: &Env, ty: EventType, tag: usize) -> Event {
    // SAFETY: the context is a plain integer tag that `mark` never
    // dereferences.
    unsafe {
        env.boot()
            .create_event(ty, Tpl::CALLBACK, Some(mark), tag as *mut _)
    }
    .unwrap()
}

// ---- tape, scheduler and faults text forms ------------------------------

#[test]
fn tape_text_round_trips() {
    let cases: Vec<Vec<u32>> = vec![
        vec![],
        vec![0],
        vec![0, 0, 0],
        vec![0; 1000],
        vec![1, 0, 0, 0, 0, 2, 35, 36, 1295, 1296, u32::MAX],
        (0..500).map(|i| (i * 7919) % 97).collect(),
    ];
    for v in cases {
        let t = Tape::from_values(v.clone());
        let s = t.to_string();
        let back: Tape = s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(back, t, "{s:?}");
        assert_eq!(back.len(), v.len());
        assert_eq!(back.is_empty(), v.is_empty());
    }
    assert_eq!(Tape::from_values(vec![0; 1000]).to_string(), "_rs.");
    assert_eq!(Tape::default().to_string(), "");
}

#[test]
fn malformed_tapes_get_precise_errors() {
    let bad = [
        ("01A", "unexpected 'A' at byte 2"),
        ("0 1", "unexpected ' ' at byte 1"),
        ("_", "zero run starting at byte 0 is not terminated by '.'"),
        ("12_5", "zero run starting at byte 2 is not terminated"),
        ("_.", "empty zero run at byte 0"),
        ("_0.", "zero run of length 0 at byte 0"),
        ("_zzzzzzzz.", "exceeds"),
        ("_1x!.", "byte 3 ('!') is not a base-36 digit"),
        ("{", "value starting at byte 0 is not terminated by '}'"),
        ("{}", "empty value at byte 0"),
        ("{1z141z4}", "exceeds 4294967295"),
        ("é", "unexpected 'é' at byte 0"),
    ];
    for (s, want) in bad {
        let e = s.parse::<Tape>().expect_err(s);
        assert!(
            e.to_string().contains(want),
            "{s:?}: got {e:?}, want {want:?}"
        );
    }
}

#[test]
fn scheduler_text_round_trips_and_rejects_bad_depths() {
    for s in [
        Scheduler::Fifo,
        Scheduler::Uniform,
        Scheduler::Pct { depth: 1 },
        Scheduler::Pct { depth: 3 },
    ] {
        assert_eq!(s.to_string().parse::<Scheduler>().unwrap(), s);
    }
    assert_eq!(
        "pct3".parse::<Scheduler>().unwrap(),
        Scheduler::Pct { depth: 3 }
    );
    for (s, want) in [
        ("pct0", "at least 1"),
        ("pct", "decimal number"),
        ("pct+3", "decimal number"),
        ("pct99999999999", "does not fit"),
        ("random", "unknown scheduler"),
    ] {
        let e = s.parse::<Scheduler>().expect_err(s);
        assert!(e.to_string().contains(want), "{s:?}: {e}");
    }
}

#[test]
fn swarm_knobs_derive_from_the_seed_and_print_parse_round_trip() {
    assert_eq!(Faults::none().to_string(), "none");
    assert!("none".parse::<Faults>().unwrap().is_none());
    let mut distinct = std::collections::BTreeSet::new();
    let (mut loss_on, mut loss_off) = (0, 0);
    for seed in 0..200u64 {
        let f = Faults::swarm(seed);
        assert_eq!(f, Faults::swarm(seed), "seed {seed}");
        assert!(f.loss <= 0.30, "seed {seed}: {f}");
        let s = f.to_string();
        assert_eq!(s.parse::<Faults>().unwrap(), f, "{s}");
        if f.loss > 0.0 {
            loss_on += 1;
        } else {
            loss_off += 1;
        }
        distinct.insert(s);
    }
    assert!(distinct.len() > 150, "swarm varies with the seed");
    assert!(
        loss_on > 50 && loss_off > 50,
        "{loss_on} on / {loss_off} off"
    );
    let f: Faults = "loss=0.1,dup=0.02,reorder=0.05,spike=0.01,jitter,inject=0.001,dhcp_delay=1500000000,dhcp_fail,late=0.3"
        .parse()
        .unwrap();
    assert_eq!(f.dhcp_delay_ns, 1_500_000_000);
    assert!(f.jitter && f.dhcp_fail);
    assert_eq!(f.to_string().parse::<Faults>().unwrap(), f);
    for (s, want) in [
        ("", "empty string"),
        ("loss=2", "not a probability"),
        ("loss=x", "not a number"),
        ("loss", "needs a value"),
        ("jitter=1", "takes no value"),
        ("loss=0.1,loss=0.2", "given twice"),
        ("loss=0.1,", "empty knob"),
        ("bogus", "unknown knob \"bogus\""),
        ("dhcp_delay=-1", "whole number"),
    ] {
        let e = s.parse::<Faults>().expect_err(s);
        assert!(e.to_string().contains(want), "{s:?}: {e}");
    }
}

// ---- determinism and replay -------------------------------------------

struct Run {
    trace: Vec<String>,
    stats: SimStats,
    hash: u64,
    decisions: u64,
    tape: Tape,
    echoed: Vec<u8>,
}

/// Connect, echo 6 KB in 1 KB rounds over a 25% lossy link, with two
/// periodic notify timers racing the traffic, then abort.
fn scenario(cfg: SimConfig) -> Run {
    LOG.with(|l| l.borrow_mut().clear());
    let env = Env::new(cfg);
    listen_echo(&env.sim, 7);
    let timers: Vec<Event> = (0..2)
        .map(|i| {
            let e = notify_event(&env, EventType::TIMER | EventType::NOTIFY_SIGNAL, 100 + i);
            assert_eq!(
                env.boot().set_timer(e, TimerDelay::PERIODIC, 30_000),
                Status::SUCCESS
            );
            e
        })
        .collect();
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS);
    let mut echoed = Vec::new();
    for round in 0..6u8 {
        let msg: Vec<u8> = (0..1024u32).map(|i| (i as u8) ^ round).collect();
        let tx = Io::tx(&env, &msg);
        assert_eq!(transmit(&t, &tx), Status::SUCCESS);
        assert!(env.wait(tx.tok.event, 60_000_000_000), "transmit stalled");
        let rx = Io::rx(&env, 4096);
        let mut got = 0;
        while got < msg.len() {
            rx.rearm_rx();
            assert_eq!(receive(&t, &rx), Status::SUCCESS);
            assert!(
                env.wait_polling(&t, rx.tok.event, 60_000_000_000),
                "receive stalled"
            );
            assert_eq!(rx.status(), Status::SUCCESS);
            let r = rx.received();
            got += r.len();
            echoed.extend(r);
        }
        tx.free(&env);
        rx.free(&env);
    }
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.destroy(h);
    for e in timers {
        env.close_event(e);
    }
    assert_clean(&env);
    Run {
        trace: env.sim.trace(),
        stats: env.sim.stats(),
        hash: env.sim.decision_hash(),
        decisions: env.sim.decisions(),
        tape: env.sim.tape(),
        echoed,
    }
}

fn lossy_uniform(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(seed);
    cfg.scheduler = Scheduler::Uniform;
    cfg.faults.loss = 0.25;
    cfg.faults.jitter = true;
    cfg
}

#[test]
fn same_seed_same_decisions_different_seed_different_hash() {
    let a = scenario(lossy_uniform(0xA11CE));
    let b = scenario(lossy_uniform(0xA11CE));
    assert!(a.decisions > 100, "only {} decisions", a.decisions);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.decisions, b.decisions);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.stats, b.stats);
    assert!(a.stats.frames_dropped > 0, "25% loss dropped nothing");
    let want: Vec<u8> = (0..6u8)
        .flat_map(|r| (0..1024u32).map(move |i| (i as u8) ^ r))
        .collect();
    assert_eq!(a.echoed, want);
    let c = scenario(lossy_uniform(0xB0B));
    assert_ne!(a.hash, c.hash);
}

#[test]
fn recorded_tape_replays_bit_for_bit() {
    let a = scenario(lossy_uniform(77));
    assert_eq!(a.tape.len() as u64, a.decisions);
    // Through the text form, as a replay string would carry it.
    let tape: Tape = a.tape.to_string().parse().unwrap();
    let mut cfg = lossy_uniform(77);
    cfg.tape = Some(tape);
    let b = scenario(cfg);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.decisions, b.decisions);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.stats, b.stats);
    assert_eq!(a.tape, b.tape);
    // The tape, not the seed's generators, decides: another seed's
    // scheduler and fault draws are ignored when replaying this tape, and
    // only the seed-derived stack values (ISN, port) differ.
    let mut cfg = lossy_uniform(78);
    cfg.tape = Some(a.tape.clone());
    let c = scenario(cfg);
    assert_eq!(c.stats.frames_dropped, a.stats.frames_dropped);
}

#[test]
fn empty_tape_is_the_faithful_run_and_default_takes_no_decisions() {
    let plain = scenario(SimConfig::new(5));
    assert_eq!(plain.decisions, 0, "the default config must decide nothing");
    // Uniform + loss with an empty tape: every decision takes 0 = deliver,
    // in order, in the call: the same events as the FIFO run.
    let mut cfg = lossy_uniform(5);
    cfg.tape = Some(Tape::default());
    let faithful = scenario(cfg);
    assert!(faithful.decisions > 0);
    assert!(faithful.tape.values().iter().all(|&v| v == 0));
    assert_eq!(faithful.stats.frames_dropped, 0);
    assert_eq!(faithful.echoed, plain.echoed);
}

// ---- PCT ----------------------------------------------------------------

/// Deliver six same-TPL notifies in 20 batches; the order of each batch.
fn batches(scheduler: Scheduler, seed: u64) -> Vec<Vec<usize>> {
    let mut cfg = SimConfig::new(seed);
    cfg.scheduler = scheduler;
    let env = Env::unaddressed(cfg);
    let evs: Vec<Event> = (0..6)
        .map(|i| notify_event(&env, EventType::NOTIFY_SIGNAL, i))
        .collect();
    let mut out = Vec::new();
    for _ in 0..20 {
        LOG.with(|l| l.borrow_mut().clear());
        let old = env.boot().raise_tpl(Tpl::NOTIFY);
        for &e in &evs {
            assert_eq!(env.boot().signal_event(e), Status::SUCCESS);
        }
        env.boot().restore_tpl(old);
        let order = LOG.with(|l| l.borrow().clone());
        assert_eq!(order.len(), 6);
        out.push(order);
    }
    for e in evs {
        env.close_event(e);
    }
    out
}

#[test]
fn pct_depth_changes_the_order_and_fifo_keeps_dxe_order() {
    let fifo = batches(Scheduler::Fifo, 1);
    assert!(fifo.iter().all(|b| *b == vec![0, 1, 2, 3, 4, 5]));
    let mut differ = 0;
    for seed in 0..16u64 {
        let d1 = batches(Scheduler::Pct { depth: 1 }, seed);
        // Depth 1: no change points, fixed random priorities: one order.
        assert!(d1.iter().all(|b| *b == d1[0]), "seed {seed}: {d1:?}");
        assert_eq!(d1, batches(Scheduler::Pct { depth: 1 }, seed));
        let d3 = batches(Scheduler::Pct { depth: 3 }, seed);
        if d1 != d3 {
            differ += 1;
        }
    }
    assert!(differ > 0, "depth 3 never changed an order");
}

// ---- heal and status injection ------------------------------------------

#[test]
fn heal_lets_a_failed_dhcp_finish() {
    let mut cfg = SimConfig::new(3);
    cfg.faults.dhcp_fail = true;
    let env = Env::unaddressed(cfg);
    let dhcp: i32 = 1;
    // SAFETY: a live i32 of the size passed; copied during the call.
    let st = unsafe {
        efisock::firmware::Ip4Config2::set_data(
            efisock::firmware::Platform::ip4_config2(&env.p),
            efisock::firmware::Ip4Config2DataType::POLICY,
            4,
            &dhcp as *const i32 as *const _,
        )
    };
    assert_eq!(st, Status::SUCCESS);
    let has_addr = |env: &Env| {
        env.sim
            .trace()
            .iter()
            .any(|l| l.contains("ip4 address Some"))
    };
    env.sim.advance(30_000_000_000);
    assert!(!has_addr(&env));
    env.sim.heal();
    assert!(env.sim.faults().is_none());
    env.sim.advance(10_000_000_000);
    assert!(has_addr(&env), "heal did not restart DHCP");
}

#[test]
fn injected_out_of_resources_does_nothing_else() {
    let env = Env::new(SimConfig::new(11));
    listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    env.sim.set_faults(Faults {
        inject: 1.0,
        ..Faults::none()
    });
    assert!(env.boot().allocate_pool(16).is_err());
    assert_eq!(receive(&t, &rx), Status::OUT_OF_RESOURCES);
    // EDK2's Poll never fails (TcpDispatcher.c SOCK_POLL discards IP4's
    // status): `inject` leaves it alone; only the non-EDK2 knob fails it.
    assert_eq!(t.poll(), Status::SUCCESS);
    env.sim.set_faults(Faults {
        non_edk2_poll: 1.0,
        ..Faults::none()
    });
    let p = t.poll();
    assert!(
        [Status::NOT_READY, Status::TIMEOUT, Status::DEVICE_ERROR].contains(&p),
        "{p:?}"
    );
    let inj = env.sim.injected();
    assert_eq!(inj.len(), 3);
    assert_eq!(
        (inj[0].call, inj[0].status),
        ("AllocatePool", Status::OUT_OF_RESOURCES)
    );
    assert_eq!(
        (inj[1].call, inj[1].status),
        ("Receive", Status::OUT_OF_RESOURCES)
    );
    assert_eq!(inj[2].call, "Poll");
    env.sim.set_faults(Faults::none());
    // The refused token is not pending: the same token can be submitted.
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    assert_eq!(rx.status(), Status::ABORTED);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn injected_reset_on_a_pending_receive_really_resets() {
    let env = Env::new(SimConfig::new(12));
    let seen = listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert_eq!(env.boot_check(rx.tok.event), Status::NOT_READY);
    env.sim.set_faults(Faults {
        inject: 1.0,
        ..Faults::none()
    });
    // Waiting on the token is where the injected completion happens.
    assert_eq!(env.boot_check(rx.tok.event), Status::SUCCESS);
    env.sim.set_faults(Faults::none());
    assert_eq!(rx.status(), CONNECTION_RESET);
    let inj = env.sim.injected();
    assert_eq!(inj.len(), 1);
    assert_eq!((inj[0].call, inj[0].status), ("Receive", CONNECTION_RESET));
    assert_eq!(inj[0].t_ns, {
        // The trace line of the injection carries the same time.
        let line = env
            .sim
            .trace()
            .into_iter()
            .find(|l| l.contains("inject Receive"))
            .unwrap();
        line.split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    // The peer saw the RST.
    env.sim.advance(50_000_000);
    assert_eq!(seen.borrow().states.last(), Some(&PeerConnState::Reset));
    // Later calls behave as after a real peer RST: the state is CLOSED and
    // I/O is refused.
    let mut st = efisock::firmware::Tcp4ConnectionState::ESTABLISHED;
    assert_eq!(get_state(&t, &mut st), Status::SUCCESS);
    assert_eq!(st, efisock::firmware::Tcp4ConnectionState::CLOSED);
    let tx = Io::tx(&env, b"late");
    assert_eq!(transmit(&t, &tx), Status::ACCESS_DENIED);
    assert_eq!(reset(&t), Status::SUCCESS);
    tx.free(&env);
    rx.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn swarm_run_then_heal_still_delivers() {
    // A few swarm configurations under the uniform scheduler; after the
    // faults are healed the echo must complete.
    for seed in 0..4u64 {
        let mut f = Faults::swarm(seed);
        // Keep the set-up reachable: injection is exercised elsewhere.
        f.inject = 0.0;
        f.dhcp_fail = false;
        let mut cfg = SimConfig::new(seed);
        cfg.scheduler = Scheduler::Uniform;
        cfg.faults = f;
        let env = Env::new(cfg);
        listen_echo(&env.sim, 7);
        let (h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, 7), Status::SUCCESS, "{f}");
        env.sim.heal();
        let tx = Io::tx(&env, b"after heal");
        assert_eq!(transmit(&t, &tx), Status::SUCCESS);
        let rx = Io::rx(&env, 64);
        let mut got = Vec::new();
        while got.len() < 10 {
            rx.rearm_rx();
            assert_eq!(receive(&t, &rx), Status::SUCCESS);
            assert!(env.wait_polling(&t, rx.tok.event, 60_000_000_000), "{f}");
            got.extend(rx.received());
        }
        assert_eq!(got, b"after heal");
        assert!(env.wait(tx.tok.event, 1_000_000_000));
        assert_eq!(close(&env, &t, true), Status::SUCCESS);
        tx.free(&env);
        rx.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}
