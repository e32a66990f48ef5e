//! `connect`/`connect_ex` and the `Configure` step with its SO_REUSEADDR
//! wait.
//!
//! A failed connect leaves the child unusable for another SYN (EDK2 does
//! not reset its control flags), so a new attempt on the same socket gets a
//! fresh child and the old one goes to the graveyard.

use core::net::SocketAddrV4;

use crate::api::listen::REUSE_WAIT;
use crate::api::socket::Socket;
use crate::calls::Ctx;
use crate::error::{Errno, Error, ErrorKind, FirmwareCall, Result};
use crate::firmware::{Platform, Status, Tcp4Of};
use crate::net::Inner;
use crate::slots::TokenKind;
use crate::socket::configure::{
    check_destination, finish_configure, forget_unmapped_child, renew_child, try_configure,
};
use crate::socket::table::State;
use crate::socket::{Phase, Sock, SocketId};
use crate::time::{self, Blocking};

/// Configures socket `id` (active towards `remote`, or passive with
/// `backlog`). Handles `ALREADY_STARTED` (retry with the explicit address)
/// and, with SO_REUSEADDR on an explicit port, retries a port still held
/// (INVALID_PARAMETER) for up to [`REUSE_WAIT`] or the socket deadline.
pub(crate) fn configure<P: Platform>(
    inner: &Inner<P>,
    st: &mut State<P>,
    id: SocketId,
    remote: Option<SocketAddrV4>,
    backlog: u32,
    deadline: Option<u64>,
) -> Result<()> {
    let ctx = inner.ctx();
    let first = try_configure(&ctx, st.socks.get_mut(&id), remote, backlog);
    let status = match first {
        Status::SUCCESS => return finish_configure(&ctx, st, id),
        s => s,
    };
    let sock = &st.socks[&id];
    let explicit_port = sock.bound.is_some_and(|b| b.port() != 0);
    if status == Status::INVALID_PARAMETER && sock.reuseaddr && explicit_port {
        let reuse_deadline = time::earliest(
            Some(ctx.now().saturating_add(time::nanos(REUSE_WAIT))),
            deadline,
        );
        let got = inner.wait(st, reuse_deadline, |ctx, st| {
            match try_configure(ctx, st.socks.get_mut(&id), remote, backlog) {
                Status::INVALID_PARAMETER => None,
                s => Some(s),
            }
        });
        return match got {
            Some(Status::SUCCESS) => finish_configure(&ctx, st, id),
            Some(s) => Err(Error::from_status(FirmwareCall::Configure, s)),
            None => Err(Error::from_status(
                FirmwareCall::Configure,
                Status::INVALID_PARAMETER,
            )),
        };
    }
    if status == Status::NO_MAPPING {
        forget_unmapped_child(&ctx, st, id);
    }
    Err(Error::from_status(FirmwareCall::Configure, status))
}

/// `connect` on socket `id`.
pub(crate) fn connect<P: Platform>(
    inner: &Inner<P>,
    ctx: &Ctx<'_, P>,
    st: &mut State<P>,
    id: SocketId,
    addr: SocketAddrV4,
) -> Result<()> {
    check_destination(addr)?;
    let sock = st
        .socks
        .get_mut(&id)
        .ok_or(Error::os(Errno::EBADF, "connect"))?;
    let now = ctx.now();
    let mode = time::blocking(now, sock.timeout);
    match sock.phase {
        Phase::Listening { .. } => {
            return Err(Error::os(Errno::EINVAL, "connect: socket is listening"));
        }
        Phase::Connected => return Err(Error::os(Errno::EISCONN, "connect")),
        Phase::Connecting { .. } => {
            if mode == Blocking::No {
                return Err(Error::os(Errno::EALREADY, "connect"));
            }
        }
        Phase::Failed { .. } => {
            if let Some(e) = sock.so_error.take() {
                return Err(e);
            }
            renew_child(ctx, st, id)?;
            start(inner, ctx, st, id, addr)?;
        }
        Phase::Fresh => start(inner, ctx, st, id, addr)?,
    }
    if mode == Blocking::No {
        return Err(Error::os(Errno::EINPROGRESS, "connect"));
    }
    let sock_timeout = st.socks[&id].timeout;
    let cfg_deadline = if sock_timeout.is_none() {
        time::deadline(now, inner.cfg.connect_timeout)
    } else {
        None
    };
    let deadline = match mode {
        Blocking::Until(d) => time::earliest(d, cfg_deadline),
        Blocking::No => Some(now),
    };
    let done = inner.wait(st, deadline, |_, st| {
        st.socks
            .get(&id)
            .is_none_or(|s| !s.phase.is_connecting())
            .then_some(())
    });
    if done.is_none() {
        abort_connect(inner, ctx, st, id);
        return Err(if sock_timeout.is_some() {
            Error::timeout("connect")
        } else {
            Error::os(
                Errno::ETIMEDOUT,
                "connect: NetConfig.connect_timeout expired",
            )
        });
    }
    let sock = st
        .socks
        .get_mut(&id)
        .ok_or(Error::os(Errno::EBADF, "connect"))?;
    match sock.phase {
        Phase::Connected => Ok(()),
        _ => Err(sock
            .so_error
            .take()
            .unwrap_or(Error::os(Errno::ECONNABORTED, "connect"))),
    }
}

/// Configure (if needed) and submit the Connect token.
fn start<P: Platform>(
    inner: &Inner<P>,
    ctx: &Ctx<'_, P>,
    st: &mut State<P>,
    id: SocketId,
    addr: SocketAddrV4,
) -> Result<()> {
    let deadline = time::deadline(ctx.now(), st.socks[&id].timeout);
    if !st.socks[&id].configured {
        configure(inner, st, id, Some(addr), 0, deadline)?;
    }
    let State { slots, socks, .. } = st;
    let sock = socks
        .get_mut(&id)
        .ok_or(Error::os(Errno::EBADF, "connect"))?;
    // A connect that fails before its token is submitted unconfigures the
    // child, so a later connect configures its own destination.
    let Ok(slot) = slots.alloc(ctx, TokenKind::Connect, 0, sock.instance) else {
        unconfigure(ctx, sock);
        return Err(Error::os(Errno::ENOBUFS, "connect: no token slot"));
    };
    let status = slots.submit_connect(ctx, &sock.tcp, slot);
    if status != Status::SUCCESS {
        slots.free(ctx, slot);
        unconfigure(ctx, sock);
        return Err(Error::from_status(FirmwareCall::Connect, status));
    }
    sock.phase = Phase::Connecting { slot };
    sock.peer = Some(addr);
    Ok(())
}

/// Configure(NULL): the child forgets its destination (EDK2 resets the
/// instance and completes its tokens ABORTED inside the call). Its status
/// is not an error to report: the caller is already failing or aborting.
fn unconfigure<P: Platform>(ctx: &Ctx<'_, P>, sock: &mut Sock<Tcp4Of<P>>) {
    let _ = ctx.configure(&sock.tcp, sock.instance, None);
    sock.configured = false;
}

/// Timeout of a blocking connect: Cancel is unsafe on EDK2 for Connect
/// tokens (the handshake continues and later dereferences the token), so
/// the instance is reset with Configure(NULL), which completes the token
/// ABORTED inside the call.
fn abort_connect<P: Platform>(inner: &Inner<P>, ctx: &Ctx<'_, P>, st: &mut State<P>, id: SocketId) {
    if let Some(sock) = st.socks.get_mut(&id) {
        unconfigure(ctx, sock);
        sock.phase = sock.phase.abandon_connect();
    }
    inner.safe_point(ctx, st);
}

impl<P: Platform + 'static> Socket<P> {
    /// Connects to `addr`. Blocking: until connected, failed or timed out
    /// (`Error::timeout`; the attempt is aborted). Nonblocking: EINPROGRESS,
    /// then EALREADY while pending, EISCONN once connected; the outcome is
    /// reported by `so_error()` and by the next connect/send/recv.
    pub fn connect(&self, addr: SocketAddrV4) -> Result<()> {
        self.with("connect", |inner, ctx, st| {
            connect(inner, ctx, st, self.id, addr)
        })
    }

    /// Like `connect` but returns 0 or the errno code (EAGAIN for a timeout,
    /// as CPython does).
    pub fn connect_ex(&self, addr: SocketAddrV4) -> i32 {
        match self.connect(addr) {
            Ok(()) => 0,
            Err(e) => match e.kind() {
                ErrorKind::Os(errno) => errno.code(),
                ErrorKind::Timeout => Errno::EAGAIN.code(),
                _ => Errno::EINVAL.code(),
            },
        }
    }
}
