//! `--trace`: an strace-like view of every firmware call a case made.
//!
//! The core emits `tracing` events for firmware calls (`efisock::fw`),
//! drained completions (`efisock::completion`) and recorded notifies
//! (`efisock::notify`); see `docs/architecture.md` for the fields. Reading
//! them through a plain [`tracing_subscriber::Layer`] keeps the suite
//! decoupled from the core's internals and works the same on every target.
//! [`TraceRecorder`] captures the events; its [`TraceHandle`] renders them:
//!
//! ```text
//! [   1.234567890] #3 Tcp4.Connect(10.0.2.2:7007) = SUCCESS  <0.000010>
//! [   1.240000000] notify slot 5
//! [   1.240001000] #3 completion connect = SUCCESS
//! ```
//!
//! followed by a per-call summary table (count, errors = status other than
//! SUCCESS, total and average virtual time), sorted by total time. Each case
//! gets its own log and table; the handle also accumulates a run-wide table
//! ([`TraceHandle::run_summary`]) printed after the last case.

mod recorder;
mod render;

pub use recorder::{MAX_EVENTS, TraceEvent, TraceHandle, TraceRecorder};
pub use render::{CallStats, render_events, render_log, render_summary};

/// Target of firmware-call events.
pub const TARGET_FW: &str = "efisock::fw";
/// Target of completion events.
pub const TARGET_COMPLETION: &str = "efisock::completion";
/// Target of notify events.
pub const TARGET_NOTIFY: &str = "efisock::notify";

#[cfg(test)]
mod tests;
