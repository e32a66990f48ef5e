//! A queue-backed smoltcp `Device` (Medium::Ip, MTU 1500): the simulator
//! decides which frames a stack sees and when, and collects what it sends.

use std::collections::VecDeque;

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// IP MTU of every simulated NIC (MSS 1460).
pub const MTU: usize = 1500;

/// Frames in (`rx`) and out (`tx`) of one stack.
#[derive(Debug, Default)]
pub struct QueueDevice {
    /// Frames the next `poll` will consume.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames the stack transmitted.
    pub tx: Vec<Vec<u8>>,
}

/// Receive token holding one frame.
pub struct RxTok(Vec<u8>);
/// Transmit token appending to the device's tx list.
pub struct TxTok<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _t: Instant) -> Option<(RxTok, TxTok<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxTok(frame), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _t: Instant) -> Option<TxTok<'_>> {
        Some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// Destination IPv4 address of a raw IP packet, if it is one.
pub fn ipv4_dst(frame: &[u8]) -> Option<[u8; 4]> {
    if frame.len() >= 20 && frame[0] >> 4 == 4 {
        Some([frame[16], frame[17], frame[18], frame[19]])
    } else {
        None
    }
}

/// A parsed TCP header summary (ports and flags) of a raw IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct TcpSummary {
    /// Source address.
    pub src: [u8; 4],
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// Sequence number.
    pub seq: u32,
}

/// Summarise a TCP/IPv4 packet (None for anything else).
pub fn tcp_summary(frame: &[u8]) -> Option<TcpSummary> {
    if frame.len() < 20 || frame[0] >> 4 != 4 || frame[9] != 6 {
        return None;
    }
    let ihl = usize::from(frame[0] & 0x0f) * 4;
    let t = frame.get(ihl..ihl + 20)?;
    Some(TcpSummary {
        src: [frame[12], frame[13], frame[14], frame[15]],
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        syn: t[13] & 0x02 != 0,
        ack: t[13] & 0x10 != 0,
    })
}
