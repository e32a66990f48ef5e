//! `Tcp4ConfigData` builders.

use core::net::SocketAddrV4;
use core::ptr;

use crate::firmware::{Boolean, Ipv4Address, Tcp4AccessPoint, Tcp4ConfigData};

/// An active instance towards `remote` from local `station_port` (0:
/// ephemeral), on the default (DHCP or static) address, TTL 64, default
/// options.
pub fn active_config(remote: SocketAddrV4, station_port: u16) -> Tcp4ConfigData {
    Tcp4ConfigData {
        type_of_service: 0,
        time_to_live: 64,
        access_point: Tcp4AccessPoint {
            use_default_address: Boolean::TRUE,
            station_address: Ipv4Address([0; 4]),
            subnet_mask: Ipv4Address([0; 4]),
            station_port,
            remote_address: Ipv4Address(remote.ip().octets()),
            remote_port: remote.port(),
            active_flag: Boolean::TRUE,
        },
        control_option: ptr::null_mut(),
    }
}

/// A passive instance listening on `station_port` for any remote.
pub fn passive_config(station_port: u16) -> Tcp4ConfigData {
    let mut config = active_config(SocketAddrV4::new([0, 0, 0, 0].into(), 0), station_port);
    config.access_point.active_flag = Boolean::FALSE;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_direction_ports_and_remote() {
        let a = active_config(SocketAddrV4::new([10, 0, 2, 2].into(), 7), 1234);
        assert_eq!(a.access_point.active_flag, Boolean::TRUE);
        assert_eq!(a.access_point.remote_address, Ipv4Address([10, 0, 2, 2]));
        assert_eq!(
            (a.access_point.station_port, a.access_point.remote_port),
            (1234, 7)
        );
        assert!(a.control_option.is_null());
        let p = passive_config(80);
        assert_eq!(p.access_point.active_flag, Boolean::FALSE);
        assert_eq!(p.access_point.station_port, 80);
        assert_eq!(p.access_point.remote_address, Ipv4Address([0; 4]));
    }
}
