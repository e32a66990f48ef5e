//! Probes of the profile's values: the control options in force after
//! Configure (buffer sizes, backlog, timeouts) and the FIN_WAIT_2 and
//! TIME_WAIT timers.
//!
//! EDK2 (edk2-stable202211) `TcpConfigurePcb` (TcpDispatcher.c l.608-690)
//! passes every option through `TCP_COMP_VAL(Min, Max, Default, Val)`
//! (TcpFunc.h l.15-16): a value outside `Min..=Max` is replaced by the
//! default, not clamped. The ranges are in TcpProto.h l.98-124 (timers in
//! 200 ms ticks, `TCP_TICK_HZ` 5). `TcpGetMode` (l.104-121) reports the
//! values in force in the caller's option.

use core::ptr;

use efisock::firmware::{
    Boolean, BootServices, Event, EventType, Platform, Status, Tcp4, Tcp4ConfigData,
    Tcp4ConnectionState, Tcp4Option, TimerDelay, Tpl,
};
use efisock::raw::{RawChild, RawToken, TokenKind, active_config};

use super::{fail, new_child, wait_for};
use crate::peers::ports;
use crate::runner::{CaseError, CaseResult};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

const MIB2: u32 = 2 * 1024 * 1024;

/// The option fields EDK2 range-checks, as Configure takes and GetModeData
/// reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Values {
    receive_buffer_size: u32,
    send_buffer_size: u32,
    max_syn_back_log: u32,
    connection_timeout: u32,
    data_retries: u32,
    fin_timeout: u32,
    time_wait_timeout: u32,
    enable_nagle: bool,
}

/// What EDK2 reports when no option is passed (defaults of TcpProto.h).
const DEFAULTS: Values = Values {
    receive_buffer_size: MIB2,
    send_buffer_size: MIB2,
    max_syn_back_log: 10,
    connection_timeout: 75,
    data_retries: 12,
    fin_timeout: 2,
    time_wait_timeout: 2,
    enable_nagle: true,
};

fn option(v: Values) -> Tcp4Option {
    Tcp4Option {
        receive_buffer_size: v.receive_buffer_size,
        send_buffer_size: v.send_buffer_size,
        max_syn_back_log: v.max_syn_back_log,
        connection_timeout: v.connection_timeout,
        data_retries: v.data_retries,
        fin_timeout: v.fin_timeout,
        time_wait_timeout: v.time_wait_timeout,
        keep_alive_probes: 0,
        keep_alive_time: 0,
        keep_alive_interval: 0,
        enable_nagle: Boolean::from(v.enable_nagle),
        enable_time_stamp: Boolean::TRUE,
        enable_window_scaling: Boolean::TRUE,
        enable_selective_ack: Boolean::FALSE,
        enable_path_mtu_discovery: Boolean::FALSE,
    }
}

/// Configures `child` active towards the echo service with `values` as its
/// control option (`None`: no option).
fn configure<P: Platform>(
    t: &impl SocketTarget<P = P>,
    child: &RawChild<P>,
    values: Option<Values>,
) -> Status {
    let mut opt = values.map(option);
    let mut config = active_config(t.peer(ports::ECHO), 0);
    config.control_option = opt.as_mut().map_or(ptr::null_mut(), ptr::from_mut);
    // SAFETY: the option lives on this stack frame across the call.
    unsafe { child.configure_with(config) }
}

/// The option values GetModeData reports for `child`.
fn reported<P: Platform>(child: &RawChild<P>) -> Result<Values, CaseError> {
    let mut opt = option(Values {
        receive_buffer_size: 0,
        send_buffer_size: 0,
        max_syn_back_log: 0,
        connection_timeout: 0,
        data_retries: 0,
        fin_timeout: 0,
        time_wait_timeout: 0,
        enable_nagle: false,
    });
    let mut config = active_config(std::net::SocketAddrV4::new([0, 0, 0, 0].into(), 0), 0);
    config.control_option = ptr::from_mut(&mut opt);
    let mut state = Tcp4ConnectionState::CLOSED;
    // SAFETY: every output is a live local; the config's option pointer
    // points at `opt`, which outlives the call.
    let status = unsafe {
        child.tcp().get_mode_data(
            &mut state,
            ptr::from_mut::<Tcp4ConfigData>(&mut config),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    ensure_eq!(status, Status::SUCCESS, "GetModeData");
    Ok(Values {
        receive_buffer_size: opt.receive_buffer_size,
        send_buffer_size: opt.send_buffer_size,
        max_syn_back_log: opt.max_syn_back_log,
        connection_timeout: opt.connection_timeout,
        data_retries: opt.data_retries,
        fin_timeout: opt.fin_timeout,
        time_wait_timeout: opt.time_wait_timeout,
        enable_nagle: bool::from(opt.enable_nagle),
    })
}

fn configured_reports<T: SocketTarget>(
    t: &T,
    given: Option<Values>,
    expected: Values,
    what: &str,
) -> CaseResult {
    let child = new_child(t)?;
    ensure_eq!(
        configure(t, &child, given),
        Status::SUCCESS,
        "Configure ({what})"
    );
    ensure_eq!(reported(&child)?, expected, "{what}: values in force");
    Ok(())
}

/// No option: the defaults. In range: taken as given (the bounds
/// themselves included). Out of range on either side: the default, not
/// the nearest bound (so 3 KiB or 2 bytes of buffer become 2 MiB).
/// TimeWaitTimeout 0 is taken as 0 (TcpDispatcher.c l.656-665). DataRetries
/// ranges over 6..=12, default 12 (TcpProto.h `TCP_MAX_LOSS_MIN`,
/// `TCP_MAX_LOSS`). Nagle is
/// on without an option and as the option's EnableNagle says with one
/// (l.695-697).
pub(super) fn option_values_in_force<T: SocketTarget>(t: &mut T) -> CaseResult {
    configured_reports(t, None, DEFAULTS, "no option")?;
    let lower = Values {
        receive_buffer_size: 8 * 1024,
        send_buffer_size: 8 * 1024,
        max_syn_back_log: 5,
        connection_timeout: 60,
        data_retries: 6,
        fin_timeout: 2,
        time_wait_timeout: 0,
        enable_nagle: false,
    };
    configured_reports(t, Some(lower), lower, "lower bounds")?;
    let upper = Values {
        receive_buffer_size: MIB2,
        send_buffer_size: MIB2,
        max_syn_back_log: 10,
        connection_timeout: 75,
        data_retries: 12,
        fin_timeout: 4,
        time_wait_timeout: 60,
        enable_nagle: true,
    };
    configured_reports(t, Some(upper), upper, "upper bounds")?;
    let inside = Values {
        receive_buffer_size: 64 * 1024,
        send_buffer_size: 100_000,
        max_syn_back_log: 7,
        connection_timeout: 70,
        data_retries: 9,
        fin_timeout: 3,
        time_wait_timeout: 30,
        enable_nagle: false,
    };
    configured_reports(t, Some(inside), inside, "inside the ranges")?;
    let below = Values {
        receive_buffer_size: 3 * 1024,
        send_buffer_size: 2,
        max_syn_back_log: 4,
        connection_timeout: 59,
        data_retries: 5,
        fin_timeout: 1,
        time_wait_timeout: 1,
        enable_nagle: true,
    };
    configured_reports(t, Some(below), DEFAULTS, "below the ranges")?;
    let above = Values {
        receive_buffer_size: MIB2 + 1,
        send_buffer_size: u32::MAX,
        max_syn_back_log: 11,
        connection_timeout: 76,
        data_retries: 13,
        fin_timeout: 5,
        time_wait_timeout: 61,
        enable_nagle: true,
    };
    configured_reports(t, Some(above), DEFAULTS, "above the ranges")?;
    Ok(())
}

/// A periodic firmware timer of one EDK2 TCP tick (200 ms), counted by
/// `CheckEvent`. EDK2 runs its TCP timers on such a timer (TcpDriver.c
/// l.111-115, `TICKS_PER_SECOND / TCP_TICK_HZ`), so counting periods of the
/// firmware's own timer measures them in the firmware's time, whatever the
/// relation of that time to the counter behind `monotonic_ns` (under QEMU
/// TCG the two drift apart by tens of percent).
struct TickCounter<'a, B: BootServices> {
    boot: &'a B,
    event: Event,
    ticks: u32,
}

/// One EDK2 TCP tick in `SetTimer` units (100 ns).
const TCP_TICK_100NS: u64 = 2_000_000;

impl<'a, B: BootServices> TickCounter<'a, B> {
    fn start(boot: &'a B) -> Result<Self, CaseError> {
        // SAFETY: no notify function, so the null context is never used.
        let event =
            unsafe { boot.create_event(EventType::TIMER, Tpl::CALLBACK, None, ptr::null_mut()) }
                .map_err(|s| fail(format!("CreateEvent(TIMER): {s:?}")))?;
        let counter = TickCounter {
            boot,
            event,
            ticks: 0,
        };
        let status = boot.set_timer(event, TimerDelay::PERIODIC, TCP_TICK_100NS);
        ensure_eq!(status, Status::SUCCESS, "SetTimer(periodic 200 ms)");
        Ok(counter)
    }

    /// Counts a period that ended since the last look.
    fn look(&mut self) {
        if self.boot.check_event(self.event) == Status::SUCCESS {
            self.ticks += 1;
        }
    }
}

impl<B: BootServices> Drop for TickCounter<'_, B> {
    fn drop(&mut self) {
        let _ = self.boot.set_timer(self.event, TimerDelay::CANCEL, 0);
        let _ = self.boot.close_event(self.event);
    }
}

/// 200 ms periods of the firmware's timer from the moment the connection
/// is first seen in `state` until the pending Close completes, after a
/// graceful Close of a connection to `port` configured with `values`.
fn close_lingers<T: SocketTarget>(
    t: &T,
    port: u16,
    values: Values,
    state: Tcp4ConnectionState,
) -> Result<u32, CaseError> {
    let p = t.platform();
    let child = new_child(t)?;
    let mut opt = option(values);
    let mut config = active_config(t.peer(port), 0);
    config.control_option = ptr::from_mut(&mut opt);
    // SAFETY: the option lives on this stack frame across the call.
    let status = unsafe { child.configure_with(config) };
    ensure_eq!(status, Status::SUCCESS, "Configure");
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    ensure_eq!(connect.status(), Status::SUCCESS, "Connect status");
    let mut close = RawToken::new(p.boot(), TokenKind::Close { abort: false }).map_err(fail)?;
    ensure_eq!(close.submit(child.tcp()), Status::SUCCESS, "Close");
    ensure!(
        child.poll_until(|c| c.state() == Ok(state) || close.done()),
        "never reached {state:?} (state {:?})",
        child.state()
    );
    ensure!(!close.done(), "Close completed before {state:?}");
    let mut ticks = TickCounter::start(p.boot())?;
    let done = wait_for(&child, 20_000_000_000, |_| {
        ticks.look();
        close.done()
    });
    ensure!(done, "Close did not complete in {state:?}");
    ensure_eq!(close.status(), Status::SUCCESS, "Close status");
    Ok(ticks.ticks)
}

/// A timer of N seconds is armed as N × 5 ticks at the current tick
/// (TcpTimer.c `TcpSetTimer`: `mTcpTick + TimeOut`) and fires at the tick
/// that reaches it (`TcpTickingDpc`), so it lasts between N × 5 - 1 and
/// N × 5 periods; the counter's own phase adds up to one period either way.
fn ensure_lingered(what: &str, ticks: u32, secs: u32) -> CaseResult {
    let nominal = secs * 5;
    ensure!(
        (nominal - 2..=nominal + 1).contains(&ticks),
        "{what} lasted {ticks} periods of 200 ms, expected {secs} s = {nominal} ticks \
         (-2/+1)"
    );
    Ok(())
}

/// TIME_WAIT lasts TimeWaitTimeout (3 s here, not the default 2 s): the
/// echo service answers the FIN with its own, so the active closer waits in
/// TIME_WAIT (TcpInput.c l.463-471: `TcpClearAllTimer`, then
/// `TcpSetTimer(TCP_TIMER_2MSL)`), then the Close completes SUCCESS.
pub(super) fn time_wait_lasts_its_timeout<T: SocketTarget>(t: &mut T) -> CaseResult {
    let values = Values {
        time_wait_timeout: 3,
        ..DEFAULTS
    };
    let ticks = close_lingers(t, ports::ECHO, values, Tcp4ConnectionState::TIME_WAIT)?;
    ensure_lingered("TIME_WAIT", ticks, 3)
}

/// FIN_WAIT_2 lasts FinTimeout (3 s here, not the default 2 s): the
/// accept-and-hold service acknowledges the FIN but never sends its own, so
/// the FIN_WAIT_2 timer (TcpInput.c l.1352-1356; TcpTimer.c
/// `TcpFinwait2Timeout`) ends the connection, and the Close completes
/// SUCCESS (`SockConnClosed`).
pub(super) fn fin_wait_2_lasts_its_timeout<T: SocketTarget>(t: &mut T) -> CaseResult {
    let values = Values {
        fin_timeout: 3,
        ..DEFAULTS
    };
    let ticks = close_lingers(
        t,
        ports::ACCEPT_HOLD,
        values,
        Tcp4ConnectionState::FIN_WAIT2,
    )?;
    ensure_lingered("FIN_WAIT_2", ticks, 3)
}
