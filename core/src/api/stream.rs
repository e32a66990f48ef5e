//! `send`, `sendall`, `recv`, `recv_into`, and `block_on`, the blocking
//! wrapper every socket call that waits goes through.
//!
//! Errors: after ECONNRESET is raised once, recv returns b"" (EOF), as
//! Linux/CPython do; send keeps raising ECONNRESET. After `shutdown(Write)`
//! send raises EPIPE.

use alloc::vec::Vec;

use crate::api::socket::Socket;
use crate::calls::Ctx;
use crate::error::{Errno, Error, Result};
use crate::firmware::{Platform, Tcp4Of};
use crate::net::Inner;
use crate::slots::SlotTable;
use crate::socket::stream::{recv_now, send_now};
use crate::socket::table::State;
use crate::socket::{Sock, SocketId};
use crate::time::{self, Blocking};

/// Runs `check` until it yields, honouring the socket's blocking mode:
/// nonblocking → one check then EAGAIN; timeout → `Error::timeout(api)`.
pub(crate) fn block_on<P: Platform, R>(
    inner: &Inner<P>,
    st: &mut State<P>,
    id: SocketId,
    api: &'static str,
    mut check: impl FnMut(&Ctx<'_, P>, &mut SlotTable, &mut Sock<Tcp4Of<P>>) -> Option<Result<R>>,
) -> Result<R> {
    let ctx = inner.ctx();
    let timeout = st
        .socks
        .get(&id)
        .ok_or(Error::os(Errno::EBADF, api))?
        .timeout;
    let run = |ctx: &Ctx<'_, P>, st: &mut State<P>| {
        let State { slots, socks, .. } = st;
        match socks.get_mut(&id) {
            Some(sock) => check(ctx, slots, sock),
            None => Some(Err(Error::os(Errno::EBADF, api))),
        }
    };
    match time::blocking(ctx.now(), timeout) {
        // Nonblocking: check, Tcp4.Poll once, check again; then EAGAIN.
        Blocking::No => inner
            .wait(st, Some(ctx.now()), run)
            .unwrap_or(Err(Error::os(Errno::EAGAIN, api))),
        Blocking::Until(deadline) => inner.wait(st, deadline, run).unwrap_or_else(|| {
            #[cfg(feature = "deliberate-bugs")]
            if api.starts_with("recv")
                && crate::deliberate::is_enabled(crate::deliberate::Bug::FreeRxBufferOnTimeout)
            {
                // DELIBERATE BUG (a): the armed Receive is still pending.
                if let Some(slot) = st.socks.get(&id).and_then(|s| s.recv_slot) {
                    st.slots.deliberately_free_buffer(&ctx, slot);
                }
            }
            Err(Error::timeout(api))
        }),
    }
}

impl<P: Platform + 'static> Socket<P> {
    /// Receives up to `bufsize` bytes; an empty Vec means EOF (or bufsize 0).
    pub fn recv(&self, bufsize: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.with("recv", |inner, _, st| {
            if bufsize == 0 {
                return Ok(0);
            }
            block_on(inner, st, self.id, "recv", |_, slots, sock| {
                recv_now(slots, sock, &mut |s: &mut Sock<Tcp4Of<P>>| {
                    let n = bufsize.min(s.rx.len());
                    out.extend(s.rx.drain(..n));
                    n
                })
            })
        })?;
        Ok(out)
    }

    /// Receives into `buf`; returns the byte count (0 = EOF or empty buf).
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.with("recv_into", |inner, _, st| {
            if buf.is_empty() {
                return Ok(0);
            }
            block_on(inner, st, self.id, "recv_into", |_, slots, sock| {
                recv_now(slots, sock, &mut |s: &mut Sock<Tcp4Of<P>>| {
                    let n = buf.len().min(s.rx.len());
                    for (dst, src) in buf.iter_mut().zip(s.rx.drain(..n)) {
                        *dst = src;
                    }
                    n
                })
            })
        })
    }

    /// Queues some of `data`; returns how many bytes were accepted (at most
    /// the free send budget). Nonblocking with the budget full: EAGAIN.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        self.with("send", |inner, _, st| {
            block_on(inner, st, self.id, "send", |ctx, slots, sock| {
                send_now(ctx, slots, sock, data)
            })
        })
    }

    /// Sends all of `data` (the timeout covers the whole call). On error or
    /// timeout, an unknown prefix may have been queued, as in Python.
    pub fn sendall(&self, data: &[u8]) -> Result<()> {
        self.with("sendall", |inner, ctx, st| {
            let mut off = 0usize;
            let timeout = st.socks[&self.id].timeout;
            let step = |ctx: &Ctx<'_, P>, st: &mut State<P>| -> Option<Result<()>> {
                let State { slots, socks, .. } = st;
                let sock = match socks.get_mut(&self.id) {
                    Some(s) => s,
                    None => return Some(Err(Error::os(Errno::EBADF, "sendall"))),
                };
                while off < data.len() {
                    match send_now(ctx, slots, sock, &data[off..])? {
                        Ok(n) => off += n,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Some(Ok(()))
            };
            match time::blocking(ctx.now(), timeout) {
                Blocking::No => inner
                    .wait(st, Some(ctx.now()), step)
                    .unwrap_or(Err(Error::os(Errno::EAGAIN, "sendall"))),
                Blocking::Until(d) => inner
                    .wait(st, d, step)
                    .unwrap_or(Err(Error::timeout("sendall"))),
            }
        })
    }
}
