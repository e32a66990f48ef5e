//! Contract breaches: what a debug firmware would ASSERT on, or what would
//! corrupt memory on real hardware, reported with the seed to reproduce it.

use core::fmt;

/// The kind of contract breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BreachKind {
    /// A token pointer was submitted again while still pending.
    TokenReusedWhilePending,
    /// A token's event already belongs to a pending token of this instance.
    EventReusedWhilePending,
    /// `free_pool` on memory the firmware still owns (token, data, buffers).
    FreedWhileOwned,
    /// Caller-owned bytes changed while the firmware owned them, or a pool
    /// guard was overwritten.
    ModifiedWhileOwned,
    /// `close_event` on an event a pending token references.
    EventClosedWhileReferenced,
    /// A call made at a TPL where it is not allowed.
    WrongTpl,
    /// A TCP4 child never destroyed.
    LeakedChild,
    /// An event never closed.
    LeakedEvent,
    /// A pool allocation never freed.
    LeakedPool,
    /// A wait that could never return.
    WouldHangForever,
    /// A call sequence that crashes or ASSERTs real EDK2 (code-read).
    FirmwareWouldCrash,
    /// Memory handed to the firmware (token, data, buffers) is not inside a
    /// live `allocate_pool` block (e.g. on the stack), against the contract.
    NotPoolMemory,
}

/// One recorded breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// What was breached.
    pub kind: BreachKind,
    /// Human-readable detail.
    pub message: String,
    /// Virtual time of detection.
    pub t_ns: u64,
    /// The run seed, to reproduce.
    pub seed: u64,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ASSERT(efisock-sim): {} [t={}ns seed={:#x}]",
            self.message, self.t_ns, self.seed
        )
    }
}
