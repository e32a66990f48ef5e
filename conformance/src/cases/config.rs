//! IPv4 configuration through Ip4Config2, and the address helpers (pure, but
//! run on every target so the firmware build is checked too).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use efisock::{
    Errno, ErrorKind, htonl, htons, inet_aton, inet_ntoa, ntohl, ntohs, parse_socket_addr,
};

use super::util::{connect, expect_errno, recv_exact};
use crate::peers::ports;
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "ipconfig",
            name: "no_address_enetdown",
            about: "connect before any address is ENETDOWN",
            run: no_address_enetdown::<T>,
        },
        Case {
            group: "ipconfig",
            name: "dhcp_assigns_address",
            about: "DHCP through Ip4Config2 gives 10.0.2.15/24 and traffic flows",
            run: dhcp_assigns_address::<T>,
        },
        Case {
            group: "ipconfig",
            name: "dhcp_is_idempotent",
            about: "dhcp() with an address already set returns it at once",
            run: dhcp_is_idempotent::<T>,
        },
        Case {
            group: "ipconfig",
            name: "static_address",
            about: "a static address is applied at once and traffic flows",
            run: static_address::<T>,
        },
        Case {
            group: "addr",
            name: "inet_aton_forms",
            about: "dotted, short, hex, octal and single-number forms",
            run: inet_aton_forms::<T>,
        },
        Case {
            group: "addr",
            name: "inet_aton_rejects",
            about: "octet overflow, empty parts, bad digits are illegal",
            run: inet_aton_rejects::<T>,
        },
        Case {
            group: "addr",
            name: "inet_ntoa_round_trip",
            about: "inet_ntoa(inet_aton(x)) is the dotted quad",
            run: inet_ntoa_round_trip::<T>,
        },
        Case {
            group: "addr",
            name: "byte_order",
            about: "htons/htonl/ntohs/ntohl",
            run: byte_order::<T>,
        },
        Case {
            group: "addr",
            name: "socket_address_parsing",
            about: "HOST:PORT parses strictly, names are rejected",
            run: socket_address_parsing::<T>,
        },
    ]
}

fn no_address_enetdown<T: SocketTarget>(t: &mut T) -> CaseResult {
    t.unconfigure().map_err(|e| CaseError::new(e.to_string()))?;
    ensure_eq!(
        t.net().address().context("address")?,
        None,
        "no address after boot"
    );
    let s = t.net().socket().context("socket")?;
    s.settimeout(Some(Duration::from_secs(5)))
        .context("settimeout")?;
    expect_errno(
        s.connect(t.peer(ports::ECHO)),
        Errno::ENETDOWN,
        "connect without address",
    )
}

fn dhcp_assigns_address<T: SocketTarget>(t: &mut T) -> CaseResult {
    t.unconfigure().map_err(|e| CaseError::new(e.to_string()))?;
    let start = t.net().now();
    let addr = t.net().dhcp(Duration::from_secs(30)).context("dhcp")?;
    let took = t.net().now() - start;
    ensure_eq!(addr, t.local_ip(), "DHCP address");
    ensure_eq!(
        t.net().address().context("address")?,
        Some((t.local_ip(), Ipv4Addr::new(255, 255, 255, 0))),
        "address and mask"
    );
    ensure!(took < Duration::from_secs(30), "DHCP took {took:?}");
    let s = connect(t, ports::ECHO)?;
    s.sendall(b"dhcp").context("sendall")?;
    ensure_eq!(recv_exact(&s, 4)?, b"dhcp".to_vec(), "echo");
    Ok(())
}

fn dhcp_is_idempotent<T: SocketTarget>(t: &mut T) -> CaseResult {
    let before = t.net().address().context("address")?;
    ensure!(before.is_some(), "target starts configured");
    let start = t.net().now();
    let addr = t.net().dhcp(Duration::from_secs(30)).context("dhcp")?;
    ensure_eq!(Some(addr), before.map(|(a, _)| a), "same address");
    ensure!(
        t.net().now() - start < Duration::from_millis(100),
        "no new DHCP round"
    );
    Ok(())
}

fn static_address<T: SocketTarget>(t: &mut T) -> CaseResult {
    t.unconfigure().map_err(|e| CaseError::new(e.to_string()))?;
    let mask = Ipv4Addr::new(255, 255, 255, 0);
    t.net()
        .set_static(t.local_ip(), mask, Some(*t.peer(ports::ECHO).ip()))
        .context("set_static")?;
    ensure_eq!(
        t.net().address().context("address")?,
        Some((t.local_ip(), mask)),
        "static address"
    );
    let s = connect(t, ports::ECHO)?;
    s.sendall(b"static").context("sendall")?;
    ensure_eq!(recv_exact(&s, 6)?, b"static".to_vec(), "echo");
    Ok(())
}

fn inet_aton_forms<T: SocketTarget>(_: &mut T) -> CaseResult {
    for (text, expected) in [
        ("10.0.2.2", [10, 0, 2, 2]),
        ("10.2", [10, 0, 0, 2]),
        ("10.0.514", [10, 0, 2, 2]),
        ("0xa.0.2.2", [10, 0, 2, 2]),
        ("012.0.02.02", [10, 0, 2, 2]),
        ("167772674", [10, 0, 2, 2]),
        ("0xA000202", [10, 0, 2, 2]),
        ("255.255.255.255", [255, 255, 255, 255]),
        ("10.0.2.2 trailing", [10, 0, 2, 2]),
    ] {
        ensure_eq!(
            inet_aton(text).context(text)?.octets(),
            expected,
            "inet_aton({text:?})"
        );
    }
    Ok(())
}

fn inet_aton_rejects<T: SocketTarget>(_: &mut T) -> CaseResult {
    for text in [
        "256.0.0.1",
        "1.2.3.256",
        "1.2.65536",
        "1.16777216",
        "4294967296",
        "1..2",
        "1.2.3.",
        "08",
        "0x",
        "",
        "1.2.3.4.5",
        "a.b.c.d",
        " 1.2.3.4",
    ] {
        match inet_aton(text) {
            Err(e) if e.kind() == ErrorKind::AddrParse => {}
            other => {
                return Err(CaseError::new(format!(
                    "inet_aton({text:?}) = {other:?}, expected illegal"
                )));
            }
        }
    }
    Ok(())
}

fn inet_ntoa_round_trip<T: SocketTarget>(_: &mut T) -> CaseResult {
    ensure_eq!(inet_ntoa(Ipv4Addr::new(10, 0, 2, 15)), "10.0.2.15", "ntoa");
    for text in ["0.0.0.0", "127.0.0.1", "255.255.255.255", "10.0.2.2"] {
        ensure_eq!(
            inet_ntoa(inet_aton(text).context(text)?),
            text,
            "round trip"
        );
    }
    Ok(())
}

fn byte_order<T: SocketTarget>(_: &mut T) -> CaseResult {
    ensure_eq!(htons(7007).to_ne_bytes(), [0x1b, 0x5f], "htons");
    ensure_eq!(htonl(0x0a00_0202).to_ne_bytes(), [10, 0, 2, 2], "htonl");
    ensure_eq!(ntohs(htons(443)), 443, "ntohs");
    ensure_eq!(ntohl(htonl(0xc0a8_0001)), 0xc0a8_0001, "ntohl");
    Ok(())
}

fn socket_address_parsing<T: SocketTarget>(_: &mut T) -> CaseResult {
    ensure_eq!(
        parse_socket_addr("10.0.2.2:7007").context("parse")?,
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7007),
        "parse"
    );
    for bad in ["10.0.2.2", "10.0.2.2:70000", "example.com:80", "10.0.2.2:x"] {
        ensure!(parse_socket_addr(bad).is_err(), "{bad:?} must be rejected");
    }
    Ok(())
}
