//! Deliberate bugs, compiled in only with the `deliberate-bugs` feature.
//!
//! Why: proof that the project's detectors (the loom model,
//! the simulator's contract checker, the conformance cases) actually find the
//! ordering bugs they exist for. Each bug below is a few lines at the real
//! site, fenced with `#[cfg(feature = "deliberate-bugs")]`, and is off until
//! switched on at run time, so one build holds all of them and a normal build
//! holds none. The switch is per thread: test harnesses run cases on
//! parallel threads, and a bug enabled for one case must not leak into
//! another (the simulator runs a whole world on one thread; loom runs its
//! model threads on the thread that called it).

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::string::String;

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
    /// (b) Process the completion inside the notify function: besides
    /// recording it, the notify takes the socket state and runs the safe
    /// point (complete the slot, copy the data, re-arm tokens, calling the
    /// firmware) right there, at TPL_CALLBACK, wherever the application was
    /// interrupted. In C this is a silent data race on the socket state; in
    /// Rust the state's `RefCell` is already borrowed whenever the notify
    /// runs inside an efisock call, so the borrow fails. A panic cannot
    /// unwind through the firmware's `efiapi` frame, so the failure is
    /// stored there and raised at the interrupted code's next safe point.
    ProcessInsideNotify,
}

impl Bug {
    /// Every deliberate bug.
    pub const ALL: [Bug; 4] = [
        Bug::FreeRxBufferOnTimeout,
        Bug::LoseBackToBackCompletion,
        Bug::EofOnReset,
        Bug::ProcessInsideNotify,
    ];

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// Bug (b): processes completions from inside a notify; returns why it
/// could not.
type ProcessHook = Box<dyn Fn() -> Result<(), String>>;

std::thread_local! {
    static ENABLED: Cell<u32> = const { Cell::new(0) };
    /// Bug (b): what the notify runs to process completions in place.
    static PROCESS_HOOK: RefCell<Option<ProcessHook>> = const { RefCell::new(None) };
    /// Bug (b): a panic caught in the notify, raised at the next safe point.
    static DEFERRED_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Bug (b): installs the in-notify processing of the `Net` created last on
/// this thread. The hook returns why it could not process, if it could not.
pub(crate) fn set_process_hook(hook: ProcessHook) {
    PROCESS_HOOK.with(|h| *h.borrow_mut() = Some(hook));
}

/// Bug (b): called by the notify trampoline after recording the completion.
/// Never panics (a panic cannot unwind through the firmware's frame): a
/// failure is stored and raised at the next safe point.
pub(crate) fn process_inside_notify() {
    if !is_enabled(Bug::ProcessInsideNotify) {
        return;
    }
    let outcome = PROCESS_HOOK.with(|h| match h.try_borrow() {
        Ok(hook) => hook.as_ref().map_or(Ok(()), |f| f()),
        Err(_) => Ok(()),
    });
    if let Err(msg) = outcome {
        DEFERRED_PANIC.with(|d| {
            if let Ok(mut d) = d.try_borrow_mut() {
                d.get_or_insert(msg);
            }
        });
    }
}

/// Bug (b): raises, in the interrupted code, what the notify ran into.
pub(crate) fn raise_deferred_panic() {
    if std::thread::panicking() {
        return;
    }
    if let Some(msg) = DEFERRED_PANIC.with(|d| d.borrow_mut().take()) {
        panic!("processing a completion inside the notify function failed: {msg}");
    }
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
