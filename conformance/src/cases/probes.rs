//! Quirk probes: ask the firmware itself, below the socket layer, how it
//! behaves, and compare with what the target is expected to be. On OVMF
//! these measure the real EDK2; on the simulator they check that the chosen
//! profile replays it.
//!
//! Every quirk switch of the simulator's profile has at least one probe that
//! fails when the switch is flipped (`tests/quirk_flip.rs` checks this), and
//! every option value of the profile is read back or timed
//! ([`options`]). What a probe asserts is what EDK2 edk2-stable202211
//! guarantees, with the source cited at the probe.

mod closing;
mod errors;
mod listen;
mod options;

use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};
use efisock::firmware::{BootServices, Platform, Status, Tcp4, Tcp4ConnectionState, status};
use efisock::raw::{RawChild, RawToken, TokenKind};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "probe",
            name: "unconfigured_not_started",
            about: "Connect/Receive on an unconfigured child return NOT_STARTED",
            run: unconfigured_not_started::<T>,
        },
        Case {
            group: "probe",
            name: "connect_completes",
            about: "Connect returns SUCCESS, then the token completes SUCCESS and the child is ESTABLISHED",
            run: connect_completes::<T>,
        },
        Case {
            group: "probe",
            name: "closed_port_status",
            about: "Connect to a closed port completes CONNECTION_RESET (EDK2) or REFUSED",
            run: closed_port_status::<T>,
        },
        Case {
            group: "probe",
            name: "transmit_inside_call",
            about: "a small Transmit is signalled before Transmit returns",
            run: transmit_inside_call::<T>,
        },
        Case {
            group: "probe",
            name: "receive_per_segment",
            about: "Receive completes with one segment (<= MSS) although the buffer is larger",
            run: receive_per_segment::<T>,
        },
        Case {
            group: "probe",
            name: "receive_fin_return_value",
            about: "after FIN, Receive returns CONNECTION_FIN as its result",
            run: receive_fin_return_value::<T>,
        },
        Case {
            group: "probe",
            name: "cancel_receive",
            about: "Cancel aborts a pending Receive (or is UNSUPPORTED on old firmware)",
            run: cancel_receive::<T>,
        },
        Case {
            group: "probe",
            name: "configure_null_aborts",
            about: "Configure(NULL) completes pending tokens with ABORTED inside the call",
            run: configure_null_aborts::<T>,
        },
        Case {
            group: "probe",
            name: "time_wait_holds_port",
            about: "a port in TIME_WAIT cannot be configured again (EDK2: INVALID_PARAMETER)",
            run: time_wait_holds_port::<T>,
        },
        Case {
            group: "probe",
            name: "close_with_unread_data_resets",
            about: "Close with unread received data resets the connection inside the call",
            run: closing::close_with_unread_data_resets::<T>,
        },
        Case {
            group: "probe",
            name: "receive_buffered_inside_call",
            about: "a Receive with data buffered is signalled before Receive returns",
            run: closing::receive_buffered_inside_call::<T>,
        },
        Case {
            group: "probe",
            name: "data_after_close_resets_armed",
            about: "data arriving after Close resets the connection; the pending Receive ends ABORTED",
            run: closing::data_after_close_resets_armed::<T>,
        },
        Case {
            group: "probe",
            name: "data_after_close_resets_unarmed",
            about: "data arriving after Close resets the connection (no TIME_WAIT) with no Receive pending",
            run: closing::data_after_close_resets_unarmed::<T>,
        },
        Case {
            group: "probe",
            name: "stored_error_survives_reconnect",
            about: "after a reset and a new Connect, the first Receive reports CONNECTION_RESET in the call",
            run: errors::stored_error_survives_reconnect::<T>,
        },
        Case {
            group: "probe",
            name: "listen_on_any_address",
            about: "a passive instance on 0.0.0.0 is accepted (old firmware: INVALID_PARAMETER)",
            run: listen::listen_on_any_address::<T>,
        },
        Case {
            group: "probe",
            name: "backlog_full_drops_syn",
            about: "a SYN beyond MaxSynBackLog is dropped, not refused: all are accepted in the end",
            run: listen::backlog_full_drops_syn::<T>,
        },
        Case {
            group: "probe",
            name: "option_values_in_force",
            about: "Configure takes options in range and replaces others by the defaults (GetModeData)",
            run: options::option_values_in_force::<T>,
        },
        Case {
            group: "probe",
            name: "time_wait_lasts_its_timeout",
            about: "TIME_WAIT lasts TimeWaitTimeout (3 s) on 200 ms ticks",
            run: options::time_wait_lasts_its_timeout::<T>,
        },
        Case {
            group: "probe",
            name: "fin_wait_2_lasts_its_timeout",
            about: "FIN_WAIT_2 lasts FinTimeout (3 s) on 200 ms ticks",
            run: options::fin_wait_2_lasts_its_timeout::<T>,
        },
        Case {
            group: "probe",
            name: "close_completes",
            about: "a graceful Close after the peer's FIN completes SUCCESS",
            run: close_completes::<T>,
        },
    ]
}

fn fail(what: impl ToString) -> CaseError {
    CaseError::new(what.to_string())
}

/// A new raw child that passes this host's address explicitly where old
/// firmware refuses UseDefaultAddress.
fn new_child<T: SocketTarget>(t: &T) -> Result<RawChild<T::P>, CaseError> {
    Ok(RawChild::create(t.platform())
        .map_err(fail)?
        .with_station(t.local_ip()))
}

/// A child configured as active towards the peer's `port` (not connected).
fn configured<T: SocketTarget>(t: &T, port: u16) -> Result<RawChild<T::P>, CaseError> {
    let child = new_child(t)?;
    ensure_eq!(
        child.configure_active(t.peer(port)),
        Status::SUCCESS,
        "Configure(active)"
    );
    Ok(child)
}

/// A child connected to the peer's `port`, through the raw calls.
fn connected<T: SocketTarget>(t: &T, port: u16) -> Result<RawChild<T::P>, CaseError> {
    let child = configured(t, port)?;
    let p = t.platform();
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    ensure_eq!(connect.status(), Status::SUCCESS, "Connect token status");
    Ok(child)
}

/// One step of [`wait_for`]: a Poll, then this long a Stall.
const WAIT_STEP_US: usize = 1_000;

/// Polls `child` about once a millisecond (Poll, then `Stall`) until `done`
/// holds or `max_ns` of firmware time passed; returns whether it holds.
/// For waits of seconds: a Stall lets firmware time pass without a Poll
/// storm (on the simulator each Poll costs virtual microseconds, so a
/// Poll-only wait of 30 s would take ten million calls).
fn wait_for<P: Platform>(
    child: &RawChild<P>,
    max_ns: u64,
    mut done: impl FnMut(&RawChild<P>) -> bool,
) -> bool {
    let boot = child.platform().boot();
    let start = boot.monotonic_ns();
    loop {
        if done(child) {
            return true;
        }
        if boot.monotonic_ns().saturating_sub(start) > max_ns {
            return done(child);
        }
        let _ = child.tcp().poll();
        let _ = boot.stall(WAIT_STEP_US);
    }
}

fn transmit<P: Platform>(p: &P, child: &RawChild<P>, bytes: &[u8]) -> CaseResult {
    let mut tx = RawToken::new(p.boot(), TokenKind::Transmit(bytes.to_vec())).map_err(fail)?;
    ensure_eq!(tx.submit(child.tcp()), Status::SUCCESS, "Transmit");
    ensure!(child.poll_until(|_| tx.done()), "Transmit did not complete");
    ensure_eq!(tx.status(), Status::SUCCESS, "Transmit status");
    Ok(())
}

fn unconfigured_not_started<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = new_child(t)?;
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(
        connect.submit(child.tcp()),
        Status::NOT_STARTED,
        "Connect when unconfigured"
    );
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    ensure_eq!(
        rx.submit(child.tcp()),
        Status::NOT_STARTED,
        "Receive when unconfigured"
    );
    Ok(())
}

fn connect_completes<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = configured(t, ports::ECHO)?;
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    // Usually the token is still pending here (SYN_SENT). EDK2 does not
    // promise it: Connect runs at TPL_CALLBACK, and a timer tick pending when
    // it restores the TPL can deliver the SYN-ACK before Connect returns
    // (seen in OVMF against slirp's instant answers). Only what is
    // guaranteed is asserted.
    if !connect.done() {
        ensure_eq!(
            child.state(),
            Ok(Tcp4ConnectionState::SYN_SENT),
            "state while Connect is pending"
        );
    }
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    ensure_eq!(connect.status(), Status::SUCCESS, "Connect status");
    ensure_eq!(child.state(), Ok(Tcp4ConnectionState::ESTABLISHED), "state");
    Ok(())
}

fn closed_port_status<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = configured(t, ports::REFUSED)?;
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    let expected = if t.expect().connect_closed_port_reports_reset {
        status::CONNECTION_RESET
    } else {
        status::CONNECTION_REFUSED
    };
    ensure_eq!(
        connect.status(),
        expected,
        "Connect status for a closed port"
    );
    Ok(())
}

fn transmit_inside_call<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ECHO)?;
    let mut tx =
        RawToken::new(p.boot(), TokenKind::Transmit(b"fifteen bytes!!".to_vec())).map_err(fail)?;
    ensure_eq!(tx.submit(child.tcp()), Status::SUCCESS, "Transmit");
    ensure!(
        tx.done(),
        "15-byte Transmit was not signalled inside the call"
    );
    ensure_eq!(tx.status(), Status::SUCCESS, "Transmit status");
    Ok(())
}

fn receive_per_segment<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::SOURCE_FIN)?;
    transmit(&p, &child, &protocol::source_request(64 * 1024))?;
    let mut sizes = Vec::new();
    let mut total = 0usize;
    for _ in 0..200 {
        if total >= 64 * 1024 {
            break;
        }
        let mut rx = RawToken::new(p.boot(), TokenKind::Receive(32 * 1024)).map_err(fail)?;
        match rx.submit(child.tcp()) {
            Status::SUCCESS => {}
            other => return Err(fail(format!("Receive after {total} bytes: {other:?}"))),
        }
        ensure!(child.poll_until(|_| rx.done()), "Receive did not complete");
        ensure_eq!(rx.status(), Status::SUCCESS, "Receive status");
        let got = rx.received();
        total += got.len();
        sizes.push(got.len());
    }
    ensure_eq!(total, 64 * 1024, "bytes received");
    let largest = sizes.iter().copied().max().unwrap_or(0);
    ensure!(
        largest <= 1460,
        "a Receive completed with {largest} bytes: more than one segment (sizes {sizes:?})"
    );
    Ok(())
}

fn receive_fin_return_value<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ACCEPT_CLOSE)?;
    ensure!(
        child.poll_until(|c| c.state() == Ok(Tcp4ConnectionState::CLOSE_WAIT)),
        "no FIN from accept-and-close (state {:?})",
        child.state()
    );
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    let result = rx.submit(child.tcp());
    if t.expect().receive_fin_as_return_value {
        ensure_eq!(
            result,
            status::CONNECTION_FIN,
            "Receive after FIN (function result)"
        );
    } else {
        ensure_eq!(result, Status::SUCCESS, "Receive after FIN");
        ensure!(child.poll_until(|_| rx.done()), "Receive did not complete");
        ensure_eq!(
            rx.status(),
            status::CONNECTION_FIN,
            "Receive token status after FIN"
        );
    }
    Ok(())
}

fn cancel_receive<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ECHO)?;
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    ensure_eq!(rx.submit(child.tcp()), Status::SUCCESS, "Receive");
    let result = rx.cancel(child.tcp());
    if t.expect().cancel_unsupported {
        ensure_eq!(result, Status::UNSUPPORTED, "Cancel on old firmware");
        ensure_eq!(child.reset(), Status::SUCCESS, "Configure(NULL) fallback");
        ensure!(rx.done(), "Configure(NULL) signalled the Receive");
    } else {
        ensure_eq!(result, Status::SUCCESS, "Cancel");
        ensure!(
            child.poll_until(|_| rx.done()),
            "cancelled Receive was not signalled"
        );
    }
    ensure_eq!(rx.status(), Status::ABORTED, "cancelled Receive status");
    Ok(())
}

fn configure_null_aborts<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ECHO)?;
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    ensure_eq!(rx.submit(child.tcp()), Status::SUCCESS, "Receive");
    ensure_eq!(child.reset(), Status::SUCCESS, "Configure(NULL)");
    ensure!(rx.done(), "Receive not signalled inside Configure(NULL)");
    ensure_eq!(rx.status(), Status::ABORTED, "Receive status");
    ensure_eq!(
        child.state(),
        Ok(Tcp4ConnectionState::CLOSED),
        "state after reset"
    );
    Ok(())
}

fn time_wait_holds_port<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let port = 44050;
    let child = new_child(t)?;
    ensure_eq!(
        child.configure_active_from(port, t.peer(ports::ACCEPT_CLOSE)),
        Status::SUCCESS,
        "Configure"
    );
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    ensure!(
        child.poll_until(|c| c.state() == Ok(Tcp4ConnectionState::CLOSE_WAIT)),
        "no FIN from accept-and-close"
    );
    let mut close = RawToken::new(p.boot(), TokenKind::Close { abort: false }).map_err(fail)?;
    ensure_eq!(close.submit(child.tcp()), Status::SUCCESS, "Close");
    ensure!(child.poll_until(|_| close.done()), "Close did not complete");
    // The peer closed first, so this side went through LAST_ACK, not
    // TIME_WAIT: once the instance is reset its port is free at once.
    ensure_eq!(child.reset(), Status::SUCCESS, "Configure(NULL)");
    let again = new_child(t)?;
    ensure_eq!(
        again.configure_active_from(port, t.peer(ports::ECHO)),
        Status::SUCCESS,
        "port after a passive close"
    );
    drop(again);
    // Now an active close: this side ends in TIME_WAIT.
    let active = new_child(t)?;
    ensure_eq!(
        active.configure_active_from(port + 1, t.peer(ports::ECHO)),
        Status::SUCCESS,
        "Configure"
    );
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(active.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        active.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    let mut close = RawToken::new(p.boot(), TokenKind::Close { abort: false }).map_err(fail)?;
    ensure_eq!(close.submit(active.tcp()), Status::SUCCESS, "Close");
    ensure!(
        active.poll_until(|c| c.state() == Ok(Tcp4ConnectionState::TIME_WAIT)),
        "active close never reached TIME_WAIT (state {:?})",
        active.state()
    );
    let other = new_child(t)?;
    let status = other.configure_active_from(port + 1, t.peer(ports::ECHO));
    let expected = if t.expect().time_wait_holds_port {
        Status::INVALID_PARAMETER
    } else {
        Status::SUCCESS
    };
    ensure_eq!(status, expected, "Configure on a port in TIME_WAIT");
    // The Close token is still pending in TIME_WAIT: reset the instance so
    // the firmware gives the token back before its event is closed.
    ensure_eq!(active.reset(), Status::SUCCESS, "Configure(NULL)");
    ensure!(close.done(), "reset completed the pending Close");
    Ok(())
}

fn close_completes<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ACCEPT_CLOSE)?;
    ensure!(
        child.poll_until(|c| c.state() == Ok(Tcp4ConnectionState::CLOSE_WAIT)),
        "no FIN from accept-and-close"
    );
    let mut close = RawToken::new(p.boot(), TokenKind::Close { abort: false }).map_err(fail)?;
    ensure_eq!(close.submit(child.tcp()), Status::SUCCESS, "Close");
    ensure!(child.poll_until(|_| close.done()), "Close did not complete");
    ensure_eq!(close.status(), Status::SUCCESS, "Close status");
    Ok(())
}
