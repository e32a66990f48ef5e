//! Probes of the local Close: unread data, data arriving after the Close,
//! Receive after the Close, and completions inside the call.
//!
//! EDK2 (edk2-stable202211, `NetworkPkg/TcpDxe`) has no half-close: Close
//! moves ESTABLISHED to FIN_WAIT_1 at once (TcpMisc.c `TcpOnAppClose`), the
//! socket becomes disconnecting (SockInterface.c `SockClose`), and any
//! segment carrying data in FIN_WAIT_1/2, CLOSING, TIME_WAIT or LAST_ACK is
//! answered with RST (TcpInput.c, seventh step, `TCP_LOCAL_CLOSED` →
//! `RESET_THEN_DROP`) whether or not a Receive is pending. The connection
//! then ends through `TcpClose` → `SockConnClosed`: the Close token gets
//! SUCCESS, every other pending token the socket error, which nothing set,
//! so its initial EFI_ABORTED (SockImpl.c `SockCreate`, `SockConnFlush`).

use efisock::firmware::{Platform, Status, Tcp4ConnectionState};
use efisock::raw::{RawChild, RawToken, TokenKind};

use super::{connected, fail, transmit, wait_for};
use crate::peers::ports;
use crate::runner::CaseResult;
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// Bytes the probes send to the echo service (one segment).
const PAYLOAD: &[u8] = b"ten bytes!";

/// Polls for `ns` of firmware time whatever happens, so that frames in
/// flight (an echo split in two segments, say) have arrived.
fn settle<P: Platform>(child: &RawChild<P>, ns: u64) {
    let _ = wait_for(child, ns, |_| false);
}

/// Connected to the echo service with `PAYLOAD` sent, the first 4 echoed
/// bytes read by a Receive of 4 and the other 6 left unread in the
/// firmware's receive buffer.
fn with_unread_echo<T: SocketTarget>(t: &T) -> Result<RawChild<T::P>, crate::runner::CaseError> {
    let p = t.platform();
    let child = connected(t, ports::ECHO)?;
    transmit(&p, &child, PAYLOAD)?;
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(4)).map_err(fail)?;
    ensure_eq!(rx.submit(child.tcp()), Status::SUCCESS, "Receive(4)");
    ensure!(child.poll_until(|_| rx.done()), "no echo arrived");
    ensure_eq!(rx.status(), Status::SUCCESS, "Receive(4) status");
    ensure_eq!(rx.received(), &PAYLOAD[..4], "first echoed bytes");
    settle(&child, 100_000_000);
    Ok(child)
}

/// EDK2 `TcpOnAppClose` (TcpMisc.c l.751-760): Close with received data the
/// application has not read resets the connection inside the call (RST,
/// `TcpClose` → `SockConnClosed` signals the Close token SUCCESS).
pub(super) fn close_with_unread_data_resets<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = with_unread_echo(t)?;
    let mut close = RawToken::new(p.boot(), TokenKind::Close { abort: false }).map_err(fail)?;
    ensure_eq!(close.submit(child.tcp()), Status::SUCCESS, "Close");
    ensure!(
        close.done(),
        "a graceful Close with 6 unread bytes was not signalled inside the call \
         (EDK2 resets the connection at once)"
    );
    ensure_eq!(close.status(), Status::SUCCESS, "Close status");
    ensure_eq!(
        child.state(),
        Ok(Tcp4ConnectionState::CLOSED),
        "state after Close with unread data"
    );
    Ok(())
}

/// EDK2 `SockRcv` (SockInterface.c l.775-779): with data buffered, Receive
/// copies it and signals the token before the call returns (the notify runs
/// as `EfiReleaseLock` restores the TPL), not at a later Poll.
pub(super) fn receive_buffered_inside_call<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = with_unread_echo(t)?;
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    ensure_eq!(rx.submit(child.tcp()), Status::SUCCESS, "Receive");
    ensure!(
        rx.done(),
        "a Receive with 6 bytes buffered was not signalled inside the call"
    );
    ensure_eq!(rx.status(), Status::SUCCESS, "Receive status");
    ensure_eq!(rx.received(), &PAYLOAD[4..], "the buffered bytes");
    Ok(())
}

/// Sends `PAYLOAD` to the echo service and Closes at once, so that the echo
/// can only arrive after the Close (a round trip later). With `armed`, a
/// Receive is pending from before the Close. Returns the Close and the
/// Receive (if armed) once the Close completed, and every state seen.
struct CloseThenEcho<'a, P: Platform> {
    close: RawToken<'a, P::Boot>,
    rx: Option<RawToken<'a, P::Boot>>,
    seen: Vec<Tcp4ConnectionState>,
    receive_after_close: Status,
}

fn close_then_echo<'a, P: Platform + Clone>(
    p: &'a P,
    child: &RawChild<P>,
    armed: bool,
) -> Result<CloseThenEcho<'a, P>, crate::runner::CaseError> {
    let mut rx = if armed {
        let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
        ensure_eq!(
            rx.submit(child.tcp()),
            Status::SUCCESS,
            "Receive before Close"
        );
        Some(rx)
    } else {
        None
    };
    let mut tx = RawToken::new(p.boot(), TokenKind::Transmit(PAYLOAD.to_vec())).map_err(fail)?;
    ensure_eq!(tx.submit(child.tcp()), Status::SUCCESS, "Transmit");
    let mut close = RawToken::new(p.boot(), TokenKind::Close { abort: false }).map_err(fail)?;
    ensure_eq!(close.submit(child.tcp()), Status::SUCCESS, "Close");
    if let Some(rx) = rx.as_mut() {
        // The echo needs a round trip; had it arrived before the Close, the
        // Receive would hold it and this probe would measure nothing.
        ensure!(
            !(rx.done() && rx.status() == Status::SUCCESS),
            "the echo arrived before the Close: the probe cannot tell"
        );
    }
    // Right after Close the socket is disconnecting: SockRcv refuses it
    // (SockInterface.c l.737-740).
    let mut late = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    let receive_after_close = late.submit(child.tcp());
    let mut seen = Vec::new();
    ensure!(
        child.poll_until(|c| {
            if let Ok(s) = c.state() {
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
            }
            close.done()
        }),
        "Close did not complete (states seen {seen:?})"
    );
    ensure!(
        child.poll_until(|_| tx.done()),
        "Transmit was never signalled"
    );
    if late.in_flight() {
        ensure!(
            child.poll_until(|_| late.done()),
            "the Receive submitted after Close was never signalled"
        );
    }
    Ok(CloseThenEcho {
        close,
        rx,
        seen,
        receive_after_close,
    })
}

/// Data arriving after the local Close, with a Receive pending from before
/// the Close (what a socket layer that keeps a Receive armed does after
/// `shutdown(Write)`): EDK2 resets the connection, the Receive ends ABORTED,
/// the Close SUCCESS, and no TIME_WAIT follows.
pub(super) fn data_after_close_resets_armed<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ECHO)?;
    let mut r = close_then_echo(&p, &child, true)?;
    ensure_eq!(r.close.status(), Status::SUCCESS, "Close status");
    let rx = r.rx.as_mut().expect("armed");
    ensure!(rx.done(), "the pending Receive was not signalled");
    // Only the status says anything: an aborted token's DataLength is left
    // as submitted (`SockConnFlush` signals it without touching the data).
    ensure_eq!(
        rx.status(),
        Status::ABORTED,
        "pending Receive when the echo met the closed side (states {:?})",
        r.seen
    );
    ensure_eq!(
        r.receive_after_close,
        Status::ACCESS_DENIED,
        "Receive right after Close"
    );
    ensure!(
        !r.seen.contains(&Tcp4ConnectionState::TIME_WAIT),
        "the connection went through TIME_WAIT (states {:?}): the echo after Close \
         did not reset it",
        r.seen
    );
    ensure_eq!(
        child.state(),
        Ok(Tcp4ConnectionState::CLOSED),
        "final state"
    );
    Ok(())
}

/// As [`data_after_close_resets_armed`], with no Receive pending: the data
/// after the Close resets the connection, so the Close completes without
/// the FIN exchange and TIME_WAIT a graceful close would go through.
pub(super) fn data_after_close_resets_unarmed<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = connected(t, ports::ECHO)?;
    let r = close_then_echo(&p, &child, false)?;
    ensure_eq!(r.close.status(), Status::SUCCESS, "Close status");
    ensure_eq!(
        r.receive_after_close,
        Status::ACCESS_DENIED,
        "Receive right after Close"
    );
    ensure!(
        !r.seen.contains(&Tcp4ConnectionState::TIME_WAIT),
        "the connection went through TIME_WAIT (states {:?}): the echo after Close \
         did not reset it",
        r.seen
    );
    ensure_eq!(
        child.state(),
        Ok(Tcp4ConnectionState::CLOSED),
        "final state"
    );
    Ok(())
}
