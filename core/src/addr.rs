//! Address helpers with the semantics of Python's `socket` module on glibc.
//!
//! [`inet_aton`] accepts every form the C library's `inet_aton` accepts, because
//! that is what Python's `socket.inet_aton` calls: one to four parts separated
//! by dots, each decimal, octal (leading `0`) or hexadecimal (`0x`/`0X`); the
//! last part fills the remaining bytes (`a.b.c` takes a 16-bit `c`, `a.b` a
//! 24-bit `b`, `a` all 32 bits). Text after the address is ignored only if it
//! starts with whitespace (`"1.2.3.4 junk"` parses; `"1.2.3.4x"` does not),
//! again as glibc does. The tests pin every case against glibc's answers.

use alloc::format;
use alloc::string::String;
use core::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{Error, Result};

/// Parses an IPv4 address in any form `inet_aton(3)` accepts.
///
/// Returns [`crate::ErrorKind::AddrParse`] ("illegal IP address string") for
/// anything else, including octet overflow (`1.2.3.256`), a part too large for
/// the bytes it fills (`1.2.65536`), empty parts and bad digits (`08`, `0x`).
pub fn inet_aton(text: &str) -> Result<Ipv4Addr> {
    parse_aton(text.as_bytes())
        .map(Ipv4Addr::from)
        .ok_or(Error::addr_parse("inet_aton"))
}

fn parse_aton(text: &[u8]) -> Option<u32> {
    // The largest value the last part may have, by how many parts precede it.
    const LAST_PART_MAX: [u64; 4] = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff];
    let mut leading = [0u64; 3];
    let mut count = 0;
    let mut pos = 0;
    let last = loop {
        let (value, next) = parse_part(text, pos)?;
        pos = next;
        match text.get(pos) {
            Some(b'.') if count < 3 && value <= 0xff => {
                leading[count] = value;
                count += 1;
                pos += 1;
            }
            None => break value,
            Some(c) if c.is_ascii_whitespace() => break value,
            Some(_) => return None,
        }
    };
    if last > LAST_PART_MAX[count] {
        return None;
    }
    let mut result = last as u32;
    for (index, part) in leading.iter().take(count).enumerate() {
        result |= (*part as u32) << (24 - 8 * index);
    }
    Some(result)
}

/// One number in C notation starting at `start`; returns it and the offset
/// after it. Values above 32 bits are rejected as they are parsed.
fn parse_part(text: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut pos = start;
    if !text.get(pos)?.is_ascii_digit() {
        return None;
    }
    let mut radix = 10;
    let mut digits = 0;
    if text[pos] == b'0' {
        pos += 1;
        digits = 1;
        radix = 8;
        if matches!(text.get(pos), Some(b'x' | b'X')) {
            pos += 1;
            radix = 16;
            digits = 0;
        }
    }
    let mut value: u64 = 0;
    while let Some(&byte) = text.get(pos) {
        let digit = match (byte as char).to_digit(16) {
            Some(d) if d < radix => d,
            Some(d) if d < 10 => return None, // 8 or 9 in an octal part
            _ => break,
        };
        value = value * u64::from(radix) + u64::from(digit);
        if value > 0xffff_ffff {
            return None;
        }
        digits += 1;
        pos += 1;
    }
    (digits > 0).then_some((value, pos))
}

/// Formats an address in dotted-quad form, like `socket.inet_ntoa`.
pub fn inet_ntoa(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{a}.{b}.{c}.{d}")
}

/// Host to network byte order, 16 bits.
pub const fn htons(value: u16) -> u16 {
    value.to_be()
}

/// Host to network byte order, 32 bits.
pub const fn htonl(value: u32) -> u32 {
    value.to_be()
}

/// Network to host byte order, 16 bits.
pub const fn ntohs(value: u16) -> u16 {
    u16::from_be(value)
}

/// Network to host byte order, 32 bits.
pub const fn ntohl(value: u32) -> u32 {
    u32::from_be(value)
}

/// Parses `"HOST:PORT"`, where HOST is any [`inet_aton`] form (no DNS: names
/// are rejected) and PORT is a decimal number in 0..=65535.
pub fn parse_socket_addr(text: &str) -> Result<SocketAddrV4> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or(Error::addr_parse("socket address needs HOST:PORT"))?;
    if host.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(Error::addr_parse("socket address host"));
    }
    let ip = inet_aton(host)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::addr_parse("socket address port"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| Error::addr_parse("port out of range 0..=65535"))?;
    Ok(SocketAddrV4::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row was produced by glibc through Python's `socket.inet_aton`.
    const GLIBC: &[(&str, Option<[u8; 4]>)] = &[
        ("1.2.3.4", Some([1, 2, 3, 4])),
        ("0x7f.1", Some([127, 0, 0, 1])),
        ("127.1", Some([127, 0, 0, 1])),
        ("0", Some([0, 0, 0, 0])),
        ("00", Some([0, 0, 0, 0])),
        ("4294967295", Some([255, 255, 255, 255])),
        ("4294967296", None),
        ("0x", None),
        ("08", None),
        ("09", None),
        ("0x1g", None),
        ("1.2.3.4 junk", Some([1, 2, 3, 4])),
        ("1.2.3.4\tx", Some([1, 2, 3, 4])),
        ("1.2.3.4 ", Some([1, 2, 3, 4])),
        ("127.0.0.1\n", Some([127, 0, 0, 1])),
        ("1.2.3.4x", None),
        (" 1.2.3.4", None),
        ("1.2.3.256", None),
        ("1.2.65535", Some([1, 2, 255, 255])),
        ("1.2.65536", None),
        ("1.16777215", Some([1, 255, 255, 255])),
        ("1.16777216", None),
        ("0377.0377.0377.0377", Some([255, 255, 255, 255])),
        ("0400.1.1.1", None),
        ("1..2", None),
        ("1.2.3.", None),
        ("", None),
        (".1.2.3", None),
        ("0xffffffff", Some([255, 255, 255, 255])),
        ("0x100000000", None),
        ("0xFFFFFFFFF", None),
        ("1.2.3.4.5", None),
        ("0X7F.0.0.1", Some([127, 0, 0, 1])),
        ("017700000001", Some([127, 0, 0, 1])),
        ("1.2.3.04", Some([1, 2, 3, 4])),
        ("1.0x", None),
        ("1.2.3.0x", None),
        ("-1", None),
        ("+1", None),
    ];

    #[test]
    fn inet_aton_matches_glibc() {
        for &(text, expected) in GLIBC {
            let got = inet_aton(text).ok().map(|a| a.octets());
            assert_eq!(got, expected, "inet_aton({text:?})");
        }
    }

    #[test]
    fn inet_aton_error_is_the_python_message() {
        let error = inet_aton("1.2.3.256").unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::AddrParse);
        assert!(error.to_string().starts_with("illegal IP address string"));
    }

    #[test]
    fn inet_ntoa_round_trips() {
        for &(text, expected) in GLIBC {
            if let Some(octets) = expected {
                let addr = inet_aton(text).unwrap();
                assert_eq!(inet_ntoa(addr), Ipv4Addr::from(octets).to_string());
                assert_eq!(inet_aton(&inet_ntoa(addr)).unwrap(), addr);
            }
        }
    }

    #[test]
    fn byte_order_helpers_swap_on_little_endian_and_invert() {
        assert_eq!(htons(0x1234).to_ne_bytes(), [0x12, 0x34]);
        assert_eq!(htonl(0x0102_0304).to_ne_bytes(), [1, 2, 3, 4]);
        assert_eq!(ntohs(htons(0xbeef)), 0xbeef);
        assert_eq!(ntohl(htonl(0xdead_beef)), 0xdead_beef);
    }

    #[test]
    fn socket_addresses_parse_strictly() {
        assert_eq!(
            parse_socket_addr("10.0.2.2:7007").unwrap(),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7007)
        );
        assert_eq!(
            parse_socket_addr("0x7f.1:0").unwrap(),
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 0)
        );
        for bad in [
            "10.0.2.2",
            "10.0.2.2:",
            "10.0.2.2:65536",
            "10.0.2.2:-1",
            "10.0.2.2:+1",
            "localhost:80",
            "1.2.3.4 x:80",
            ":80",
        ] {
            assert!(
                parse_socket_addr(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
