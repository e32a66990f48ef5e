//! Call-level recordings: every firmware call a case makes, with its
//! arguments in short and its status, and every drained completion (token
//! kind, status, bytes), in order, in one format on the simulator and in
//! OVMF, so the two can be diffed call by call.
//!
//! Layers, each in its own module:
//!
//! - [`step`]: one recorded step ([`RawStep`]) and its one-line text form,
//!   e.g. `call #3 Tcp4.Transmit SUCCESS 6004`, `wait #3 Tcp4.Poll SUCCESS x12`,
//!   `done #3 transmit SUCCESS 6004`.
//! - [`capture`]: the `tracing_subscriber` layer ([`CallRecorder`]) built on
//!   the core's `efisock::fw` and `efisock::completion` events. It compacts
//!   while it records, losslessly for the diff: a run of identical waiting
//!   calls (Poll, Stall, SetTimer, WaitForEvent) becomes one `wait` step
//!   with a count, and successful pool/event bookkeeping calls are left out
//!   (failing ones are kept). This keeps a 1 MiB transfer to a few thousand
//!   steps, few enough to stream over OVMF's serial console.
//! - [`file`]: a case's [`Recording`] as JSON (files written by `--record`
//!   and `--compare`, read by `--replay-log`) and as the chunked
//!   `EFISOCK-CALLS` / `EFISOCK-CALLSEND` serial lines of the OVMF run.
//! - [`normalise`]: what may legitimately differ between two firmware runs
//!   of the same case is removed ([`normalise::RULES`] lists each rule with
//!   its reason; `docs/fidelity.md` prints them).
//! - [`run`]: runs cases with the recorder installed (the simulator run of
//!   `--compare`, `--record`, `--replay-log`; the OVMF guest does the same
//!   around each case).
//! - [`diff`]: aligns two normalised recordings and names the first
//!   divergence, e.g. `step 14: Tcp4.Transmit token: simulator SUCCESS
//!   inside the call, OVMF pending until Poll 3`.

pub mod capture;
pub mod diff;
pub mod file;
pub mod normalise;
pub mod run;
pub mod step;

pub use capture::{CallLogHandle, CallRecorder, MAX_STEPS};
pub use diff::{CaseDiff, Labels, SIM_VS_OVMF, SIM_VS_RECORDING, compare};
pub use file::{CallLogError, Recording, SerialAssembler};
pub use normalise::{NormStep, normalise};
pub use run::{record_one, run_recorded};
pub use step::RawStep;

#[cfg(test)]
mod tests;
