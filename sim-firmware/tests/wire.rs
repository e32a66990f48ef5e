//! What the simulated EDK2 puts on the link, read from a capture of the
//! SUT's NIC: ISN steps, TTL, IP ID, SYN and SYN-ACK options and windows
//! (edk2-stable202211, code-read; see docs/edk2-divergences.md item 4).

mod common;
use std::net::SocketAddrV4;

use common::*;
use efisock::firmware::Status;
use efisock_sim::{SimConfig, TCP_TICK_NS, WireDirection, WireFrame};
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpOption, TcpPacket};

const ECHO_PORT: u16 = 7;

/// One TCP option, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Opt {
    Nop,
    Mss(u16),
    WindowScale(u8),
    SackPermitted,
    Timestamp(u32, u32),
    Other,
}

/// The fields of one captured TCP segment the tests look at.
#[derive(Debug, Clone)]
struct Seg {
    t_ns: u64,
    from_sut: bool,
    ttl: u8,
    dscp: u8,
    dont_frag: bool,
    ident: u16,
    syn: bool,
    ack_flag: bool,
    rst: bool,
    seq: u32,
    ack: u32,
    window: u16,
    options: Vec<Opt>,
    payload: usize,
}

/// Parses a captured frame with smoltcp's wire module (None: not TCP).
fn parse(f: &WireFrame) -> Option<Seg> {
    let ip = Ipv4Packet::new_checked(&f.bytes[..]).expect("IPv4");
    assert!(ip.verify_checksum(), "IP checksum");
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).expect("TCP");
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    assert!(tcp.verify_checksum(&src, &dst), "TCP checksum");
    let mut options = Vec::new();
    let mut rest = tcp.options();
    while !rest.is_empty() {
        let (next, o) = TcpOption::parse(rest).expect("options parse");
        options.push(match o {
            TcpOption::EndOfList => break,
            TcpOption::NoOperation => Opt::Nop,
            TcpOption::MaxSegmentSize(v) => Opt::Mss(v),
            TcpOption::WindowScale(v) => Opt::WindowScale(v),
            TcpOption::SackPermitted => Opt::SackPermitted,
            TcpOption::TimeStamp { tsval, tsecr } => Opt::Timestamp(tsval, tsecr),
            _ => Opt::Other,
        });
        rest = next;
    }
    Some(Seg {
        t_ns: f.t_ns,
        from_sut: f.direction == WireDirection::FromSut,
        ttl: ip.hop_limit(),
        dscp: ip.dscp(),
        dont_frag: ip.dont_frag(),
        ident: ip.ident(),
        syn: tcp.syn(),
        ack_flag: tcp.ack(),
        rst: tcp.rst(),
        seq: tcp.seq_number().0 as u32,
        ack: tcp.ack_number().0 as u32,
        window: tcp.window_len(),
        options,
        payload: tcp.payload().len(),
    })
}

fn segments(env: &Env) -> Vec<Seg> {
    env.sim.take_capture().iter().filter_map(parse).collect()
}

/// The SUT's SYNs (no ACK), a retransmission counted once.
fn sut_syns(segs: &[Seg]) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    for s in segs.iter().filter(|s| s.from_sut && s.syn && !s.ack_flag) {
        if out.last().map(|l| l.seq) != Some(s.seq) {
            out.push(s.clone());
        }
    }
    out
}

#[test]
fn active_syn_has_edk2_options_ttl_255_whatever_the_config_and_df_clear() {
    let env = Env::new(SimConfig::new(7));
    listen_echo(&env.sim, ECHO_PORT);
    env.sim.start_capture();
    let (h, t) = env.child();
    // The config asks for TTL 64; EDK2's TCP overrides it with 255.
    assert_eq!(active_cfg(PEER, ECHO_PORT, 0).time_to_live, 64);
    assert_eq!(connect(&env, &t, PEER, ECHO_PORT), Status::SUCCESS);
    let segs = segments(&env);
    let syn = sut_syns(&segs).first().cloned().expect("a SYN");
    let Some(Opt::Timestamp(tsval, 0)) = syn.options.last().cloned() else {
        panic!("SYN ends with timestamps and TSecr 0: {:?}", syn.options);
    };
    assert_eq!(
        syn.options,
        vec![
            Opt::Mss(1460),
            Opt::Nop,
            Opt::WindowScale(6),
            Opt::Nop,
            Opt::Nop,
            Opt::Timestamp(tsval, 0),
        ]
    );
    // mTcpTick: 1000 at driver start, one per 200 ms.
    let ticks = u64::from(tsval - 1000);
    assert!(
        (syn.t_ns / TCP_TICK_NS..=syn.t_ns / TCP_TICK_NS + 1).contains(&ticks),
        "TSval {tsval} at {} ns",
        syn.t_ns
    );
    assert_eq!(syn.window, 65535, "an active SYN's window is unscaled");
    for s in segs.iter().filter(|s| s.from_sut) {
        assert_eq!(
            (s.ttl, s.dscp, s.dont_frag),
            (255, 0, false),
            "TcpSendIpPacket's override"
        );
    }
    // The peer answers in EDK2's numbers, and the SUT's ACK continues them.
    let syn_ack = segs
        .iter()
        .find(|s| !s.from_sut && s.syn && s.ack_flag)
        .expect("SYN-ACK");
    assert_eq!(syn_ack.ack, syn.seq.wrapping_add(1));
    let third = segs
        .iter()
        .find(|s| s.from_sut && !s.syn && s.ack_flag)
        .expect("the handshake's ACK");
    assert_eq!(
        (third.seq, third.ack),
        (syn.seq.wrapping_add(1), syn_ack.seq.wrapping_add(1))
    );
    assert!(
        third.options.is_empty(),
        "no timestamps after a peer without them"
    );
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn isn_grows_by_2048_per_connection_plus_100_per_tick() {
    let env = Env::new(SimConfig::new(8));
    listen_echo(&env.sim, ECHO_PORT);
    env.sim.start_capture();
    let mut children = Vec::new();
    // Back to back, then after pauses of 1 s and 2.5 s (5 and 12-13 ticks).
    for pause_ns in [0, 0, 0, 1_000_000_000, 2_500_000_000, 0] {
        env.sim.advance(pause_ns);
        let (h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, ECHO_PORT), Status::SUCCESS);
        children.push((h, t));
    }
    let syns = sut_syns(&segments(&env));
    assert_eq!(syns.len(), 6);
    let mut tick_steps = Vec::new();
    for w in syns.windows(2) {
        let step = w[1].seq.wrapping_sub(w[0].seq);
        let beyond = step
            .checked_sub(2048)
            .expect("at least 2048 per connection");
        assert_eq!(beyond % 100, 0, "ticks add 100 each: step {step}");
        let ticks = u64::from(beyond / 100);
        let dt = w[1].t_ns - w[0].t_ns;
        assert!(
            (dt / TCP_TICK_NS..=dt / TCP_TICK_NS + 1).contains(&ticks),
            "{ticks} ticks in {dt} ns"
        );
        tick_steps.push(ticks);
    }
    assert!(tick_steps[2] >= 5 && tick_steps[3] >= 12, "{tick_steps:?}");
    for (h, t) in children {
        assert_eq!(close(&env, &t, true), Status::SUCCESS);
        env.destroy(h);
    }
}

#[test]
fn isn_start_comes_from_the_seed() {
    let first_isn = |seed: u64| {
        let env = Env::new(SimConfig::new(seed));
        listen_echo(&env.sim, ECHO_PORT);
        env.sim.start_capture();
        let (_h, t) = env.child();
        assert_eq!(connect(&env, &t, PEER, ECHO_PORT), Status::SUCCESS);
        sut_syns(&segments(&env))[0].seq
    };
    assert_eq!(first_isn(11), first_isn(11));
    assert_ne!(first_isn(11), first_isn(12));
}

#[test]
fn ip_id_counts_every_datagram_the_sut_sends() {
    let env = Env::new(SimConfig::new(9));
    let seen = listen_echo(&env.sim, ECHO_PORT);
    env.sim.start_capture();
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, ECHO_PORT), Status::SUCCESS);
    let msg = vec![0x5a; 5000];
    let tx = Io::tx(&env, &msg);
    assert_eq!(transmit(&t, &tx), Status::SUCCESS);
    assert!(env.wait(tx.tok.event, 10_000_000_000), "transmit completes");
    env.sim.advance(1_000_000_000);
    assert_eq!(seen.borrow().bytes, msg);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    env.destroy(h);
    let sent: Vec<Seg> = segments(&env).into_iter().filter(|s| s.from_sut).collect();
    // Clean link: every byte leaves once, numbered from EDK2's ISN + 1.
    assert_eq!(sent.iter().map(|s| s.payload).sum::<usize>(), msg.len());
    let first_data = sent.iter().find(|s| s.payload > 0).expect("data");
    assert_eq!(first_data.seq, sent[0].seq.wrapping_add(1));
    let ids: Vec<u16> = sent.iter().map(|s| s.ident).collect();
    assert!(ids.len() >= 6, "handshake, data, ACKs, FIN: {}", ids.len());
    for w in ids.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "{ids:?}");
    }
}

#[test]
fn syn_ack_advertises_the_scaled_buffer_and_no_sack() {
    let env = Env::new(SimConfig::new(10));
    env.sim.start_capture();
    let (h, t) = env.child();
    assert_eq!(configure(&t, &passive_cfg(80)), Status::SUCCESS);
    env.sim
        .peer_host()
        .connect(SocketAddrV4::new(SUT, 80), Box::new(Nothing));
    env.sim.advance(1_000_000_000);
    let segs = segments(&env);
    let syn = segs
        .iter()
        .find(|s| !s.from_sut && s.syn)
        .expect("peer SYN");
    assert!(
        syn.options.contains(&Opt::SackPermitted),
        "the peer offers SACK"
    );
    let syn_ack = segs
        .iter()
        .find(|s| s.from_sut && s.syn && s.ack_flag)
        .expect("SYN-ACK");
    // TcpSynBuildOption: MSS, then WS because the peer sent WS; no TS
    // (the peer sent none), no SACK-permitted.
    assert_eq!(
        syn_ack.options,
        vec![Opt::Mss(1460), Opt::Nop, Opt::WindowScale(6)]
    );
    // TcpComputeWnd: 2 MiB >> 6.
    assert_eq!(syn_ack.window, 32768);
    assert_eq!(syn_ack.ack, syn.seq.wrapping_add(1));
    let done = segs
        .iter()
        .find(|s| !s.from_sut && !s.syn && s.ack_flag)
        .expect("the peer's ACK");
    assert!(!done.rst);
    assert_eq!(
        done.ack,
        syn_ack.seq.wrapping_add(1),
        "peer in EDK2 numbers"
    );
    assert!(segs.iter().all(|s| !s.rst), "nobody resets the handshake");
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
}

/// A peer connection that does nothing.
struct Nothing;
impl efisock_sim::ConnHandler for Nothing {
    fn poll(&mut self, _io: &mut dyn efisock_sim::ConnIo) {}
}

#[test]
fn a_capture_reads_back_from_its_pcap() {
    let env = Env::new(SimConfig::new(12));
    listen_echo(&env.sim, ECHO_PORT);
    env.sim.start_capture();
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, ECHO_PORT), Status::SUCCESS);
    assert_eq!(close(&env, &t, false), Status::SUCCESS);
    env.destroy(h);
    let frames = env.sim.take_capture();
    assert!(frames.len() >= 6, "handshake and close: {}", frames.len());
    let file = efisock_sim::write_pcap(&frames, Vec::new()).expect("written");
    let mut reader = pcap_file::pcap::PcapReader::new(&file[..]).expect("pcap header");
    assert_eq!(reader.header().datalink, pcap_file::DataLink::RAW);
    let mut back = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p.expect("packet");
        back.push((p.timestamp.as_nanos() as u64, p.data.to_vec()));
    }
    let sent: Vec<(u64, Vec<u8>)> = frames.iter().map(|f| (f.t_ns, f.bytes.clone())).collect();
    assert_eq!(back, sent);
    assert!(env.sim.take_capture().is_empty(), "taken frames are gone");
}
