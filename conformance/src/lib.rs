//! # efisock-conformance: one suite for EFI socket semantics
//!
//! The same cases run against the simulator (`efisock-sim`) and inside OVMF,
//! so everything here is written against small seams: peers are sans-IO
//! state machines ([`peers`]), the runner is generic over the target
//! ([`runner`], [`target::SocketTarget`]), and firmware tracing is captured
//! by a plain `tracing_subscriber` layer ([`trace`]). Python's
//! `socket`/`select` semantics are the reference the cases check. The
//! ordering fuzzer lives in `fuzz` (feature `sim`).
//!
//! Errors are typed ([`error`], `fuzz::error`); their `Display` is the text
//! the command line and the JSON reports print.
//!
//! Running one case on a fresh simulated world (feature `sim`, on by
//! default):
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use efisock_conformance::cases;
//! use efisock_conformance::runner::{DEFAULT_SEED, run_one};
//! use efisock_conformance::sim_target::{SimSetup, SimTarget};
//!
//! let setup = SimSetup::default();
//! let all = cases::all::<SimTarget>();
//! let case = all
//!     .iter()
//!     .find(|c| c.id() == "lifecycle/connect_echo_hello")
//!     .expect("the case is registered");
//! let report = run_one(case, DEFAULT_SEED, &mut |seed| setup.build(seed));
//! assert!(report.passed, "{:?}", report.message);
//! assert!(report.virtual_ns > 0);
//! # }
//! ```
pub mod calllog;
pub mod cases;
pub mod cli;
pub mod error;
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
