//! Whole programs: the classic select-loop echo server with 32 concurrent
//! clients, and a thousand sequential connections without a leak.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::Duration;

use efisock::{Errno, SocketId};

use super::util::{connect, recv_exact, socket};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "server",
            name: "select_echo_server_32_clients",
            about: "a select-loop echo server serves 32 concurrent connect-back clients",
            run: select_echo_server::<T>,
        },
        Case {
            group: "server",
            name: "sequential_1000_connections",
            about: "1000 connect/echo/close cycles leave no child, event or pool block behind",
            run: sequential_1000::<T>,
        },
        Case {
            group: "server",
            name: "accept_many_in_order",
            about: "8 connect-backs are all accepted, each with its own data",
            run: accept_many::<T>,
        },
    ]
}

const CLIENTS: usize = 32;
const PER_CLIENT: u64 = 2000;

fn select_echo_server<T: SocketTarget>(t: &mut T) -> CaseResult {
    let port = 43001;
    let listener = socket(t)?;
    listener
        .bind(SocketAddrV4::new(t.local_ip(), port))
        .context("bind")?;
    listener.listen(10).context("listen")?;
    listener.setblocking(false);
    let mut controls = Vec::new();
    for _ in 0..CLIENTS {
        let c = connect(t, ports::CONNECT_BACK_ECHO)?;
        c.sendall(&protocol::connect_back_request(port, PER_CLIENT))
            .context("request")?;
        controls.push(c);
    }
    let mut clients: BTreeMap<SocketId, efisock::Socket<T::P>> = BTreeMap::new();
    let (mut finished_ok, mut reset) = (0, 0);
    let start = t.net().now();
    for _ in 0..200_000 {
        if finished_ok + reset == CLIENTS {
            break;
        }
        ensure!(
            t.net().now() - start < Duration::from_secs(120),
            "server loop ran out of time: {finished_ok} ok, {reset} reset"
        );
        let mut read: Vec<&efisock::Socket<T::P>> = vec![&listener];
        read.extend(clients.values());
        let ready = t
            .net()
            .select(&read, &[], &[], Some(Duration::from_secs(5)))
            .context("select")?;
        let mut closed = Vec::new();
        for id in ready.read {
            if id == listener.fileno() {
                loop {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            conn.setblocking(false);
                            clients.insert(conn.fileno(), conn);
                        }
                        Err(e) if e.errno() == Some(Errno::EAGAIN) => break,
                        Err(e) => return Err(CaseError::new(format!("accept: {e}"))),
                    }
                }
                continue;
            }
            let conn = &clients[&id];
            match conn.recv(4096) {
                Ok(data) if data.is_empty() => {
                    finished_ok += 1;
                    closed.push(id);
                }
                Ok(data) => {
                    conn.setblocking(true);
                    conn.settimeout(Some(Duration::from_secs(10)))
                        .context("settimeout")?;
                    conn.sendall(&data).context("echo back")?;
                    conn.setblocking(false);
                }
                Err(e) if e.errno() == Some(Errno::EAGAIN) => {}
                Err(e) if e.errno() == Some(Errno::ECONNRESET) => {
                    reset += 1;
                    closed.push(id);
                }
                Err(e) => return Err(CaseError::new(format!("recv: {e}"))),
            }
        }
        for id in closed {
            clients.remove(&id);
        }
    }
    ensure_eq!(reset, 0, "clients that saw wrong echo data and reset");
    ensure_eq!(finished_ok, CLIENTS, "clients served to completion");
    Ok(())
}

fn sequential_1000<T: SocketTarget>(t: &mut T) -> CaseResult {
    for i in 0..1000u32 {
        let s = connect(t, ports::ECHO).map_err(|e| e.context(format_args!("connection {i}")))?;
        let byte = [(i % 251) as u8];
        s.sendall(&byte).context("sendall")?;
        ensure_eq!(recv_exact(&s, 1)?, byte.to_vec(), "echo on connection {i}");
        s.close().context("close")?;
    }
    t.net()
        .shutdown(Duration::from_secs(30))
        .context("shutdown")?;
    let after = t.net().resources();
    ensure_eq!(
        after,
        efisock::Resources::default(),
        "resources after 1000 connections and shutdown"
    );
    Ok(())
}

fn accept_many<T: SocketTarget>(t: &mut T) -> CaseResult {
    let port = 43101;
    let listener = socket(t)?;
    listener
        .bind(SocketAddrV4::new(t.local_ip(), port))
        .context("bind")?;
    listener.listen(10).context("listen")?;
    let mut controls = Vec::new();
    for i in 0..8u64 {
        let c = connect(t, ports::CONNECT_BACK)?;
        c.sendall(&protocol::connect_back_request(port, 100 + i))
            .context("request")?;
        controls.push(c);
    }
    let mut sizes = Vec::new();
    for _ in 0..8 {
        let (conn, peer) = listener.accept().context("accept")?;
        ensure_eq!(*peer.ip(), *t.peer(ports::ECHO).ip(), "peer address");
        let (count, _, is_pattern) = super::util::recv_to_eof(&conn, 1000)?;
        ensure!(is_pattern, "pattern data");
        sizes.push(count);
    }
    sizes.sort();
    ensure_eq!(
        sizes,
        (100..108).collect::<Vec<u64>>(),
        "every connect-back delivered its own byte count"
    );
    Ok(())
}
