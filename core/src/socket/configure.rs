//! `connect`/`connect_ex` and the shared `Configure` step.
//!
//! Why here: an EDK2 child is configured once, either active (connect) or
//! passive (listen); `Configure` is also where port conflicts and the
//! legacy `ALREADY_STARTED` quirk surface, so both paths share
//! [`configure`]. A failed connect leaves the child unusable for another
//! SYN (EDK2 does not reset its control flags), so a new attempt on the same
//! socket gets a fresh child and the old one goes to the graveyard.

use core::net::{Ipv4Addr, SocketAddrV4};

use crate::calls::Ctx;
use crate::calls::ipconfig::address;
use crate::error::{Errno, Error, FirmwareCall, Result};
use crate::firmware::{
    Boolean, Ipv4Address, Platform, Status, Tcp4AccessPoint, Tcp4ConfigData, Tcp4Option,
};
use crate::socket::table::State;
use crate::socket::{Sock, SocketId, teardown};

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

pub(crate) fn try_configure<P: Platform, T: crate::firmware::Tcp4>(
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
    // `data` is owned, mutable and outlives both calls: EDK2 writes the
    // station address, mask and assigned port back into it.
    let mut status = ctx.configure(&sock.tcp, sock.instance, Some(&mut data));
    if status == Status::ALREADY_STARTED {
        // Legacy firmware: pass the DHCP/static address explicitly.
        match address(ctx) {
            Ok(Some(addr)) => {
                data.access_point = access_point(sock.bound, remote, Some(addr));
                status = ctx.configure(&sock.tcp, sock.instance, Some(&mut data));
            }
            // No address to pass yet: what current firmware reports as
            // NO_MAPPING (ENETDOWN), old firmware hides behind ALREADY_STARTED.
            Ok(None) => status = Status::NO_MAPPING,
            Err(_) => {}
        }
    }
    status
}

pub(crate) fn finish_configure<P: Platform>(
    ctx: &Ctx<'_, P>,
    st: &mut State<P>,
    id: SocketId,
) -> Result<()> {
    if let Some(sock) = st.socks.get_mut(&id) {
        sock.configured = true;
        sock.learn_local(ctx);
    }
    Ok(())
}

/// After a Configure answered NO_MAPPING, gives socket `id` a fresh child.
///
/// Why: EDK2 leaves that child in a no-mapping state whose IP child holds
/// the default interface of that moment (TcpMain.c `Tcp4Configure`,
/// Ip4Impl.c `Ip4ConfigProtocol`), and any Ip4Config2 policy change, or
/// SetData(DHCP) before the boot's first lease (what `Net::dhcp` does on a
/// fresh machine), replaces that interface for good (Ip4Config2Impl.c
/// `Ip4Config2OnPolicyChanged`): the child would answer NO_MAPPING even
/// after the address arrives (measured on OVMF, efi-target/OBSERVED.md). A failure to get a new child
/// is not reported: the caller is already failing with ENETDOWN, and the
/// next attempt tries again.
pub(crate) fn forget_unmapped_child<P: Platform>(
    ctx: &Ctx<'_, P>,
    st: &mut State<P>,
    id: SocketId,
) {
    let _ = renew_child(ctx, st, id);
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
    fn listen_option_asks_for_2_mib_buffers() {
        let o = listen_option(5);
        assert_eq!(o.receive_buffer_size, 2 * 1024 * 1024);
        assert_eq!(o.send_buffer_size, 2 * 1024 * 1024);
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
