//! `Sim::set_deadline_ns`: a deadline in virtual time that a test harness
//! uses to turn a hang into a failure. The first firmware call at or past
//! it unwinds its caller, never from inside a notify function; a caller
//! still calling `DEADLINE_REPEAT_NS` later is unwound again.

mod common;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;
use efisock::firmware::{BootServices, Event, EventType, Status, Tpl};
use efisock_sim::{DEADLINE_REPEAT_NS, SimBoot, SimConfig};

const S: u64 = 1_000_000_000;

fn unwound(f: impl FnOnce()) -> Option<String> {
    catch_unwind(AssertUnwindSafe(f)).err().map(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .expect("the simulator unwinds with a String")
    })
}

#[test]
fn the_first_call_at_the_deadline_unwinds_then_once_a_second() {
    let env = Env::unaddressed(SimConfig::new(7));
    assert_eq!(env.sim.deadline_ns(), None);
    env.sim.set_deadline_ns(Some(2 * S));
    assert_eq!(env.sim.deadline_ns(), Some(2 * S));
    assert_eq!(env.boot().stall(1_000_000), Status::SUCCESS);
    // This Stall starts before the deadline and ends past it.
    assert_eq!(env.boot().stall(1_500_000), Status::SUCCESS);
    assert_eq!(env.sim.deadline_passed_ns(), None, "noted on entry");
    // Time passing with no call is not a call.
    env.sim.advance(S);
    let t = env.sim.now_ns();
    let message = unwound(|| {
        env.boot().monotonic_ns();
    })
    .expect("unwound");
    assert!(
        message.contains("virtual-time deadline of 2.000 s reached"),
        "{message}"
    );
    assert!(message.contains("seed=0x7"), "{message}");
    let passed = env.sim.deadline_passed_ns().expect("noted");
    assert!(passed > t, "{passed} {t}");
    // The caller's clean-up goes through, for a while.
    assert!(
        unwound(|| {
            let _ = env.boot().stall(900_000);
        })
        .is_none()
    );
    // A caller that keeps going is stopped again.
    let _ = unwound(|| {
        let _ = env.boot().stall(200_000);
    });
    assert!(env.sim.now_ns() >= passed + DEADLINE_REPEAT_NS);
    assert!(
        unwound(|| {
            env.boot().monotonic_ns();
        })
        .is_some()
    );
    assert_eq!(env.sim.deadline_passed_ns(), Some(passed), "first noted");
    // Lifted, nothing more happens.
    env.sim.set_deadline_ns(None);
    env.sim.advance(10 * S);
    assert!(
        unwound(|| {
            let _ = env.boot().stall(10);
        })
        .is_none()
    );
    assert_eq!(env.sim.deadline_passed_ns(), None);
    assert_clean(&env);
}

thread_local! {
    static BOOT: RefCell<Option<SimBoot>> = const { RefCell::new(None) };
}

/// A notify function that calls the firmware across the deadline:
/// unwinding out of it would abort the process (`efiapi`).
unsafe extern "efiapi" fn slow_notify(_e: Event, _ctx: *mut core::ffi::c_void) {
    BOOT.with(|b| {
        let boot = b.borrow().clone().expect("boot set");
        let _ = boot.stall(3_000_000);
        let _ = boot.monotonic_ns();
    });
}

#[test]
fn never_unwinds_out_of_a_notify_function() {
    let env = Env::unaddressed(SimConfig::new(8));
    BOOT.with(|b| *b.borrow_mut() = Some(env.boot().clone()));
    // SAFETY: `slow_notify` ignores its context; the event is closed below.
    let e = unsafe {
        env.boot().create_event(
            EventType::NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            Some(slow_notify),
            core::ptr::null_mut(),
        )
    }
    .unwrap();
    env.sim.set_deadline_ns(Some(env.sim.now_ns() + S));
    // The notify runs inside SignalEvent and takes the clock 3 s on; its
    // own call past the deadline is noted, not unwound.
    assert_eq!(env.boot().signal_event(e), Status::SUCCESS);
    assert!(env.sim.deadline_passed_ns().is_some());
    // The first call from the application afterwards is unwound.
    assert!(unwound(|| env.close_event(e)).is_some());
    env.close_event(e);
    BOOT.with(|b| *b.borrow_mut() = None);
    assert_clean(&env);
}
