//! `bind`, `listen`, `accept`.
//!
//! Why: EDK2 has no separate bind; the station port is claimed by
//! `Configure`. `bind` therefore validates and records the address, and
//! rejects ports held by this `Net`'s live sockets at once (EADDRINUSE);
//! ports held elsewhere in the firmware (an instance in TIME_WAIT) surface
//! as EADDRINUSE from `listen`/`connect` (Configure INVALID_PARAMETER), or
//! are waited out with SO_REUSEADDR (see `Socket::set_reuseaddr`).
//!
//! Backlog: passed as MaxSynBackLog clamped to EDK2's 5..=10 (out-of-range
//! values would silently become 10). The core keeps one Accept armed while
//! fewer than `max(backlog, 1)` (at most 128) accepted children wait for
//! `accept()`, so the effective queue is the firmware backlog plus that.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use crate::api::connect::configure;
use crate::api::socket::Socket;
use crate::api::stream::block_on;
use crate::calls::ipconfig::address;
use crate::error::{Errno, Error, FirmwareCall, Result};
use crate::firmware::Platform;
use crate::socket::{Phase, Sock, SocketId};
use crate::time;

/// How long SO_REUSEADDR waits for a port held by another instance
/// (EDK2's TIME_WAIT is 2 s, checked on 200 ms ticks).
pub const REUSE_WAIT: Duration = Duration::from_millis(2600);

impl<P: Platform + 'static> Socket<P> {
    /// Records the local address. The IP must be 0.0.0.0 or the station
    /// address (else EADDRNOTAVAIL); port 0 picks an ephemeral port at
    /// listen/connect. Binding twice or after connect/listen: EINVAL.
    pub fn bind(&self, addr: SocketAddrV4) -> Result<()> {
        self.with("bind", |_, ctx, st| {
            let sock = &st.socks[&self.id];
            if sock.bound.is_some() || sock.phase != Phase::Fresh || sock.configured {
                return Err(Error::os(Errno::EINVAL, "bind: socket already bound"));
            }
            let ip = *addr.ip();
            if !ip.is_unspecified() {
                match address(ctx)? {
                    Some((station, _)) if station == ip => {}
                    _ => {
                        return Err(Error::os(
                            Errno::EADDRNOTAVAIL,
                            "bind: not this interface's address",
                        ));
                    }
                }
            }
            if addr.port() != 0 {
                let taken = st.socks.iter().any(|(id, s)| {
                    *id != self.id && s.local.or(s.bound).is_some_and(|l| l.port() == addr.port())
                });
                if taken {
                    return Err(Error::os(Errno::EADDRINUSE, "bind"));
                }
            }
            if let Some(s) = st.socks.get_mut(&self.id) {
                s.bound = Some(addr);
            }
            Ok(())
        })
    }

    /// Starts listening (binding an ephemeral port if unbound, like Python).
    /// Calling it again on a listener only updates the backlog.
    pub fn listen(&self, backlog: u32) -> Result<()> {
        self.with("listen", |inner, ctx, st| {
            let sock = &st.socks[&self.id];
            match sock.phase {
                Phase::Listening { .. } => {
                    if let Some(s) = st.socks.get_mut(&self.id) {
                        s.phase = Phase::Listening { backlog };
                    }
                    return Ok(());
                }
                Phase::Fresh if !sock.configured => {}
                _ => {
                    return Err(Error::os(
                        Errno::EINVAL,
                        "listen: socket is connected or connecting",
                    ));
                }
            }
            let deadline = time::deadline(ctx.now(), sock.timeout);
            configure(inner, st, self.id, None, backlog, deadline)?;
            if let Some(s) = st.socks.get_mut(&self.id) {
                s.phase = Phase::Listening { backlog };
            }
            // Arms the first Accept.
            inner.safe_point(ctx, st);
            Ok(())
        })
    }

    /// Accepts a connection: the new socket (blocking) and the peer address.
    pub fn accept(&self) -> Result<(Socket<P>, SocketAddrV4)> {
        let (id, peer) = self.with("accept", |inner, ctx, st| {
            if !matches!(st.socks[&self.id].phase, Phase::Listening { .. }) {
                return Err(Error::os(Errno::EINVAL, "accept: socket is not listening"));
            }
            let child = block_on(inner, st, self.id, "accept", |_, _, sock| {
                if let Some(child) = sock.accept_q.pop_front() {
                    return Some(Ok(child));
                }
                sock.accept_err.take().map(Err)
            })?;
            let instance = st.instance();
            if st.socks.len() >= inner.cfg.max_sockets {
                let _ = ctx.destroy_child(instance, child);
                return Err(Error::os(
                    Errno::ENOBUFS,
                    "accept: max_sockets reached; connection dropped",
                ));
            }
            let tcp = match ctx.open(instance, child) {
                Ok(t) => t,
                Err(s) => {
                    let _ = ctx.destroy_child(instance, child);
                    return Err(Error::from_status(FirmwareCall::Accept, s));
                }
            };
            let mut sock = Sock::new(tcp, child, instance);
            sock.phase = Phase::Connected;
            sock.configured = true;
            sock.learn_local(ctx);
            let peer = sock
                .peer
                .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
            let id = SocketId(st.next_id);
            st.next_id = st.next_id.wrapping_add(1);
            st.socks.insert(id, sock);
            // Arms the child's Receive.
            inner.safe_point(ctx, st);
            Ok((id, peer))
        })?;
        Ok((Socket::from_parts(self.net.clone(), id), peer))
    }
}
