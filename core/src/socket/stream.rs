//! `send`, `sendall`, `recv`, `recv_into`.
//!
//! Why this shape: received data is already in user space (the Receive kept
//! armed by `progress` moved it there), so recv only takes from a queue and
//! never loses data on timeout; send copies into pool-backed Transmit tokens
//! within a byte budget, because the firmware references (not copies) the
//! buffer until the token completes.
//!
//! Errors: after ECONNRESET is raised once, recv returns b"" (EOF), as
//! Linux/CPython do; send keeps raising ECONNRESET. After `shutdown(Write)`
//! send raises EPIPE.

use crate::calls::Ctx;
use crate::config::MAX_TX_SLOTS;
use crate::error::{Errno, Error, Result};
use crate::firmware::{Platform, Status, Tcp4Of};
use crate::slots::{AllocError, SlotState, SlotTable, TokenKind};
use crate::socket::{Phase, Sock};

/// What recv can return now: Some(Ok(n)) bytes copied (0 = EOF), an error,
/// or None (would block).
pub(crate) fn recv_now<T>(
    slots: &SlotTable,
    sock: &mut Sock<T>,
    out: &mut dyn FnMut(&mut Sock<T>) -> usize,
) -> Option<Result<usize>> {
    if sock.shut_rd {
        return Some(Ok(0));
    }
    if !sock.rx.is_empty() {
        return Some(Ok(out(sock)));
    }
    if let Some(e) = sock.read.take_error() {
        // Raised once; afterwards the stream reads as ended (Linux).
        if sock.so_error.as_ref() == Some(&e) {
            sock.so_error = None;
        }
        return Some(Err(e));
    }
    if sock.read.is_ended() {
        return Some(Ok(0));
    }
    match sock.phase {
        Phase::Fresh | Phase::Listening { .. } => Some(Err(Error::os(Errno::ENOTCONN, "recv"))),
        Phase::Failed { .. } => Some(Err(sock
            .so_error
            .take()
            .unwrap_or(Error::os(Errno::ENOTCONN, "recv")))),
        Phase::Connecting { .. } => None,
        Phase::Connected => {
            let receiving = sock
                .recv_slot
                .is_some_and(|id| slots.state(id) == SlotState::Pending);
            if sock.write.close_slot().is_some() && !receiving {
                // Our Close went out: no Receive can be armed any more.
                Some(Ok(0))
            } else {
                None
            }
        }
    }
}

/// Whether a send may proceed, before looking at the budget.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Fail with this error.
    Fail(Error),
    /// Wait (connect still pending).
    Block,
    /// Connected: go on.
    Open,
}

/// The send error table: write side shut → EPIPE; peer reset → ECONNRESET
/// (every time); a stored error (failed Transmit/connect) → raised once;
/// not connected → ENOTCONN; connecting → wait.
pub(crate) fn send_gate<T>(sock: &mut Sock<T>) -> Gate {
    if sock.write.is_shut() {
        return Gate::Fail(Error::os(Errno::EPIPE, "send: write side shut down"));
    }
    if sock.reset {
        return Gate::Fail(Error::os(Errno::ECONNRESET, "send"));
    }
    if let Some(e) = sock.so_error.take() {
        return Gate::Fail(e);
    }
    match sock.phase {
        Phase::Fresh | Phase::Listening { .. } | Phase::Failed { .. } => {
            Gate::Fail(Error::os(Errno::ENOTCONN, "send"))
        }
        Phase::Connecting { .. } => Gate::Block,
        Phase::Connected => Gate::Open,
    }
}

/// Transmit said ACCESS_DENIED on a socket we believed connected: EDK2
/// refuses Transmit outside SYN_SENT..CLOSE_WAIT, so the connection ended
/// (reset or timed out) and the completion that says why has not reached us
/// yet (its notify may run later on some firmware). Python and Linux report
/// ECONNRESET for a send on a connection that ended under it, and so do we,
/// from now on; the pending Receive still delivers the precise reason to
/// recv. None: the firmware still reports a sending state (a genuine
/// re-entrancy ACCESS_DENIED), reported as is.
fn connection_gone<P: Platform>(ctx: &Ctx<'_, P>, sock: &mut Sock<Tcp4Of<P>>) -> Option<Error> {
    use crate::firmware::Tcp4ConnectionState as S;
    let (st, state, _) = ctx.mode(&sock.tcp, sock.instance);
    let sending = [S::SYN_SENT, S::SYN_RECEIVED, S::ESTABLISHED, S::CLOSE_WAIT];
    if st != Status::SUCCESS || sending.contains(&state) {
        return None;
    }
    sock.reset = true;
    Some(Error::os(
        Errno::ECONNRESET,
        "send: the connection ended under it (Tcp4.Transmit: ACCESS_DENIED, TCP state no longer sending)",
    ))
}

/// What a send does when no Transmit slot can be created: with Transmits
/// in flight a slot frees when one completes, so it waits (None, like a full
/// budget); with none in flight, or when the firmware refused memory,
/// nothing will free one, so it fails with ENOBUFS.
pub(crate) fn on_no_slot(err: AllocError, in_flight: bool) -> Option<Result<usize>> {
    match err {
        AllocError::TableFull if in_flight => None,
        AllocError::TableFull | AllocError::Firmware(_) => Some(Err(Error::os(
            Errno::ENOBUFS,
            "send: no token slot or pool memory",
        ))),
    }
}

/// Queues up to `data.len()` bytes in one Transmit. None: budget full.
pub(crate) fn send_now<P: Platform>(
    ctx: &Ctx<'_, P>,
    slots: &mut SlotTable,
    sock: &mut Sock<Tcp4Of<P>>,
    data: &[u8],
) -> Option<Result<usize>> {
    match send_gate(sock) {
        Gate::Fail(e) => return Some(Err(e)),
        Gate::Block => return None,
        Gate::Open => {}
    }
    if data.is_empty() {
        return Some(Ok(0));
    }
    let free = ctx.cfg.send_budget.saturating_sub(sock.tx_queued);
    if free == 0 || sock.tx_pending.len() >= MAX_TX_SLOTS {
        return None;
    }
    let slot = match sock.tx_idle.pop() {
        Some(id) => id,
        None => match slots.alloc(ctx, TokenKind::Transmit, ctx.cfg.tx_chunk(), sock.instance) {
            Ok(id) => id,
            Err(e) => return on_no_slot(e, !sock.tx_pending.is_empty()),
        },
    };
    let n = data.len().min(free);
    let (status, queued) = slots.submit_transmit(ctx, &sock.tcp, slot, &data[..n]);
    if status != Status::SUCCESS {
        sock.tx_idle.push(slot);
        if status == Status::ACCESS_DENIED {
            if let Some(e) = connection_gone(ctx, sock) {
                return Some(Err(e));
            }
        }
        return Some(Err(Error::from_status(
            crate::error::FirmwareCall::Transmit,
            status,
        )));
    }
    sock.tx_pending.push_back(slot);
    sock.tx_queued += queued;
    Some(Ok(queued))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FirmwareCall;
    use crate::firmware::status;
    use crate::socket::{ReadSide, WriteSide};

    fn sock(phase: Phase) -> Sock<()> {
        let mut s = Sock::new((), core::ptr::null_mut(), 1);
        s.phase = phase;
        s
    }

    fn recv(s: &mut Sock<()>, n: usize) -> Option<Result<Vec<u8>>> {
        let slots = SlotTable::new(0);
        let mut out = Vec::new();
        let r = recv_now(&slots, s, &mut |s: &mut Sock<()>| {
            let k = n.min(s.rx.len());
            out.extend(s.rx.drain(..k));
            k
        });
        r.map(|r| r.map(|_| out))
    }

    #[test]
    fn recv_takes_at_most_n_and_leaves_the_rest() {
        let mut s = sock(Phase::Connected);
        s.rx.extend(b"hello");
        assert_eq!(recv(&mut s, 1).unwrap().unwrap(), b"h");
        assert_eq!(recv(&mut s, 10).unwrap().unwrap(), b"ello");
        assert_eq!(recv(&mut s, 10), None, "would block");
    }

    #[test]
    fn eof_is_sticky_and_comes_after_data() {
        let mut s = sock(Phase::Connected);
        s.rx.extend(b"ab");
        s.read = ReadSide::Ended;
        assert_eq!(recv(&mut s, 10).unwrap().unwrap(), b"ab");
        for _ in 0..3 {
            assert_eq!(recv(&mut s, 10).unwrap().unwrap(), b"");
        }
    }

    #[test]
    fn reset_is_raised_once_after_data_then_eof() {
        let mut s = sock(Phase::Connected);
        s.rx.extend(b"x");
        let e = Error::from_status(FirmwareCall::Receive, status::CONNECTION_RESET);
        s.read = ReadSide::Failed(e.clone());
        s.so_error = Some(e);
        assert_eq!(recv(&mut s, 10).unwrap().unwrap(), b"x");
        let err = recv(&mut s, 10).unwrap().unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ECONNRESET));
        assert!(s.so_error.is_none(), "raising it clears SO_ERROR");
        assert_eq!(recv(&mut s, 10).unwrap().unwrap(), b"");
    }

    #[test]
    fn shut_rd_reads_eof_even_with_data() {
        let mut s = sock(Phase::Connected);
        s.rx.extend(b"x");
        s.shut_rd = true;
        assert_eq!(recv(&mut s, 10).unwrap().unwrap(), b"");
    }

    #[test]
    fn recv_when_not_connected() {
        for phase in [Phase::Fresh, Phase::Listening { backlog: 1 }] {
            let err = recv(&mut sock(phase), 1).unwrap().unwrap_err();
            assert_eq!(err.errno(), Some(Errno::ENOTCONN));
        }
        assert_eq!(recv(&mut sock(Phase::Connecting { slot: 0 }), 1), None);
        let mut failed = sock(Phase::Failed {
            abandoned_connect: None,
        });
        failed.so_error = Some(Error::from_status(
            FirmwareCall::Connect,
            status::CONNECTION_RESET,
        ));
        let err = recv(&mut failed, 1).unwrap().unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ECONNREFUSED));
        let err = recv(&mut failed, 1).unwrap().unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENOTCONN));
    }

    #[test]
    fn no_slot_table() {
        let enobufs = Some(Errno::ENOBUFS);
        let rows = [
            (AllocError::TableFull, true, None),
            (AllocError::TableFull, false, enobufs),
            (
                AllocError::Firmware(Status::OUT_OF_RESOURCES),
                true,
                enobufs,
            ),
            (
                AllocError::Firmware(Status::OUT_OF_RESOURCES),
                false,
                enobufs,
            ),
        ];
        for (err, in_flight, expected) in rows {
            let got = on_no_slot(err, in_flight).map(|r| r.unwrap_err().errno().unwrap());
            assert_eq!(got, expected, "{err:?}, in flight {in_flight}");
        }
    }

    #[test]
    fn send_gate_table() {
        assert_eq!(send_gate(&mut sock(Phase::Connected)), Gate::Open);
        assert_eq!(
            send_gate(&mut sock(Phase::Connecting { slot: 0 })),
            Gate::Block
        );
        for phase in [
            Phase::Fresh,
            Phase::Listening { backlog: 1 },
            Phase::Failed {
                abandoned_connect: None,
            },
        ] {
            match send_gate(&mut sock(phase)) {
                Gate::Fail(e) => assert_eq!(e.errno(), Some(Errno::ENOTCONN)),
                g => panic!("{phase:?}: {g:?}"),
            }
        }
        for write in [
            WriteSide::FinWanted,
            WriteSide::Closing { slot: 1 },
            WriteSide::CloseFailed(None),
        ] {
            let mut s = sock(Phase::Connected);
            s.write = write;
            assert!(matches!(send_gate(&mut s), Gate::Fail(e) if e.errno() == Some(Errno::EPIPE)));
        }
        let mut s = sock(Phase::Connected);
        s.reset = true;
        for _ in 0..2 {
            assert!(
                matches!(send_gate(&mut s), Gate::Fail(e) if e.errno() == Some(Errno::ECONNRESET))
            );
        }
        let mut s = sock(Phase::Connected);
        s.so_error = Some(Error::from_status(FirmwareCall::Transmit, Status::TIMEOUT));
        assert!(matches!(send_gate(&mut s), Gate::Fail(e) if e.errno() == Some(Errno::ETIMEDOUT)));
        assert_eq!(
            send_gate(&mut s),
            Gate::Open,
            "a stored error is raised once"
        );
    }
}
