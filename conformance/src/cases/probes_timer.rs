//! Timer probes: how the firmware's timer events keep time, measured through
//! `SetTimer` and `WaitForEvent` alone.
//!
//! Every wait of the socket layer (the `event-wait` and `timer-only`
//! strategies, select and recv timeouts between Polls) rests on these
//! events, so their granularity decides how long a blocked program sleeps.

use crate::runner::{Case, CaseError, CaseResult};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};
use efisock::firmware::{BootServices, Platform, Status, TimerDelay};
use efisock::raw::RawEvent;

/// One DXE timer tick on OVMF, ns (OvmfPkg/8254TimerDxe
/// `DEFAULT_TIMER_TICK_DURATION`).
const TICK_NS: u64 = 10_000_000;
/// Relative timers armed back to back by [`one_ms_timers_wait_for_the_tick`].
const WAITS: u64 = 10;

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![Case {
        group: "probe",
        name: "one_ms_timers_wait_for_the_tick",
        about: "a 1 ms relative timer is signalled on the next 10 ms timer tick, not after 1 ms",
        run: one_ms_timers_wait_for_the_tick::<T>,
    }]
}

fn fail(what: impl ToString) -> CaseError {
    CaseError::new(what.to_string())
}

/// EDK2's DXE core advances its system time only in `CoreTimerTick`, once
/// per timer interrupt; `CoreSetTimer` sets the trigger to that system time
/// plus the delay; and triggers are checked only on a tick (MdeModulePkg/
/// Core/Dxe/Event/Timer.c). A 1 ms timer armed just after a tick therefore
/// fires on the next one, a whole tick later. Ten such waits in a row take
/// at least nine ticks (the first may start anywhere in a tick); timers
/// that kept their own 1 ms would take about 10 ms in all.
fn one_ms_timers_wait_for_the_tick<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let boot = p.boot();
    let timer = RawEvent::timer(boot).map_err(fail)?;
    let start = boot.monotonic_ns();
    for i in 0..WAITS {
        // 1 ms in the 100 ns units of SetTimer.
        ensure_eq!(
            boot.set_timer(timer.handle(), TimerDelay::RELATIVE, 10_000),
            Status::SUCCESS,
            "SetTimer(relative, 1 ms) #{i}"
        );
        boot.wait_for_event(&[timer.handle()])
            .map_err(|s| fail(format!("WaitForEvent(timer) #{i}: {s:?}")))?;
    }
    let elapsed = boot.monotonic_ns().saturating_sub(start);
    // The firmware clock is calibrated against Stall, to within a few per
    // cent; one tick of margin covers it.
    let at_least = (WAITS - 2) * TICK_NS;
    ensure!(
        elapsed >= at_least,
        "{WAITS} waits on 1 ms timers took {:.1} ms; timers that fire on the \
         {} ms tick need at least {} ms",
        elapsed as f64 / 1e6,
        TICK_NS / 1_000_000,
        at_least / 1_000_000
    );
    Ok(())
}
