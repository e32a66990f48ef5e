//! NotifyMode::Anytime with notify-function tokens: every completion is
//! notified exactly once, whatever the seed defers.

mod common;
use std::cell::RefCell;

use common::*;
use efisock::firmware::{BootServices, Event, EventType, Status, Tpl};
use efisock_sim::{NotifyMode, SimConfig};

thread_local! {
    static DONE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "efiapi" fn mark(_e: Event, ctx: *mut core::ffi::c_void) {
    DONE.with(|d| d.borrow_mut().push(ctx as usize));
}

fn notify_event(env: &Env, tag: usize) -> Event {
    // SAFETY: the context is a plain integer tag that `mark` never
    // dereferences.
    unsafe {
        env.boot().create_event(
            EventType::NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            Some(mark),
            tag as *mut _,
        )
    }
    .unwrap()
}

fn wait_tag(env: &Env, tag: usize) {
    let end = env.sim.now_ns() + 10_000_000_000;
    while !DONE.with(|d| d.borrow().contains(&tag)) {
        assert!(env.sim.now_ns() < end, "tag {tag} never notified");
        let _ = env.boot().stall(500);
    }
}

#[test]
fn echo_under_anytime_notifies_each_completion_once() {
    for seed in 100..104u64 {
        DONE.with(|d| d.borrow_mut().clear());
        let mut cfg = SimConfig::new(seed);
        cfg.notify = NotifyMode::Anytime;
        let env = Env::new(cfg);
        listen_echo(&env.sim, 7);
        let (h, t) = env.child();
        assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::SUCCESS);
        let c = ConnTok::new(&env);
        let own = c.event;
        let ce = notify_event(&env, 1);
        c.set_event(ce);
        assert_eq!(connect_tok(&t, &c), Status::SUCCESS);
        wait_tag(&env, 1);
        assert_eq!(c.status(), Status::SUCCESS);
        let mut got = Vec::new();
        for round in 0..20usize {
            let msg = format!("round {round}");
            let tx = Io::tx(&env, msg.as_bytes());
            let rx = Io::rx(&env, 64);
            let (te, re) = (
                notify_event(&env, 1000 + round),
                notify_event(&env, 2000 + round),
            );
            let (to, ro) = (tx.tok.event, rx.tok.event);
            tx.tok.set_event(te);
            rx.tok.set_event(re);
            assert_eq!(receive(&t, &rx), Status::SUCCESS);
            assert_eq!(transmit(&t, &tx), Status::SUCCESS);
            wait_tag(&env, 1000 + round);
            wait_tag(&env, 2000 + round);
            got.extend(rx.received());
            tx.tok.set_event(to);
            rx.tok.set_event(ro);
            env.close_event(te);
            env.close_event(re);
            tx.free(&env);
            rx.free(&env);
        }
        let want: Vec<u8> = (0..20)
            .flat_map(|r| format!("round {r}").into_bytes())
            .collect();
        assert_eq!(got, want, "seed {seed}");
        let mut tags = DONE.with(|d| d.borrow().clone());
        let n = tags.len();
        tags.sort();
        tags.dedup();
        assert_eq!(
            n,
            tags.len(),
            "a completion was notified twice (seed {seed})"
        );
        assert_eq!(n, 41);
        assert_eq!(reset(&t), Status::SUCCESS);
        c.set_event(own);
        env.close_event(ce);
        c.free(&env);
        env.destroy(h);
        assert_clean(&env);
    }
}
