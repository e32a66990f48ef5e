//! The IPv4 header of what the SUT sends, and the byte surgery the
//! boundary needs around the TCP header.

use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, TcpPacket};

use super::Flow;

/// TTL of every TCP segment EDK2 sends (TcpIo.c l.117).
pub(crate) const EDK2_TCP_TTL: u8 = 255;

/// (header length, total length, carries TCP) of a well-formed IPv4
/// packet; None for anything else.
pub(crate) fn layout(frame: &[u8]) -> Option<(usize, usize, bool)> {
    let ip = Ipv4Packet::new_checked(frame).ok()?;
    let is_tcp = ip.next_header() == IpProtocol::Tcp && ip.frag_offset() == 0;
    Some((
        usize::from(ip.header_len()),
        usize::from(ip.total_len()),
        is_tcp,
    ))
}

/// The connection of a TCP segment from the SUT's side: for a segment the
/// SUT `received`, its destination is the local end.
pub(crate) fn flow(frame: &[u8], ihl: usize, received: bool) -> Flow {
    let a = |i: usize| [frame[i], frame[i + 1], frame[i + 2], frame[i + 3]];
    let port = |i: usize| u16::from_be_bytes([frame[ihl + i], frame[ihl + i + 1]]);
    let (src, dst) = ((a(12), port(0)), (a(16), port(2)));
    let ((la, lp), (ra, rp)) = if received { (dst, src) } else { (src, dst) };
    (la, lp, ra, rp)
}

/// Gives the packet EDK2's Ip4Output header: identification `id`, DF
/// clear; for TCP also ToS 0 and TTL 255 (the TCP driver's IpIo override,
/// TcpIo.c l.115-121). Fixes the header checksum.
pub(crate) fn edk2_header(frame: &mut [u8], id: u16, is_tcp: bool) {
    let Ok(mut ip) = Ipv4Packet::new_checked(frame) else {
        return;
    };
    ip.set_ident(id);
    ip.set_dont_frag(false);
    if is_tcp {
        ip.set_dscp(0);
        ip.set_ecn(0);
        ip.set_hop_limit(EDK2_TCP_TTL);
    }
    ip.fill_checksum();
}

/// A copy of the packet whose TCP options are `options` (a multiple of 4
/// bytes), with lengths updated; checksums are left to the caller.
pub(crate) fn replace_tcp_options(
    frame: &[u8],
    ihl: usize,
    total: usize,
    options: &[u8],
) -> Vec<u8> {
    let doff = usize::from(frame[ihl + 12] >> 4) * 4;
    let mut out = Vec::with_capacity(ihl + 20 + options.len() + (total - ihl - doff));
    out.extend_from_slice(&frame[..ihl + 20]);
    out.extend_from_slice(options);
    out.extend_from_slice(&frame[ihl + doff..total]);
    let new_doff = 20 + options.len();
    out[ihl + 12] = ((new_doff / 4) as u8) << 4 | (frame[ihl + 12] & 0x0f);
    let new_total = out.len() as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut out[..]);
    ip.set_total_len(new_total);
    out
}

/// Recomputes the TCP checksum of the segment in `frame`.
pub(crate) fn fill_tcp_checksum(frame: &mut [u8], ihl: usize) {
    let Ok(ip) = Ipv4Packet::new_checked(&frame[..]) else {
        return;
    };
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let total = usize::from(ip.total_len());
    if let Ok(mut tcp) = TcpPacket::new_checked(&mut frame[ihl..total]) {
        tcp.fill_checksum(&src, &dst);
    }
}
