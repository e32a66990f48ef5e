//! The deliberate bugs the fuzzer must find (`efisock::deliberate`), by name.
//!
//! Names are stable command-line and replay-string spellings. Switching a bug
//! on needs a build with the `deliberate-bugs` feature; without it, asking for
//! one is a precise error, never a silently bug-free run.

use crate::error::ParseError;

/// Every deliberate bug, by its command-line name.
pub const BUG_NAMES: [&str; 4] = [
    "free-rx-buffer-on-timeout",
    "process-inside-notify",
    "lose-back-to-back-completion",
    "eof-on-reset",
];

/// Bugs the simulator cannot reach, with the detector that does find them.
/// `lose-back-to-back-completion` needs two notify functions interleaved
/// inside one queue push (between a load and a store); the simulator calls
/// notify functions one at a time, so only loom's model of the queue, with
/// real threads standing in for interrupts, can show it.
pub const SIM_UNREACHABLE: [(&str, &str); 1] = [(
    "lose-back-to-back-completion",
    "RUSTFLAGS=\"--cfg loom\" CARGO_TARGET_DIR=target/loom cargo test -p efisock --release \
     --features deliberate-bugs --test loom_queue",
)];

/// Checks a bug name: it must be known, and this build must be able to
/// switch it on.
pub fn check(name: &str) -> Result<(), ParseError> {
    if !BUG_NAMES.contains(&name) {
        return Err(ParseError::new(
            name,
            format!(
                "unknown deliberate bug {name:?}; known: {}",
                BUG_NAMES.join(", ")
            ),
        ));
    }
    if !cfg!(feature = "deliberate-bugs") {
        return Err(ParseError::new(
            name,
            format!(
                "deliberate bug {name:?} needs a build with the deliberate-bugs feature \
                 (cargo run --release -p efisock-conformance --features deliberate-bugs -- fuzz ...)"
            ),
        ));
    }
    Ok(())
}

/// Runs `f` with bug `name` (if any) switched on for this thread, and off
/// again afterwards (also if `f` panics).
pub fn with_bug<R>(name: Option<&str>, f: impl FnOnce() -> R) -> Result<R, ParseError> {
    if let Some(n) = name {
        check(n)?;
    }
    let _guard = Guard::enable(name);
    Ok(f())
}

struct Guard;

impl Guard {
    #[cfg(feature = "deliberate-bugs")]
    fn enable(name: Option<&str>) -> Guard {
        use efisock::deliberate::{Bug, disable_all, enable};
        disable_all();
        let bug = match name {
            Some("free-rx-buffer-on-timeout") => Some(Bug::FreeRxBufferOnTimeout),
            Some("process-inside-notify") => Some(Bug::ProcessInsideNotify),
            Some("lose-back-to-back-completion") => Some(Bug::LoseBackToBackCompletion),
            Some("eof-on-reset") => Some(Bug::EofOnReset),
            _ => None,
        };
        if let Some(b) = bug {
            enable(b);
        }
        Guard
    }

    #[cfg(not(feature = "deliberate-bugs"))]
    fn enable(_name: Option<&str>) -> Guard {
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        #[cfg(feature = "deliberate-bugs")]
        efisock::deliberate::disable_all();
    }
}
