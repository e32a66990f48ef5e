//! EFI has no half-close: data the peer sends after `shutdown(Write)` is
//! answered with RST by the firmware.
//!
//! Measured on OVMF (edk2-stable202211) by the conformance probes
//! `probe/data_after_close_resets_armed` and `_unarmed`: EDK2 resets a
//! connection that receives data after the local Close, even with a Receive
//! pending (TcpInput.c, seventh step, `TCP_LOCAL_CLOSED`). The simulator
//! replays that; these tests pin what the socket layer makes of it and what
//! the peer sees.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::{Net, Shutdown};
use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig, SimPlatform};

const SUT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
const PORT: u16 = 9190;

/// An echo peer that records every state its connection passes through. It
/// never closes, so a RST, not its own close, ends the connection.
struct RecordingEcho {
    seen: Rc<RefCell<Vec<PeerConnState>>>,
}

impl ConnHandler for RecordingEcho {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let state = io.state();
        {
            let mut seen = self.seen.borrow_mut();
            if seen.last() != Some(&state) {
                seen.push(state);
            }
        }
        let mut buf = [0u8; 4096];
        let n = io.recv(&mut buf);
        if n > 0 {
            io.send(&buf[..n]);
        }
    }
}

fn world() -> (Sim, Net<SimPlatform>, Rc<RefCell<Vec<PeerConnState>>>) {
    let sim = Sim::new(SimConfig::new(0x4a1f));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let handle = Rc::clone(&seen);
    sim.peer_host().listen(
        PORT,
        Box::new(move || {
            Box::new(RecordingEcho {
                seen: Rc::clone(&handle),
            })
        }),
    );
    let net = Net::new(sim.platform());
    net.set_static(SUT, MASK, Some(PEER))
        .expect("static address");
    (sim, net, seen)
}

#[test]
fn a_reply_after_shutdown_write_is_reset_and_lost() {
    let (_sim, net, seen) = world();
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, PORT)).unwrap();
    s.sendall(b"request").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    // The echo arrives after the FIN: the firmware resets the connection,
    // the Receive the socket layer kept armed ends ABORTED, and recv reads
    // that as the end of the stream (core/src/api/close.rs).
    assert_eq!(s.recv(100).unwrap(), b"", "the reply is lost");
    // The RST left as the Receive was aborted; give it the link's latency.
    net.sleep(Duration::from_millis(10));
    assert!(
        seen.borrow().contains(&PeerConnState::Reset),
        "the peer saw no RST: {:?}",
        seen.borrow()
    );
}

#[test]
fn a_reply_read_before_shutdown_write_arrives() {
    let (_sim, net, seen) = world();
    let s = net.socket().unwrap();
    s.connect(SocketAddrV4::new(PEER, PORT)).unwrap();
    s.sendall(b"request").unwrap();
    assert_eq!(s.recv(100).unwrap(), b"request");
    s.shutdown(Shutdown::Write).unwrap();
    net.sleep(Duration::from_millis(10));
    assert_eq!(
        *seen.borrow(),
        [PeerConnState::Established, PeerConnState::PeerFin],
        "the peer saw our FIN and no RST"
    );
}
