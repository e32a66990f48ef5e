//! The scripted peer: a sans-IO connection handler the fuzz case steers.
//!
//! The case changes the script from outside the simulator (write N bytes,
//! FIN, RST, stop reading); the handler looks at it every millisecond of
//! virtual time and reports what it received, so the model can compare both
//! directions byte for byte.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use efisock_sim::{ConnHandler, ConnIo, PeerConnState};

use crate::pattern::fill_pattern;

/// Stream offset where the peer's pattern starts, far from the SUT's, so a
/// byte echoed the wrong way can never match.
pub const PEER_PATTERN_BASE: u64 = 1 << 40;

/// What the case asks the peer to do, and what the peer saw.
#[derive(Debug, Default)]
pub struct PeerCtl {
    /// Pattern bytes the peer was asked to write so far.
    pub asked: u64,
    /// Pattern bytes the peer's stack accepted so far.
    pub written: u64,
    /// Send FIN once everything asked for is written.
    pub fin: bool,
    /// Abort with RST.
    pub rst: bool,
    /// Stop reading (the SUT's window fills).
    pub stalled: bool,
    /// The handler closed or aborted.
    pub closed: bool,
    /// A connection reached this handler.
    pub attached: bool,
    /// The peer's connection is over (closed, reset or timed out).
    pub peer_state_closed: bool,
    /// The peer's stack saw an RST from the SUT side.
    pub reset_by_sut: bool,
    /// The peer really sent its FIN (everything asked was written first).
    pub fin_sent: bool,
    /// Everything received from the SUT.
    pub got: Vec<u8>,
    /// Stream offset of this connection's patterns (both directions), so
    /// that bytes delivered to the wrong connection never match.
    pub base: u64,
    /// The peer's own port on this connection (0 until it has one).
    pub local_port: u16,
    /// The SUT's port on this connection (0 until it has one).
    pub remote_port: u16,
}

/// Shared handle to the script.
pub type Ctl = Rc<RefCell<PeerCtl>>;

/// The handler the simulator drives.
pub struct ScriptedPeer(pub Ctl);

impl ConnHandler for ScriptedPeer {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        let mut c = self.0.borrow_mut();
        c.attached = true;
        // Kept once known: a connection that ended has no endpoints left.
        if c.local_port == 0 {
            c.local_port = io.local_addr().port();
        }
        if c.remote_port == 0 {
            c.remote_port = io.peer_addr().port();
        }
        match io.state() {
            PeerConnState::Closed | PeerConnState::TimedOut => c.peer_state_closed = true,
            PeerConnState::Reset => {
                c.peer_state_closed = true;
                c.reset_by_sut = true;
            }
            _ => {}
        }
        if !c.stalled {
            let mut buf = [0u8; 4096];
            loop {
                let n = io.recv(&mut buf);
                if n == 0 {
                    break;
                }
                c.got.extend_from_slice(&buf[..n]);
            }
        }
        if c.rst {
            if !c.closed {
                c.closed = true;
                io.abort();
            }
            return;
        }
        let mut chunk = [0u8; 2048];
        while c.written < c.asked {
            let n = ((c.asked - c.written) as usize).min(chunk.len());
            fill_pattern(PEER_PATTERN_BASE + c.base + c.written, &mut chunk[..n]);
            let sent = io.send(&chunk[..n]);
            c.written += sent as u64;
            if sent < n {
                break;
            }
        }
        if c.fin && c.written == c.asked && !c.closed {
            c.closed = true;
            c.fin_sent = true;
            io.close();
        }
        // The script changes from outside the simulator: look again every
        // millisecond of virtual time while the connection lives.
        if !c.peer_state_closed {
            io.wake_at(io.now_ns() + 1_000_000);
        }
    }
}

/// The SUT's connections to a peer service, by the SUT's port: the SUT
/// registers each connection's script once `connect` has told it its port.
pub type Scripts = Rc<RefCell<BTreeMap<u16, Ctl>>>;

/// A peer service connection that takes the script the SUT registered for
/// its address pair; until one is registered it only waits (the SUT's
/// `connect` returns after the peer has accepted). A connection nobody
/// registers (the SUT's connect failed) stays idle until it ends.
pub struct RoutedPeer {
    scripts: Scripts,
    peer: Option<ScriptedPeer>,
}

impl RoutedPeer {
    /// A connection handler that looks its script up in `scripts`.
    pub fn new(scripts: Scripts) -> Self {
        RoutedPeer {
            scripts,
            peer: None,
        }
    }
}

impl ConnHandler for RoutedPeer {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        if self.peer.is_none() {
            let port = io.peer_addr().port();
            let ctl = self.scripts.borrow().get(&port).map(Rc::clone);
            match ctl {
                Some(c) => self.peer = Some(ScriptedPeer(c)),
                None => {
                    if matches!(
                        io.state(),
                        PeerConnState::Connecting | PeerConnState::Established
                    ) {
                        io.wake_at(io.now_ns() + 1_000_000);
                    }
                    return;
                }
            }
        }
        if let Some(p) = self.peer.as_mut() {
            p.poll(io);
        }
    }
}
