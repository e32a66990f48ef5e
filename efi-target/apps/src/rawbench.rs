//! The firmware's own limit: a hand-written tight loop directly on
//! `EFI_TCP4_PROTOCOL`, without efisock's socket layer (feature `bench-app`).
//!
//! The Poll-strategy workloads are compared with this loop to see how close
//! efisock gets to what the firmware can do. It is the simplest correct
//! client: one token at a time, armed, then `CheckEvent` + `Tcp4.Poll` until
//! its event is signalled (the busy-poll strategy with nothing in between),
//! repeat, through `efisock::raw`. Every wait is bounded by a firmware-time
//! deadline; tokens that could not be confirmed signalled keep their memory.

use core::fmt;
use core::net::SocketAddrV4;

use efisock::firmware::status::{self, CONNECTION_FIN};
use efisock::firmware::{BootServices, Platform, Status};
use efisock::raw::{RawChild, RawError, RawToken, TokenKind, WaitLimit, poll_until};

/// Bytes per Receive token and per Transmit token of the bulk loops.
pub const RAW_CHUNK: usize = 64 * 1024;

/// The Poll bound of one token's wait, next to its firmware-time deadline:
/// far above what any token needs (an idle Poll takes about 1 us under TCG),
/// so that only a firmware that never signals hits it.
const MAX_POLLS_PER_TOKEN: u64 = 100_000_000;

/// Counters of one raw connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawStats {
    /// `Tcp4.Poll` calls.
    pub polls: u64,
    /// Every firmware call (Poll, CheckEvent, Transmit, Receive, ...).
    pub calls: u64,
}

/// Why a raw connection operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawBenchError {
    /// A firmware call returned an error.
    Call(RawError),
    /// A token completed with an error status.
    Token {
        /// Which token (`"connect"`, `"transmit"`, `"receive"`).
        what: &'static str,
        /// Its status.
        status: Status,
    },
    /// A token was not signalled before the deadline.
    Deadline {
        /// Which token.
        what: &'static str,
    },
}

impl fmt::Display for RawBenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Call(e) => write!(f, "{e}"),
            Self::Token { what, status: s } => write!(f, "{what} token: {}", status::name(*s)),
            Self::Deadline { what } => write!(f, "{what}: no completion before the deadline"),
        }
    }
}

impl core::error::Error for RawBenchError {}

impl From<RawError> for RawBenchError {
    fn from(e: RawError) -> Self {
        Self::Call(e)
    }
}

/// One active TCP4 child driven by the tight loop.
pub struct RawConn<'p, P: Platform> {
    p: &'p P,
    // Declared before `child`, so that they are dropped first: a token still
    // in flight then leaks its memory instead of being freed under the reset
    // the child's drop does.
    transmit: RawToken<'p, P::Boot>,
    receive: RawToken<'p, P::Boot>,
    child: RawChild<P>,
    /// Counters so far.
    pub stats: RawStats,
}

impl<'p, P: Platform + Clone> RawConn<'p, P> {
    /// CreateChild, Configure (active, default address), Connect, and wait
    /// for the connect token until `deadline_ns` (firmware clock).
    pub fn connect(
        p: &'p P,
        remote: [u8; 4],
        port: u16,
        deadline_ns: u64,
    ) -> Result<Self, RawBenchError> {
        let boot = p.boot();
        let child = RawChild::create(p.clone())?;
        let mut connect = RawToken::new(boot, TokenKind::Connect)?;
        let mut c = RawConn {
            p,
            transmit: RawToken::new(boot, TokenKind::Transmit(alloc::vec![0; RAW_CHUNK]))?,
            receive: RawToken::new(boot, TokenKind::Receive(RAW_CHUNK))?,
            child,
            stats: RawStats::default(),
        };
        let s = c
            .child
            .configure_active(SocketAddrV4::new(remote.into(), port));
        c.stats.calls += 1;
        efisock::raw::check("Configure", s)?;
        let s = submit_and_wait(
            boot,
            &c.child,
            &mut c.stats,
            &mut connect,
            deadline_ns,
            "connect",
        )?;
        efisock::raw::check("Connect", s)?;
        Ok(c)
    }

    /// Transmits `data` in tokens of at most [`RAW_CHUNK`] bytes, each waited
    /// for before the next.
    pub fn send(&mut self, data: &[u8], deadline_ns: u64) -> Result<(), RawBenchError> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.transmit.rearm_transmit(rest)?;
            let s = submit_and_wait(
                self.p.boot(),
                &self.child,
                &mut self.stats,
                &mut self.transmit,
                deadline_ns,
                "transmit",
            )?;
            efisock::raw::check("Transmit", s)?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Arms one Receive of up to `out.len()` (at most [`RAW_CHUNK`]) bytes
    /// and waits for it; `Ok(0)` is the peer's FIN.
    pub fn recv(&mut self, out: &mut [u8], deadline_ns: u64) -> Result<usize, RawBenchError> {
        self.receive.rearm_receive(out.len())?;
        let s = submit_and_wait(
            self.p.boot(),
            &self.child,
            &mut self.stats,
            &mut self.receive,
            deadline_ns,
            "receive",
        )?;
        match s {
            Status::SUCCESS => {
                let got = self.receive.received();
                out[..got.len()].copy_from_slice(got);
                Ok(got.len())
            }
            CONNECTION_FIN => Ok(0),
            s => Err(RawError::new("Receive", s).into()),
        }
    }
}

/// Submits `token`, waits for it until `deadline_ns`, and checks its status
/// (CONNECTION_FIN is a result for a Receive); counts every firmware call.
/// Returns the call's status when the call itself failed.
fn submit_and_wait<B: BootServices, P: Platform<Boot = B>>(
    boot: &B,
    child: &RawChild<P>,
    stats: &mut RawStats,
    token: &mut RawToken<'_, B>,
    deadline_ns: u64,
    what: &'static str,
) -> Result<Status, RawBenchError> {
    let s = token.submit(child.tcp());
    stats.calls += 1;
    if s != Status::SUCCESS {
        return Ok(s);
    }
    let limit = WaitLimit {
        max_polls: MAX_POLLS_PER_TOKEN,
        max_ns: deadline_ns.saturating_sub(boot.monotonic_ns()),
    };
    let w = poll_until(boot, child.tcp(), limit, || token.done());
    // One CheckEvent per Poll plus the last one.
    stats.polls += w.polls;
    stats.calls += 2 * w.polls + 1;
    if !w.done {
        return Err(RawBenchError::Deadline { what });
    }
    match token.status() {
        Status::SUCCESS => Ok(Status::SUCCESS),
        CONNECTION_FIN if what == "receive" => Ok(CONNECTION_FIN),
        status => Err(RawBenchError::Token { what, status }),
    }
}
