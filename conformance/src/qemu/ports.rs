//! The guest ports the host must reach: every port a case listens on
//! inside the guest and asks the connect-back service to connect to.
//!
//! slirp only lets the host reach the guest through `hostfwd` rules, so each
//! of these gets a forward from a free 127.0.0.1 port; the peer host maps
//! connect-back requests through the same pairs. A test scans the case
//! sources so a new server port cannot be forgotten here.

/// Ports cases bind inside the guest (`bind(SocketAddrV4::new(t.local_ip(), PORT))`).
pub const GUEST_SERVER_PORTS: &[u16] = &[
    41001, 41002, 41003, 42001, 42101, 43001, 43101, 44001, 44002, 44003, 44010, 44050, 44060,
    44061, 44070,
];

/// `(host_port, guest_port)` forwards for [`GUEST_SERVER_PORTS`], each host
/// port chosen free by the kernel on 127.0.0.1 (the listener is closed again
/// before QEMU binds it; a port taken in between makes QEMU fail loudly).
pub fn allocate_forwards() -> Result<Vec<(u16, u16)>, super::QemuRunError> {
    let mut held = Vec::new();
    let mut pairs = Vec::new();
    for &guest in GUEST_SERVER_PORTS {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(super::QemuRunError::io("finding a free 127.0.0.1 port"))?;
        let host = l
            .local_addr()
            .map_err(super::QemuRunError::io("local_addr of a probe listener"))?
            .port();
        held.push(l);
        pairs.push((host, guest));
    }
    drop(held);
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &[&str] = &[
        include_str!("../cases/lifecycle.rs"),
        include_str!("../cases/transfer.rs"),
        include_str!("../cases/eof_reset.rs"),
        include_str!("../cases/nonblocking.rs"),
        include_str!("../cases/readiness.rs"),
        include_str!("../cases/teardown.rs"),
        include_str!("../cases/server.rs"),
        include_str!("../cases/buffers.rs"),
        include_str!("../cases/config.rs"),
        include_str!("../cases/probes.rs"),
        include_str!("../cases/probes/closing.rs"),
        include_str!("../cases/probes/errors.rs"),
        include_str!("../cases/probes/listen.rs"),
        include_str!("../cases/probes/options.rs"),
    ];

    /// Every five-digit 4xxxx literal in the case sources (the range the
    /// cases use for their own listening ports).
    fn literals() -> Vec<u16> {
        let mut found = Vec::new();
        for src in SOURCES {
            let b = src.as_bytes();
            for i in 0..b.len().saturating_sub(5) {
                let w = &b[i..i + 5];
                let edge_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
                let edge_after = b.get(i + 5).is_none_or(|c| !c.is_ascii_alphanumeric());
                if w[0] == b'4' && w.iter().all(u8::is_ascii_digit) && edge_before && edge_after {
                    let n: u16 = std::str::from_utf8(w).unwrap().parse().unwrap();
                    if (41_000..45_000).contains(&n) {
                        found.push(n);
                    }
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    #[test]
    fn every_case_server_port_is_forwarded() {
        let found = literals();
        assert!(found.contains(&42001), "scanner broken: {found:?}");
        for p in &found {
            assert!(GUEST_SERVER_PORTS.contains(p), "port {p} is not forwarded");
        }
    }

    #[test]
    fn forwards_are_distinct_loopback_ports() {
        let pairs = allocate_forwards().unwrap();
        assert_eq!(pairs.len(), GUEST_SERVER_PORTS.len());
        let mut hosts: Vec<u16> = pairs.iter().map(|p| p.0).collect();
        hosts.sort_unstable();
        hosts.dedup();
        assert_eq!(hosts.len(), pairs.len());
    }
}
