//! `Socket`: the user's handle on one socket, and its options.
//!
//! Why a handle: the socket's state lives in the `Net`'s socket table (so
//! completions, select and teardown reach it); the handle is a `SocketId`
//! plus the `Net`, and every call on it starts with a safe point.

use core::net::SocketAddrV4;
use core::time::Duration;

use crate::calls::Ctx;
use crate::error::{Errno, Error, FirmwareCall, Result};
use crate::firmware::Platform;
use crate::net::{Inner, Net};
use crate::socket::table::State;
use crate::socket::{Phase, Sock, SocketId};

/// A TCP socket (AF_INET, SOCK_STREAM). Not `Clone`; dropping it closes it.
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// # let net = efisock::Net::new(platform);
/// # net.set_static(
/// #     std::net::Ipv4Addr::new(10, 0, 2, 15),
/// #     std::net::Ipv4Addr::new(255, 255, 255, 0),
/// #     None,
/// # )?;
/// use std::time::Duration;
///
/// let s = net.socket()?;
/// s.setblocking(false);
/// // Nonblocking connect: EINPROGRESS, then writable once it finished.
/// let err = s.connect("10.0.2.2:7".parse().unwrap()).unwrap_err();
/// assert_eq!(err.errno(), Some(efisock::Errno::EINPROGRESS));
/// let ready = net.select(&[], &[&s], &[], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready.write, [s.fileno()]);
/// assert_eq!(s.so_error(), 0, "connected");
/// s.settimeout(Some(Duration::from_secs(5)))?;
/// s.sendall(b"hi")?;
/// assert_eq!(s.recv(2)?, b"hi");
/// # Ok::<(), efisock::Error>(())
/// ```
pub struct Socket<P: Platform + 'static> {
    pub(crate) net: Net<P>,
    pub(crate) id: SocketId,
}

impl<P: Platform + 'static> core::fmt::Debug for Socket<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Socket(fd={})", self.id.0)
    }
}

impl<P: Platform + 'static> Socket<P> {
    pub(crate) fn from_parts(net: Net<P>, id: SocketId) -> Self {
        Socket { net, id }
    }

    /// Runs `f` on this socket's state after a safe point; EBADF once closed.
    pub(crate) fn with<R>(
        &self,
        api: &'static str,
        f: impl FnOnce(&Inner<P>, &Ctx<'_, P>, &mut State<P>) -> Result<R>,
    ) -> Result<R> {
        let inner = &*self.net.inner;
        let mut st = inner.state.borrow_mut();
        let ctx = inner.ctx();
        inner.safe_point(&ctx, &mut st);
        if !st.socks.contains_key(&self.id) {
            return Err(Error::os(Errno::EBADF, api));
        }
        f(inner, &ctx, &mut st)
    }

    /// The socket's number.
    pub fn fileno(&self) -> SocketId {
        self.id
    }

    /// `setblocking(flag)`: True = timeout None, False = timeout 0.
    pub fn setblocking(&self, flag: bool) {
        let _ = self.with("setblocking", |_, _, st| {
            if let Some(s) = st.socks.get_mut(&self.id) {
                s.timeout = if flag { None } else { Some(Duration::ZERO) };
            }
            Ok(())
        });
    }

    /// False iff the timeout is zero (Python's `getblocking`).
    pub fn getblocking(&self) -> bool {
        self.gettimeout() != Some(Duration::ZERO)
    }

    /// `settimeout`: None = blocking, zero = nonblocking, else a timeout
    /// after which blocking calls raise `Error::timeout` (losing nothing).
    pub fn settimeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.with("settimeout", |_, _, st| {
            if let Some(s) = st.socks.get_mut(&self.id) {
                s.timeout = timeout;
            }
            Ok(())
        })
    }

    /// The timeout (None = blocking).
    pub fn gettimeout(&self) -> Option<Duration> {
        let st = self.net.inner.state.borrow();
        st.socks.get(&self.id).and_then(|s| s.timeout)
    }

    /// `SO_REUSEADDR`. EDK2 cannot share a port held by another instance
    /// (TIME_WAIT included). With the option on, `listen`/`connect` on an
    /// explicitly bound port retry `Configure` for up to
    /// [`crate::REUSE_WAIT`] while the port is held (outlasting EDK2's 2 s
    /// TIME_WAIT), instead of failing at once with EADDRINUSE. Two live
    /// sockets of this `Net` still cannot bind the same port.
    pub fn set_reuseaddr(&self, on: bool) -> Result<()> {
        self.with("setsockopt", |_, _, st| {
            if let Some(s) = st.socks.get_mut(&self.id) {
                s.reuseaddr = on;
            }
            Ok(())
        })
    }

    /// `SO_LINGER`. `None` (the default): close is graceful (FIN), bounded
    /// by `NetConfig::close_timeout` before the Configure(NULL) fallback.
    /// `Some(Duration::ZERO)`: close aborts the connection (Close with
    /// AbortOnClose, the peer sees RST). `Some(d)`: graceful, but the
    /// fallback comes after `d`. Blocking sockets wait for the teardown
    /// either way; nonblocking ones return at once.
    pub fn set_linger(&self, linger: Option<core::time::Duration>) -> Result<()> {
        self.with("setsockopt", |_, _, st| {
            if let Some(s) = st.socks.get_mut(&self.id) {
                s.linger = linger;
            }
            Ok(())
        })
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> Option<core::time::Duration> {
        let st = self.net.inner.state.borrow();
        st.socks.get(&self.id).and_then(|s| s.linger)
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> bool {
        let st = self.net.inner.state.borrow();
        st.socks.get(&self.id).is_some_and(|s| s.reuseaddr)
    }

    /// `getsockopt(SO_ERROR)`: the errno of the pending error (cleared), 0 if none.
    pub fn so_error(&self) -> i32 {
        self.with("getsockopt", |_, _, st| {
            Ok(st
                .socks
                .get_mut(&self.id)
                .and_then(Sock::take_so_error)
                .and_then(|e| e.errno())
                .map_or(0, Errno::code))
        })
        .unwrap_or(Errno::EBADF.code())
    }

    /// The local address. Before the firmware assigned an ephemeral port it
    /// reports the bound address (port 0) or 0.0.0.0:0.
    pub fn getsockname(&self) -> Result<SocketAddrV4> {
        self.with("getsockname", |_, _, st| {
            let s = &st.socks[&self.id];
            Ok(s.local
                .or(s.bound)
                .unwrap_or(SocketAddrV4::new(core::net::Ipv4Addr::UNSPECIFIED, 0)))
        })
    }

    /// The peer's address; ENOTCONN unless connected.
    pub fn getpeername(&self) -> Result<SocketAddrV4> {
        self.with("getpeername", |_, _, st| {
            let s = &st.socks[&self.id];
            match (s.phase, s.peer) {
                (Phase::Connected, Some(p)) => Ok(p),
                _ => Err(Error::os(Errno::ENOTCONN, "getpeername")),
            }
        })
    }
}

impl<P: Platform + 'static> Drop for Socket<P> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl<P: Platform + 'static> Net<P> {
    /// A new AF_INET SOCK_STREAM socket (a fresh TCP4 child).
    pub fn socket(&self) -> Result<Socket<P>> {
        let inner = &*self.inner;
        let mut st = inner.state.borrow_mut();
        let ctx = inner.ctx();
        inner.safe_point(&ctx, &mut st);
        if st.down {
            return Err(Error::os(Errno::ENETDOWN, "socket: Net was shut down"));
        }
        if st.socks.len() >= inner.cfg.max_sockets {
            return Err(Error::os(Errno::ENOBUFS, "socket: max_sockets reached"));
        }
        let instance = st.instance();
        let (child, tcp) = ctx
            .create_child(instance)
            .map_err(|s| Error::from_status(FirmwareCall::CreateChild, s))?;
        let id = SocketId(st.next_id);
        st.next_id = st.next_id.wrapping_add(1);
        st.socks.insert(id, Sock::new(tcp, child, instance));
        drop(st);
        Ok(Socket::from_parts(self.clone(), id))
    }
}
