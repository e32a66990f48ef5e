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

use alloc::vec::Vec;

use crate::error::{Errno, Error, Result};
use crate::firmware::{Platform, Status, Tcp4Of};
use crate::fw::Ctx;
use crate::net::{Inner, MAX_TX_SLOTS, State};
use crate::socket::{Phase, Sock, Socket, SocketId};
use crate::time::{self, Blocking};
use crate::token::{AllocError, SlotState, SlotTable, TokenKind};

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
        Blocking::Until(deadline) => inner
            .wait(st, deadline, run)
            .unwrap_or(Err(Error::timeout(api))),
    }
}

/// What recv can return now: Some(Ok(n)) bytes copied (0 = EOF), an error,
/// or None (would block).
fn recv_now<T>(
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
    if let Some(e) = sock.rx_err.take() {
        // Raised once; afterwards the stream reads as ended (Linux).
        sock.rx_eof = true;
        if sock.so_error.as_ref() == Some(&e) {
            sock.so_error = None;
        }
        return Some(Err(e));
    }
    if sock.rx_eof {
        return Some(Ok(0));
    }
    match sock.phase {
        Phase::Fresh | Phase::Listening => Some(Err(Error::os(Errno::ENOTCONN, "recv"))),
        Phase::Failed => Some(Err(sock
            .so_error
            .take()
            .unwrap_or(Error::os(Errno::ENOTCONN, "recv")))),
        Phase::Connecting => None,
        Phase::Connected => {
            let receiving = sock
                .recv_slot
                .is_some_and(|id| slots.state(id) == SlotState::Pending);
            if sock.close_slot.is_some() && !receiving {
                // Our Close went out: no Receive can be armed any more.
                Some(Ok(0))
            } else {
                None
            }
        }
    }
}

/// Queues up to `data.len()` bytes in one Transmit. None: budget full.
fn send_now<P: Platform>(
    ctx: &Ctx<'_, P>,
    slots: &mut SlotTable,
    sock: &mut Sock<Tcp4Of<P>>,
    data: &[u8],
) -> Option<Result<usize>> {
    if sock.shut_wr || sock.fin_wanted || sock.close_slot.is_some() {
        return Some(Err(Error::os(Errno::EPIPE, "send: write side shut down")));
    }
    if sock.reset {
        return Some(Err(Error::os(Errno::ECONNRESET, "send")));
    }
    if let Some(e) = sock.so_error.take() {
        return Some(Err(e));
    }
    match sock.phase {
        Phase::Fresh | Phase::Listening => return Some(Err(Error::os(Errno::ENOTCONN, "send"))),
        Phase::Failed => return Some(Err(Error::os(Errno::ENOTCONN, "send"))),
        Phase::Connecting => return None,
        Phase::Connected => {}
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
            Err(AllocError::TableFull) if !sock.tx_pending.is_empty() => return None,
            Err(_) => {
                return Some(Err(Error::os(
                    Errno::ENOBUFS,
                    "send: no token slot or pool memory",
                )));
            }
        },
    };
    let n = data.len().min(free);
    let (status, queued) = slots.submit_transmit(ctx, &sock.tcp, slot, &data[..n]);
    if status != Status::SUCCESS {
        sock.tx_idle.push(slot);
        return Some(Err(Error::from_status(
            crate::error::FirmwareCall::Transmit,
            status,
        )));
    }
    sock.tx_pending.push_back(slot);
    sock.tx_queued += queued;
    Some(Ok(queued))
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
