//! The DXE event system: notify queues, TPL, timers, waits, re-entry, and
//! NotifyMode::Anytime.

mod common;
use std::cell::RefCell;

use common::*;
use efisock::firmware::{BootServices, Event, EventType, Status, Tcp4, TimerDelay, Tpl};
use efisock_sim::{BreachKind, NotifyMode, SimConfig, SimTcp4};

thread_local! {
    static LOG: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "efiapi" fn record(_e: Event, ctx: *mut core::ffi::c_void) {
    LOG.with(|l| l.borrow_mut().push(ctx as usize));
}

fn notify_event(env: &Env, tpl: Tpl, tag: usize) -> Event {
    // SAFETY: the context is a plain integer tag that `record` never
    // dereferences.
    unsafe {
        env.boot()
            .create_event(EventType::NOTIFY_SIGNAL, tpl, Some(record), tag as *mut _)
    }
    .unwrap()
}

fn take_log() -> Vec<usize> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

#[test]
fn notifies_are_fifo_deduplicated_and_held_until_restore_tpl() {
    let env = Env::unaddressed(SimConfig::new(41));
    take_log();
    let a = notify_event(&env, Tpl::CALLBACK, 1);
    let b = notify_event(&env, Tpl::CALLBACK, 2);
    let hi = notify_event(&env, Tpl::NOTIFY, 3);
    let old = env.boot().raise_tpl(Tpl::CALLBACK);
    assert_eq!(env.boot().signal_event(a), Status::SUCCESS);
    assert_eq!(env.boot().signal_event(b), Status::SUCCESS);
    assert_eq!(env.boot().signal_event(a), Status::SUCCESS); // already pending: nothing
    assert_eq!(env.boot().signal_event(hi), Status::SUCCESS); // above current TPL: runs now
    assert_eq!(take_log(), vec![3]);
    env.boot().restore_tpl(old);
    assert_eq!(take_log(), vec![1, 2]);
    // At TPL_APPLICATION a signal runs the notify before SignalEvent returns.
    assert_eq!(env.boot().signal_event(b), Status::SUCCESS);
    assert_eq!(take_log(), vec![2]);
    // CheckEvent on a NOTIFY_SIGNAL event is INVALID_PARAMETER.
    assert_eq!(env.boot().check_event(a), Status::INVALID_PARAMETER);
    for e in [a, b, hi] {
        env.close_event(e);
    }
    assert_clean(&env);
}

#[test]
fn timers_wait_and_check() {
    let env = Env::unaddressed(SimConfig::new(42));
    // Timers fire on the DXE core's 10 ms tick: the first tick at or after
    // "last tick + delay" (Timer.c `CoreSetTimer`/`CoreTimerTick`).
    const TICK: u64 = 10_000_000;
    let start = env.sim.now_ns();
    let last_tick = start / TICK * TICK;
    let t1 = relative_timer(&env, 15_000_000);
    let t2 = relative_timer(&env, 2_000_000);
    assert_eq!(env.boot().wait_for_event(&[t1, t2]), Ok(1));
    assert_eq!(
        env.sim.now_ns(),
        (last_tick + 2_000_000).div_ceil(TICK) * TICK
    );
    assert_eq!(env.boot().wait_for_event(&[t1, t2]), Ok(0));
    assert_eq!(
        env.sim.now_ns(),
        (last_tick + 15_000_000).div_ceil(TICK) * TICK
    );
    assert_eq!(env.boot().check_event(t1), Status::NOT_READY);
    // Periodic timer fires repeatedly.
    assert_eq!(
        env.boot().set_timer(t1, TimerDelay::PERIODIC, 10_000),
        Status::SUCCESS
    );
    for _ in 0..3 {
        assert_eq!(env.boot().wait_for_event(&[t1]), Ok(0));
    }
    assert_eq!(
        env.boot().set_timer(t1, TimerDelay::CANCEL, 0),
        Status::SUCCESS
    );
    env.close_event(t1);
    env.close_event(t2);
    assert_clean(&env);
}

#[test]
fn stall_advances_virtual_time_exactly_plus_call_cost() {
    let env = Env::unaddressed(SimConfig::new(43));
    let t0 = env.sim.now_ns();
    assert_eq!(env.boot().stall(1500), Status::SUCCESS);
    let cost = efisock_sim::CostModel::default().per_call_ns;
    assert_eq!(env.sim.now_ns() - t0, 1_500_000 + cost);
    assert_eq!(env.sim.stats().firmware_calls, 1);
}

struct Reentry {
    t: SimTcp4,
    tok: *mut efisock::firmware::Tcp4IoToken,
    result: Option<Status>,
}

unsafe extern "efiapi" fn reenter(_e: Event, ctx: *mut core::ffi::c_void) {
    // SAFETY: `ctx` is the `Reentry` on the test's stack, registered with
    // this event, which the test closes before that frame ends; nothing else
    // borrows it while the notify runs.
    let r = unsafe { &mut *(ctx as *mut Reentry) };
    // SAFETY: `r.tok` is `rx2`'s pool token (built by `Io::rx`), freed only
    // after this event is closed.
    r.result = Some(unsafe { r.t.receive(r.tok) });
}

#[test]
fn receive_from_a_notify_of_the_same_instance_is_access_denied() {
    let env = Env::new(SimConfig::new(44));
    listen_source(&env.sim, 19, b"data".to_vec(), false);
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 19), Status::SUCCESS);
    env.sim.advance(100_000_000); // data buffered
    let rx2 = Io::rx(&env, 16);
    let mut ctx = Reentry {
        t: t.clone(),
        tok: rx2.tok.ptr(),
        result: None,
    };
    // SAFETY: `ctx` outlives the event: it is closed below, before `ctx`
    // goes out of scope.
    let ev = unsafe {
        env.boot().create_event(
            EventType::NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            Some(reenter),
            &mut ctx as *mut Reentry as *mut _,
        )
    }
    .unwrap();
    let rx1 = Io::rx(&env, 16);
    let own_event = rx1.tok.event;
    rx1.tok.set_event(ev);
    assert_eq!(receive(&t, &rx1), Status::SUCCESS);
    // Completed inside the call; its notify ran before Receive returned and
    // hit the per-instance lock.
    assert_eq!(ctx.result, Some(Status::ACCESS_DENIED));
    assert_eq!(rx1.received(), b"data");
    // Outside the notify the instance is usable again.
    assert_eq!(receive(&t, &rx2), Status::SUCCESS);
    assert_eq!(reset(&t), Status::SUCCESS);
    rx1.tok.set_event(own_event);
    env.close_event(ev);
    rx1.free(&env);
    rx2.free(&env);
    env.destroy(h);
    assert_clean(&env);
}

#[test]
fn ip4config_data_notify_fires_on_dhcp_and_interface_info_is_reported() {
    use efisock::firmware::{Ip4Config2, Ip4Config2DataType, Ip4Config2InterfaceInfo, Platform};
    let env = Env::unaddressed(SimConfig::new(45));
    let ip = env.p.ip4_config2();
    let e = env.event();
    assert_eq!(
        ip.register_data_notify(Ip4Config2DataType::INTERFACE_INFO, e),
        Status::SUCCESS
    );
    let mut size = 0usize;
    assert_eq!(
        // SAFETY: `size` is a live usize; a null `data` is only probed for size.
        unsafe {
            ip.get_data(
                Ip4Config2DataType::INTERFACE_INFO,
                &mut size,
                core::ptr::null_mut(),
            )
        },
        Status::BUFFER_TOO_SMALL
    );
    assert_eq!(size, size_of::<Ip4Config2InterfaceInfo>());
    let mut policy = 0i32;
    let mut psize = 4usize;
    assert_eq!(
        // SAFETY: `psize` is live and `policy` is a live i32 of `psize` (4) bytes.
        unsafe {
            ip.get_data(
                Ip4Config2DataType::POLICY,
                &mut psize,
                &mut policy as *mut i32 as *mut _,
            )
        },
        Status::SUCCESS
    );
    assert_eq!(policy, 0, "OVMF default: static");
    let dhcp = 1i32;
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
    let start = env.sim.now_ns();
    assert_eq!(env.boot().wait_for_event(&[e]), Ok(0));
    assert!(env.sim.now_ns() - start >= 3_500_000_000);
    // With an address, the default route table follows the structure
    // (Ip4Config2Impl.c `Ip4Config2GetIfInfo`): a buffer sized for the
    // structure alone is too small, as on OVMF.
    let mut info = std::mem::MaybeUninit::<Ip4Config2InterfaceInfo>::zeroed();
    assert_eq!(
        // SAFETY: `size` is live and equals `size_of::<Ip4Config2InterfaceInfo>()`,
        // exactly the size of `info`.
        unsafe {
            ip.get_data(
                Ip4Config2DataType::INTERFACE_INFO,
                &mut size,
                info.as_mut_ptr() as *mut _,
            )
        },
        Status::BUFFER_TOO_SMALL
    );
    // Subnet route and default route, 12 bytes each.
    assert_eq!(size, size_of::<Ip4Config2InterfaceInfo>() + 2 * 12);
    let mut buf = vec![0u64; size.div_ceil(8)];
    assert_eq!(
        // SAFETY: `size` is live and `buf` has at least `size` writable bytes.
        unsafe {
            ip.get_data(
                Ip4Config2DataType::INTERFACE_INFO,
                &mut size,
                buf.as_mut_ptr() as *mut _,
            )
        },
        Status::SUCCESS
    );
    // SAFETY: GetData wrote a whole `Ip4Config2InterfaceInfo` at the start
    // of `buf`, which is 8-byte aligned.
    let info = unsafe { (buf.as_ptr() as *const Ip4Config2InterfaceInfo).read() };
    assert_eq!(info.station_addr.0, [10, 0, 2, 15]);
    assert_eq!(info.subnet_mask.0, [255, 255, 255, 0]);
    assert_eq!(info.route_table_size, 2);
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let table = &bytes[size_of::<Ip4Config2InterfaceInfo>()..][..24];
    assert_eq!(
        info.route_table as usize,
        buf.as_ptr() as usize + size_of::<Ip4Config2InterfaceInfo>()
    );
    assert_eq!(
        table,
        [
            10, 0, 2, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2
        ],
        "subnet route first, then the default route through the gateway"
    );
    assert_eq!(
        ip.unregister_data_notify(Ip4Config2DataType::INTERFACE_INFO, e),
        Status::SUCCESS
    );
    env.close_event(e);
    assert_clean(&env);
}

#[test]
fn dhcp_failure_makes_wait_a_detected_hang() {
    let mut cfg = SimConfig::new(46);
    cfg.dhcp.fail = true;
    let env = Env::unaddressed(cfg);
    use efisock::firmware::{Ip4Config2, Ip4Config2DataType, Platform};
    let e = env.event();
    assert_eq!(
        env.p
            .ip4_config2()
            .register_data_notify(Ip4Config2DataType::INTERFACE_INFO, e),
        Status::SUCCESS
    );
    let dhcp = 1i32;
    assert_eq!(
        // SAFETY: `dhcp` is a live i32: 4 readable bytes, copied during the call.
        unsafe {
            env.p.ip4_config2().set_data(
                Ip4Config2DataType::POLICY,
                4,
                &dhcp as *const i32 as *const _,
            )
        },
        Status::SUCCESS
    );
    assert!(env.boot().wait_for_event(&[e]).is_err());
    let b = env.sim.breaches();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].kind, BreachKind::WouldHangForever);
    env.close_event(e);
}

#[test]
fn anytime_mode_defers_notifies_boundedly_by_seed() {
    let mut deferred_somewhere = false;
    let mut immediate_somewhere = false;
    for seed in 0..32u64 {
        let mut cfg = SimConfig::new(seed);
        cfg.notify = NotifyMode::Anytime;
        let env = Env::unaddressed(cfg);
        let a = notify_event(&env, Tpl::CALLBACK, 7);
        take_log();
        assert_eq!(env.boot().signal_event(a), Status::SUCCESS);
        if take_log().is_empty() {
            deferred_somewhere = true;
            // Delivered within the bounded number of further boundaries.
            let mut calls = 0;
            while LOG.with(|l| l.borrow().is_empty()) {
                let _ = env.boot().stall(1);
                calls += 1;
                assert!(
                    calls <= efisock_sim::MAX_DEFERRALS as usize + 1,
                    "seed {seed}: deferred too long"
                );
            }
            assert_eq!(take_log(), vec![7]);
        } else {
            immediate_somewhere = true;
        }
        env.close_event(a);
    }
    assert!(deferred_somewhere && immediate_somewhere);
}

unsafe extern "efiapi" fn signal_self(e: Event, ctx: *mut core::ffi::c_void) {
    // SAFETY: `ctx` is the `SimBoot` clone on the test's stack, which
    // outlives the event (closed before the test returns).
    let boot = unsafe { &*(ctx as *const efisock_sim::SimBoot) };
    LOG.with(|l| l.borrow_mut().push(99));
    let _ = boot.signal_event(e);
}

#[test]
fn check_event_on_notify_wait_runs_the_notify_which_may_signal() {
    let env = Env::unaddressed(SimConfig::new(47));
    take_log();
    let boot = env.boot().clone();
    // SAFETY: `boot` outlives the event, which is closed before it drops.
    let e = unsafe {
        env.boot().create_event(
            EventType::NOTIFY_WAIT,
            Tpl::CALLBACK,
            Some(signal_self),
            &boot as *const _ as *mut _,
        )
    }
    .unwrap();
    assert_eq!(env.boot().check_event(e), Status::SUCCESS);
    assert_eq!(take_log(), vec![99]);
    env.close_event(e);
    assert_clean(&env);
}

#[test]
fn closing_a_listener_signals_the_close_token_before_the_flushed_accept() {
    // TcpClose -> SockConnClosed signals the Close token, then SockConnFlush
    // aborts the Accept (SockImpl.c); the notifies run in that order, as
    // OVMF's call-level recordings show (`ports/relisten_after_close`).
    let env = Env::new(SimConfig::new(47));
    let (h, t) = env.child();
    assert_eq!(configure(&t, &passive_cfg(4711)), Status::SUCCESS);
    let accept_tok = ListenTok::new(&env);
    let close = CloseTok::new(&env);
    let (on_accept, on_close) = (
        notify_event(&env, Tpl::CALLBACK, 1),
        notify_event(&env, Tpl::CALLBACK, 2),
    );
    accept_tok.set_event(on_accept);
    close.set_event(on_close);
    take_log();
    assert_eq!(accept(&t, &accept_tok), Status::SUCCESS);
    assert_eq!(close_tok(&t, &close), Status::SUCCESS);
    assert_eq!(take_log(), vec![2, 1], "Close token first, then the Accept");
    assert_eq!(close.status(), Status::SUCCESS);
    assert_eq!(accept_tok.status(), Status::ABORTED);
    for e in [on_accept, on_close] {
        env.close_event(e);
    }
    accept_tok.free(&env);
    close.free(&env);
    env.destroy(h);
}
