//! A tap on the SUT's NIC: every frame it sends or receives, as on the link.

use std::io::{self, Write};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

use crate::sim::Sim;

use super::WireBoundary;

/// Which way a captured frame crossed the SUT's NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireDirection {
    /// Sent by the SUT, as it left the NIC.
    FromSut,
    /// Arriving at the SUT's NIC from the link (before the receive queue,
    /// so frames the full queue drops are included).
    ToSut,
}

/// One captured IPv4 packet (the simulated link carries IP, no Ethernet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    /// Virtual time it crossed the NIC (ns).
    pub t_ns: u64,
    /// Its direction.
    pub direction: WireDirection,
    /// The packet, from the IPv4 header on.
    pub bytes: Vec<u8>,
}

impl WireBoundary {
    /// Starts recording (dropping an earlier recording).
    fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// The frames recorded so far; the capture goes on.
    fn take_capture(&mut self) -> Vec<WireFrame> {
        self.capture
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

impl Sim {
    /// Starts capturing the frames the SUT's NIC sends and receives (a
    /// capture costs memory per frame, so it is off until asked for).
    pub fn start_capture(&self) {
        self.w.borrow_mut().tcp4.wire.start_capture();
    }

    /// The frames captured since the capture started or was last taken,
    /// oldest first; empty if no capture runs.
    pub fn take_capture(&self) -> Vec<WireFrame> {
        self.w.borrow_mut().tcp4.wire.take_capture()
    }
}

/// Writes `frames` to `out` as a pcap file (nanosecond timestamps of
/// virtual time, link type RAW: the packets start with their IPv4 header),
/// for Wireshark or tcpdump.
pub fn write_pcap<W: Write>(frames: &[WireFrame], out: W) -> io::Result<W> {
    let header = PcapHeader {
        datalink: DataLink::RAW,
        ts_resolution: pcap_file::TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(out, header).map_err(io::Error::other)?;
    for f in frames {
        let len = u32::try_from(f.bytes.len()).map_err(io::Error::other)?;
        let packet = PcapPacket::new(Duration::from_nanos(f.t_ns), len, &f.bytes);
        w.write_packet(&packet).map_err(io::Error::other)?;
    }
    Ok(w.into_writer())
}
