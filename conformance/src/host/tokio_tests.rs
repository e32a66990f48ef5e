//! Loopback tests of the tokio host with plain `std::net` clients.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use super::config::{ConnectBackMap, HostConfig, Listen};
use super::tokio_host::{RunningHost, start};
use crate::pattern::{fill_pattern, find_pattern_mismatch, pattern_checksum};
use crate::peers::protocol::{SinkReport, connect_back_request, source_request};
use crate::peers::witness::{Ending, Leg, Observer, PeerView, Query, Until};
use crate::peers::{Service, ports};

const IO_TIMEOUT: Duration = Duration::from_secs(20);

fn cfg(listen: Listen, map: ConnectBackMap) -> HostConfig {
    HostConfig {
        bind: Ipv4Addr::LOCALHOST,
        listen,
        connect_back_ip: Ipv4Addr::LOCALHOST,
        connect_back_map: map,
        lifetime: Duration::from_secs(60),
        max_connections_per_service: 50,
        connect_timeout: Duration::from_secs(5),
    }
}

fn host() -> RunningHost {
    start(cfg(Listen::Ephemeral, ConnectBackMap::Identity)).unwrap()
}

fn connect(h: &RunningHost, s: Service) -> TcpStream {
    let c = TcpStream::connect(h.addr(s).unwrap()).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    c
}

fn pattern(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(0, &mut v);
    v
}

fn read_to_end(c: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    c.read_to_end(&mut v)?;
    Ok(v)
}

#[test]
fn echo_round_trips_more_than_the_buffers_hold() {
    let h = host();
    let mut c = connect(&h, Service::Echo);
    let data = pattern(700_000);
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let got = read_to_end(&mut c).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(find_pattern_mismatch(0, &got), None);
    drop(c);
    let r = h.stop();
    assert_eq!(r.accepted(Service::Echo), 1);
    assert_eq!(r.services[&Service::Echo].closed, 1, "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn sink_reports_count_and_checksum() {
    let h = host();
    let mut c = connect(&h, Service::Sink);
    let len = 1_000_003;
    c.write_all(&crate::peers::protocol::sink_request(len as u64))
        .unwrap();
    c.write_all(&pattern(len)).unwrap();
    // No half-close: the report follows the N-th byte (EFI clients cannot
    // shut down writing and keep reading).
    let got = read_to_end(&mut c).unwrap();
    let report: [u8; 16] = got.as_slice().try_into().expect("exactly a 16-byte report");
    let r = SinkReport::decode(&report);
    assert_eq!(r.count, len as u64);
    assert_eq!(r.checksum, pattern_checksum(0, len as u64));
    c.shutdown(Shutdown::Write).unwrap();
    drop(c);
    // The host counts "closed" when its task reads our FIN; a stop signal
    // that wins that race counts the connection as cut at stop instead
    // (seen once on a loaded 2-core machine). Give the task time to read it.
    std::thread::sleep(Duration::from_millis(300));
    let rep = h.stop();
    assert_eq!(rep.services[&Service::Sink].closed, 1, "{rep:?}");
}

#[test]
fn source_fin_sends_the_pattern_then_eof() {
    let h = host();
    let mut c = connect(&h, Service::SourceFin);
    let n = 500_000u64;
    c.write_all(&source_request(n)).unwrap();
    let got = read_to_end(&mut c).unwrap();
    assert_eq!(got.len() as u64, n);
    assert_eq!(find_pattern_mismatch(0, &got), None);
    c.shutdown(Shutdown::Write).unwrap();
    drop(c);
    let r = h.stop();
    assert_eq!(r.accepted(Service::SourceFin), 1);
}

#[test]
fn source_rst_delivers_every_byte_before_the_reset() {
    let h = host();
    let mut c = connect(&h, Service::SourceRst);
    let n = 3_000_000u64;
    c.write_all(&source_request(n)).unwrap();
    // Reading late leaves most bytes in the host's kernel send queue: a RST
    // that ignored unacknowledged data would discard them.
    std::thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let err = loop {
        match c.read(&mut buf) {
            Ok(0) => panic!("EOF instead of a reset after {} bytes", got.len()),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    assert_eq!(got.len() as u64, n);
    assert_eq!(find_pattern_mismatch(0, &got), None);
    let r = h.stop();
    assert_eq!(r.services[&Service::SourceRst].reset, 1, "{r:?}");
}

#[test]
fn accept_close_gives_eof_and_accept_hold_stays_open() {
    let h = host();
    let mut c = connect(&h, Service::AcceptClose);
    assert_eq!(read_to_end(&mut c).unwrap(), Vec::<u8>::new());
    let mut hold = connect(&h, Service::AcceptHold);
    hold.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let e = hold.read(&mut [0u8; 8]).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    let r = h.stop();
    assert_eq!(r.accepted(Service::AcceptClose), 1);
    assert_eq!(r.services[&Service::AcceptHold].cut_at_stop, 1, "{r:?}");
}

#[test]
fn connect_back_reaches_a_local_listener() {
    let h = host();
    let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = target.local_addr().unwrap().port();
    let mut req = connect(&h, Service::ConnectBack);
    let n = 400_000u64;
    req.write_all(&connect_back_request(port, n)).unwrap();
    target.set_nonblocking(false).unwrap();
    let (mut back, from) = target.accept().unwrap();
    assert!(from.ip().is_loopback());
    back.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let got = read_to_end(&mut back).unwrap();
    assert_eq!(got.len() as u64, n);
    assert_eq!(find_pattern_mismatch(0, &got), None);
    back.shutdown(Shutdown::Write).unwrap();
    req.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut req).unwrap(), Vec::<u8>::new());
    // Let the host see our FIN on the connect-back connection.
    std::thread::sleep(Duration::from_millis(100));
    let r = h.stop();
    assert_eq!(r.connect_backs_connected, 1, "{r:?}");
    assert_eq!(r.connect_backs_completed, 1, "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn connect_back_to_an_unmapped_port_is_an_error_not_a_connection() {
    let h = start(cfg(
        Listen::Ephemeral,
        ConnectBackMap::from_hostfwd(&[(1, 2)]),
    ))
    .unwrap();
    let mut req = connect(&h, Service::ConnectBack);
    req.write_all(&connect_back_request(4321, 10)).unwrap();
    req.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut req).unwrap(), Vec::<u8>::new());
    let r = h.stop();
    assert_eq!(r.connect_backs_connected, 0);
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("no host port mapped for guest port 4321")),
        "{:?}",
        r.errors
    );
}

/// Starts a host on well-known ports plus some offset that is free here.
fn host_on_offset(mut c: HostConfig) -> (RunningHost, u16) {
    let base = 20_000 + (std::process::id() % 2_000) as u16 * 10;
    for k in 0..20u16 {
        let off = base + k * 1_000 % 30_000;
        c.listen = Listen::Offset(off);
        if let Ok(h) = start(c.clone()) {
            return (h, off);
        }
    }
    panic!("no free port offset found");
}

fn connect_refused(addr: SocketAddrV4) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

#[test]
fn well_known_ports_with_offset_and_the_refused_port() {
    let (h, off) = host_on_offset(cfg(Listen::Offset(0), ConnectBackMap::Identity));
    for &(port, service) in crate::peers::listening_services() {
        assert_eq!(h.addr(service).unwrap().port(), port + off);
    }
    let refused = SocketAddrV4::new(Ipv4Addr::LOCALHOST, ports::REFUSED + off);
    assert!(connect_refused(refused));
    drop(h);
}

#[test]
fn listeners_close_after_the_connection_limit() {
    let mut c = cfg(Listen::Ephemeral, ConnectBackMap::Identity);
    c.max_connections_per_service = 2;
    let h = start(c).unwrap();
    let addr = h.addr(Service::AcceptClose).unwrap();
    for _ in 0..2 {
        let mut s = connect(&h, Service::AcceptClose);
        assert_eq!(read_to_end(&mut s).unwrap(), Vec::<u8>::new());
    }
    // The listener task drops the socket right after the second accept.
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        connect_refused(addr)
    });
    assert!(refused, "third connection was not refused");
    let r = h.stop();
    assert_eq!(r.accepted(Service::AcceptClose), 2);
    assert!(r.services[&Service::AcceptClose].limit_reached);
}

#[test]
fn the_host_stops_by_itself_at_its_lifetime() {
    let mut c = cfg(Listen::Ephemeral, ConnectBackMap::Identity);
    c.lifetime = Duration::from_millis(200);
    let h = start(c).unwrap();
    let addr = h.addr(Service::Echo).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(connect_refused(addr));
    let r = h.stop();
    assert!(r.lifetime_expired);
}

#[test]
fn non_loopback_configs_are_rejected() {
    let mut c = cfg(Listen::Ephemeral, ConnectBackMap::Identity);
    c.bind = Ipv4Addr::UNSPECIFIED;
    assert!(start(c).unwrap_err().to_string().contains("not loopback"));
}

#[test]
fn source_just_over_the_send_buffer_does_not_stall() {
    // Regression: the peer filled the adapter's buffer, the socket took it
    // all at once, and nothing polled the peer again for the rest.
    let h = host();
    let mut c = connect(&h, Service::SourceFin);
    let n = (super::tokio_conn::TX_CAP + 4_464) as u64;
    c.write_all(&source_request(n)).unwrap();
    let got = read_to_end(&mut c).unwrap();
    assert_eq!(got.len() as u64, n);
    assert_eq!(find_pattern_mismatch(0, &got), None);
    drop(c);
    h.stop();
}

/// Asks the witness of `h` about `token` (accepted leg, until ended).
fn witness_view(h: &RunningHost, token: u64) -> PeerView {
    let mut q = TcpStream::connect(h.witness_addr().unwrap()).unwrap();
    q.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let query = Query {
        token,
        leg: Leg::Accepted,
        until: Until::Ended,
        wait_ms: 10_000,
    };
    q.write_all(&query.encode()).unwrap();
    let got = read_to_end(&mut q).unwrap();
    PeerView::decode(got.as_slice().try_into().expect("one whole view"))
}

#[test]
fn the_witness_reports_bytes_and_fin_of_a_graceful_close() {
    let h = host();
    let mut c = TcpStream::connect(h.witnessed_addr(Service::Echo).unwrap()).unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(&11u64.to_be_bytes()).unwrap();
    let data = pattern(5000);
    c.write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_end(&mut c).unwrap(),
        data,
        "the token is not echoed"
    );
    drop(c);
    let v = witness_view(&h, 11);
    assert!(v.known && !v.self_reset, "{v:?}");
    assert_eq!(v.observer, Observer::Socket);
    assert_eq!(
        (v.bytes_in, v.checksum_in),
        (5000, pattern_checksum(0, 5000))
    );
    assert_eq!(v.ending(), Ending::Fin, "{v:?}");
    assert_eq!(
        v.max_window, None,
        "a socket shows no window of the other side"
    );
    let r = h.stop();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn the_witness_sees_a_reset_even_when_the_service_does_not_read() {
    let h = host();
    let c = TcpStream::connect(h.witnessed_addr(Service::AcceptHold).unwrap()).unwrap();
    let mut w = c.try_clone().unwrap();
    w.write_all(&12u64.to_be_bytes()).unwrap();
    // More than the adapter buffers, so the host stops reading.
    w.set_nonblocking(true).unwrap();
    let chunk = pattern(64 * 1024);
    for _ in 0..64 {
        if w.write(&chunk).is_err() {
            break;
        }
    }
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(w);
    drop(c);
    let v = witness_view(&h, 12);
    assert_eq!(v.ending(), Ending::Rst, "{v:?}");
    assert_eq!(v.bytes_in, 0, "accept-hold reads nothing");
    drop(h);
}
