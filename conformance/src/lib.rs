//! # efisock-conformance: one suite for EFI socket semantics
//!
//! The same cases run against the simulator (`efisock-sim`) and, later,
//! inside OVMF; so everything here is written against small seams: peers are
//! sans-IO state machines ([`peers`]), the runner is generic over the target
//! ([`runner`]), and firmware tracing is captured by a plain
//! `tracing_subscriber` layer ([`trace`]). Python's `socket`/`select`
//! semantics are the reference the cases check.
#![warn(missing_docs)]

pub mod cases;
pub mod cli;
pub mod expectations;
pub mod fidelity;
#[cfg(feature = "sim")]
pub mod fuzz;
pub mod guest;
pub mod host;
pub mod mix;
pub mod pattern;
pub mod peers;
#[cfg(feature = "qemu")]
pub mod qemu;
pub mod runner;
#[cfg(feature = "sim")]
pub mod sim_target;
pub mod suite;
pub mod target;
pub mod trace;

pub use peers::ports;
