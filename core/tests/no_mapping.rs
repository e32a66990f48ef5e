//! A connect refused for want of an address (ENETDOWN) leaves the socket
//! usable once the address arrives.
//!
//! Why a test of its own: on EDK2 the child that answered NO_MAPPING keeps
//! an IP child on the default interface of that moment, and any
//! SetData(Policy) before the lease (what `Net::dhcp` does) replaces that
//! interface, so the child never maps again (Ip4Config2Impl.c
//! `Ip4Config2OnPolicyChanged`, Ip4If.c `Ip4FreeInterface`; the simulator
//! replays it). The socket layer has to give the socket a fresh child.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use efisock::{Errno, Net};
use efisock_sim::{ConnHandler, ConnIo, Sim, SimConfig};

const SUT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const PORT: u16 = 7;

/// Echoes what arrives; counts connections.
struct Echo {
    pending: Vec<u8>,
}

impl ConnHandler for Echo {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let mut buf = [0u8; 1024];
        loop {
            let n = io.recv(&mut buf);
            if n == 0 {
                break;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
        let sent = io.send(&self.pending);
        self.pending.drain(..sent);
    }
}

#[test]
fn connect_after_enetdown_works_once_dhcp_gave_an_address() {
    let sim = Sim::new(SimConfig::new(0x0e7d));
    let accepted = Rc::new(RefCell::new(0usize));
    let count = accepted.clone();
    sim.peer_host().listen(
        PORT,
        Box::new(move || {
            *count.borrow_mut() += 1;
            Box::new(Echo {
                pending: Vec::new(),
            })
        }),
    );
    let net = Net::new(sim.platform());
    let s = net.socket().expect("socket");
    s.settimeout(Some(Duration::from_secs(5)))
        .expect("settimeout");
    let peer = SocketAddrV4::new(PEER, PORT);
    let err = s.connect(peer).expect_err("no address yet");
    assert_eq!(err.errno(), Some(Errno::ENETDOWN), "{err}");
    assert_eq!(net.dhcp(Duration::from_secs(30)).expect("dhcp"), SUT);
    s.connect(peer).expect("connect once the lease is in");
    s.sendall(b"mapped").expect("sendall");
    let mut got = [0u8; 6];
    let mut n = 0;
    while n < got.len() {
        let k = s.recv_into(&mut got[n..]).expect("recv");
        assert_ne!(k, 0, "early EOF");
        n += k;
    }
    assert_eq!(&got, b"mapped");
    assert_eq!(*accepted.borrow(), 1);
}
