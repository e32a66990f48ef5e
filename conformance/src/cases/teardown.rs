//! Closing with operations in flight, shutdown(), and port reuse.

use std::net::SocketAddrV4;
use std::time::Duration;

use efisock::{Errno, Shutdown};

use super::util::{expect_errno, pattern, socket};
use super::witness::{
    connect_witnessed, ended_view, expect_bytes_in, expect_ending, expect_graceful, peer_view,
};
use crate::pattern::fnv1a64;
use crate::peers::witness::{Ending, Leg, Until};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "close",
            name: "with_armed_receive",
            about: "close while a Receive is armed: the peer sees a FIN; shutdown leaves nothing behind",
            run: close_with_armed_receive::<T>,
        },
        Case {
            group: "close",
            name: "with_pending_transmit",
            about: "nonblocking close with Transmits stuck against a non-reader returns at once (the peer sees no FIN or RST yet), no leak",
            run: close_with_pending_transmit::<T>,
        },
        Case {
            group: "close",
            name: "drop_without_close",
            about: "dropping a connected socket closes it (the peer gets its byte, then a FIN) and releases everything",
            run: drop_without_close::<T>,
        },
        Case {
            group: "close",
            name: "listener_with_armed_accept",
            about: "closing a listener with an armed Accept",
            run: close_listener::<T>,
        },
        Case {
            group: "close",
            name: "linger_zero_aborts_at_once",
            about: "SO_LINGER 0: a blocking close with stuck data resets at once instead of waiting; the peer sees a RST",
            run: linger_zero::<T>,
        },
        Case {
            group: "close",
            name: "unread_data",
            about: "close with unread received data does not block or leak; the peer sees a RST (EDK2) or a FIN",
            run: close_unread::<T>,
        },
        Case {
            group: "shutdown",
            name: "write_sends_fin",
            about: "shutdown(SHUT_WR) sends FIN: the peer sees it, the echo peer closes, we read EOF",
            run: shutdown_write::<T>,
        },
        Case {
            group: "shutdown",
            name: "read_gives_eof",
            about: "shutdown(SHUT_RD): recv returns b'' at once; nothing reaches the peer",
            run: shutdown_read::<T>,
        },
        Case {
            group: "shutdown",
            name: "send_after_write_shutdown_epipe",
            about: "send after shutdown(SHUT_WR) is EPIPE; the peer saw the FIN and no byte",
            run: send_after_shutdown::<T>,
        },
        Case {
            group: "shutdown",
            name: "unconnected_enotconn",
            about: "shutdown on an unconnected socket is ENOTCONN",
            run: shutdown_unconnected::<T>,
        },
        Case {
            group: "ports",
            name: "listen_port_in_use",
            about: "a second listener on the same port gets EADDRINUSE",
            run: listen_port_in_use::<T>,
        },
        Case {
            group: "ports",
            name: "relisten_after_close",
            about: "a closed listener's port can be listened on again",
            run: relisten_after_close::<T>,
        },
        Case {
            group: "ports",
            name: "reuse_after_active_close",
            about: "a port is reusable right after an active close (efisock resets TIME_WAIT)",
            run: reuse_after_active_close::<T>,
        },
    ]
}

fn ensure_clean<T: SocketTarget>(t: &T) -> CaseResult {
    t.net()
        .shutdown(Duration::from_secs(30))
        .context("net shutdown")?;
    ensure_eq!(
        t.net().resources(),
        efisock::Resources::default(),
        "resources after shutdown"
    );
    Ok(())
}

fn close_with_armed_receive<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ECHO)?;
    t.net()
        .select(&[&s], &[], &[], Some(Duration::ZERO))
        .context("select arms Receive")?;
    s.close().context("close")?;
    let view = ended_view(t, token)?;
    expect_graceful(&view, "graceful close")?;
    ensure_clean(t)
}

fn close_with_pending_transmit<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ACCEPT_HOLD)?;
    s.setblocking(false);
    let chunk = pattern(64 * 1024);
    let mut sent = 0usize;
    for _ in 0..4096 {
        match s.send(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.errno() == Some(Errno::EAGAIN) => break,
            Err(e) => return Err(CaseError::new(format!("send: {e}"))),
        }
    }
    ensure!(sent > 0, "nothing sent");
    let start = t.net().now();
    s.close().context("close")?;
    let took = t.net().now() - start;
    ensure!(
        took < Duration::from_millis(100),
        "nonblocking close took {took:?}"
    );
    // A nonblocking close is graceful: the FIN waits behind the data the
    // peer never reads, so the peer has seen neither a FIN nor a RST.
    let view = peer_view(t, token, Leg::Accepted, Until::Now)?;
    expect_ending(&view, Ending::Open, "nonblocking close stuck behind data")?;
    ensure_clean(t)
}

fn drop_without_close<T: SocketTarget>(t: &mut T) -> CaseResult {
    let token = {
        let (s, token) = connect_witnessed(t, ports::ECHO)?;
        s.sendall(b"x").context("sendall")?;
        token
    };
    // Dropping is closing: graceful, after the byte was delivered (the
    // echo it provokes may be unread by then, which would make EDK2 reset
    // instead, so the byte goes first and the drop is what is checked).
    let view = ended_view(t, token)?;
    expect_bytes_in(&view, 1, fnv1a64(b"x"), "the byte sent before the drop")?;
    expect_graceful(&view, "drop without close")?;
    ensure_clean(t)
}

fn linger_zero<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ACCEPT_HOLD)?;
    s.setblocking(false);
    let chunk = pattern(64 * 1024);
    for _ in 0..64 {
        if s.send(&chunk).is_err() {
            break;
        }
    }
    s.setblocking(true);
    s.set_linger(Some(Duration::ZERO)).context("SO_LINGER 0")?;
    ensure_eq!(s.linger(), Some(Duration::ZERO), "getsockopt(SO_LINGER)");
    let start = t.net().now();
    s.close().context("close")?;
    let took = t.net().now() - start;
    // A graceful close would wait for the peer to read (it never does) until
    // the close timeout; the abortive one completes inside Close.
    ensure!(
        took < Duration::from_millis(100),
        "close with SO_LINGER 0 took {took:?}"
    );
    let view = ended_view(t, token)?;
    expect_ending(&view, Ending::Rst, "close with SO_LINGER 0")?;
    ensure_clean(t)
}

fn close_listener<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    s.bind(SocketAddrV4::new(t.local_ip(), 44010))
        .context("bind")?;
    s.listen(5).context("listen")?;
    t.net()
        .select(&[&s], &[], &[], Some(Duration::ZERO))
        .context("select arms Accept")?;
    s.close().context("close")?;
    ensure_clean(t)
}

fn close_unread<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::SOURCE_FIN)?;
    s.sendall(&protocol::source_request(5000))
        .context("request")?;
    t.net()
        .select(&[&s], &[], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    t.net().sleep(Duration::from_millis(200));
    s.close().context("close with unread data")?;
    let view = ended_view(t, token)?;
    ensure_eq!(view.acked_out, 5000, "bytes the peer saw acknowledged");
    if t.expect().close_with_unread_data_sends_rst {
        expect_ending(&view, Ending::Rst, "close with unread data")?;
    } else {
        expect_graceful(&view, "close with unread data")?;
    }
    ensure_clean(t)
}

fn shutdown_write<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ECHO)?;
    s.shutdown(Shutdown::Write).context("shutdown(SHUT_WR)")?;
    ensure_eq!(
        s.recv(10).context("recv")?,
        Vec::<u8>::new(),
        "EOF after the echo peer saw our FIN"
    );
    s.close().context("close")?;
    let view = ended_view(t, token)?;
    expect_bytes_in(&view, 0, fnv1a64(b""), "nothing but the FIN")?;
    expect_graceful(&view, "shutdown(SHUT_WR)")
}

fn shutdown_read<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ECHO)?;
    s.shutdown(Shutdown::Read).context("shutdown(SHUT_RD)")?;
    let start = t.net().now();
    ensure_eq!(
        s.recv(10).context("recv")?,
        Vec::<u8>::new(),
        "EOF after SHUT_RD"
    );
    ensure!(
        t.net().now() - start < Duration::from_millis(50),
        "recv after SHUT_RD must not wait"
    );
    // EFI has no receive-only close: SHUT_RD is local, the peer sees nothing.
    let view = peer_view(t, token, Leg::Accepted, Until::Now)?;
    expect_ending(&view, Ending::Open, "shutdown(SHUT_RD)")
}

fn send_after_shutdown<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ECHO)?;
    s.shutdown(Shutdown::Write).context("shutdown")?;
    expect_errno(s.send(b"x"), Errno::EPIPE, "send after SHUT_WR")?;
    ensure_eq!(s.recv(1).context("recv")?, Vec::<u8>::new(), "echo's FIN");
    s.close().context("close")?;
    let view = ended_view(t, token)?;
    expect_bytes_in(&view, 0, fnv1a64(b""), "nothing after SHUT_WR")?;
    expect_graceful(&view, "shutdown(SHUT_WR)")
}

fn shutdown_unconnected<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    expect_errno(s.shutdown(Shutdown::Both), Errno::ENOTCONN, "shutdown")
}

fn listen_port_in_use<T: SocketTarget>(t: &mut T) -> CaseResult {
    let addr = SocketAddrV4::new(t.local_ip(), 44001);
    let a = socket(t)?;
    a.bind(addr).context("bind a")?;
    a.listen(5).context("listen a")?;
    let b = socket(t)?;
    let result = b.bind(addr).and_then(|()| b.listen(5));
    expect_errno(result, Errno::EADDRINUSE, "bind+listen b")
}

fn relisten_after_close<T: SocketTarget>(t: &mut T) -> CaseResult {
    let addr = SocketAddrV4::new(t.local_ip(), 44002);
    let a = socket(t)?;
    a.bind(addr).context("bind a")?;
    a.listen(5).context("listen a")?;
    a.close().context("close a")?;
    let b = socket(t)?;
    b.bind(addr).context("bind b")?;
    b.listen(5)
        .context("listen b after the first listener closed")?;
    Ok(())
}

fn reuse_after_active_close<T: SocketTarget>(t: &mut T) -> CaseResult {
    // efisock resets a child once it reaches TIME_WAIT (everything it sent
    // was acknowledged), so the port is free as soon as close() returns,
    // unlike a kernel's 2*MSL. The firmware's own TIME_WAIT is probed in
    // probe/time_wait_holds_port.
    let local = SocketAddrV4::new(t.local_ip(), 44003);
    let a = socket(t)?;
    a.bind(local).context("bind")?;
    a.connect(t.peer(ports::ECHO)).context("connect")?;
    a.shutdown(Shutdown::Write).context("active close")?;
    ensure_eq!(a.recv(1).context("recv")?, Vec::<u8>::new(), "peer's FIN");
    a.close().context("close")?;
    let b = socket(t)?;
    b.bind(local).context("bind again")?;
    b.connect(t.peer(ports::ECHO))
        .context("connect from the same port right after close")?;
    b.sendall(b"again").context("sendall")?;
    ensure_eq!(super::util::recv_exact(&b, 5)?, b"again".to_vec(), "echo");
    Ok(())
}
