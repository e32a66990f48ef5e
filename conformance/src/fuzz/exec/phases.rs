//! What follows the operations: the completion phase (faults heal, a
//! healthy connection must deliver everything both ways) and the liveness
//! phase (a fresh connection must still work).

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::time::Duration;

use efisock::Socket;
use efisock_sim::{MAX_RTO_NS, SimPlatform};

use super::super::error::CheckError;
use super::super::peer::{Ctl, PEER_PATTERN_BASE, PeerCtl, ScriptedPeer};
use super::session::Run;
use super::{PEER_IP, WAIT_BOUND};
use crate::pattern::{fill_pattern, find_pattern_mismatch};

/// Peer port of the liveness connection.
const LIVENESS_PORT: u16 = 7502;
/// Bytes each way on the liveness connection.
const LIVENESS_BYTES: usize = 8 * 1024;
/// Loop bound of the drain phases (each iteration waits at most a timeout).
const DRAIN_ITERATIONS: usize = 10_000;
/// How long the completion phase waits, once faults healed, for the next
/// byte to arrive (either way). A segment lost just before the heal comes
/// back only when its sender's retransmission timer fires, which can be a
/// whole backed-off RTO later, up to [`MAX_RTO_NS`] (60 s); the healed link
/// then delivers it within milliseconds. A fixed 10 s is not enough: a
/// SYN-ACK retransmitted four times leaves the SUT's first data segment with
/// a 16 s RTO, so its loss just before the heal is repaired at +16 s.
pub(super) const HEALED_PROGRESS_BOUND: Duration = Duration::from_nanos(MAX_RTO_NS + 5_000_000_000);
/// Poll interval while waiting for the peer to receive the SUT's bytes.
const PEER_POLL: Duration = Duration::from_millis(50);

impl Run<'_> {
    /// Completion: a healthy connection delivers everything both ways.
    pub(super) fn complete(&mut self, sock: &Socket<SimPlatform>) -> Result<(), CheckError> {
        // The liveness phase: faults heal, and a healthy connection must
        // then deliver everything (no hang may hide behind the faults).
        if !self.case.faults.is_none() {
            self.sim.heal();
        }
        if !self.model.healthy(&self.ctl.borrow()) {
            return Ok(());
        }
        {
            let mut c = self.ctl.borrow_mut();
            c.fin = true;
            c.stalled = false;
        }
        self.net.set_wait_deadline(Some(WAIT_BOUND));
        sock.settimeout(Some(HEALED_PROGRESS_BOUND))
            .map_err(|e| CheckError::new(e.to_string()))?;
        for _ in 0..DRAIN_ITERATIONS {
            if self.model.eof_seen || !self.model.healthy(&self.ctl.borrow()) {
                break;
            }
            let r = sock.recv(65536);
            if matches!(&r, Err(e) if e.is_timeout()) {
                let c = self.ctl.borrow();
                return Err(CheckError::new(format!(
                    "drain: no progress for {} s after {} of {} bytes (liveness)",
                    HEALED_PROGRESS_BOUND.as_secs(),
                    self.model.received,
                    c.written
                )));
            }
            let env = self.env();
            self.model
                .on_recv(&r, &self.ctl.borrow(), env)
                .map_err(|e| e.context("drain"))?;
        }
        if !self.model.healthy(&self.ctl.borrow()) {
            return Ok(());
        }
        if !self.model.eof_seen {
            return Err("drain: no end of stream within the loop bound".into());
        }
        // An injected reset ended the connection from the SUT's side: what
        // its pending Transmits held is lost with it (they complete
        // CONNECTION_RESET), and a peer that had already closed its own side
        // reports the RST as a plain close, so `healthy` cannot see it.
        if self.env().injected_reset {
            return Ok(());
        }
        // The peer must get everything the SUT sent, within the same bound
        // (the SUT's lost segments wait for its RTO too).
        let polls = HEALED_PROGRESS_BOUND.as_millis() / PEER_POLL.as_millis();
        for _ in 0..polls {
            if self.ctl.borrow().got.len() as u64 >= self.model.sent {
                break;
            }
            self.net.sleep(PEER_POLL);
        }
        let got = self.ctl.borrow().got.len() as u64;
        if got != self.model.sent {
            return Err(CheckError::new(format!(
                "the peer received {got} of the {} bytes the SUT sent (liveness)",
                self.model.sent
            )));
        }
        self.model.check_peer(&self.ctl.borrow())
    }

    /// A fresh connection after everything: the stack still works.
    pub(super) fn liveness(&mut self) -> Result<(), CheckError> {
        self.net.set_wait_deadline(Some(WAIT_BOUND));
        let ctl: Ctl = Rc::new(RefCell::new(PeerCtl {
            asked: LIVENESS_BYTES as u64,
            fin: true,
            ..PeerCtl::default()
        }));
        {
            let ctl = Rc::clone(&ctl);
            self.sim.peer_host().listen(
                LIVENESS_PORT,
                Box::new(move || Box::new(ScriptedPeer(Rc::clone(&ctl)))),
            );
        }
        let s = self
            .net
            .socket()
            .map_err(|e| CheckError::new(format!("liveness socket: {e}")))?;
        let r = (|| -> Result<(), CheckError> {
            s.settimeout(Some(Duration::from_secs(30)))
                .map_err(|e| CheckError::new(e.to_string()))?;
            s.connect(SocketAddrV4::new(PEER_IP, LIVENESS_PORT))
                .map_err(|e| CheckError::new(format!("liveness connect: {e}")))?;
            let mut out = vec![0u8; LIVENESS_BYTES];
            fill_pattern(0, &mut out);
            s.sendall(&out)
                .map_err(|e| CheckError::new(format!("liveness sendall: {e}")))?;
            let mut got = Vec::new();
            for _ in 0..DRAIN_ITERATIONS {
                let chunk = s
                    .recv(65536)
                    .map_err(|e| CheckError::new(format!("liveness recv: {e}")))?;
                if chunk.is_empty() {
                    break;
                }
                got.extend_from_slice(&chunk);
            }
            if got.len() != LIVENESS_BYTES
                || find_pattern_mismatch(PEER_PATTERN_BASE, &got).is_some()
            {
                return Err(CheckError::new(format!(
                    "liveness: received {} bytes, expected {LIVENESS_BYTES} intact",
                    got.len()
                )));
            }
            for _ in 0..200 {
                if ctl.borrow().got.len() >= LIVENESS_BYTES {
                    break;
                }
                self.net.sleep(Duration::from_millis(50));
            }
            let c = ctl.borrow();
            if c.got.len() != LIVENESS_BYTES || find_pattern_mismatch(0, &c.got).is_some() {
                return Err(CheckError::new(format!(
                    "liveness: the peer received {} bytes, expected {LIVENESS_BYTES} intact",
                    c.got.len()
                )));
            }
            Ok(())
        })();
        let closed = s.close();
        r?;
        closed.map_err(|e| CheckError::new(format!("liveness close: {e}")))
    }
}
