//! # efisock-qemu: building the UEFI applications and booting them in QEMU/OVMF
//!
//! A crate of its own (moved out of xtask) because two programs need it:
//! `cargo xtask` (smoke test, std probe) and the conformance runner
//! (`cargo run --release -- --target qemu`). Entry points:
//! [`build_efi_bin`], [`ensure_tools`], [`run_qemu`] and [`qemu_smoke`]. The
//! toolchain recipe and QEMU command line follow
//! `/work/shared/reference/uefi-toolchain.md`: stable cargo when rustup has
//! the `x86_64-unknown-uefi` target, otherwise Debian's `rustc-web` with
//! `-Zbuild-std` and rustup's `rust-lld`; TCG with `-cpu max` (KVM crashes
//! OVMF here); user-mode networking with IPv6 off and no option ROM.
//!
//! Network rules: host-side servers bind 127.0.0.1 only, the guest reaches
//! them as 10.0.2.2, and QEMU always runs under a wall-clock limit.

#![warn(missing_docs)]

pub mod echo;
pub mod log;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use log::EfisockLine;

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

fn run_capture(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustup_has_uefi_target() -> bool {
    run_capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .map(|s| s.lines().any(|l| l.trim() == UEFI_TARGET))
        .unwrap_or(false)
}

/// rustup's `rust-lld` (the PE linker for the Debian recipe).
fn rust_lld() -> Result<PathBuf, String> {
    let sysroot = run_capture(Command::new("rustc").args(["--print", "sysroot"]))?;
    let host = run_capture(Command::new("rustc").args(["-vV"]))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or("rustc -vV printed no host line")?;
    let lld = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/rust-lld");
    if lld.is_file() {
        Ok(lld)
    } else {
        Err(format!(
            "rust-lld not found at {}; install rustup's default toolchain (it ships rust-lld) \
             or `apt-get install -y lld-19` and link with lld-link-19",
            lld.display()
        ))
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
pub fn build_efi(release: bool) -> Result<PathBuf, String> {
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
pub fn build_efi_bin(spec: &EfiBuild, release: bool) -> Result<PathBuf, String> {
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
                return Err(format!(
                    "{p} is missing and rustup has no {UEFI_TARGET} target: run \
                     `apt-get install -y {what}` (or `rustup target add {UEFI_TARGET}`)"
                ));
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
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !status.success() {
        return Err(format!(
            "building {} for {UEFI_TARGET} failed ({status})",
            spec.bin
        ));
    }
    let efi = tdir
        .join(UEFI_TARGET)
        .join(if release { "release" } else { "debug" })
        .join(format!("{}.efi", spec.bin));
    if efi.is_file() {
        Ok(efi)
    } else {
        Err(format!("build succeeded but {} is missing", efi.display()))
    }
}

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
pub fn ensure_tools() -> Result<(), String> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let cmd = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !is_root() {
        return Err(format!(
            "missing tools for the QEMU run: {}; install them with: sudo sh -c '{cmd}'",
            missing.join(", ")
        ));
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
        Err(format!(
            "installing {} failed (still missing: {}); run it by hand: {cmd}",
            missing.join(" "),
            still.join(", ")
        ))
    }
}

/// How to boot the application.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// Host→guest TCP forwards `(host_port, guest_port)`; the host side binds
    /// 127.0.0.1 only.
    pub hostfwd: Vec<(u16, u16)>,
    /// Wall-clock limit for the whole QEMU run; QEMU is killed after it.
    pub timeout: Duration,
    /// Working directory for the ESP, vars copy and logs.
    pub work_dir: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            hostfwd: Vec::new(),
            timeout: Duration::from_secs(120),
            work_dir: target_dir().join("efisock-qemu"),
            memory_mib: 256,
        }
    }
}

/// What a QEMU run produced.
#[derive(Debug, Clone)]
pub struct QemuOutcome {
    /// QEMU's process exit status (None if killed by the timeout or a signal).
    pub qemu_status: Option<i32>,
    /// The guest's code decoded from isa-debug-exit (`status = code*2+1`).
    pub app_code: Option<u8>,
    /// Whether the wall-clock limit killed QEMU.
    pub timed_out: bool,
    /// Boot-to-exit wall time.
    pub wall: Duration,
    /// The `EFISOCK-*` lines, ANSI escapes and `\r` stripped.
    pub lines: Vec<EfisockLine>,
    /// The raw serial log (kept on disk).
    pub serial_log: PathBuf,
}

impl QemuOutcome {
    /// Prints the guest's `EFISOCK-*` lines and a one-line summary of the run.
    pub fn print(&self) {
        for l in &self.lines {
            println!("{}{} {}", log::PREFIX, l.kind, l.body);
        }
        println!(
            "qemu: status {:?}, guest code {:?}, timed out {}, wall {:.2} s, serial log {}",
            self.qemu_status,
            self.app_code,
            self.timed_out,
            self.wall.as_secs_f64(),
            self.serial_log.display()
        );
    }
}

/// The guest code for a QEMU exit status from isa-debug-exit.
pub fn decode_debug_exit(status: i32) -> Option<u8> {
    if status > 0 && status & 1 == 1 && status < 512 {
        u8::try_from(status >> 1).ok()
    } else {
        None
    }
}

/// The QEMU command line (without the program name).
pub fn qemu_args(
    code: &Path,
    vars: &Path,
    esp: &Path,
    serial: &Path,
    opts: &QemuOptions,
) -> Vec<String> {
    let mut netdev = String::from("user,id=n0,ipv6=off");
    for (h, g) in &opts.hostfwd {
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
    }
    [
        "-nodefaults",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-cpu",
        "max",
        "-m",
        &opts.memory_mib.to_string(),
        "-drive",
        &format!("if=pflash,format=raw,readonly=on,file={}", code.display()),
        "-drive",
        &format!("if=pflash,format=raw,file={}", vars.display()),
        "-drive",
        &format!("format=raw,file=fat:rw:{}", esp.display()),
        "-netdev",
        &netdev,
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-serial",
        &format!("file:{}", serial.display()),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(packet_capture())
    .collect()
}

/// `EFISOCK_QEMU_PCAP=FILE` records every frame between the guest and QEMU's
/// user-mode network into a pcap file (QEMU's `filter-dump`), to see what
/// the firmware actually sent and received.
fn packet_capture() -> Vec<String> {
    match std::env::var("EFISOCK_QEMU_PCAP") {
        Ok(file) if !file.is_empty() => vec![
            "-object".to_string(),
            format!("filter-dump,id=efisock-pcap,netdev=n0,file={file}"),
        ],
        _ => Vec::new(),
    }
}

/// Boots `efi` as `EFI/BOOT/BOOTX64.EFI` under OVMF and waits (bounded) for
/// QEMU to exit; the serial log stays at `<work_dir>/serial.log`.
pub fn run_qemu(efi: &Path, opts: &QemuOptions) -> Result<QemuOutcome, String> {
    let (code, vars_src) = ovmf_paths();
    let dir = &opts.work_dir;
    let boot_dir = dir.join("esp/EFI/BOOT");
    fs::create_dir_all(&boot_dir).map_err(|e| format!("create {}: {e}", boot_dir.display()))?;
    fs::copy(efi, boot_dir.join("BOOTX64.EFI"))
        .map_err(|e| format!("copy {} to the ESP: {e}", efi.display()))?;
    let vars = dir.join("OVMF_VARS.fd");
    // A fresh writable copy each run: no NV state (e.g. IPv4 policy) leaks
    // between runs.
    fs::copy(&vars_src, &vars).map_err(|e| format!("copy {}: {e}", vars_src.display()))?;
    let serial = dir.join("serial.log");
    let _ = fs::remove_file(&serial);
    let qemu_log = dir.join("qemu.log");
    let qemu_out =
        fs::File::create(&qemu_log).map_err(|e| format!("create {}: {e}", qemu_log.display()))?;
    let qemu_err = qemu_out
        .try_clone()
        .map_err(|e| format!("dup {}: {e}", qemu_log.display()))?;
    let args = qemu_args(&code, &vars, &dir.join("esp"), &serial, opts);
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(qemu_out)
        .stderr(qemu_err)
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e} (run ensure_tools)"))?;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= opts.timeout => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for qemu: {e}"));
            }
        }
    };
    let wall = start.elapsed();
    let raw = fs::read(&serial).unwrap_or_default();
    let lines = log::parse_lines(&String::from_utf8_lossy(&raw));
    let qemu_status = status.and_then(|s| s.code());
    if let (Some(s), false) = (qemu_status, timed_out) {
        // Exit statuses that are neither debug-exit codes nor a clean shutdown
        // mean QEMU itself failed (bad arguments, missing files).
        if s != 0 && decode_debug_exit(s).is_none() {
            let msg = fs::read_to_string(&qemu_log).unwrap_or_default();
            return Err(format!("qemu exited with {s}: {}", msg.trim()));
        }
    }
    Ok(QemuOutcome {
        qemu_status,
        app_code: qemu_status.and_then(decode_debug_exit),
        timed_out,
        wall,
        lines,
        serial_log: serial,
    })
}

/// `cargo xtask qemu-smoke [--debug] [--timeout SECS]`: tools, build, echo
/// server on 127.0.0.1, boot, check. Succeeds only if the guest reports
/// `EFISOCK-DONE 0`, exits through isa-debug-exit with code 0, and the echo
/// server saw one complete exchange.
pub fn qemu_smoke(args: &[String]) -> Result<(), String> {
    let mut release = true;
    let mut timeout = Duration::from_secs(120);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => release = false,
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs a value in seconds")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout: not a number of seconds: {v}"))?;
                if !(1..=3600).contains(&secs) {
                    return Err("--timeout must be 1..=3600 seconds".into());
                }
                timeout = Duration::from_secs(secs);
            }
            other => {
                return Err(format!(
                    "qemu-smoke: unknown argument {other}; usage: qemu-smoke [--debug] [--timeout SECS]"
                ));
            }
        }
    }
    let port = match std::env::var("EFISOCK_SMOKE_PORT") {
        Ok(v) => v
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("EFISOCK_SMOKE_PORT={v} is not a port"))?,
        Err(_) => DEFAULT_SMOKE_PORT,
    };
    ensure_tools()?;
    let efi = build_efi(release)?;
    eprintln!("xtask: built {}", efi.display());
    let server = echo::EchoServer::start(port, timeout + Duration::from_secs(5))?;
    eprintln!(
        "xtask: echo server on {} (guest: 10.0.2.2:{port})",
        server.addr()
    );
    let opts = QemuOptions {
        timeout,
        ..QemuOptions::default()
    };
    let run = run_qemu(&efi, &opts);
    let reports = server.stop();
    let out = run?;
    out.print();
    for r in &reports {
        println!(
            "echo server: peer {} echoed {} bytes, complete {}, client closed {}, error {:?}",
            r.peer, r.echoed, r.complete, r.client_closed, r.error
        );
    }
    let done = log::done_code(&out.lines);
    if out.timed_out {
        return Err(format!(
            "QEMU killed after {} s; see {}",
            timeout.as_secs(),
            out.serial_log.display()
        ));
    }
    if done != Some(0) || out.app_code != Some(0) {
        return Err(format!(
            "smoke test failed: EFISOCK-DONE {done:?}, isa-debug-exit code {:?} \
             (1 platform, 2 DHCP, 3 TCP, 4 mismatch, 5 panic); see {}",
            out.app_code,
            out.serial_log.display()
        ));
    }
    if !(reports.len() == 1 && reports[0].complete && reports[0].error.is_none()) {
        return Err(format!(
            "echo server did not see one clean exchange: {reports:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_decoding() {
        assert_eq!(decode_debug_exit(1), Some(0));
        assert_eq!(decode_debug_exit(7), Some(3));
        assert_eq!(decode_debug_exit(511), Some(255));
        assert_eq!(decode_debug_exit(0), None);
        assert_eq!(decode_debug_exit(2), None);
        assert_eq!(decode_debug_exit(-1), None);
    }

    #[test]
    fn command_line_has_isolation_and_exit_device() {
        let opts = QemuOptions {
            hostfwd: vec![(8080, 80)],
            ..QemuOptions::default()
        };
        let a = qemu_args(
            Path::new("/c.fd"),
            Path::new("/v.fd"),
            Path::new("/esp"),
            Path::new("/s.log"),
            &opts,
        );
        let joined = a.join(" ");
        assert!(joined.contains("user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:8080-:80"));
        assert!(joined.contains("virtio-net-pci,netdev=n0,romfile="));
        assert!(joined.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(joined.contains("if=pflash,format=raw,readonly=on,file=/c.fd"));
        assert!(joined.contains("file:/s.log"));
        assert!(!joined.contains("kvm"));
    }
}
