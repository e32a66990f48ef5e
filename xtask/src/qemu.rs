//! The QEMU helpers xtask uses: everything from the shared `efisock-qemu`
//! crate (also used by the conformance runner), plus the std probe, which
//! only xtask runs.

pub use efisock_qemu::*;

#[path = "std_probe.rs"]
pub mod std_probe;
