//! A RST in CLOSING: EDK2 stores no socket error there (TcpInput.c
//! l.1068-1069, an empty branch), so `SockConnFlush` completes what is
//! pending with the default EFI_ABORTED; the Close token gets SUCCESS
//! (SockImpl.c `SockConnClosed`). Code-read, not measured (slirp cannot
//! put OVMF in CLOSING).

mod common;
use std::cell::Cell;
use std::rc::Rc;

use common::*;
use efisock::firmware::{Status, Tcp4ConnectionState};
use efisock_sim::{ConnHandler, ConnIo, LinkConfig, PeerConnState, SimConfig};

/// Closes when `close` is set and resets when `reset` is set, looking
/// every millisecond.
struct Scripted {
    close: Rc<Cell<bool>>,
    reset: Rc<Cell<bool>>,
    closed: bool,
}
impl ConnHandler for Scripted {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        if matches!(io.state(), PeerConnState::Closed | PeerConnState::Reset) {
            return;
        }
        if self.reset.get() {
            io.abort();
            return;
        }
        if self.close.get() && !self.closed {
            self.closed = true;
            io.close();
        }
        io.wake_at(io.now_ns() + 1_000_000);
    }
}

const MNP_TICK_NS: u64 = 10_000_000;

#[test]
fn a_reset_in_closing_stores_no_error() {
    let env = Env::new(SimConfig::new(0xC105));
    let (close, rst) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let (c2, r2) = (close.clone(), rst.clone());
    let mut first = true;
    // The first connection follows the script; the next one just stays.
    env.sim.peer_host().listen(
        5,
        Box::new(move || {
            let script = std::mem::take(&mut first);
            Box::new(Scripted {
                close: if script { c2.clone() } else { Rc::default() },
                reset: if script { r2.clone() } else { Rc::default() },
                closed: false,
            })
        }),
    );
    let (h, t) = env.child();
    assert_eq!(connect(&env, &t, PEER, 5), Status::SUCCESS);
    // 1 ms after an MNP tick: the peer's FIN, sent now, waits in the NIC
    // queue until the next tick.
    let now = env.sim.now_ns();
    env.sim
        .advance((now / MNP_TICK_NS + 1) * MNP_TICK_NS + 1_000_000 - now);
    close.set(true);
    // The peer's FIN leaves 5 ms after its close (slirp's relay delay,
    // `FIN_RELAY_NS`), still before the next tick.
    env.sim.advance(7_000_000);
    // Our FIN crosses the peer's and is lost, and so is our ACK of the
    // peer's FIN: both ends stay in a simultaneous close.
    env.sim.set_link(LinkConfig {
        loss: 1.0,
        ..Default::default()
    });
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::SUCCESS);
    env.sim.advance(MNP_TICK_NS);
    let mut st = Tcp4ConnectionState::CLOSED;
    assert_eq!(get_state(&t, &mut st), Status::SUCCESS);
    assert_eq!(st, Tcp4ConnectionState::CLOSING, "test setup");
    env.sim.set_link(LinkConfig::default());
    rst.set(true);
    assert!(env.wait(cl.event, 100_000_000), "the RST ends the close");
    assert_eq!(cl.status(), Status::SUCCESS);
    // The Close token is the only one that can be pending in CLOSING
    // (Receives ended with the peer's FIN, Transmits before our FIN); the
    // stored error is visible only to a later Connect on this child, which
    // EDK2 never sends after a FIN (the FIN-sent flag stays set).
    assert!(
        env.sim
            .trace()
            .iter()
            .any(|l| l.contains("reset in Closing, tokens ABORTED")),
        "no error stored: {:#?}",
        env.sim.trace()
    );
    cl.free(&env);
    env.destroy(h);
    assert_clean(&env);
}
