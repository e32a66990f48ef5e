//! # efisock-efi: the real UEFI backend of efisock
//!
//! [`backend`] implements `efisock`'s firmware boundary traits as a thin
//! passthrough to the running firmware (uefi-raw function pointers):
//! [`backend::EfiPlatform::locate`] from the raw system-table pointers, or
//! `EfiPlatform::from_uefi` (feature `uefi`) in an application written with
//! the `uefi` crate. [`pool_alloc`] is a global allocator over
//! `AllocatePool` for applications without one.
//!
//! Everything here also compiles on the host (x86-64 `efiapi` is an ordinary
//! calling convention), so unit tests of the pure parts run with
//! `cargo test -p efisock-efi`. The applications that use it live in
//! `efisock-efi-apps` (`efi-target/apps/`).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod backend;
pub mod pool_alloc;
