//! The tools a QEMU run needs (QEMU, OVMF, a UEFI-capable compiler), found
//! or installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::{run_capture, rustup_has_uefi_target};
use crate::error::QemuError;
use crate::{DEBIAN_CARGO, DEBIAN_RUSTC, DEBIAN_STD_SRC, OVMF_DIR};

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn is_root() -> bool {
    run_capture(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// OVMF code and vars images: `OVMF_CODE`/`OVMF_VARS` env vars, else
/// Debian's 4 MiB images.
pub fn ovmf_paths() -> (PathBuf, PathBuf) {
    let code = std::env::var_os("OVMF_CODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(OVMF_DIR).join("OVMF_CODE_4M.fd"));
    let vars = std::env::var_os("OVMF_VARS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(OVMF_DIR).join("OVMF_VARS_4M.fd"));
    (code, vars)
}

/// Debian packages that are missing for a QEMU run.
pub fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !in_path("qemu-system-x86_64") {
        missing.push("qemu-system-x86");
    }
    let (code, vars) = ovmf_paths();
    if !code.is_file() || !vars.is_file() {
        missing.push("ovmf");
    }
    if !rustup_has_uefi_target() {
        for (p, pkg) in [
            (DEBIAN_RUSTC, "rustc-web"),
            (DEBIAN_CARGO, "cargo-web"),
            (DEBIAN_STD_SRC, "rust-web-src"),
        ] {
            if !Path::new(p).exists() {
                missing.push(pkg);
            }
        }
    }
    missing
}

/// Makes sure QEMU, OVMF and a UEFI-capable compiler are present: installs
/// missing Debian packages with apt-get when running as root, otherwise
/// returns the exact command to run.
pub fn ensure_tools() -> Result<(), QemuError> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let cmd = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        return Err(QemuError::Tools(format!(
            "missing tools for the QEMU run: {}; install them with: sudo sh -c '{cmd}'",
            missing.join(", ")
        )));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    // CI has no terminal: never let a package ask a question.
    let ok = Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success())
        && Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .args(&missing)
            .status()
            .is_ok_and(|s| s.success());
    let still = missing_packages();
    if ok && still.is_empty() {
        Ok(())
    } else {
        Err(QemuError::Tools(format!(
            "installing {} failed (still missing: {}); run it by hand: {cmd}",
            missing.join(" "),
            still.join(", ")
        )))
    }
}
