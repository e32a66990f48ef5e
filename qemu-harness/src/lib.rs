//! # efisock-qemu: building the UEFI applications and booting them in QEMU/OVMF
//!
//! A crate of its own because three programs need it: `cargo xtask` (smoke
//! test, std probe, HTTP examples), the conformance runner (`cargo run
//! --release -- --target qemu`) and the bench report. Entry points:
//! [`build_efi_bin`], [`ensure_tools`], [`run_qemu`] and [`qemu_smoke`]. The
//! toolchain recipe and QEMU command line follow
//! `/work/shared/reference/uefi-toolchain.md`: stable cargo when rustup has
//! the `x86_64-unknown-uefi` target, otherwise Debian's `rustc-web` with
//! `-Zbuild-std` and rustup's `rust-lld`; TCG with `-cpu max` (KVM crashes
//! OVMF here); user-mode networking with IPv6 off and no option ROM.
//!
//! Network rules: host-side servers bind 127.0.0.1 only, the guest reaches
//! them as 10.0.2.2, and QEMU always runs under a wall-clock limit.

mod build;
pub mod echo;
mod error;
pub mod log;
mod run;
mod smoke;
mod tools;

use std::path::{Path, PathBuf};

pub use build::{EfiBuild, build_efi, build_efi_bin};
pub use error::QemuError;
pub use log::EfisockLine;
pub use run::{QemuOptions, QemuOutcome, decode_debug_exit, qemu_args, run_qemu};
pub use smoke::qemu_smoke;
pub use tools::{ensure_tools, missing_packages, ovmf_paths};

/// The UEFI target triple.
pub const UEFI_TARGET: &str = "x86_64-unknown-uefi";
/// The smoke test's default echo port (must match `efi-target/apps/src/bin/smoke.rs`).
pub const DEFAULT_SMOKE_PORT: u16 = 47_361;
const OVMF_DIR: &str = "/usr/share/OVMF";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SRC: &str = "/usr/lib/rustlib/src/rust/library";

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The shared target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
