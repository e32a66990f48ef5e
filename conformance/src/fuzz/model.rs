//! The reference model: what Berkeley sockets (Python's `socket`, Linux) let
//! the application observe on one TCP stream, given what the peer and the
//! environment did.
//!
//! Why a model and not expected outputs: with the scheduler, the link and
//! the firmware's statuses all chosen by the fuzzer, *when* bytes arrive is
//! not predictable, but what may be observed is. The model therefore checks
//! invariants after every step:
//! - the bytes received are exactly the next bytes the peer wrote, and the
//!   bytes the peer received are exactly a prefix of what the SUT sent
//!   (nothing lost, duplicated or reordered);
//! - end of stream only after the peer's FIN (and then only after all its
//!   bytes), ECONNRESET only after an RST the peer sent or the firmware
//!   injected, every other error only when something legal caused it;
//! - readiness never lies: readable means a nonblocking recv does not fail
//!   with EAGAIN, writable likewise for send.

use efisock::{Errno, Error};

use super::error::CheckError;
use super::peer::{PEER_PATTERN_BASE, PeerCtl};
use crate::pattern::find_pattern_mismatch;

/// What the environment did that can legally surface as an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env {
    /// The firmware injected CONNECTION_RESET into this run.
    pub injected_reset: bool,
    /// The firmware injected OUT_OF_RESOURCES.
    pub injected_no_resources: bool,
    /// The firmware injected TIMEOUT (or link faults can time a call out).
    pub timeouts_possible: bool,
    /// Some other legal status was injected (NOT_READY, DEVICE_ERROR, ...).
    pub injected_other: bool,
}

/// The model of one stream as the SUT should observe it.
#[derive(Debug, Default)]
pub struct Model {
    /// Bytes the SUT's `send`/`sendall` reported as sent.
    pub sent: u64,
    /// Bytes of a failed `sendall`: some prefix of them may have gone out.
    pub uncertain: u64,
    /// Bytes received by the SUT so far.
    pub received: u64,
    /// The SUT saw end of stream.
    pub eof_seen: bool,
    /// The SUT saw ECONNRESET.
    pub reset_seen: bool,
    /// `close()` was called on the SUT socket.
    pub closed: bool,
    /// The connection failed for an environmental reason (injected status,
    /// timeout under faults): completeness is no longer expected.
    pub broken: Option<String>,
    /// Stream offset of this connection's patterns ([`PeerCtl::base`]).
    pub base: u64,
}

impl Model {
    /// True while a complete, verified transfer can still be expected.
    pub fn healthy(&self, peer: &PeerCtl) -> bool {
        !self.closed
            && !self.reset_seen
            && self.broken.is_none()
            && self.uncertain == 0
            && !peer.rst
            && !peer.reset_by_sut
    }

    /// Checks one recv outcome.
    pub fn on_recv(
        &mut self,
        r: &Result<Vec<u8>, Error>,
        peer: &PeerCtl,
        env: Env,
    ) -> Result<(), CheckError> {
        match r {
            Ok(data) if data.is_empty() => {
                if self.closed {
                    return Err("recv on a closed socket returned data/EOF instead of EBADF".into());
                }
                if self.reset_seen {
                    // Linux and Python: after ECONNRESET, recv returns b"".
                    self.eof_seen = true;
                    return Ok(());
                }
                if !peer.fin_sent {
                    return Err(if peer.rst {
                        "end of stream reported for a connection the peer reset (must be ECONNRESET)"
                            .into()
                    } else {
                        "end of stream although the peer sent no FIN".into()
                    });
                }
                if self.received != peer.written && !env.injected_reset {
                    return Err(format!(
                        "end of stream after {} of the {} bytes the peer wrote",
                        self.received, peer.written
                    )
                    .into());
                }
                self.eof_seen = true;
            }
            Ok(data) => {
                if self.closed {
                    return Err("recv on a closed socket returned data".into());
                }
                if self.eof_seen || self.reset_seen {
                    return Err(format!(
                        "{} bytes received after {}",
                        data.len(),
                        if self.eof_seen {
                            "end of stream"
                        } else {
                            "ECONNRESET"
                        }
                    )
                    .into());
                }
                let end = self.received + data.len() as u64;
                if end > peer.written {
                    return Err(format!(
                        "received bytes up to offset {end} but the peer wrote only {} (duplicated?)",
                        peer.written
                    ).into());
                }
                if let Some(i) =
                    find_pattern_mismatch(PEER_PATTERN_BASE + self.base + self.received, data)
                {
                    return Err(format!(
                        "byte at stream offset {} differs from what the peer wrote (lost, duplicated or reordered data)",
                        self.received + i as u64
                    ).into());
                }
                self.received = end;
            }
            Err(e) => self.on_error("recv", e, peer, env)?,
        }
        Ok(())
    }

    /// Checks one send outcome (`Ok(n)`: n bytes accepted).
    pub fn on_send(
        &mut self,
        r: &Result<usize, Error>,
        asked: usize,
        peer: &PeerCtl,
        env: Env,
    ) -> Result<(), CheckError> {
        match r {
            Ok(n) => {
                if self.closed {
                    return Err("send on a closed socket succeeded".into());
                }
                if *n > asked {
                    return Err(format!("send reported {n} bytes of {asked}").into());
                }
                if *n == 0 && asked > 0 {
                    return Err("send returned 0 instead of blocking or EAGAIN".into());
                }
                self.sent += *n as u64;
                Ok(())
            }
            Err(e) => self.on_error("send", e, peer, env),
        }
    }

    /// Checks one error against what happened.
    pub fn on_error(
        &mut self,
        call: &str,
        e: &Error,
        peer: &PeerCtl,
        env: Env,
    ) -> Result<(), CheckError> {
        if e.is_timeout() {
            return Ok(());
        }
        let errno = e.errno();
        let legal = match errno {
            Some(Errno::EAGAIN) => !self.closed,
            Some(Errno::EBADF) => self.closed,
            Some(Errno::ECONNRESET) => {
                let ok = peer.rst || env.injected_reset || peer.reset_by_sut;
                if ok && call == "recv" {
                    if self.reset_seen && !env.injected_reset {
                        return Err("ECONNRESET raised twice by recv".into());
                    }
                    self.reset_seen = true;
                }
                ok
            }
            // Sending into a connection the peer reset or closed.
            Some(Errno::EPIPE) | Some(Errno::ECONNABORTED) | Some(Errno::ENOTCONN) => {
                peer.rst || peer.reset_by_sut || env.injected_reset || self.reset_seen
            }
            Some(Errno::ENOBUFS) | Some(Errno::ENOMEM) => env.injected_no_resources,
            Some(Errno::ETIMEDOUT) => env.timeouts_possible,
            Some(Errno::EIO) => env.injected_other,
            _ => false,
        };
        if !legal {
            return Err(
                format!("{call}: error {e} is not explained by anything that happened").into(),
            );
        }
        if self.broken.is_none()
            && !matches!(errno, Some(Errno::EAGAIN) | Some(Errno::EBADF))
            && !(peer.rst && errno == Some(Errno::ECONNRESET))
        {
            self.broken = Some(format!("{call}: {e}"));
        }
        Ok(())
    }

    /// Checks what the peer received so far: a prefix of what the SUT sent.
    pub fn check_peer(&self, peer: &PeerCtl) -> Result<(), CheckError> {
        let got = peer.got.len() as u64;
        if got > self.sent + self.uncertain {
            return Err(format!(
                "the peer received {got} bytes but the SUT sent only {}",
                self.sent + self.uncertain
            )
            .into());
        }
        if let Some(i) = find_pattern_mismatch(self.base, &peer.got) {
            return Err(format!(
                "the peer's byte at stream offset {i} differs from what the SUT sent"
            )
            .into());
        }
        Ok(())
    }
}
