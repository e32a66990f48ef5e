//! Prints one line per TCP segment of a pcap file: time, direction, flags,
//! SEQ/ACK, window, IP ID, TTL, DF and the options in wire order. Reads
//! QEMU's `filter-dump` captures (Ethernet) and the simulator's
//! (`efisock_sim::write_pcap`, raw IPv4).
//!
//! `cargo run -p efisock-sim --example wire_summary -- FILE.pcap`

use std::fs::File;
use std::process::ExitCode;

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, Ipv4Packet, TcpOption, TcpPacket};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: wire_summary FILE.pcap");
        return ExitCode::from(2);
    };
    match summarise(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wire_summary: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn summarise(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut reader = PcapReader::new(File::open(path)?)?;
    let link = reader.header().datalink;
    while let Some(packet) = reader.next_packet() {
        let packet = packet?;
        let ip_bytes: &[u8] = match link {
            DataLink::ETHERNET => {
                let eth = EthernetFrame::new_checked(&packet.data[..])?;
                if eth.ethertype() != EthernetProtocol::Ipv4 {
                    continue;
                }
                &packet.data[14..]
            }
            DataLink::RAW | DataLink::IPV4 => &packet.data[..],
            other => return Err(format!("link type {other:?} not handled").into()),
        };
        if let Some(line) = describe(ip_bytes) {
            println!("{:>14.6} {line}", packet.timestamp.as_secs_f64());
        }
    }
    Ok(())
}

fn describe(bytes: &[u8]) -> Option<String> {
    let ip = Ipv4Packet::new_checked(bytes).ok()?;
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    let mut flags = String::new();
    for (on, c) in [
        (tcp.syn(), 'S'),
        (tcp.fin(), 'F'),
        (tcp.rst(), 'R'),
        (tcp.psh(), 'P'),
        (tcp.ack(), '.'),
    ] {
        if on {
            flags.push(c);
        }
    }
    let mut options = Vec::new();
    let mut rest = tcp.options();
    while !rest.is_empty() {
        let Ok((next, o)) = TcpOption::parse(rest) else {
            options.push("<bad>".to_string());
            break;
        };
        options.push(match o {
            TcpOption::EndOfList => "eol".to_string(),
            TcpOption::NoOperation => "nop".to_string(),
            TcpOption::MaxSegmentSize(v) => format!("mss {v}"),
            TcpOption::WindowScale(v) => format!("ws {v}"),
            TcpOption::SackPermitted => "sackOK".to_string(),
            TcpOption::SackRange(_) => "sack".to_string(),
            TcpOption::TimeStamp { tsval, tsecr } => format!("ts {tsval} {tsecr}"),
            TcpOption::Unknown { kind, .. } => format!("opt{kind}"),
        });
        if matches!(o, TcpOption::EndOfList) {
            break;
        }
        rest = next;
    }
    Some(format!(
        "{}:{} > {}:{} [{flags}] seq {} ack {} win {} len {} id {} ttl {} df {} [{}]",
        ip.src_addr(),
        tcp.src_port(),
        ip.dst_addr(),
        tcp.dst_port(),
        tcp.seq_number().0 as u32,
        tcp.ack_number().0 as u32,
        tcp.window_len(),
        tcp.payload().len(),
        ip.ident(),
        ip.hop_limit(),
        u8::from(ip.dont_frag()),
        options.join(", ")
    ))
}
