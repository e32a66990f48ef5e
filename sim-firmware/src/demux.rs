//! Which connection a SYN belongs to: an exact address-pair match wins over a
//! listening socket, as in every real stack.
//!
//! smoltcp hands a segment to the first socket, in slot order, that accepts
//! it, and a listening socket accepts any SYN to its port. Slots are reused
//! lowest first, so once sockets come and go a listening socket can sit in
//! front of the connection a duplicated or retransmitted SYN belongs to, and
//! that SYN then opens a second handshake for the same address pair (whose
//! SYN-ACK, with another ISN, gets the real connection reset).
//!
//! EDK2 looks the TCB up by exact match in its run queue first and consults
//! the listen queue only when none matches (`TcpLocateTcb`, TcpMisc.c
//! l.359-405, edk2-stable202211). The segment then goes to the existing
//! connection: in SYN_RCVD a duplicate SYN is trimmed away as old
//! (`TcpTrimInWnd`, TcpInput.c l.281-288) and, having no ACK, discarded
//! (l.1108-1116); in a synchronized state it is discarded too, with an ACK
//! when it lies outside the window (l.1026-1038). Linux likewise finds the
//! established or request socket before the listener (`__inet_lookup`).
//! smoltcp, given that SYN on the matching socket, discards it as well
//! ("expecting an ACK", socket/tcp.rs l.1659-1663), so discarding it before
//! smoltcp routes it is exactly "the exact match wins". The ACK that EDK2
//! (out-of-window duplicate) or Linux (challenge ACK) would send is not
//! modelled: the other end treats it as a duplicate ACK.

use smoltcp::iface::SocketSet;
use smoltcp::socket::AnySocket;
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint};

/// The address pair of a bare SYN (SYN without ACK or RST) in an IPv4 frame:
/// (local end, remote end) as the receiving stack sees them.
fn bare_syn_endpoints(frame: &[u8]) -> Option<(IpEndpoint, IpEndpoint)> {
    if frame.len() < 20 || frame[0] >> 4 != 4 || frame[9] != 6 {
        return None;
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let tcp = frame.get(ihl..ihl + 20)?;
    let flags = tcp[13];
    let (syn, rst, ack) = (flags & 0x02 != 0, flags & 0x04 != 0, flags & 0x10 != 0);
    if !syn || rst || ack {
        return None;
    }
    let addr = |at: usize| IpAddress::v4(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
    let local = IpEndpoint::new(addr(16), u16::from_be_bytes([tcp[2], tcp[3]]));
    let remote = IpEndpoint::new(addr(12), u16::from_be_bytes([tcp[0], tcp[1]]));
    Some((local, remote))
}

/// When `frame` is a bare SYN whose address pair already has a connection
/// in `sockets` (SYN_RCVD or any later state), that connection's state: the
/// SYN belongs to it and must not reach a listening socket.
///
/// A socket in SYN_SENT is not such a connection: a SYN for it is a
/// simultaneous open, which smoltcp handles on that socket.
pub(crate) fn syn_owner_state(sockets: &SocketSet<'_>, frame: &[u8]) -> Option<State> {
    let (local, remote) = bare_syn_endpoints(frame)?;
    sockets
        .iter()
        .filter_map(|(_, s)| tcp::Socket::downcast(s))
        .filter(|t| !matches!(t.state(), State::Closed | State::Listen | State::SynSent))
        .find(|t| t.local_endpoint() == Some(local) && t.remote_endpoint() == Some(remote))
        .map(|t| t.state())
}
