//! Booting one application under OVMF, bounded by a wall-clock limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{QemuError, file_error};
use crate::log::{self, EfisockLine};
use crate::target_dir;
use crate::tools::ovmf_paths;

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
pub fn run_qemu(efi: &Path, opts: &QemuOptions) -> Result<QemuOutcome, QemuError> {
    let (code, vars_src) = ovmf_paths();
    let dir = &opts.work_dir;
    let boot_dir = dir.join("esp/EFI/BOOT");
    fs::create_dir_all(&boot_dir).map_err(file_error(format!("create {}", boot_dir.display())))?;
    fs::copy(efi, boot_dir.join("BOOTX64.EFI"))
        .map_err(file_error(format!("copy {} to the ESP", efi.display())))?;
    let vars = dir.join("OVMF_VARS.fd");
    // A fresh writable copy each run: no NV state (e.g. IPv4 policy) leaks
    // between runs.
    fs::copy(&vars_src, &vars).map_err(file_error(format!("copy {}", vars_src.display())))?;
    let serial = dir.join("serial.log");
    let _ = fs::remove_file(&serial);
    let qemu_log = dir.join("qemu.log");
    let qemu_out = fs::File::create(&qemu_log)
        .map_err(file_error(format!("create {}", qemu_log.display())))?;
    let qemu_err = qemu_out
        .try_clone()
        .map_err(file_error(format!("dup {}", qemu_log.display())))?;
    let args = qemu_args(&code, &vars, &dir.join("esp"), &serial, opts);
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(qemu_out)
        .stderr(qemu_err)
        .spawn()
        .map_err(QemuError::QemuStart)?;
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
                return Err(QemuError::QemuWait(e));
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
            return Err(QemuError::QemuFailed {
                status: s,
                log: msg.trim().to_string(),
            });
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
