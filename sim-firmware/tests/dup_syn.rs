//! Many connections under packet duplication, written as an application
//! would: a client opening connection after connection to a peer's echo
//! service, and a server accepting many connections on one listener. A
//! duplicated SYN belongs to the connection its address pair already has
//! (EDK2 `TcpLocateTcb`, TcpMisc.c l.359-405: exact match in the run queue
//! first; TcpInput.c l.1026-1116: in SYN_RCVD the duplicate is trimmed and
//! discarded) on the system under test as on the peer hosts, so every
//! connection must carry its bytes and end cleanly.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

mod common;

use efisock::Net;
use efisock_sim::{ConnHandler, ConnIo, Faults, PeerConnState, Sim, SimConfig, SimPlatform};

const SUT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
const ECHO_PORT: u16 = 7;
const SERVER_PORT: u16 = 8080;
/// The packet duplication rate the faults apply both ways.
const DUPLICATION: f64 = 0.05;
/// Seeds per scenario: each one is a different arrival of duplicates.
const SEEDS: u64 = 12;

fn sim_with_duplication(seed: u64) -> Sim {
    let mut cfg = SimConfig::new(seed);
    cfg.faults = Faults {
        duplicate: DUPLICATION,
        ..Faults::none()
    };
    Sim::new(cfg)
}

fn net_on(sim: &Sim) -> Net<SimPlatform> {
    let net = Net::new(sim.platform());
    net.set_static(SUT, MASK, Some(PEER))
        .expect("static address");
    net.set_wait_deadline(Some(Duration::from_secs(120)));
    net
}

/// The message of connection `i`: distinct per connection, so a byte that
/// reached the wrong connection is noticed.
fn message(i: usize) -> Vec<u8> {
    (0..200 + i * 7).map(|k| (k * 31 + i * 17) as u8).collect()
}

/// What one peer client saw.
#[derive(Debug, Default)]
struct ClientSeen {
    echoed: Vec<u8>,
    end: Option<PeerConnState>,
}

/// Sends its message, reads it back, then closes.
struct Client {
    msg: Vec<u8>,
    sent: usize,
    closed: bool,
    seen: Rc<RefCell<ClientSeen>>,
}

impl ConnHandler for Client {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let st = io.state();
        let mut seen = self.seen.borrow_mut();
        if matches!(
            st,
            PeerConnState::Closed | PeerConnState::Reset | PeerConnState::TimedOut
        ) {
            seen.end.get_or_insert(st);
            return;
        }
        if st == PeerConnState::Connecting {
            return;
        }
        if self.sent < self.msg.len() {
            self.sent += io.send(&self.msg[self.sent..]);
        }
        let mut buf = [0u8; 4096];
        loop {
            let n = io.recv(&mut buf);
            if n == 0 {
                break;
            }
            seen.echoed.extend_from_slice(&buf[..n]);
        }
        if seen.echoed.len() >= self.msg.len() && !self.closed {
            self.closed = true;
            io.close();
        }
    }
}

/// The client side: `count` connections, one after the other, each sending
/// its message and reading the echo back before closing.
fn sequential_client(seed: u64, count: usize) -> Result<(), String> {
    let sim = sim_with_duplication(seed);
    common::listen_echo(&sim, ECHO_PORT);
    let net = net_on(&sim);
    for i in 0..count {
        let sock = net.socket().map_err(|e| format!("socket {i}: {e}"))?;
        sock.settimeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("settimeout {i}: {e}"))?;
        sock.connect(SocketAddrV4::new(PEER, ECHO_PORT))
            .map_err(|e| format!("connect {i}: {e}"))?;
        let msg = message(i);
        sock.sendall(&msg)
            .map_err(|e| format!("sendall {i}: {e}"))?;
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let chunk = sock
                .recv(4096)
                .map_err(|e| format!("recv {i} after {} bytes: {e}", got.len()))?;
            if chunk.is_empty() {
                return Err(format!("connection {i}: EOF after {} bytes", got.len()));
            }
            got.extend_from_slice(&chunk);
        }
        if got != msg {
            return Err(format!("connection {i}: echo differs from the message"));
        }
        sock.close().map_err(|e| format!("close {i}: {e}"))?;
    }
    net.shutdown(Duration::from_secs(60))
        .map_err(|e| format!("shutdown: {e}"))?;
    let breaches = sim.finish();
    if !breaches.is_empty() {
        return Err(format!("contract checker: {breaches:?}"));
    }
    Ok(())
}

/// The server side: one listener with a backlog of `backlog`, `count`
/// peer clients connecting at once; every accepted connection is echoed and
/// closed, and every client must get its own message back.
fn accepting_server(seed: u64, count: usize, backlog: u32) -> Result<(), String> {
    let sim = sim_with_duplication(seed);
    let net = net_on(&sim);
    let l = net.socket().map_err(|e| format!("socket: {e}"))?;
    l.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT))
        .map_err(|e| format!("bind: {e}"))?;
    l.listen(backlog).map_err(|e| format!("listen: {e}"))?;
    l.settimeout(Some(Duration::from_secs(60)))
        .map_err(|e| format!("settimeout: {e}"))?;
    let clients: Vec<Rc<RefCell<ClientSeen>>> = (0..count)
        .map(|i| {
            let seen = Rc::new(RefCell::new(ClientSeen::default()));
            sim.peer_host().connect(
                SocketAddrV4::new(SUT, SERVER_PORT),
                Box::new(Client {
                    msg: message(i),
                    sent: 0,
                    closed: false,
                    seen: Rc::clone(&seen),
                }),
            );
            seen
        })
        .collect();
    for n in 0..count {
        let (s, from) = l
            .accept()
            .map_err(|e| format!("accept {n} of {count}: {e}"))?;
        s.settimeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("settimeout: {e}"))?;
        loop {
            let chunk = s.recv(4096).map_err(|e| format!("recv from {from}: {e}"))?;
            if chunk.is_empty() {
                break;
            }
            s.sendall(&chunk)
                .map_err(|e| format!("sendall to {from}: {e}"))?;
        }
        s.close().map_err(|e| format!("close {from}: {e}"))?;
    }
    l.close().map_err(|e| format!("listener close: {e}"))?;
    // The clients close first, so they wait out TIME_WAIT before they end.
    for _ in 0..60 {
        if clients.iter().all(|c| c.borrow().end.is_some()) {
            break;
        }
        net.sleep(Duration::from_secs(1));
    }
    for (i, c) in clients.iter().enumerate() {
        let c = c.borrow();
        if c.echoed != message(i) {
            return Err(format!(
                "client {i}: got {} of {} bytes back, ended {:?}",
                c.echoed.len(),
                message(i).len(),
                c.end
            ));
        }
        if c.end != Some(PeerConnState::Closed) {
            return Err(format!("client {i}: ended {:?}, not closed", c.end));
        }
    }
    net.shutdown(Duration::from_secs(60))
        .map_err(|e| format!("shutdown: {e}"))?;
    let breaches = sim.finish();
    if !breaches.is_empty() {
        return Err(format!("contract checker: {breaches:?}"));
    }
    Ok(())
}

/// Runs `scenario` for every seed; reports each failing seed with the
/// command that replays it.
fn every_seed(name: &str, scenario: impl Fn(u64) -> Result<(), String>) {
    let failures: Vec<String> = (1..=SEEDS)
        .filter_map(|seed| {
            scenario(seed).err().map(|e| {
                format!(
                    "seed {seed:#x}: {e}\n  replay: DUP_SYN_SEED={seed:#x} cargo test -p efisock-sim --test dup_syn {name}"
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {SEEDS} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The seeds to run: `DUP_SYN_SEED` alone when set (replay), else 1..=SEEDS.
fn seeds_from_env() -> Option<u64> {
    let v = std::env::var("DUP_SYN_SEED").ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("DUP_SYN_SEED={v:?} is not a number")))
}

fn run(name: &str, scenario: impl Fn(u64) -> Result<(), String>) {
    match seeds_from_env() {
        Some(seed) => {
            if let Err(e) = scenario(seed) {
                panic!("seed {seed:#x}: {e}");
            }
        }
        None => every_seed(name, scenario),
    }
}

#[test]
fn sequential_client_connections_survive_duplicated_syns() {
    run("sequential_client", |seed| sequential_client(seed, 24));
}

#[test]
fn accepting_server_survives_duplicated_syns() {
    run("accepting_server", |seed| accepting_server(seed, 16, 5));
}
