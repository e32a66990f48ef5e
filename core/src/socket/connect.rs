//! `connect`/`connect_ex` and the shared `Configure` step.
//!
//! Why here: an EDK2 child is configured once, either active (connect) or
//! passive (listen); `Configure` is also where port conflicts and the
//! legacy `ALREADY_STARTED` quirk surface, so both paths share
//! [`configure`]. A failed connect leaves the child unusable for another
//! SYN (EDK2 does not reset its control flags), so a new attempt on the same
//! socket gets a fresh child and the old one goes to the graveyard.

use core::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{Errno, Error, ErrorKind, FirmwareCall, Result};
use crate::firmware::{
    Boolean, Ipv4Address, Platform, Status, Tcp4AccessPoint, Tcp4ConfigData, Tcp4Option,
};
use crate::fw::Ctx;
use crate::net::{Inner, State};
use crate::socket::listen::REUSE_WAIT;
use crate::socket::{Phase, Sock, Socket, SocketId, teardown};
use crate::time::{self, Blocking};
use crate::token::TokenKind;

/// The access point for a socket bound to `bound` (None: ephemeral,
/// default address) talking to `remote` (None: passive). `explicit` gives
/// the station address and mask for the `ALREADY_STARTED` fallback.
pub(crate) fn access_point(
    bound: Option<SocketAddrV4>,
    remote: Option<SocketAddrV4>,
    explicit: Option<(Ipv4Addr, Ipv4Addr)>,
) -> Tcp4AccessPoint {
    let port = bound.map_or(0, |b| b.port());
    let (use_default, station, mask) = match explicit {
        Some((a, m)) => (false, a, m),
        None => (true, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
    };
    Tcp4AccessPoint {
        use_default_address: Boolean::from(use_default),
        station_address: Ipv4Address::from(station),
        subnet_mask: Ipv4Address::from(mask),
        station_port: port,
        remote_address: Ipv4Address::from(remote.map_or(Ipv4Addr::UNSPECIFIED, |r| *r.ip())),
        remote_port: remote.map_or(0, |r| r.port()),
        active_flag: Boolean::from(remote.is_some()),
    }
}

/// EDK2's option defaults, with the backlog clamped to its 5..=10 range.
pub(crate) fn listen_option(backlog: u32) -> Tcp4Option {
    Tcp4Option {
        receive_buffer_size: 2 * 1024 * 1024,
        send_buffer_size: 2 * 1024 * 1024,
        max_syn_back_log: backlog.clamp(5, 10),
        connection_timeout: 75,
        data_retries: 12,
        fin_timeout: 2,
        time_wait_timeout: 2,
        keep_alive_probes: 6,
        keep_alive_time: 7200,
        keep_alive_interval: 30,
        enable_nagle: Boolean::TRUE,
        enable_time_stamp: Boolean::TRUE,
        enable_window_scaling: Boolean::TRUE,
        enable_selective_ack: Boolean::FALSE,
        enable_path_mtu_discovery: Boolean::FALSE,
    }
}

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
    Err(Error::from_status(FirmwareCall::Configure, status))
}

fn try_configure<P: Platform, T: crate::firmware::Tcp4>(
    ctx: &Ctx<'_, P>,
    sock: Option<&mut Sock<T>>,
    remote: Option<SocketAddrV4>,
    backlog: u32,
) -> Status {
    let Some(sock) = sock else {
        return Status::INVALID_PARAMETER;
    };
    let mut option = listen_option(backlog);
    let option_ptr: *mut Tcp4Option = if remote.is_none() {
        &mut option
    } else {
        core::ptr::null_mut()
    };
    let mut data = Tcp4ConfigData {
        type_of_service: 0,
        time_to_live: 64,
        access_point: access_point(sock.bound, remote, None),
        control_option: option_ptr,
    };
    let mut status = ctx.configure(&sock.tcp, sock.instance, Some(&data));
    if status == Status::ALREADY_STARTED {
        // Legacy firmware: pass the DHCP/static address explicitly.
        match crate::ipconfig::address(ctx) {
            Ok(Some(addr)) => {
                data.access_point = access_point(sock.bound, remote, Some(addr));
                status = ctx.configure(&sock.tcp, sock.instance, Some(&data));
            }
            // No address to pass yet: what current firmware reports as
            // NO_MAPPING (ENETDOWN), old firmware hides behind ALREADY_STARTED.
            Ok(None) => status = Status::NO_MAPPING,
            Err(_) => {}
        }
    }
    status
}

fn finish_configure<P: Platform>(ctx: &Ctx<'_, P>, st: &mut State<P>, id: SocketId) -> Result<()> {
    if let Some(sock) = st.socks.get_mut(&id) {
        sock.configured = true;
        sock.learn_local(ctx);
    }
    Ok(())
}

/// Validates a destination: a unicast address and a non-zero port.
pub(crate) fn check_destination(addr: SocketAddrV4) -> Result<()> {
    let ip = *addr.ip();
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || addr.port() == 0 {
        return Err(Error::os(
            Errno::EINVAL,
            "connect: destination must be a unicast address and a non-zero port",
        ));
    }
    Ok(())
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
        Phase::Listening => return Err(Error::os(Errno::EINVAL, "connect: socket is listening")),
        Phase::Connected => return Err(Error::os(Errno::EISCONN, "connect")),
        Phase::Connecting => {
            if mode == Blocking::No {
                return Err(Error::os(Errno::EALREADY, "connect"));
            }
        }
        Phase::Failed => {
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
            .is_none_or(|s| s.phase != Phase::Connecting)
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
    let slot = slots
        .alloc(ctx, TokenKind::Connect, 0, sock.instance)
        .map_err(|_| Error::os(Errno::ENOBUFS, "connect: no token slot"))?;
    let status = slots.submit_connect(ctx, &sock.tcp, slot);
    if status != Status::SUCCESS {
        slots.free(ctx, slot);
        // Unconfigure, so a later connect configures the new destination.
        let _ = ctx.configure(&sock.tcp, sock.instance, None);
        sock.configured = false;
        return Err(Error::from_status(FirmwareCall::Connect, status));
    }
    sock.connect_slot = Some(slot);
    sock.phase = Phase::Connecting;
    sock.connect_done = false;
    sock.connect_aborted = false;
    sock.peer = Some(addr);
    Ok(())
}

/// Timeout of a blocking connect: Cancel is unsafe on EDK2 for Connect
/// tokens (the handshake continues and later dereferences the token), so
/// the instance is reset with Configure(NULL), which completes the token
/// ABORTED inside the call.
fn abort_connect<P: Platform>(inner: &Inner<P>, ctx: &Ctx<'_, P>, st: &mut State<P>, id: SocketId) {
    if let Some(sock) = st.socks.get_mut(&id) {
        sock.connect_aborted = true;
        let _ = ctx.configure(&sock.tcp, sock.instance, None);
        sock.configured = false;
        sock.phase = Phase::Failed;
    }
    inner.safe_point(ctx, st);
}

/// Gives socket `id` a fresh child; the old one goes to the graveyard.
pub(crate) fn renew_child<P: Platform>(
    ctx: &Ctx<'_, P>,
    st: &mut State<P>,
    id: SocketId,
) -> Result<()> {
    let instance = st.instance();
    let (child, tcp) = ctx
        .create_child(instance)
        .map_err(|s| Error::from_status(FirmwareCall::CreateChild, s))?;
    let State {
        slots,
        socks,
        corpses,
        ..
    } = st;
    let Some(sock) = socks.get_mut(&id) else {
        let _ = ctx.destroy_child(instance, child);
        return Err(Error::os(Errno::EBADF, "connect"));
    };
    let mut fresh = Sock::new(tcp, child, instance);
    fresh.bound = sock.bound;
    fresh.timeout = sock.timeout;
    fresh.reuseaddr = sock.reuseaddr;
    let old = core::mem::replace(sock, fresh);
    teardown::bury(ctx, slots, corpses, old);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_access_point_uses_default_address_and_ephemeral_port() {
        let ap = access_point(
            None,
            Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 80)),
            None,
        );
        assert!(ap.use_default_address.is_true());
        assert_eq!(ap.station_port, 0);
        assert_eq!(ap.remote_address.0, [10, 0, 2, 2]);
        assert_eq!(ap.remote_port, 80);
        assert!(ap.active_flag.is_true());
    }

    #[test]
    fn passive_access_point_keeps_bound_port() {
        let ap = access_point(
            Some(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080)),
            None,
            None,
        );
        assert_eq!(ap.station_port, 8080);
        assert!(ap.active_flag.is_false());
        assert_eq!(ap.remote_port, 0);
    }

    #[test]
    fn explicit_address_for_already_started_quirk() {
        let ap = access_point(
            None,
            None,
            Some((Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(255, 255, 255, 0))),
        );
        assert!(ap.use_default_address.is_false());
        assert_eq!(ap.station_address.0, [10, 0, 2, 15]);
        assert_eq!(ap.subnet_mask.0, [255, 255, 255, 0]);
    }

    #[test]
    fn backlog_is_clamped_to_edk2_range() {
        assert_eq!(listen_option(0).max_syn_back_log, 5);
        assert_eq!(listen_option(7).max_syn_back_log, 7);
        assert_eq!(listen_option(128).max_syn_back_log, 10);
        assert!(listen_option(1).enable_selective_ack.is_false());
        assert!(listen_option(1).enable_path_mtu_discovery.is_false());
    }

    #[test]
    fn destinations_are_validated() {
        let ok = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7);
        assert!(check_destination(ok).is_ok());
        for bad in [
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7),
            SocketAddrV4::new(Ipv4Addr::BROADCAST, 7),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 0),
            SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), 7),
        ] {
            assert_eq!(
                check_destination(bad).unwrap_err().errno(),
                Some(Errno::EINVAL)
            );
        }
    }
}
