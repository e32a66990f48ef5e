//! Connect/accept lifecycle, addresses, and API misuse errors.

use std::net::SocketAddrV4;
use std::time::Duration;

use efisock::Errno;

use super::util::{connect, expect_errno, recv_exact, socket};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "lifecycle",
            name: "connect_echo_hello",
            about: "connect, send 5 bytes, get them echoed",
            run: connect_echo_hello::<T>,
        },
        Case {
            group: "lifecycle",
            name: "peer_and_local_names",
            about: "getpeername is the peer; getsockname is our address and an ephemeral port",
            run: peer_and_local_names::<T>,
        },
        Case {
            group: "lifecycle",
            name: "connect_ex_returns_zero",
            about: "connect_ex returns 0 on success",
            run: connect_ex_returns_zero::<T>,
        },
        Case {
            group: "lifecycle",
            name: "connect_twice_eisconn",
            about: "connect on a connected socket is EISCONN",
            run: connect_twice_eisconn::<T>,
        },
        Case {
            group: "lifecycle",
            name: "unconnected_enotconn",
            about: "recv, send, getpeername before connect are ENOTCONN",
            run: unconnected_enotconn::<T>,
        },
        Case {
            group: "lifecycle",
            name: "closed_socket_ebadf",
            about: "every operation after close is EBADF; close twice is fine; the peer saw one graceful close",
            run: closed_socket_ebadf::<T>,
        },
        Case {
            group: "lifecycle",
            name: "bind_then_getsockname",
            about: "bind to an explicit port shows in getsockname",
            run: bind_then_getsockname::<T>,
        },
        Case {
            group: "lifecycle",
            name: "bind_twice_einval",
            about: "binding a bound socket again is EINVAL",
            run: bind_twice_einval::<T>,
        },
        Case {
            group: "lifecycle",
            name: "accept_connect_back",
            about: "listen, the peer connects back, accept returns its address, data flows",
            run: accept_connect_back::<T>,
        },
        Case {
            group: "lifecycle",
            name: "listen_unbound_gets_port",
            about: "listen without bind picks an ephemeral port",
            run: listen_unbound_gets_port::<T>,
        },
        Case {
            group: "lifecycle",
            name: "timeout_settings",
            about: "settimeout/gettimeout/setblocking follow Python",
            run: timeout_settings::<T>,
        },
        Case {
            group: "lifecycle",
            name: "accept_on_unlistened_einval",
            about: "accept on a socket that is not listening is EINVAL",
            run: accept_on_unlistened_einval::<T>,
        },
    ]
}

fn connect_echo_hello<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.sendall(b"hello").context("sendall")?;
    let got = recv_exact(&s, 5)?;
    ensure_eq!(got, b"hello".to_vec(), "echoed bytes");
    s.close().context("close")?;
    Ok(())
}

fn peer_and_local_names<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    ensure_eq!(
        s.getpeername().context("getpeername")?,
        t.peer(ports::ECHO),
        "getpeername"
    );
    let local = s.getsockname().context("getsockname")?;
    ensure_eq!(*local.ip(), t.local_ip(), "getsockname address");
    ensure!(
        local.port() >= 1024,
        "ephemeral port {} should be >= 1024",
        local.port()
    );
    Ok(())
}

fn connect_ex_returns_zero<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    ensure_eq!(s.connect_ex(t.peer(ports::ECHO)), 0, "connect_ex");
    s.sendall(b"x").context("sendall")?;
    ensure_eq!(recv_exact(&s, 1)?, b"x".to_vec(), "echo");
    Ok(())
}

fn connect_twice_eisconn<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    expect_errno(
        s.connect(t.peer(ports::ECHO)),
        Errno::EISCONN,
        "second connect",
    )?;
    ensure_eq!(
        s.connect_ex(t.peer(ports::ECHO)),
        Errno::EISCONN.code(),
        "connect_ex"
    );
    Ok(())
}

fn unconnected_enotconn<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    expect_errno(s.recv(10), Errno::ENOTCONN, "recv")?;
    expect_errno(s.send(b"x"), Errno::ENOTCONN, "send")?;
    expect_errno(s.getpeername(), Errno::ENOTCONN, "getpeername")?;
    Ok(())
}

fn closed_socket_ebadf<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = super::witness::connect_witnessed(t, ports::ECHO)?;
    s.close().context("close")?;
    s.close().context("second close")?;
    expect_errno(s.recv(1), Errno::EBADF, "recv")?;
    expect_errno(s.send(b"x"), Errno::EBADF, "send")?;
    expect_errno(s.connect(t.peer(ports::ECHO)), Errno::EBADF, "connect")?;
    expect_errno(s.getsockname(), Errno::EBADF, "getsockname")?;
    expect_errno(s.listen(1), Errno::EBADF, "listen")?;
    let view = super::witness::ended_view(t, token)?;
    super::witness::expect_graceful(&view, "close, then a second close")
}

fn bind_then_getsockname<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    let addr = SocketAddrV4::new(t.local_ip(), 41001);
    s.bind(addr).context("bind")?;
    ensure_eq!(s.getsockname().context("getsockname")?, addr, "bound name");
    s.connect(t.peer(ports::ECHO))
        .context("connect from bound port")?;
    ensure_eq!(
        s.getsockname().context("getsockname")?.port(),
        41001,
        "port kept after connect"
    );
    Ok(())
}

fn bind_twice_einval<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    s.bind(SocketAddrV4::new(t.local_ip(), 41002))
        .context("bind")?;
    expect_errno(
        s.bind(SocketAddrV4::new(t.local_ip(), 41003)),
        Errno::EINVAL,
        "second bind",
    )
}

fn accept_connect_back<T: SocketTarget>(t: &mut T) -> CaseResult {
    let listener = socket(t)?;
    listener
        .bind(SocketAddrV4::new(t.local_ip(), 42001))
        .context("bind")?;
    listener.listen(5).context("listen")?;
    let control = connect(t, ports::CONNECT_BACK)?;
    control
        .sendall(&protocol::connect_back_request(42001, 1000))
        .context("request")?;
    let (conn, peer) = listener.accept().context("accept")?;
    ensure_eq!(
        *peer.ip(),
        *t.peer(ports::ECHO).ip(),
        "accepted peer address"
    );
    ensure_eq!(
        conn.getpeername().context("getpeername")?,
        peer,
        "getpeername of accepted"
    );
    ensure_eq!(
        conn.getsockname().context("getsockname")?.port(),
        42001,
        "accepted local port"
    );
    let (count, _, is_pattern) = super::util::recv_to_eof(&conn, 1000)?;
    ensure_eq!(count, 1000, "bytes from the connect-back peer");
    ensure!(is_pattern, "connect-back data is the pattern");
    Ok(())
}

fn listen_unbound_gets_port<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    s.listen(1).context("listen")?;
    let name = s.getsockname().context("getsockname")?;
    ensure!(name.port() != 0, "listening socket has a port, got {name}");
    Ok(())
}

fn timeout_settings<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = t.net().socket().context("socket")?;
    ensure_eq!(s.gettimeout(), None, "default timeout (blocking)");
    ensure!(s.getblocking(), "default is blocking");
    s.settimeout(Some(Duration::from_millis(1500)))
        .context("settimeout")?;
    ensure_eq!(
        s.gettimeout(),
        Some(Duration::from_millis(1500)),
        "gettimeout"
    );
    s.setblocking(false);
    ensure_eq!(
        s.gettimeout(),
        Some(Duration::ZERO),
        "setblocking(False) is timeout 0"
    );
    ensure!(!s.getblocking(), "getblocking after setblocking(False)");
    s.setblocking(true);
    ensure_eq!(s.gettimeout(), None, "setblocking(True) is timeout None");
    Ok(())
}

fn accept_on_unlistened_einval<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    expect_errno(s.accept().map(|_| ()), Errno::EINVAL, "accept")
}
