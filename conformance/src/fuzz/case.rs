//! One fuzz case and its replay string.
//!
//! A case is everything that defines a run: the simulator seed, the notify
//! scheduler, the fault knobs, an optional decision tape, the connection
//! direction, the deliberate bug switched on (if any) and the operation
//! list. Payload bytes are not stored: each side sends the deterministic
//! pattern at its stream offset (`crate::pattern`), so an operation is a
//! short token and a whole case fits on one line.
//!
//! # Replay string grammar
//! ```text
//! efz2/<dir>/<seed hex>/<scheduler>/<strategy>/<faults or ->/<tape or ->/<bug or ->/<ops>
//! dir   := "c" (the SUT connects) | "a" (the peer connects, the SUT accepts)
//!        | "m" (several connections: the ops open, dial and accept them)
//! strategy := one of efisock::STRATEGY_NAMES (the Poll strategy of every wait)
//! ops   := op ("," op)*  |  ""
//! op    := "s"N  send N bytes        | "S"N  sendall N bytes
//!        | "r"N  recv(N)             | "R"   select(read) then nonblocking recv
//!        | "W"   select(write) then nonblocking send
//!        | "P"N  poller wait N ms, then check what it reported
//!        | "t"N  settimeout(N ms)    | "b"0|1 setblocking
//!        | "z"N  Net::sleep(N ms)    | "c"N  N ms of application time with
//!                                        no efisock call (timer ticks run notifies)
//!        | "w"N  peer writes N bytes | "f" peer FIN | "x" peer RST
//!        | "h"0|1 peer stops / resumes reading       | "C" close the socket
//!        | "p"N  the peer stops answering for N ms (a crash with reboot
//!              of its link: every packet both ways is lost), while the
//!              core keeps polling
//! several connections ("m"; no-ops in "c" and "a" cases):
//!        | "k"N  later operations act on connection slot N (0..=3)
//!        | "o"   the SUT connects the current slot to the peer's service
//!              (a socket already in the slot is closed first: slot reuse)
//!        | "L"N  the SUT listens with backlog N (reopened on the same port
//!              if it was closed)      | "l" close the listener
//!        | "d"   the peer dials the SUT's listener (a new connection)
//!        | "a"   accept into the current slot (closing what it held)
//! ```
//! The fields never contain `/`: schedulers, faults and tapes print without it
//! (checked when a case is formatted). `efz1` strings (no strategy field,
//! from before per-case strategies) still parse, with the core's default
//! strategy.

use core::fmt;
use core::str::FromStr;

use efisock_sim::{Faults, Scheduler, Tape};

use crate::error::ParseError;

/// Format tag of the replay string.
pub const REPLAY_TAG: &str = "efz2";
/// The previous format: no strategy field.
pub const REPLAY_TAG_V1: &str = "efz1";

/// One step of a fuzz case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `send` of N pattern bytes.
    Send(u16),
    /// `sendall` of N pattern bytes.
    SendAll(u16),
    /// `recv(N)` in the socket's current mode.
    Recv(u16),
    /// `select` for reading with a zero timeout; if readable, a nonblocking
    /// recv must not fail with EAGAIN.
    SelectRead,
    /// `select` for writing with a zero timeout; if writable, a nonblocking
    /// send must not fail with EAGAIN.
    SelectWrite,
    /// A poller registered for both directions waits N ms; what it reports is
    /// checked like `SelectRead`/`SelectWrite`.
    PollerWait(u16),
    /// `settimeout(N ms)`.
    SetTimeout(u16),
    /// `setblocking(flag)`.
    SetBlocking(bool),
    /// `Net::sleep(N ms)`: the core polls the firmware.
    Sleep(u16),
    /// N ms pass with no efisock call at all: only timer interrupts run notify
    /// functions (application code doing something else).
    Compute(u16),
    /// The peer writes N pattern bytes.
    PeerWrite(u16),
    /// The peer sends FIN after what it has written.
    PeerFin,
    /// The peer aborts the connection with RST.
    PeerRst,
    /// The peer stops (true) or resumes (false) reading, so the SUT's send
    /// window fills.
    PeerStall(bool),
    /// `close()` on the SUT socket; later operations must fail with EBADF.
    Close,
    /// The peer stops answering for N ms (every packet both ways is lost),
    /// then comes back; the core keeps polling meanwhile.
    PeerCrash(u16),
    /// Later operations act on connection slot N (several-connection
    /// cases only).
    Slot(u8),
    /// The SUT connects the current slot to the peer's service; a socket
    /// the slot held is closed first.
    Open,
    /// The SUT listens with backlog N on its listening port.
    Listen(u8),
    /// The SUT closes its listener.
    Unlisten,
    /// The peer opens a connection to the SUT's listener.
    Dial,
    /// `accept()` into the current slot; a socket the slot held is closed
    /// first.
    Accept,
}

/// Connection slots of a several-connection case (`Op::Slot` takes
/// `0..SLOTS`).
pub const SLOTS: u8 = 4;

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Send(n) => write!(f, "s{n}"),
            Op::SendAll(n) => write!(f, "S{n}"),
            Op::Recv(n) => write!(f, "r{n}"),
            Op::SelectRead => f.write_str("R"),
            Op::SelectWrite => f.write_str("W"),
            Op::PollerWait(n) => write!(f, "P{n}"),
            Op::SetTimeout(n) => write!(f, "t{n}"),
            Op::SetBlocking(b) => write!(f, "b{}", u8::from(b)),
            Op::Sleep(n) => write!(f, "z{n}"),
            Op::Compute(n) => write!(f, "c{n}"),
            Op::PeerWrite(n) => write!(f, "w{n}"),
            Op::PeerFin => f.write_str("f"),
            Op::PeerRst => f.write_str("x"),
            Op::PeerStall(b) => write!(f, "h{}", u8::from(b)),
            Op::Close => f.write_str("C"),
            Op::PeerCrash(n) => write!(f, "p{n}"),
            Op::Slot(n) => write!(f, "k{n}"),
            Op::Open => f.write_str("o"),
            Op::Listen(n) => write!(f, "L{n}"),
            Op::Unlisten => f.write_str("l"),
            Op::Dial => f.write_str("d"),
            Op::Accept => f.write_str("a"),
        }
    }
}

impl FromStr for Op {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Op, ParseError> {
        let bad = |message: String| ParseError::new(s, message);
        let mut chars = s.chars();
        let tag = chars
            .next()
            .ok_or_else(|| bad("empty operation".to_string()))?;
        let arg = chars.as_str();
        let num = || -> Result<u16, ParseError> {
            arg.parse::<u16>().map_err(|_| {
                bad(format!(
                    "operation {s:?}: {arg:?} is not a number in 0..=65535"
                ))
            })
        };
        let flag = || -> Result<bool, ParseError> {
            match arg {
                "0" => Ok(false),
                "1" => Ok(true),
                _ => Err(bad(format!(
                    "operation {s:?}: expected 0 or 1 after {tag:?}"
                ))),
            }
        };
        let bare = |op: Op| -> Result<Op, ParseError> {
            if arg.is_empty() {
                Ok(op)
            } else {
                Err(bad(format!("operation {s:?}: {tag:?} takes no argument")))
            }
        };
        match tag {
            's' => Ok(Op::Send(num()?)),
            'S' => Ok(Op::SendAll(num()?)),
            'r' => Ok(Op::Recv(num()?)),
            'R' => bare(Op::SelectRead),
            'W' => bare(Op::SelectWrite),
            'P' => Ok(Op::PollerWait(num()?)),
            't' => Ok(Op::SetTimeout(num()?)),
            'b' => Ok(Op::SetBlocking(flag()?)),
            'z' => Ok(Op::Sleep(num()?)),
            'c' => Ok(Op::Compute(num()?)),
            'w' => Ok(Op::PeerWrite(num()?)),
            'f' => bare(Op::PeerFin),
            'x' => bare(Op::PeerRst),
            'h' => Ok(Op::PeerStall(flag()?)),
            'C' => bare(Op::Close),
            'p' => Ok(Op::PeerCrash(num()?)),
            'k' => match u8::try_from(num()?) {
                Ok(n) if n < SLOTS => Ok(Op::Slot(n)),
                _ => Err(bad(format!("operation {s:?}: slot must be in 0..{SLOTS}"))),
            },
            'o' => bare(Op::Open),
            'L' => u8::try_from(num()?)
                .map(Op::Listen)
                .map_err(|_| bad(format!("operation {s:?}: backlog must be in 0..=255"))),
            'l' => bare(Op::Unlisten),
            'd' => bare(Op::Dial),
            'a' => bare(Op::Accept),
            other => Err(bad(format!(
                "operation {s:?}: unknown tag {other:?} (expected one of s S r R W P t b z c w f x h C p k o L l d a)"
            ))),
        }
    }
}

/// Who opens the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The SUT connects to the peer.
    Connect,
    /// The peer connects to a listening SUT socket, which accepts.
    Accept,
    /// Several connections, opened, dialed and accepted by the operations.
    Multi,
}

/// Everything that defines one fuzz run.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzCase {
    /// Simulator seed (every decision not on the tape derives from it).
    pub seed: u64,
    /// Notify scheduler.
    pub scheduler: Scheduler,
    /// Poll strategy of every wait (one of `efisock::STRATEGY_NAMES`).
    pub strategy: String,
    /// Fault knobs ([`Faults::none`] outside swarm mode).
    pub faults: Faults,
    /// Decisions forced from the start of the run (past its end: the
    /// faithful default).
    pub tape: Option<Tape>,
    /// Connection direction.
    pub direction: Direction,
    /// Name of the deliberate bug switched on for the run, if any
    /// (`crate::fuzz::bugs`).
    pub bug: Option<String>,
    /// The operations.
    pub ops: Vec<Op>,
}

impl FuzzCase {
    /// The command that re-runs this case bit for bit.
    pub fn replay_command(&self) -> String {
        let features = if self.bug.is_some() {
            " --features deliberate-bugs"
        } else {
            ""
        };
        format!("cargo run --release -p efisock-conformance{features} -- fuzz --replay '{self}'")
    }
}

fn field(f: &mut fmt::Formatter<'_>, value: &dyn fmt::Display) -> fmt::Result {
    let s = value.to_string();
    debug_assert!(!s.contains('/'), "replay field {s:?} contains '/'");
    if s.is_empty() {
        f.write_str("/-")
    } else {
        write!(f, "/{s}")
    }
}

impl fmt::Display for FuzzCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REPLAY_TAG)?;
        let dir = match self.direction {
            Direction::Connect => "c",
            Direction::Accept => "a",
            Direction::Multi => "m",
        };
        field(f, &dir)?;
        field(f, &format_args!("{:x}", self.seed))?;
        field(f, &self.scheduler)?;
        field(f, &self.strategy)?;
        if self.faults.is_none() {
            field(f, &"-")?;
        } else {
            field(f, &self.faults)?;
        }
        match &self.tape {
            Some(t) if !t.is_empty() => field(f, t)?,
            _ => field(f, &"-")?,
        }
        field(f, &self.bug.as_deref().unwrap_or("-"))?;
        f.write_str("/")?;
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{op}")?;
        }
        Ok(())
    }
}

impl FromStr for FuzzCase {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<FuzzCase, ParseError> {
        let s = s.trim();
        let bad = |message: String| ParseError::new(s, message);
        let mut parts: Vec<&str> = s.split('/').collect();
        let strategy = match parts.first() {
            Some(&REPLAY_TAG) if parts.len() == 9 => parts.remove(4).to_string(),
            Some(&REPLAY_TAG) => {
                return Err(bad(format!(
                    "replay string has {} '/'-separated fields, expected 9 \
                     ({REPLAY_TAG}/dir/seed/scheduler/strategy/faults/tape/bug/ops)",
                    parts.len()
                )));
            }
            Some(&REPLAY_TAG_V1) if parts.len() == 8 => efisock::DEFAULT_STRATEGY.to_string(),
            Some(&REPLAY_TAG_V1) => {
                return Err(bad(format!(
                    "replay string has {} '/'-separated fields, expected 8 \
                     ({REPLAY_TAG_V1}/dir/seed/scheduler/faults/tape/bug/ops)",
                    parts.len()
                )));
            }
            Some(other) => {
                return Err(bad(format!(
                    "replay string starts with {other:?}, expected {REPLAY_TAG:?} (or {REPLAY_TAG_V1:?})"
                )));
            }
            None => return Err(bad("empty replay string".into())),
        };
        if !efisock::STRATEGY_NAMES.contains(&strategy.as_str()) {
            return Err(bad(format!(
                "strategy {strategy:?}: expected one of {}",
                efisock::STRATEGY_NAMES.join(", ")
            )));
        }
        let direction = match parts[1] {
            "c" => Direction::Connect,
            "a" => Direction::Accept,
            "m" => Direction::Multi,
            other => {
                return Err(bad(format!(
                    "direction {other:?}: expected \"c\", \"a\" or \"m\""
                )));
            }
        };
        let seed = u64::from_str_radix(parts[2], 16)
            .map_err(|_| bad(format!("seed {:?} is not a 64-bit hex number", parts[2])))?;
        let scheduler = parts[3]
            .parse::<Scheduler>()
            .map_err(|e| bad(format!("scheduler: {e}")))?;
        let faults = match parts[4] {
            "-" => Faults::none(),
            f => f
                .parse::<Faults>()
                .map_err(|e| bad(format!("faults: {e}")))?,
        };
        let tape = match parts[5] {
            "-" => None,
            t => Some(t.parse::<Tape>().map_err(|e| bad(format!("tape: {e}")))?),
        };
        let bug = match parts[6] {
            "-" => None,
            b => Some(b.to_string()),
        };
        let ops = if parts[7].is_empty() {
            Vec::new()
        } else {
            parts[7]
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<Op>, ParseError>>()?
        };
        Ok(FuzzCase {
            seed,
            scheduler,
            strategy,
            faults,
            tape,
            direction,
            bug,
            ops,
        })
    }
}
