//! "Poll until signalled", bounded.

use crate::firmware::{BootServices, Tcp4};

/// How long a raw wait may go on: both bounds apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimit {
    /// At most this many `Tcp4.Poll` calls.
    pub max_polls: u64,
    /// At most this much firmware time ([`BootServices::monotonic_ns`]).
    pub max_ns: u64,
}

impl WaitLimit {
    /// 2 000 000 Polls or 10 s of firmware time, whichever comes first.
    pub const DEFAULT: WaitLimit = WaitLimit {
        max_polls: 2_000_000,
        max_ns: 10_000_000_000,
    };
}

/// How a bounded wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// The condition held.
    pub done: bool,
    /// `Tcp4.Poll` calls made (0: it held before the first Poll).
    pub polls: u64,
    /// Firmware time the wait took.
    pub ns: u64,
}

/// Tests `done`, then Polls, until `done` holds or `limit` runs out; `done`
/// is tested once more after the last Poll, so it is called `polls + 1`
/// times.
///
/// `done` is usually [`RawToken::done`](super::RawToken::done), i.e.
/// `CheckEvent` on the token's plain event.
pub fn poll_until<B: BootServices, T: Tcp4>(
    boot: &B,
    tcp: &T,
    limit: WaitLimit,
    mut done: impl FnMut() -> bool,
) -> Waited {
    let start = boot.monotonic_ns();
    let mut polls = 0;
    let mut elapsed = 0;
    while polls < limit.max_polls {
        if done() {
            return Waited {
                done: true,
                polls,
                ns: elapsed,
            };
        }
        let _ = tcp.poll();
        polls += 1;
        elapsed = boot.monotonic_ns().saturating_sub(start);
        if elapsed > limit.max_ns {
            break;
        }
    }
    Waited {
        done: done(),
        polls,
        ns: elapsed,
    }
}
