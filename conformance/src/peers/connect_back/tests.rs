//! Tests of the connect-back services.

use std::net::Ipv4Addr;

use super::*;
use crate::pattern::{find_pattern_mismatch, pattern_byte};
use crate::peers::mem::MemIo;
use crate::peers::protocol::connect_back_request;

#[test]
fn parses_split_request_once() {
    let client = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 50000);
    let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7014);
    for kind in [ConnectBackKind::Send, ConnectBackKind::EchoCheck] {
        let mut io = MemIo::new(local, client);
        let mut p = ConnectBack::new(kind);
        assert_eq!(p.kind(), kind);
        let req = connect_back_request(8080, 123_456);
        for b in req {
            assert_eq!(p.take_connect_back(), None);
            io.push_input(&[b]);
            p.poll(&mut io);
        }
        assert_eq!(
            p.take_connect_back(),
            Some(ConnectBackRequest {
                to: SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 8080),
                bytes: 123_456,
                kind,
            })
        );
        p.poll(&mut io);
        assert_eq!(p.take_connect_back(), None, "request taken once");
        assert_eq!(io.close_calls(), 0, "stays open until client FIN");
        io.set_state(PeerConnState::PeerFin);
        p.poll(&mut io);
        assert_eq!(io.close_calls(), 1);
        assert!(io.misuse().is_empty(), "{:?}", io.misuse());
    }
}

#[test]
fn malformed_requests_are_reset() {
    let mut io = MemIo::default();
    let mut p = ConnectBack::new(ConnectBackKind::Send);
    io.push_input(&connect_back_request(0, 5));
    p.poll(&mut io);
    assert_eq!(io.abort_calls(), 1);
    assert_eq!(p.take_connect_back(), None);

    let mut io = MemIo::default();
    let mut p = ConnectBack::new(ConnectBackKind::Send);
    io.push_input(&[0, 80, 0]);
    io.set_state(PeerConnState::PeerFin);
    p.poll(&mut io);
    assert_eq!(io.abort_calls(), 1);
    assert_eq!(p.take_connect_back(), None);
}

#[test]
fn sender_waits_for_connection_then_sends_and_fins() {
    let mut io = MemIo::default().with_window(4096);
    io.set_state(PeerConnState::Connecting);
    let mut s = ConnectBackSender::new(10_000);
    s.poll(&mut io);
    assert!(io.sent().is_empty());
    io.set_state(PeerConnState::Established);
    while !s.is_done() {
        s.poll(&mut io);
        io.ack_all();
    }
    assert_eq!(io.sent().len(), 10_000);
    assert_eq!(find_pattern_mismatch(0, io.sent()), None);
    assert_eq!(io.close_calls(), 1);
    assert!(io.misuse().is_empty(), "{:?}", io.misuse());
}

#[test]
fn sender_reports_refused_connection() {
    let mut io = MemIo::default();
    io.set_state(PeerConnState::Reset);
    let mut s = ConnectBackSender::new(10);
    s.poll(&mut io);
    assert_eq!(s.failed(), Some(PeerConnState::Reset));
    assert!(!s.is_done());
}

#[test]
fn request_builds_the_matching_client() {
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 9000);
    for kind in [ConnectBackKind::Send, ConnectBackKind::EchoCheck] {
        let req = ConnectBackRequest {
            to,
            bytes: 100,
            kind,
        };
        let mut client = req.client();
        let mut io = MemIo::default();
        client.poll(&mut io);
        assert_eq!(io.sent().len(), 100, "{kind:?} sends the pattern");
        assert_eq!(find_pattern_mismatch(0, io.sent()), None);
        // Only the sender closes without getting an echo back.
        let expect_close = usize::from(kind == ConnectBackKind::Send);
        assert_eq!(io.close_calls(), expect_close, "{kind:?}");
    }
}

/// Loops everything the checker sent back to it, `step` bytes at a time.
fn echo_back(io: &mut MemIo, echoed: &mut usize, step: usize, corrupt_at: Option<usize>) {
    let end = io.sent().len().min(*echoed + step);
    let mut back = io.sent()[*echoed..end].to_vec();
    if let Some(at) = corrupt_at {
        if (*echoed..end).contains(&at) {
            back[at - *echoed] ^= 0x55;
        }
    }
    io.push_input(&back);
    *echoed = end;
}

#[test]
fn echo_checker_closes_after_intact_echo() {
    let mut io = MemIo::default();
    io.set_state(PeerConnState::Connecting);
    let mut c = ConnectBackEchoChecker::new(50_000);
    c.poll(&mut io);
    assert!(io.sent().is_empty(), "nothing sent while connecting");
    io.set_state(PeerConnState::Established);
    c.poll(&mut io);
    assert_eq!(c.sent(), 50_000);
    let mut echoed = 0;
    while echoed < 50_000 {
        assert!(!c.is_done());
        assert_eq!(io.close_calls(), 0, "no FIN before the whole echo");
        echo_back(&mut io, &mut echoed, 7001, None);
        c.poll(&mut io);
        assert_eq!(c.verified(), echoed as u64);
    }
    assert!(c.is_done());
    assert_eq!(c.failed(), None);
    assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
    c.poll(&mut io);
    assert_eq!(io.close_calls(), 1, "FIN is sent once");
    assert!(io.misuse().is_empty(), "{:?}", io.misuse());
}

#[test]
fn echo_checker_resets_on_corrupted_byte() {
    let mut io = MemIo::default();
    let mut c = ConnectBackEchoChecker::new(20_000);
    c.poll(&mut io);
    let mut echoed = 0;
    while echoed < 20_000 && c.failed().is_none() {
        echo_back(&mut io, &mut echoed, 3000, Some(12_345));
        c.poll(&mut io);
    }
    assert_eq!(
        c.failed(),
        Some(EchoCheckFailure::Mismatch {
            offset: 12_345,
            expected: pattern_byte(12_345),
            got: pattern_byte(12_345) ^ 0x55,
        })
    );
    assert_eq!(c.verified(), 12_345);
    assert!(!c.is_done());
    assert_eq!((io.abort_calls(), io.close_calls()), (1, 0));
    c.poll(&mut io);
    assert_eq!(io.abort_calls(), 1, "RST is sent once");
    assert!(io.misuse().is_empty(), "{:?}", io.misuse());
}

#[test]
fn echo_checker_resets_on_early_fin() {
    let mut io = MemIo::default();
    let mut c = ConnectBackEchoChecker::new(10_000);
    c.poll(&mut io);
    let mut echoed = 0;
    echo_back(&mut io, &mut echoed, 4000, None);
    io.set_state(PeerConnState::PeerFin);
    c.poll(&mut io);
    assert_eq!(c.verified(), 4000, "data queued before the FIN is checked");
    assert_eq!(
        c.failed(),
        Some(EchoCheckFailure::Ended {
            state: PeerConnState::PeerFin,
            verified: 4000,
        })
    );
    assert_eq!((io.abort_calls(), io.close_calls()), (1, 0));
    assert!(io.misuse().is_empty(), "{:?}", io.misuse());

    // A complete echo followed by the client's FIN is a success.
    let mut io = MemIo::default();
    let mut c = ConnectBackEchoChecker::new(10);
    c.poll(&mut io);
    let mut echoed = 0;
    echo_back(&mut io, &mut echoed, 10, None);
    io.set_state(PeerConnState::PeerFin);
    c.poll(&mut io);
    assert!(c.is_done());
    assert_eq!((io.abort_calls(), io.close_calls()), (0, 1));
}

#[test]
fn echo_checker_reports_refused_or_reset_connection() {
    let mut io = MemIo::default();
    io.set_state(PeerConnState::Reset);
    let mut c = ConnectBackEchoChecker::new(10);
    c.poll(&mut io);
    assert_eq!(
        c.failed(),
        Some(EchoCheckFailure::Ended {
            state: PeerConnState::Reset,
            verified: 0,
        })
    );
    assert_eq!(io.abort_calls(), 0, "nothing to reset");
    assert!(c.failed().unwrap().to_string().contains("Reset"));
}

#[test]
fn echo_checker_under_backpressure() {
    let total = 100_000usize;
    let mut io = MemIo::default().with_window(1500).with_per_call_limit(500);
    let mut c = ConnectBackEchoChecker::new(total as u64);
    let mut echoed = 0;
    let mut rounds = 0;
    while !c.is_done() {
        c.poll(&mut io);
        assert!(
            io.sent().len() - echoed <= 1500,
            "never more than the window in flight"
        );
        // The client echoes part of what arrived; acks open the window.
        echo_back(&mut io, &mut echoed, 700, None);
        io.ack(700);
        rounds += 1;
        assert!(rounds < 10_000, "checker made no progress");
        assert_eq!(c.failed(), None);
    }
    assert_eq!(c.verified(), total as u64);
    assert_eq!(io.sent().len(), total);
    assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
    assert!(io.misuse().is_empty(), "{:?}", io.misuse());
}

#[test]
fn zero_byte_echo_check_closes_at_once() {
    let mut io = MemIo::default();
    let mut c = ConnectBackEchoChecker::new(0);
    c.poll(&mut io);
    assert!(c.is_done());
    assert_eq!((io.close_calls(), io.abort_calls()), (1, 0));
}
