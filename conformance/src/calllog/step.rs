//! One recorded step and its one-line text form.

use std::fmt;

use crate::error::ParseError;

/// One step of a call-level recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStep {
    /// A firmware call that is not a waiting call.
    Call {
        /// Protocol instance (0: boot services and Ip4Config2).
        instance: u64,
        /// Call name, e.g. `Tcp4.Transmit`.
        name: String,
        /// Returned status name.
        status: String,
        /// Arguments in short, as the core renders them (may be empty).
        args: String,
        /// How many identical calls in a row (with only waiting calls
        /// between) this step stands for: more than 1 only for the state
        /// queries of [`QUERY_CALLS`].
        repeat: u64,
    },
    /// A run of consecutive successful waiting calls (`Tcp4.Poll` on any
    /// instance, `Stall`, `SetTimer`, `WaitForEvent`); a waiting call that
    /// fails is a [`RawStep::Call`].
    Wait {
        /// `Tcp4.Poll` calls in the run.
        polls: u64,
        /// The other waiting calls in the run.
        other: u64,
    },
    /// A completed token, as the core drained it.
    Done {
        /// Protocol instance.
        instance: u64,
        /// Token kind: `connect`, `accept`, `transmit`, `receive`, `close`.
        token: String,
        /// Completion status name.
        status: String,
        /// Bytes received (Receive) or queued (Transmit); 0 otherwise.
        bytes: u64,
        /// Whether the firmware signalled the token while its submitting
        /// call ran (the notify's time is not after the call returned).
        in_call: bool,
    },
}

/// Names of the waiting calls (compacted into [`RawStep::Wait`]).
pub const WAIT_CALLS: [&str; 4] = ["Tcp4.Poll", "Stall", "SetTimer", "WaitForEvent"];

/// Names of the state queries a wait loop repeats: identical repeats with
/// only waiting calls between are one step with a repeat count.
pub const QUERY_CALLS: [&str; 2] = ["Tcp4.GetModeData", "Ip4Config2.GetData"];

/// Names of the bookkeeping calls left out when they succeed.
pub const BOOKKEEPING_CALLS: [&str; 4] = ["AllocatePool", "FreePool", "CreateEvent", "CloseEvent"];

fn word(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

impl fmt::Display for RawStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawStep::Call {
                instance,
                name,
                status,
                args,
                repeat,
            } => {
                if *repeat > 1 {
                    write!(f, "call*{repeat} #{instance} {name} {status}")?;
                } else {
                    write!(f, "call #{instance} {name} {status}")?;
                }
                if !args.is_empty() {
                    write!(f, " {args}")?;
                }
                Ok(())
            }
            RawStep::Wait { polls, other } => write!(f, "wait polls={polls} other={other}"),
            RawStep::Done {
                instance,
                token,
                status,
                bytes,
                in_call,
            } => {
                write!(f, "done #{instance} {token} {status} {bytes}")?;
                if *in_call {
                    f.write_str(" in-call")?;
                }
                Ok(())
            }
        }
    }
}

impl std::str::FromStr for RawStep {
    type Err = ParseError;

    /// Parses the text form written by `Display`.
    fn from_str(line: &str) -> Result<RawStep, ParseError> {
        let bad = |why: &str| ParseError::new(line, format!("bad call-log step {line:?}: {why}"));
        if let Some(rest) = line.strip_prefix("wait ") {
            let num = |key: &str, w: Option<&str>| {
                w.and_then(|w| w.strip_prefix(key))
                    .and_then(|n| n.parse::<u64>().ok())
            };
            let mut w = rest.split(' ');
            let (polls, other) = (num("polls=", w.next()), num("other=", w.next()));
            return match (polls, other, w.next()) {
                (Some(polls), Some(other), None) if polls + other > 0 => {
                    Ok(RawStep::Wait { polls, other })
                }
                _ => Err(bad("expected `wait polls=N other=M`, N + M >= 1")),
            };
        }
        let mut parts = line.splitn(5, ' ');
        let first = parts.next().unwrap_or("");
        let (kind, repeat) = match first.split_once('*') {
            Some(("call", n)) => (
                "call",
                n.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 2)
                    .ok_or_else(|| bad("call*N needs N >= 2"))?,
            ),
            Some(_) => return Err(bad("only a call has a repeat count")),
            None => (first, 1),
        };
        let instance = parts
            .next()
            .and_then(|w| w.strip_prefix('#'))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("no #instance"))?;
        let name = parts
            .next()
            .filter(|w| word(w))
            .ok_or_else(|| bad("no name"))?
            .to_string();
        let status = parts
            .next()
            .filter(|w| word(w))
            .ok_or_else(|| bad("no status"))?
            .to_string();
        let rest = parts.next();
        match kind {
            "call" => Ok(RawStep::Call {
                instance,
                name,
                status,
                args: rest.unwrap_or("").to_string(),
                repeat,
            }),
            "done" => {
                let (n, in_call) = match rest.map(|r| r.split_once(' ')) {
                    Some(Some((n, "in-call"))) => (Some(n), true),
                    Some(Some(_)) => return Err(bad("only `in-call` may follow the byte count")),
                    Some(None) => (rest, false),
                    None => (None, false),
                };
                let bytes = n
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| bad("no byte count"))?;
                Ok(RawStep::Done {
                    instance,
                    token: name,
                    status,
                    bytes,
                    in_call,
                })
            }
            _ => Err(bad("the kind is not call, wait or done")),
        }
    }
}
