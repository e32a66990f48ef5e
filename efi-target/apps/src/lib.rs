//! # efisock-efi-apps: the UEFI applications of efisock
//!
//! The applications booted in OVMF by `xtask` and the conformance runner,
//! built on the `efisock-efi` backend, and the pieces they share:
//!
//! - [`smoke`]: DHCP and one echo exchange through the raw TCP4 toolkit
//!   (`efisock::raw`), the `efisock-smoke` application;
//! - `ovmf_target` (feature `suite-app`): the conformance suite's target
//!   inside OVMF, used by `efisock-conformance-efi` and `efisock-bench-efi`;
//! - `rawbench` (feature `bench-app`): the raw Tcp4 loop the Poll-strategy
//!   workloads are compared with;
//! - [`console`], [`json`], [`exit`]: `ConOut` output, the machine-readable
//!   result lines and leaving QEMU with an exit code.
//!
//! Everything here also compiles on the host, so unit tests of the pure
//! parts run with `cargo test -p efisock-efi-apps`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
#[cfg(all(feature = "suite-app", not(test)))]
extern crate std;

pub mod console;
pub mod exit;
pub mod json;
#[cfg(feature = "suite-app")]
pub mod ovmf_target;
#[cfg(feature = "bench-app")]
pub mod rawbench;
pub mod smoke;

/// The prefix of every machine-readable line the applications print.
pub const LINE_PREFIX: &str = "EFISOCK-";
