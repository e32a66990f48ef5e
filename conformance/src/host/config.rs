//! What a peer host listens on, where connect-back goes, and its bounds.
//!
//! The connect-back service asks the host to connect to the *client's*
//! address and a port the client chose. Inside QEMU the client is the guest
//! (10.0.2.15), which the host cannot reach directly: only QEMU's `hostfwd`
//! rules (`127.0.0.1:H -> guest:P`) lead there. So the host ignores the
//! requested IP and maps the requested port through [`ConnectBackMap`], always
//! connecting to [`HostConfig::connect_back_ip`] (loopback).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::HostError;

/// Which host ports the services listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Each service on its well-known port plus this offset (0 for QEMU:
    /// slirp maps guest `10.0.2.2:P` to host `127.0.0.1:P` unchanged).
    Offset(u16),
    /// Each service on a kernel-chosen port (tests on a shared machine).
    Ephemeral,
}

/// How a connect-back request's port becomes a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectBackMap {
    /// Connect to the requested port itself (the client runs on this host).
    Identity,
    /// Guest port to host port, from the QEMU `hostfwd` rules
    /// (`hostfwd=tcp:127.0.0.1:HOST-:GUEST` gives `GUEST -> HOST`). A request
    /// for an unmapped port is refused by the host and counted as an error.
    Explicit(BTreeMap<u16, u16>),
}

impl ConnectBackMap {
    /// The host port for a requested port, if any.
    pub fn host_port(&self, requested: u16) -> Option<u16> {
        match self {
            ConnectBackMap::Identity => Some(requested),
            ConnectBackMap::Explicit(m) => m.get(&requested).copied(),
        }
    }

    /// The map for QEMU forwards given as `(host_port, guest_port)` pairs
    /// (the order `xtask`'s `QemuOptions::hostfwd` uses).
    pub fn from_hostfwd(pairs: &[(u16, u16)]) -> Self {
        ConnectBackMap::Explicit(pairs.iter().map(|&(h, g)| (g, h)).collect())
    }
}

/// Everything a peer host needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Address to listen on; must be loopback (127.0.0.0/8).
    pub bind: Ipv4Addr,
    /// Port plan for the listeners.
    pub listen: Listen,
    /// Address connect-back connections go to; must be loopback.
    pub connect_back_ip: Ipv4Addr,
    /// Port mapping for connect-back.
    pub connect_back_map: ConnectBackMap,
    /// The host stops by itself this long after start.
    pub lifetime: Duration,
    /// Each service stops accepting after this many connections (its
    /// listener is closed, so later connections are refused).
    pub max_connections_per_service: u32,
    /// Limit for establishing one connect-back connection.
    pub connect_timeout: Duration,
}

impl HostConfig {
    /// Loopback defaults for QEMU: well-known ports, no connect-back
    /// forwards, 10 minutes, 1000 connections per service.
    pub fn qemu(hostfwd: &[(u16, u16)]) -> Self {
        Self {
            bind: Ipv4Addr::LOCALHOST,
            listen: Listen::Offset(0),
            connect_back_ip: Ipv4Addr::LOCALHOST,
            connect_back_map: ConnectBackMap::from_hostfwd(hostfwd),
            lifetime: Duration::from_secs(600),
            max_connections_per_service: 1000,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Checks the network rules and bounds; the error says what is wrong.
    pub fn validate(&self) -> Result<(), HostError> {
        let fail = |message: String| Err(HostError::Config(message));
        if !self.bind.is_loopback() {
            return fail(format!("bind address {} is not loopback", self.bind));
        }
        if !self.connect_back_ip.is_loopback() {
            return fail(format!(
                "connect-back address {} is not loopback",
                self.connect_back_ip
            ));
        }
        if self.lifetime.is_zero() || self.lifetime > Duration::from_secs(24 * 3600) {
            return fail(format!(
                "lifetime {:?} must be non-zero and at most a day",
                self.lifetime
            ));
        }
        if self.max_connections_per_service == 0 {
            return fail("max_connections_per_service must be at least 1".into());
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout must be non-zero".into());
        }
        if let Listen::Offset(off) = self.listen {
            let witness = crate::peers::ports::WITNESS;
            let witnessed = crate::peers::witnessed_services();
            let every = crate::peers::listening_services()
                .iter()
                .chain(witnessed.iter())
                .map(|&(port, service)| (port, service.name()))
                .chain([(witness, "witness")]);
            for (port, name) in every {
                if port.checked_add(off).is_none() {
                    return fail(format!(
                        "port offset {off} pushes {name} (port {port}) past 65535"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostfwd_pairs_map_guest_to_host() {
        let m = ConnectBackMap::from_hostfwd(&[(40_001, 8080), (40_002, 8081)]);
        assert_eq!(m.host_port(8080), Some(40_001));
        assert_eq!(m.host_port(8081), Some(40_002));
        assert_eq!(m.host_port(9999), None);
        assert_eq!(ConnectBackMap::Identity.host_port(9999), Some(9999));
    }

    #[test]
    fn only_loopback_and_sane_bounds_pass() {
        let ok = HostConfig::qemu(&[]);
        assert!(ok.validate().is_ok(), "{:?}", ok.validate());
        let mut c = ok.clone();
        c.bind = Ipv4Addr::new(10, 0, 2, 2);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("not loopback")
        );
        let mut c = ok.clone();
        c.connect_back_ip = Ipv4Addr::UNSPECIFIED;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.max_connections_per_service = 0;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.lifetime = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = ok;
        c.listen = Listen::Offset(65_000);
        assert!(c.validate().unwrap_err().to_string().contains("past 65535"));
    }
}
