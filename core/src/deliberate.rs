//! Deliberate bugs, compiled in only with the `deliberate-bugs` feature.
//!
//! Why: issue #4 asks for proof that the project's detectors (the loom model,
//! the simulator's contract checker, the conformance cases) actually find the
//! ordering bugs they exist for. Each bug below is a few lines at the real
//! site, fenced with `#[cfg(feature = "deliberate-bugs")]`, and is off until
//! switched on at run time, so one build holds all of them and a normal build
//! holds none. The switch is per thread: test harnesses run cases on
//! parallel threads, and a bug enabled for one case must not leak into
//! another (the simulator runs a whole world on one thread; loom runs its
//! model threads on the thread that called it).

use std::cell::Cell;

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// (a) On a recv timeout, free the armed Receive's buffer although the
    /// firmware has not signalled the token (it still owns the buffer).
    FreeRxBufferOnTimeout,
    /// (c) Claim a completion-queue cell with a plain load + store instead of
    /// a compare-and-swap: two notify functions firing back to back (one
    /// interrupting the other) claim the same cell and one record is lost.
    LoseBackToBackCompletion,
    /// (d) Report end of stream instead of ECONNRESET when the firmware
    /// completes a Receive with CONNECTION_RESET.
    EofOnReset,
}

impl Bug {
    /// Every deliberate bug.
    pub const ALL: [Bug; 3] = [
        Bug::FreeRxBufferOnTimeout,
        Bug::LoseBackToBackCompletion,
        Bug::EofOnReset,
    ];

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

std::thread_local! {
    static ENABLED: Cell<u32> = const { Cell::new(0) };
}

/// Switches `bug` on for the calling thread.
pub fn enable(bug: Bug) {
    ENABLED.with(|e| e.set(e.get() | bug.bit()));
}

/// Switches `bug` off for the calling thread.
pub fn disable(bug: Bug) {
    ENABLED.with(|e| e.set(e.get() & !bug.bit()));
}

/// Switches every bug off for the calling thread.
pub fn disable_all() {
    ENABLED.with(|e| e.set(0));
}

/// Whether `bug` is on for the calling thread.
pub fn is_enabled(bug: Bug) -> bool {
    ENABLED.with(|e| e.get() & bug.bit() != 0)
}
