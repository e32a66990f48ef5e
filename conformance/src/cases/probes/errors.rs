//! Probe of the socket error EDK2 stores when a connection is reset.
//!
//! A RST stores EFI_CONNECTION_RESET in the socket (TcpInput.c l.1101,
//! `SOCK_ERROR`). Only `SockRcv` (SockInterface.c l.760-763) and
//! Configure(NULL) (`SockFlush`, l.835) put it back to EFI_ABORTED; Connect
//! does not touch it. So on a child reconnected after a reset, the first
//! Receive is signalled inside the call with the old connection's error.

use efisock::firmware::{Platform, Status, Tcp4ConnectionState, status};
use efisock::raw::{RawToken, TokenKind};

use super::{configured, fail, transmit};
use crate::peers::{ports, protocol};
use crate::runner::CaseResult;
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// Reset by the peer with no token pending (so nothing consumes the stored
/// error), reconnected on the same child: the first Receive reports
/// CONNECTION_RESET inside the call.
pub(super) fn stored_error_survives_reconnect<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let child = configured(t, ports::SOURCE_RST)?;
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    ensure_eq!(connect.status(), Status::SUCCESS, "Connect status");
    // Zero bytes asked: the source resets at once.
    transmit(&p, &child, &protocol::source_request(0))?;
    ensure!(
        child.poll_until(|c| c.state() == Ok(Tcp4ConnectionState::CLOSED)),
        "the source's RST never closed the connection (state {:?})",
        child.state()
    );
    let mut again = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(
        again.submit(child.tcp()),
        Status::SUCCESS,
        "Connect after the reset"
    );
    ensure!(
        child.poll_until(|_| again.done()),
        "second Connect did not complete"
    );
    ensure_eq!(again.status(), Status::SUCCESS, "second Connect status");
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(100)).map_err(fail)?;
    ensure_eq!(
        rx.submit(child.tcp()),
        Status::SUCCESS,
        "first Receive on the new connection"
    );
    ensure!(
        rx.done(),
        "the first Receive on the new connection was not signalled inside the call \
         (the stored error did not survive Connect)"
    );
    ensure_eq!(
        rx.status(),
        status::CONNECTION_RESET,
        "first Receive on the new connection"
    );
    Ok(())
}
