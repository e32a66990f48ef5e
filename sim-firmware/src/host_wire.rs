//! What a peer host saw of the other side on the wire, per connection.
//!
//! A peer application only sees its socket's state, and smoltcp folds a RST
//! that arrives after the local close into a plain `Closed`, and exposes
//! neither the window the other side advertised nor its window scale. The
//! host sees every segment before its stack does, so it records, per
//! connection, when the first FIN and the first RST arrived and which
//! windows were advertised. Applications read it through
//! [`ConnIo::wire`](crate::ConnIo::wire).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

/// What arrived from the other side of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireSeen {
    /// Virtual time (ns) the first FIN arrived.
    pub fin_at_ns: Option<u64>,
    /// Virtual time (ns) the first RST arrived.
    pub rst_at_ns: Option<u64>,
    /// Largest receive window the other side advertised, in bytes (window
    /// field shifted by its window scale; SYN segments are never scaled).
    pub max_window: Option<u32>,
    /// The window its last segment advertised, in bytes.
    pub last_window: Option<u32>,
    /// The window scale its SYN (or SYN-ACK) offered (`None`: no option).
    pub window_scale: Option<u8>,
}

/// One TCP segment's fields that [`WireLog`] needs.
#[derive(Debug, Clone, Copy)]
struct Segment {
    src: SocketAddrV4,
    dst_port: u16,
    syn: bool,
    fin: bool,
    rst: bool,
    window: u16,
    scale: Option<u8>,
}

/// Parses a raw IPv4/TCP packet (anything else, or a truncated one: None).
fn parse(frame: &[u8]) -> Option<Segment> {
    if frame.len() < 20 || frame[0] >> 4 != 4 || frame[9] != 6 {
        return None;
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let t = frame.get(ihl..)?;
    let header = t.get(..20)?;
    let data_offset = usize::from(header[12] >> 4) * 4;
    let flags = header[13];
    let mut scale = None;
    if let Some(mut opts) = t.get(20..data_offset) {
        while let Some((&kind, rest)) = opts.split_first() {
            match kind {
                0 => break,
                1 => opts = rest,
                _ => {
                    let len = usize::from(*rest.first()?);
                    if len < 2 || opts.len() < len {
                        break;
                    }
                    if kind == 3 && len == 3 {
                        scale = Some(opts[2].min(14));
                    }
                    opts = &opts[len..];
                }
            }
        }
    }
    Some(Segment {
        src: SocketAddrV4::new(
            Ipv4Addr::new(frame[12], frame[13], frame[14], frame[15]),
            u16::from_be_bytes([header[0], header[1]]),
        ),
        dst_port: u16::from_be_bytes([header[2], header[3]]),
        fin: flags & 0x01 != 0,
        syn: flags & 0x02 != 0,
        rst: flags & 0x04 != 0,
        window: u16::from_be_bytes([header[14], header[15]]),
        scale,
    })
}

/// The per-connection records of one host, keyed by (other side, local
/// port). A SYN starts a fresh record, so a reused address pair does not
/// inherit the previous connection's FIN or RST.
#[derive(Debug, Default)]
pub(crate) struct WireLog {
    seen: BTreeMap<(SocketAddrV4, u16), WireSeen>,
}

impl WireLog {
    /// Records one arriving frame at virtual time `now`.
    pub(crate) fn observe(&mut self, now: u64, frame: &[u8]) {
        let Some(seg) = parse(frame) else {
            return;
        };
        let key = (seg.src, seg.dst_port);
        if seg.syn {
            self.seen.insert(
                key,
                WireSeen {
                    window_scale: seg.scale,
                    ..WireSeen::default()
                },
            );
        }
        let Some(w) = self.seen.get_mut(&key) else {
            return;
        };
        if seg.rst {
            w.rst_at_ns.get_or_insert(now);
            return;
        }
        // RFC 7323 2.2: the window of a SYN is never scaled; the scale only
        // applies once both sides offered it, which a host stack always does
        // in reply, so the other side's own offer decides.
        let shift = if seg.syn {
            0
        } else {
            w.window_scale.unwrap_or(0)
        };
        let window = u32::from(seg.window) << shift;
        w.last_window = Some(window);
        w.max_window = Some(w.max_window.map_or(window, |m| m.max(window)));
        if seg.fin {
            w.fin_at_ns.get_or_insert(now);
        }
    }

    /// What arrived from `remote` for local port `local_port`.
    pub(crate) fn get(&self, remote: SocketAddrV4, local_port: u16) -> WireSeen {
        self.seen
            .get(&(remote, local_port))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(flags: u8, window: u16, options: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut f = vec![0u8; 20 + tcp_len];
        f[0] = 0x45;
        f[9] = 6;
        f[12..16].copy_from_slice(&[10, 0, 2, 15]);
        f[16..20].copy_from_slice(&[10, 0, 2, 2]);
        f[20..22].copy_from_slice(&1000u16.to_be_bytes());
        f[22..24].copy_from_slice(&7007u16.to_be_bytes());
        f[32] = ((tcp_len / 4) as u8) << 4;
        f[33] = flags;
        f[34..36].copy_from_slice(&window.to_be_bytes());
        f[40..].copy_from_slice(options);
        f
    }

    #[test]
    fn syn_scale_fin_rst_and_reuse() {
        let guest = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 1000);
        let mut log = WireLog::default();
        // MSS option, NOP, window scale 6.
        log.observe(1, &segment(0x02, 65535, &[2, 4, 5, 180, 1, 3, 3, 6]));
        log.observe(2, &segment(0x10, 32768, &[]));
        log.observe(3, &segment(0x11, 100, &[]));
        log.observe(4, &segment(0x14, 0, &[]));
        log.observe(5, &segment(0x11, 0, &[]));
        let w = log.get(guest, 7007);
        assert_eq!(w.window_scale, Some(6));
        assert_eq!(w.max_window, Some(32768 << 6));
        assert_eq!(w.last_window, Some(0));
        assert_eq!((w.fin_at_ns, w.rst_at_ns), (Some(3), Some(4)));
        assert_eq!(log.get(guest, 7008), WireSeen::default());
        log.observe(9, &segment(0x02, 8192, &[]));
        let fresh = log.get(guest, 7007);
        assert_eq!(
            (fresh.fin_at_ns, fresh.rst_at_ns, fresh.window_scale),
            (None, None, None)
        );
        assert_eq!(fresh.max_window, Some(8192));
    }
}
