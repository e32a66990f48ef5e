//! End of stream and resets: sticky EOF, EOF as readiness, RST on recv and
//! send, refused and timed-out connects.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use efisock::Errno;

use super::util::{connect, expect_errno, pattern, recv_exact, socket};
use crate::pattern::find_pattern_mismatch;
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "eof",
            name: "eof_is_sticky",
            about: "after FIN, recv returns b'' every time",
            run: eof_is_sticky::<T>,
        },
        Case {
            group: "eof",
            name: "eof_is_readable",
            about: "select reports EOF as readable; recv then returns b''",
            run: eof_is_readable::<T>,
        },
        Case {
            group: "eof",
            name: "accept_and_close_gives_eof",
            about: "a peer that closes at once gives EOF",
            run: accept_and_close_gives_eof::<T>,
        },
        Case {
            group: "eof",
            name: "send_after_peer_fin_works",
            about: "half-closed by the peer: we can still send (no EPIPE yet), and the peer gets the bytes",
            run: send_after_peer_fin_works::<T>,
        },
        Case {
            group: "reset",
            name: "reset_on_recv",
            about: "RST mid-stream: data prefix intact, then ECONNRESET, then b''",
            run: reset_on_recv::<T>,
        },
        Case {
            group: "reset",
            name: "reset_on_send",
            about: "sending to a reset connection fails with ECONNRESET or EPIPE",
            run: reset_on_send::<T>,
        },
        Case {
            group: "reset",
            name: "reset_so_error",
            about: "SO_ERROR reports ECONNRESET once and clears",
            run: reset_so_error::<T>,
        },
        Case {
            group: "connect",
            name: "refused",
            about: "connect to a closed port is ECONNREFUSED",
            run: refused::<T>,
        },
        Case {
            group: "connect",
            name: "connect_ex_refused",
            about: "connect_ex to a closed port returns 111",
            run: connect_ex_refused::<T>,
        },
        Case {
            group: "connect",
            name: "connect_timeout",
            about: "connect to a host that never answers times out with the socket timeout",
            run: connect_timeout::<T>,
        },
        Case {
            group: "connect",
            name: "reconnect_after_refused",
            about: "a fresh socket connects fine after a refusal",
            run: reconnect_after_refused::<T>,
        },
    ]
}

fn eof_is_sticky<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::SOURCE_FIN)?;
    s.sendall(&protocol::source_request(10))
        .context("request")?;
    ensure_eq!(recv_exact(&s, 10)?, pattern(10), "data");
    for i in 0..3 {
        ensure_eq!(
            s.recv(100).context("recv at EOF")?,
            Vec::<u8>::new(),
            "EOF read {i}"
        );
    }
    Ok(())
}

fn eof_is_readable<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::SOURCE_FIN)?;
    s.sendall(&protocol::source_request(0)).context("request")?;
    let ready = t
        .net()
        .select(&[&s], &[], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    ensure_eq!(
        ready.read,
        vec![s.fileno()],
        "EOF makes the socket readable"
    );
    ensure_eq!(s.recv(1).context("recv")?, Vec::<u8>::new(), "recv at EOF");
    let again = t
        .net()
        .select(&[&s], &[], &[], Some(Duration::ZERO))
        .context("select again")?;
    ensure_eq!(
        again.read,
        vec![s.fileno()],
        "still readable after EOF was read"
    );
    Ok(())
}

fn accept_and_close_gives_eof<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ACCEPT_CLOSE)?;
    ensure_eq!(
        s.recv(10).context("recv")?,
        Vec::<u8>::new(),
        "EOF from accept-and-close"
    );
    Ok(())
}

fn send_after_peer_fin_works<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = super::witness::connect_witnessed(t, ports::ACCEPT_CLOSE)?;
    ensure_eq!(s.recv(10).context("recv")?, Vec::<u8>::new(), "EOF");
    let n = s.send(b"after fin").context("send after peer FIN")?;
    ensure_eq!(n, 9, "bytes accepted");
    s.close().context("close")?;
    let view = super::witness::ended_view(t, token)?;
    super::witness::expect_bytes_in(
        &view,
        9,
        crate::pattern::fnv1a64(b"after fin"),
        "bytes sent after the peer's FIN",
    )?;
    super::witness::expect_graceful(&view, "close after the peer's FIN")
}

fn reset_on_recv<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::SOURCE_RST)?;
    s.sendall(&protocol::source_request(20_000))
        .context("request")?;
    let mut got = Vec::new();
    let error = loop {
        match s.recv(65536) {
            Ok(chunk) if chunk.is_empty() => {
                return Err(CaseError::new(format!(
                    "EOF instead of reset after {} bytes",
                    got.len()
                )));
            }
            Ok(chunk) => got.extend_from_slice(&chunk),
            Err(e) => break e,
        }
        ensure!(got.len() <= 20_000, "more bytes than the source sent");
    };
    ensure_eq!(
        error.errno(),
        Some(Errno::ECONNRESET),
        "error after the data: {error}"
    );
    ensure!(
        find_pattern_mismatch(0, &got).is_none(),
        "data before the reset is intact"
    );
    ensure_eq!(
        s.recv(10).context("recv after reset")?,
        Vec::<u8>::new(),
        "recv after ECONNRESET"
    );
    Ok(())
}

fn reset_on_send<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::SOURCE_RST)?;
    s.sendall(&protocol::source_request(0)).context("request")?;
    let chunk = pattern(16 * 1024);
    for _ in 0..200 {
        match s.send(&chunk) {
            Ok(_) => t.net().sleep(Duration::from_millis(20)),
            Err(e) if matches!(e.errno(), Some(Errno::ECONNRESET | Errno::EPIPE)) => return Ok(()),
            Err(e) => return Err(CaseError::new(format!("unexpected error: {e}"))),
        }
    }
    Err(CaseError::new("send kept succeeding after the peer's RST"))
}

fn reset_so_error<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::SOURCE_RST)?;
    s.sendall(&protocol::source_request(0)).context("request")?;
    t.net()
        .select(&[&s], &[], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    t.net().sleep(Duration::from_millis(100));
    ensure_eq!(s.so_error(), Errno::ECONNRESET.code(), "SO_ERROR");
    ensure_eq!(s.so_error(), 0, "SO_ERROR is cleared by reading it");
    Ok(())
}

fn refused<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    expect_errno(
        s.connect(t.peer(ports::REFUSED)),
        Errno::ECONNREFUSED,
        "connect",
    )
}

fn connect_ex_refused<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    ensure_eq!(
        s.connect_ex(t.peer(ports::REFUSED)),
        Errno::ECONNREFUSED.code(),
        "connect_ex"
    );
    Ok(())
}

fn connect_timeout<T: SocketTarget>(t: &mut T) -> CaseResult {
    if !t.has_silent_addresses() {
        return Err(CaseError::new(
            "needs a host that never answers; the network rules allow none outside the simulator",
        ));
    }
    // No host has this address on the simulated network: SYNs go unanswered.
    let silent = Ipv4Addr::new(10, 0, 2, 77);
    let s = t.net().socket().context("socket")?;
    s.settimeout(Some(Duration::from_millis(1500)))
        .context("settimeout")?;
    let start = t.net().now();
    let result = s.connect(SocketAddrV4::new(silent, 80));
    let waited = t.net().now() - start;
    match result {
        Err(e) if e.is_timeout() => {}
        other => return Err(CaseError::new(format!("expected a timeout, got {other:?}"))),
    }
    ensure!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_millis(1700),
        "timeout took {waited:?} of firmware time, expected 1.5 s"
    );
    Ok(())
}

fn reconnect_after_refused<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    expect_errno(
        s.connect(t.peer(ports::REFUSED)),
        Errno::ECONNREFUSED,
        "refused",
    )?;
    drop(s);
    let s = connect(t, ports::ECHO)?;
    s.sendall(b"ok").context("sendall")?;
    ensure_eq!(recv_exact(&s, 2)?, b"ok".to_vec(), "echo");
    Ok(())
}
