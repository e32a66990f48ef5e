//! Asking the peer what it saw: witnessed connections and witness queries
//! (the mechanism is described in [`crate::peers::witness`]).

use std::sync::atomic::{AtomicU64, Ordering};

use efisock::Socket;

use super::util::{connect, recv_exact};
use crate::peers::ports;
use crate::peers::witness::protocol::VIEW_LEN;
use crate::peers::witness::{Ending, Leg, PeerView, Query, Until};
use crate::runner::{CaseError, CaseResult, Context};
use crate::target::SocketTarget;

/// How long the witness may wait for a connection to end (peer host time).
pub const WITNESS_WAIT_MS: u32 = 10_000;

/// Tokens only need to be unique per peer host; inside OVMF one host serves
/// the whole run, so a process-wide counter.
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// A fresh token for a witnessed connection.
pub fn new_token() -> u64 {
    NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
}

/// A socket connected to the witnessed port of the service on `port`, its
/// token already sent; returns the socket and the token.
pub fn connect_witnessed<T: SocketTarget>(
    t: &T,
    port: u16,
) -> Result<(Socket<T::P>, u64), CaseError> {
    let s = connect(t, ports::witnessed(port))?;
    let token = new_token();
    s.sendall(&token.to_be_bytes()).context("witness token")?;
    Ok((s, token))
}

/// What the peer saw of the connection tagged `token` (its `leg`), once
/// `until` holds or the witness's wait ran out. Fails if the witness does
/// not know the token.
pub fn peer_view<T: SocketTarget>(
    t: &T,
    token: u64,
    leg: Leg,
    until: Until,
) -> Result<PeerView, CaseError> {
    let s = connect(t, ports::WITNESS)?;
    let query = Query {
        token,
        leg,
        until,
        wait_ms: WITNESS_WAIT_MS,
    };
    s.sendall(&query.encode()).context("witness query")?;
    let raw = recv_exact(&s, VIEW_LEN)?;
    let raw: &[u8; VIEW_LEN] = raw
        .as_slice()
        .try_into()
        .map_err(|_| CaseError::new("witness answer of the wrong length"))?;
    let view = PeerView::decode(raw);
    if !view.known {
        return Err(CaseError::new(format!(
            "the witness does not know token {token} ({leg:?})"
        )));
    }
    Ok(view)
}

/// What the peer saw once the connection `token` ended (FIN plus settling
/// time, RST, or closed).
pub fn ended_view<T: SocketTarget>(t: &T, token: u64) -> Result<PeerView, CaseError> {
    peer_view(t, token, Leg::Accepted, Until::Ended)
}

/// Fails unless the peer saw the connection end as `want`.
pub fn expect_ending(view: &PeerView, want: Ending, what: &str) -> CaseResult {
    if view.ending() == want {
        Ok(())
    } else {
        Err(CaseError::new(format!(
            "{what}: the peer saw {:?}, expected {want:?} ({view:?})",
            view.ending()
        )))
    }
}

/// Fails unless the peer saw a graceful end: a FIN, and no RST before it.
///
/// A RST after the FIN is accepted: efisock tears a child down once it
/// reaches TIME_WAIT, and the simulator's DestroyChild then sends a RST
/// where EDK2 sends nothing (`SockDestroyChild`, SockInterface.c
/// l.132-247, code-read; docs/edk2-divergences.md, "DestroyChild"). The
/// FIN came first, which is all a graceful close promises the peer.
pub fn expect_graceful(view: &PeerView, what: &str) -> CaseResult {
    match view.ending() {
        Ending::Fin => Ok(()),
        Ending::FinThenRst if view.rst_at_ns >= view.fin_at_ns => Ok(()),
        other => Err(CaseError::new(format!(
            "{what}: the peer saw {other:?}, expected a FIN ({view:?})"
        ))),
    }
}

/// Fails unless the peer read exactly `count` bytes with checksum `sum`.
pub fn expect_bytes_in(view: &PeerView, count: u64, sum: u64, what: &str) -> CaseResult {
    if (view.bytes_in, view.checksum_in) == (count, sum) {
        Ok(())
    } else {
        Err(CaseError::new(format!(
            "{what}: the peer read {} bytes (checksum {:#x}), expected {count} ({sum:#x})",
            view.bytes_in, view.checksum_in
        )))
    }
}
