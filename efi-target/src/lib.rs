//! # efisock-efi: the real UEFI backend of efisock
//!
//! [`backend`] implements `efisock`'s firmware boundary traits as a thin
//! passthrough to the running firmware (uefi-raw function pointers). The rest
//! supports the in-OVMF smoke-test application (`src/main.rs`): console
//! output, JSON result lines, the smoke test itself, and leaving QEMU with an
//! exit code.
//!
//! Everything here also compiles on the host (x86-64 `efiapi` is an ordinary
//! calling convention), so unit tests of the pure parts run with
//! `cargo test -p efisock-efi`; only `main.rs` is target-specific.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(all(feature = "suite-app", not(test)))]
extern crate std;

pub mod backend;
pub mod console;
pub mod exit;
pub mod json;
#[cfg(feature = "suite-app")]
pub mod ovmf_target;
pub mod pool_alloc;
#[cfg(feature = "bench-app")]
pub mod rawbench;
pub mod smoke;

/// The prefix of every machine-readable line the application prints.
pub const LINE_PREFIX: &str = "EFISOCK-";
