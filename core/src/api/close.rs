//! `Socket::close` and `Socket::shutdown`.
//!
//! What EFI cannot express: Close is a full close, there is no receive-only
//! half close. `shutdown(Read)` is local: queued and later data is
//! discarded and recv returns EOF. `shutdown(Write)` waits for the pending
//! Transmits, then sends FIN with a graceful Close; data already received
//! stays readable, but data the peer sends afterwards is answered with RST
//! by the firmware, and recv returns EOF once the queue is empty. The
//! teardown itself (graveyard) is in the socket layer's `teardown`.

use crate::api::socket::Socket;
use crate::calls::Ctx;
use crate::error::{Errno, Error, Result};
use crate::firmware::Platform;
use crate::net::Inner;
use crate::socket::table::State;
use crate::socket::teardown::{ABORT_GRACE, bury};
use crate::socket::{Phase, Shutdown, WriteSide};
use crate::time::{self, Blocking};

impl<P: Platform + 'static> Socket<P> {
    /// Closes the socket (idempotent; later calls on it fail with EBADF).
    /// Blocking sockets wait up to `close_timeout` (+1 s) for the teardown;
    /// nonblocking ones return at once and the graveyard finishes it.
    pub fn close(&self) -> Result<()> {
        let inner = &*self.net.inner;
        let Ok(mut st) = inner.state.try_borrow_mut() else {
            return Err(Error::os(Errno::EINVAL, "close: Net is in use"));
        };
        let ctx = inner.ctx();
        let Some(sock) = st.socks.remove(&self.id) else {
            return Ok(());
        };
        let instance = sock.instance;
        let linger = sock.linger.unwrap_or(inner.cfg.close_timeout);
        let nonblocking = time::blocking(0, sock.timeout) == Blocking::No;
        {
            let State { slots, corpses, .. } = &mut *st;
            bury(&ctx, slots, corpses, sock);
        }
        inner.safe_point(&ctx, &mut st);
        if nonblocking {
            return Ok(());
        }
        let deadline = ctx
            .now()
            .saturating_add(time::nanos(linger))
            .saturating_add(time::nanos(ABORT_GRACE));
        inner.wait(&mut st, Some(deadline), |_, st| {
            (!st.corpses.iter().any(|c| c.instance == instance)).then_some(())
        });
        // Still there: the graveyard keeps it until the firmware lets go.
        Ok(())
    }

    /// Shuts down one or both directions (see the module docs for what EFI
    /// can express). Not connected: ENOTCONN.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        self.with("shutdown", |inner, _, st| {
            let sock = st
                .socks
                .get_mut(&self.id)
                .ok_or(Error::os(Errno::EBADF, "shutdown"))?;
            if sock.phase != Phase::Connected {
                return Err(Error::os(Errno::ENOTCONN, "shutdown"));
            }
            let (rd, wr) = how.directions();
            if rd {
                sock.shut_rd = true;
                sock.rx.clear();
            }
            if wr && !sock.write.is_shut() {
                sock.write = WriteSide::FinWanted;
                let id = self.id;
                block_on_close(inner, st, id)?;
            }
            Ok(())
        })
    }
}

/// Waits (per the socket's blocking mode) until the deferred Close is submitted.
fn block_on_close<P: Platform>(
    inner: &Inner<P>,
    st: &mut State<P>,
    id: crate::socket::SocketId,
) -> Result<()> {
    let ctx = inner.ctx();
    inner.safe_point(&ctx, st);
    let timeout = st.socks[&id].timeout;
    let check = |_: &Ctx<'_, P>, st: &mut State<P>| {
        let sock = st.socks.get_mut(&id)?;
        sock.write.take_fin_outcome()
    };
    match time::blocking(ctx.now(), timeout) {
        // Nonblocking: the FIN goes out at a later safe point.
        Blocking::No => Ok(()),
        Blocking::Until(d) => inner
            .wait(st, d, check)
            .unwrap_or(Err(Error::timeout("shutdown"))),
    }
}
