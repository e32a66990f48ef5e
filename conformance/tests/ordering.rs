//! Ordering fuzzer, first cut (issue #4): proptest state-machine test over
//! core + simulator in `NotifyMode::Anytime`.
//!
//! Why: notify delivery order and timing is where the once-a-month firmware
//! bugs hide. proptest generates the run seed (which drives every scheduling
//! decision of the simulator) and a short sequence of socket and peer
//! operations; a tiny reference model of one TCP stream says what may be
//! observed. After every step: received bytes are exactly the next bytes the
//! peer wrote (nothing lost, duplicated or reordered), ECONNRESET and EOF only
//! after the peer sent RST or FIN, and a socket `select` reports readable is
//! never followed by a nonblocking recv that would block. At the end, with no
//! RST, everything both ways arrives, and the simulator reports no contract
//! breach and no leak after `Net::shutdown`.
//!
//! `cargo test -p efisock-conformance --test ordering`; more cases with
//! `PROPTEST_CASES=500`. Failures shrink and are persisted in
//! `conformance/proptest-regressions/ordering.txt` (commit that file).

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::{Errno, Net};
use efisock_sim::{ConnHandler, ConnIo, NotifyMode, Sim, SimConfig};
use proptest::prelude::*;

const SUT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const PORT: u16 = 7400;

/// What the test asks the scripted peer to do, and what it saw.
#[derive(Default)]
struct PeerCtl {
    to_send: Vec<u8>,
    fin: bool,
    rst: bool,
    closed: bool,
    got: Vec<u8>,
}

struct ScriptedPeer(Rc<RefCell<PeerCtl>>);

impl ConnHandler for ScriptedPeer {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let mut c = self.0.borrow_mut();
        let mut buf = [0u8; 4096];
        loop {
            let n = io.recv(&mut buf);
            if n == 0 {
                break;
            }
            c.got.extend_from_slice(&buf[..n]);
        }
        if c.rst {
            if !c.closed {
                c.closed = true;
                io.abort();
            }
            return;
        }
        if !c.to_send.is_empty() {
            let n = io.send(&c.to_send);
            c.to_send.drain(..n);
        }
        if c.fin && c.to_send.is_empty() && !c.closed {
            c.closed = true;
            io.close();
        }
        // The test changes the script from outside the simulator: look again
        // every millisecond of virtual time.
        io.wake_at(io.now_ns() + 1_000_000);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send(Vec<u8>),
    Recv(usize),
    SelectThenRecv,
    Poll(u64),
    PeerWrite(Vec<u8>),
    PeerFin,
    PeerRst,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 1..300).prop_map(Op::Send),
        3 => (1usize..200).prop_map(Op::Recv),
        2 => Just(Op::SelectThenRecv),
        2 => (0u64..50).prop_map(Op::Poll),
        4 => prop::collection::vec(any::<u8>(), 1..300).prop_map(Op::PeerWrite),
        1 => Just(Op::PeerFin),
        1 => Just(Op::PeerRst),
    ]
}

/// The reference model of the stream as the SUT should see it.
#[derive(Default)]
struct Model {
    /// Everything the peer was asked to write, in order.
    peer_wrote: Vec<u8>,
    /// How much of it the SUT has received.
    received: usize,
    /// Everything the SUT sent successfully.
    sent: Vec<u8>,
    fin: bool,
    rst: bool,
    /// ECONNRESET was delivered.
    reset_seen: bool,
    eof_seen: bool,
}

impl Model {
    /// Checks one recv outcome against the model.
    fn on_recv(&mut self, r: Result<Vec<u8>, efisock::Error>) -> Result<(), String> {
        match r {
            Ok(data) if data.is_empty() => {
                if !(self.fin || self.rst) {
                    return Err("EOF although the peer sent neither FIN nor RST".into());
                }
                if self.fin && !self.rst && self.received != self.peer_wrote.len() {
                    return Err(format!(
                        "EOF after {} of {} bytes",
                        self.received,
                        self.peer_wrote.len()
                    ));
                }
                self.eof_seen = true;
            }
            Ok(data) => {
                if self.eof_seen || self.reset_seen {
                    return Err("data after EOF/reset".into());
                }
                let end = self.received + data.len();
                if end > self.peer_wrote.len() || self.peer_wrote[self.received..end] != data[..] {
                    return Err(format!(
                        "bytes {}..{end} differ from what the peer wrote (lost, duplicated or reordered)",
                        self.received
                    ));
                }
                self.received = end;
            }
            Err(e) if e.errno() == Some(Errno::ECONNRESET) => {
                if !self.rst {
                    return Err("ECONNRESET without a peer RST".into());
                }
                if self.reset_seen {
                    return Err("ECONNRESET raised twice".into());
                }
                self.reset_seen = true;
            }
            Err(e) if e.errno() == Some(Errno::EAGAIN) || e.is_timeout() => {}
            Err(e) => return Err(format!("unexpected recv error {e}")),
        }
        Ok(())
    }
}

fn run(seed: u64, ops: &[Op]) -> Result<(), String> {
    let mut config = SimConfig::new(seed);
    config.notify = NotifyMode::Anytime;
    let sim = Sim::new(config);
    let ctl = Rc::new(RefCell::new(PeerCtl::default()));
    {
        let ctl = Rc::clone(&ctl);
        sim.peer_host().listen(
            PORT,
            Box::new(move || Box::new(ScriptedPeer(Rc::clone(&ctl)))),
        );
    }
    let net = Net::new(sim.platform());
    net.set_static(SUT_IP, Ipv4Addr::new(255, 255, 255, 0), Some(PEER_IP))
        .map_err(|e| format!("set_static: {e}"))?;
    let sock = net.socket().map_err(|e| format!("socket: {e}"))?;
    sock.settimeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    sock.connect(SocketAddrV4::new(PEER_IP, PORT))
        .map_err(|e| format!("connect: {e}"))?;
    let mut m = Model::default();
    for (i, op) in ops.iter().enumerate() {
        let step = |e: String| format!("step {i} {op:?}: {e}");
        match op {
            Op::Send(data) => {
                if m.rst {
                    continue;
                }
                sock.settimeout(Some(Duration::from_millis(200)))
                    .map_err(|e| e.to_string())?;
                match sock.send(data) {
                    Ok(n) => m.sent.extend_from_slice(&data[..n]),
                    Err(e) if e.is_timeout() || e.errno() == Some(Errno::EAGAIN) => {}
                    Err(e) => return Err(step(format!("send: {e}"))),
                }
            }
            Op::Recv(n) => {
                sock.settimeout(Some(Duration::from_millis(20)))
                    .map_err(|e| e.to_string())?;
                m.on_recv(sock.recv(*n)).map_err(step)?;
            }
            Op::SelectThenRecv => {
                let sel = net
                    .select(&[&sock], &[], &[], Some(Duration::ZERO))
                    .map_err(|e| step(format!("select: {e}")))?;
                if !sel.read.is_empty() {
                    sock.setblocking(false);
                    let r = sock.recv(4096);
                    sock.setblocking(true);
                    if matches!(&r, Err(e) if e.errno() == Some(Errno::EAGAIN)) {
                        return Err(step("select said readable, recv would block".into()));
                    }
                    m.on_recv(r).map_err(step)?;
                }
            }
            Op::Poll(ms) => net.sleep(Duration::from_millis(*ms)),
            Op::PeerWrite(data) => {
                if !(m.fin || m.rst) {
                    ctl.borrow_mut().to_send.extend_from_slice(data);
                    m.peer_wrote.extend_from_slice(data);
                }
            }
            Op::PeerFin => {
                ctl.borrow_mut().fin = true;
                m.fin = true;
            }
            Op::PeerRst => {
                ctl.borrow_mut().rst = true;
                m.rst = true;
            }
        }
    }
    // Liveness and completeness: without a reset everything arrives.
    if !m.rst {
        ctl.borrow_mut().fin = true;
        m.fin = true;
        sock.settimeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        while !m.eof_seen {
            let r = sock.recv(4096);
            if matches!(&r, Err(e) if e.is_timeout()) {
                return Err(format!(
                    "drain: timed out after {} of {} bytes",
                    m.received,
                    m.peer_wrote.len()
                ));
            }
            m.on_recv(r).map_err(|e| format!("drain: {e}"))?;
        }
        sock.close().map_err(|e| format!("close: {e}"))?;
        net.sleep(Duration::from_millis(100));
        let got = ctl.borrow().got.clone();
        if got != m.sent {
            return Err(format!(
                "peer got {} bytes, SUT sent {} (or they differ)",
                got.len(),
                m.sent.len()
            ));
        }
    } else {
        let _ = sock.close();
    }
    drop(sock);
    net.shutdown(Duration::from_secs(30))
        .map_err(|e| format!("Net::shutdown: {e}"))?;
    let breaches = sim.finish();
    if !breaches.is_empty() {
        return Err(format!("contract checker: {breaches:?}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/ordering.txt",
            ),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ordering_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..16)) {
        if let Err(e) = run(seed, &ops) {
            prop_assert!(false, "seed {seed:#x}: {e}");
        }
    }
}
