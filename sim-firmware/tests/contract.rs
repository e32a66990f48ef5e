//! One test per contract breach: commit it on purpose, expect the report.

mod common;
use common::*;
use efisock::firmware::{BootServices, Status, Tcp4, Tpl};
use efisock_sim::{BreachKind, BreachPolicy, SimConfig, SimTcp4};

fn connected(seed: u64, read: bool) -> (Env, efisock::firmware::Handle, SimTcp4) {
    let env = Env::new(SimConfig::new(seed));
    listen_sink(&env.sim, 9, read);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 9), Status::SUCCESS);
    (env, h, t)
}

fn kinds(env: &Env) -> Vec<BreachKind> {
    env.sim.breaches().iter().map(|b| b.kind).collect()
}

#[test]
fn token_reused_while_pending() {
    let (env, h, t) = connected(51, true);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert_eq!(receive(&t, &rx), Status::ACCESS_DENIED);
    assert_eq!(kinds(&env), vec![BreachKind::TokenReusedWhilePending]);
    let text = env.sim.breaches()[0].to_string();
    assert!(text.starts_with("ASSERT(efisock-sim): token"), "{text}");
    assert!(text.contains("seed=0x33"), "{text}");
    assert_eq!(reset(&t), Status::SUCCESS);
    rx.free(&env);
    env.destroy(h);
}

#[test]
fn event_reused_while_pending() {
    let (env, h, t) = connected(52, true);
    let a = Io::rx(&env, 64);
    let b = Io::tx(&env, b"x");
    let b_ev = b.tok.event;
    b.tok.set_event(a.tok.event);
    assert_eq!(receive(&t, &a), Status::SUCCESS);
    assert_eq!(transmit(&t, &b), Status::ACCESS_DENIED);
    assert_eq!(kinds(&env), vec![BreachKind::EventReusedWhilePending]);
    b.tok.set_event(b_ev);
    assert_eq!(reset(&t), Status::SUCCESS);
    a.free(&env);
    b.free(&env);
    env.destroy(h);
}

#[test]
fn freed_while_owned_is_reported_and_quarantined() {
    let (env, h, t) = connected(53, true);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    // Deliberate breach: free the receive buffer the firmware still owns.
    // SAFETY: `rx.buf()` is a live pool block; `SimBoot::free_pool` finds it
    // owned by the pending receive and quarantines it instead of releasing it
    // (pool.rs), so the firmware's later completion writes into memory that
    // is still allocated, and the test never touches the buffer again.
    assert_eq!(unsafe { env.boot().free_pool(rx.buf()) }, Status::SUCCESS);
    assert_eq!(kinds(&env), vec![BreachKind::FreedWhileOwned]);
    // The firmware can still complete into the quarantined buffer safely.
    assert_eq!(reset(&t), Status::SUCCESS);
    assert_eq!(rx.status(), Status::ABORTED);
    env.free(rx.data());
    rx.tok.free(&env);
    env.destroy(h);
    assert_eq!(env.sim.finish().len(), 1, "quarantined block is not a leak");
}

#[test]
fn transmit_data_modified_while_owned() {
    let env = Env::new(SimConfig::new(54));
    listen_sink(&env.sim, 9, false);
    let (h, t) = env.child();
    let mut opt = options(10, 8192);
    let cfg = active_cfg(PEER, 9, 0);
    assert_eq!(configure_opt(&t, &cfg, &mut opt), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 1_000_000_000));
    let tx = Io::tx(&env, &vec![1u8; 600_000]);
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    // Deliberate breach: modify a transmit buffer the firmware still owns.
    // SAFETY: `tx.buf()` is a live pool block of 600_000 bytes, so byte
    // 599_999 is in bounds; the simulated firmware is single-threaded and
    // reads the buffer only inside later calls, where its fingerprint check
    // reports the change, so the write races with nothing.
    unsafe { *tx.buf().add(599_999) = 2 }; // still firmware-owned
    env.sim.advance(50_000_000);
    assert!(
        kinds(&env).contains(&BreachKind::ModifiedWhileOwned),
        "{:?}",
        kinds(&env)
    );
    assert_eq!(reset(&t), Status::SUCCESS);
    tx.free(&env);
    c.free(&env);
    env.destroy(h);
}

#[test]
fn receive_buffer_written_while_owned() {
    let env = Env::new(SimConfig::new(55));
    listen_source(&env.sim, 19, b"late".to_vec(), false);
    let (h, t) = env.child();
    let cfg = active_cfg(PEER, 19, 0);
    assert_eq!(configure(&t, &cfg), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    // Deliberate breach: write into a receive buffer the firmware still owns.
    // SAFETY: `rx.buf()` is a live pool block of 64 bytes and the simulated
    // firmware is single-threaded, so the one-byte write is in bounds and
    // races with nothing; the firmware's canary check reports it.
    unsafe { *rx.buf() = b'!' };
    assert!(env.wait(rx.tok.event, 1_000_000_000));
    assert_eq!(kinds(&env), vec![BreachKind::ModifiedWhileOwned]);
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    rx.free(&env);
    c.free(&env);
    env.destroy(h);
}

#[test]
fn pool_overrun_is_reported_at_free() {
    let env = Env::unaddressed(SimConfig::new(56));
    let p = env.boot().allocate_pool(10).unwrap();
    assert_eq!(p as usize % 8, 0);
    // Deliberate overrun into the guard bytes.
    // SAFETY: every pool block is followed by `pool::GUARD` (16) guard bytes
    // inside the same heap allocation, so byte 10 of a 10-byte block is still
    // allocated memory.
    unsafe { *p.add(10) = 0 }; // one past the end: inside the guard
    // SAFETY: `p` is a live pool block not referenced by any pending token.
    assert_eq!(unsafe { env.boot().free_pool(p) }, Status::SUCCESS);
    assert_eq!(kinds(&env), vec![BreachKind::ModifiedWhileOwned]);
    assert!(env.sim.breaches()[0].message.contains("overrun"));
}

#[test]
fn event_closed_while_referenced() {
    let (env, h, t) = connected(57, true);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::SUCCESS);
    assert_eq!(env.boot().close_event(rx.tok.event), Status::SUCCESS);
    assert_eq!(kinds(&env), vec![BreachKind::EventClosedWhileReferenced]);
    assert_eq!(reset(&t), Status::SUCCESS);
    env.free(rx.tok.ptr());
    env.free(rx.buf());
    env.free(rx.data());
    env.destroy(h);
}

#[test]
fn wrong_tpl_for_tcp4_and_wait() {
    let (env, h, t) = connected(58, true);
    let old = env.boot().raise_tpl(Tpl::NOTIFY);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::UNSUPPORTED);
    env.boot().restore_tpl(old);
    let old = env.boot().raise_tpl(Tpl::CALLBACK);
    let e = env.event();
    assert_eq!(env.boot().wait_for_event(&[e]), Err(Status::UNSUPPORTED));
    env.boot().restore_tpl(old);
    assert_eq!(
        kinds(&env),
        vec![BreachKind::WrongTpl, BreachKind::WrongTpl]
    );
    env.close_event(e);
    rx.free(&env);
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn leaks_reported_at_finish() {
    let env = Env::unaddressed(SimConfig::new(59));
    let (_h, _t) = env.child();
    let _e = env.event();
    let _p = env.boot().allocate_pool(32).unwrap();
    let k: Vec<BreachKind> = env.sim.finish().iter().map(|b| b.kind).collect();
    assert_eq!(
        k,
        vec![
            BreachKind::LeakedChild,
            BreachKind::LeakedEvent,
            BreachKind::LeakedPool
        ]
    );
}

#[test]
fn wait_that_can_never_return() {
    let env = Env::unaddressed(SimConfig::new(60));
    let e = env.event();
    let t0 = env.sim.now_ns();
    assert_eq!(env.boot().wait_for_event(&[e]), Err(Status::DEVICE_ERROR));
    assert_eq!(kinds(&env), vec![BreachKind::WouldHangForever]);
    assert!(
        env.sim.now_ns() - t0 < 1_000_000,
        "detected without running the clock out"
    );
    env.close_event(e);
}

#[test]
fn cancel_of_connect_token_would_crash_firmware() {
    let env = Env::new(SimConfig::new(61));
    let (h, t) = env.child();
    let cfg = active_cfg(std::net::Ipv4Addr::new(10, 0, 2, 99), 80, 0);
    assert_eq!(configure(&t, &cfg), Status::SUCCESS);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
    assert_eq!(cancel(&t, &c), Status::SUCCESS);
    assert_eq!(c.status(), Status::ABORTED);
    assert_eq!(kinds(&env), vec![BreachKind::FirmwareWouldCrash]);
    assert_eq!(reset(&t), Status::SUCCESS);
    c.free(&env);
    env.destroy(h);
}

#[test]
#[should_panic(expected = "ASSERT(efisock-sim): WaitForEvent")]
fn panic_policy_panics_with_the_report() {
    let mut cfg = SimConfig::new(62);
    cfg.breach_policy = BreachPolicy::Panic;
    let env = Env::unaddressed(cfg);
    let e = env.event();
    let _ = env.boot().wait_for_event(&[e]);
}

#[test]
fn token_on_the_stack_is_not_pool_memory() {
    let (env, h, t) = connected(63, true);
    // SAFETY: `Tcp4CloseToken` is plain data (a null event handle, a status
    // integer and a Boolean byte), for which all-zero bytes are a valid value.
    let mut stack_tok: efisock::firmware::Tcp4CloseToken = unsafe { core::mem::zeroed() };
    stack_tok.completion_token.event = env.event();
    // Deliberate breach: a token outside pool memory.
    // SAFETY: `stack_tok` lives until the end of this function, after the
    // close completes (waited for below; if the wait fails the test panics and
    // no firmware call runs again), so the firmware never touches it once it
    // is gone; the simulator reports it as not pool memory.
    assert_eq!(unsafe { t.close(&mut stack_tok) }, Status::SUCCESS);
    assert!(env.wait(stack_tok.completion_token.event, 5_000_000_000));
    assert_eq!(kinds(&env), vec![BreachKind::NotPoolMemory]);
    env.close_event(stack_tok.completion_token.event);
    env.destroy(h);
}
