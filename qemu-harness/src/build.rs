//! Building a UEFI application: stable cargo when rustup has the target,
//! otherwise Debian's `rustc-web` with `-Zbuild-std` and rustup's `rust-lld`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::QemuError;
use crate::{DEBIAN_CARGO, DEBIAN_RUSTC, DEBIAN_STD_SRC, UEFI_TARGET, target_dir, workspace_root};

/// Runs `cmd` and returns its standard output.
pub(crate) fn run_capture(cmd: &mut Command) -> Result<String, QemuError> {
    let program = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|source| QemuError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(QemuError::CommandFailed {
            program,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether rustup has the UEFI target installed (then stable cargo builds).
pub(crate) fn rustup_has_uefi_target() -> bool {
    run_capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .map(|s| s.lines().any(|l| l.trim() == UEFI_TARGET))
        .unwrap_or(false)
}

/// rust-lld: rustup's linker (the PE linker for the Debian recipe).
fn rust_lld() -> Result<PathBuf, QemuError> {
    let sysroot = run_capture(Command::new("rustc").args(["--print", "sysroot"]))?;
    let host = run_capture(Command::new("rustc").args(["-vV"]))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| QemuError::Toolchain("rustc -vV printed no host line".into()))?;
    let lld = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/rust-lld");
    if lld.is_file() {
        Ok(lld)
    } else {
        Err(QemuError::Toolchain(format!(
            "rust-lld not found at {}; install rustup's default toolchain (it ships rust-lld) \
             or `apt-get install -y lld-19` and link with lld-link-19",
            lld.display()
        )))
    }
}

/// Which UEFI binary to build and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiBuild {
    /// The cargo package (`efisock-efi-apps`, `efisock-conformance`).
    pub package: &'static str,
    /// The `[[bin]]` name (also the `.efi` file name).
    pub bin: &'static str,
    /// Cargo features of the package to enable.
    pub features: Vec<&'static str>,
    /// Pass `--no-default-features` (the suite's default `sim` feature
    /// brings the host simulator, which a UEFI build does not need).
    pub no_default_features: bool,
    /// Build Rust's `std` for the target (`-Zbuild-std=std,panic_abort`)
    /// instead of only `core`/`alloc`, and allow the unstable `uefi_std`
    /// library feature (`RUSTC_BOOTSTRAP=1`).
    pub std: bool,
}

impl EfiBuild {
    /// The no_std smoke application `efisock-smoke`.
    pub fn smoke() -> Self {
        Self {
            package: "efisock-efi-apps",
            bin: "efisock-smoke",
            features: Vec::new(),
            no_default_features: false,
            std: false,
        }
    }

    /// The std probe application `efisock-efi-std` (feature `std-app`).
    pub fn std_probe() -> Self {
        Self {
            package: "efisock-efi-apps",
            bin: "efisock-efi-std",
            features: vec!["std-app"],
            no_default_features: false,
            std: true,
        }
    }

    /// The conformance suite's in-OVMF binary `efisock-conformance-efi`
    /// (`efisock-efi-apps` with feature `suite-app`: the OVMF target and the
    /// serial reporter; the suite crate without its simulator).
    pub fn suite() -> Self {
        Self {
            package: "efisock-efi-apps",
            bin: "efisock-conformance-efi",
            features: vec!["suite-app"],
            no_default_features: false,
            std: true,
        }
    }

    /// The conformance suite's binary, with its default features off (no
    /// simulator) plus `features`.
    pub fn conformance(features: Vec<&'static str>) -> Self {
        Self {
            package: "efisock-conformance",
            bin: "efisock-conformance",
            features,
            no_default_features: true,
            std: true,
        }
    }

    /// The `-Zbuild-std` arguments for the Debian recipe.
    pub fn build_std_args(&self) -> [&'static str; 2] {
        [
            if self.std {
                "-Zbuild-std=std,panic_abort"
            } else {
                "-Zbuild-std=core,alloc,compiler_builtins"
            },
            "-Zbuild-std-features=compiler-builtins-mem",
        ]
    }
}

/// Builds the no_std smoke application (see [`build_efi_bin`]).
pub fn build_efi(release: bool) -> Result<PathBuf, QemuError> {
    build_efi_bin(&EfiBuild::smoke(), release)
}

/// Builds one UEFI application binary (an `efisock-efi-apps` bin) for `x86_64-unknown-uefi` into the shared
/// target directory and returns the `.efi` path.
///
/// Uses stable cargo if `rustup target list --installed` has the UEFI
/// target; otherwise Debian's `rustc-web` (1.96) with `RUSTC_BOOTSTRAP=1`,
/// `-Zbuild-std=...` ([`EfiBuild::build_std_args`]) and rustup's `rust-lld`.
/// The environment is inherited, so `EFISOCK_SMOKE_PORT` reaches the guest
/// build.
pub fn build_efi_bin(spec: &EfiBuild, release: bool) -> Result<PathBuf, QemuError> {
    let root = workspace_root();
    let tdir = target_dir();
    let mut cmd;
    if rustup_has_uefi_target() {
        cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", spec.package, "--target", UEFI_TARGET]);
        if spec.std {
            // `std::os::uefi` is unstable even where the target ships std.
            cmd.env("RUSTC_BOOTSTRAP", "1");
        }
    } else {
        for (p, what) in [
            (DEBIAN_RUSTC, "rustc-web"),
            (DEBIAN_CARGO, "cargo-web"),
            (DEBIAN_STD_SRC, "rust-web-src"),
        ] {
            if !Path::new(p).exists() {
                return Err(QemuError::Toolchain(format!(
                    "{p} is missing and rustup has no {UEFI_TARGET} target: run \
                     `apt-get install -y {what}` (or `rustup target add {UEFI_TARGET}`)"
                )));
            }
        }
        let lld = rust_lld()?;
        cmd = Command::new(DEBIAN_CARGO);
        cmd.args(["build", "-p", spec.package, "--target", UEFI_TARGET])
            .args(spec.build_std_args())
            .env("RUSTC", DEBIAN_RUSTC)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUSTFLAGS", format!("-C linker={}", lld.display()))
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTUP_TOOLCHAIN");
    }
    cmd.args(["--bin", spec.bin]);
    if spec.no_default_features {
        cmd.arg("--no-default-features");
    }
    if !spec.features.is_empty() {
        cmd.args(["--features", &spec.features.join(",")]);
    }
    if release {
        cmd.arg("--release");
    }
    cmd.current_dir(&root).env("CARGO_TARGET_DIR", &tdir);
    let status = cmd.status().map_err(|source| QemuError::Spawn {
        program: format!("{:?}", cmd.get_program()),
        source,
    })?;
    if !status.success() {
        return Err(QemuError::Build {
            bin: spec.bin.to_string(),
            status,
        });
    }
    let efi = tdir
        .join(UEFI_TARGET)
        .join(if release { "release" } else { "debug" })
        .join(format!("{}.efi", spec.bin));
    if efi.is_file() {
        Ok(efi)
    } else {
        Err(QemuError::MissingArtifact(efi))
    }
}
