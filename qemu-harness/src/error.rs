//! What can go wrong building and booting the UEFI applications.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::UEFI_TARGET;

/// An error of this crate. The `Display` text says what failed and, where
/// there is one, the command that fixes it.
#[derive(Debug)]
pub enum QemuError {
    /// A program could not be started.
    Spawn {
        /// The program, as `Command::get_program` shows it.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// A helper command ran and exited unsuccessfully.
    CommandFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// The UEFI toolchain is incomplete; the text names what to install.
    Toolchain(String),
    /// QEMU, OVMF or the compiler packages are missing or could not be
    /// installed; the text has the command to run.
    Tools(String),
    /// Building a UEFI binary failed.
    Build {
        /// The `[[bin]]` name.
        bin: String,
        /// Cargo's exit status.
        status: ExitStatus,
    },
    /// Cargo succeeded but the `.efi` file is not where it should be.
    MissingArtifact(PathBuf),
    /// Preparing the boot's files failed.
    File {
        /// The operation and path, e.g. `create /x/esp/EFI/BOOT`.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// `qemu-system-x86_64` could not be started.
    QemuStart(io::Error),
    /// Waiting for QEMU failed.
    QemuWait(io::Error),
    /// QEMU itself failed (neither a guest exit code nor a clean shutdown).
    QemuFailed {
        /// QEMU's exit status.
        status: i32,
        /// QEMU's own log, trimmed.
        log: String,
    },
    /// A bad argument or environment variable; the text says which.
    Usage(String),
    /// The host echo server could not start.
    Echo {
        /// The failing step (`bind 127.0.0.1:PORT`, `set_nonblocking`, ...).
        what: String,
        /// Why.
        source: io::Error,
    },
    /// The smoke test ran and failed; the text says how and where the logs
    /// are.
    Smoke(String),
}

impl fmt::Display for QemuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { program, source } => write!(f, "cannot run {program}: {source}"),
            Self::CommandFailed {
                program,
                status,
                stderr,
            } => write!(f, "{program} failed ({status}): {stderr}"),
            Self::Toolchain(s) | Self::Tools(s) | Self::Usage(s) | Self::Smoke(s) => f.write_str(s),
            Self::Build { bin, status } => {
                write!(f, "building {bin} for {UEFI_TARGET} failed ({status})")
            }
            Self::MissingArtifact(p) => {
                write!(f, "build succeeded but {} is missing", p.display())
            }
            Self::File { what, source } => write!(f, "{what}: {source}"),
            Self::QemuStart(e) => {
                write!(f, "cannot start qemu-system-x86_64: {e} (run ensure_tools)")
            }
            Self::QemuWait(e) => write!(f, "waiting for qemu: {e}"),
            Self::QemuFailed { status, log } => write!(f, "qemu exited with {status}: {log}"),
            Self::Echo { what, source } if what.starts_with("bind ") => write!(
                f,
                "echo server: cannot {what}: {source} (choose another port with \
                 EFISOCK_SMOKE_PORT=<port>; it is compiled into the guest)"
            ),
            Self::Echo { what, source } => write!(f, "echo server: {what}: {source}"),
        }
    }
}

impl std::error::Error for QemuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::File { source, .. } | Self::Echo { source, .. } => {
                Some(source)
            }
            Self::QemuStart(e) | Self::QemuWait(e) => Some(e),
            _ => None,
        }
    }
}

/// For the callers (xtask, the conformance runner, the bench report) whose
/// steps report errors as text.
impl From<QemuError> for String {
    fn from(e: QemuError) -> String {
        e.to_string()
    }
}

/// A file operation's error with the operation and path.
pub(crate) fn file_error(what: String) -> impl FnOnce(io::Error) -> QemuError {
    move |source| QemuError::File { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_failure_and_the_fix() {
        let e = QemuError::Echo {
            what: "bind 127.0.0.1:7".into(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("echo server: cannot bind 127.0.0.1:7: "),
            "{text}"
        );
        assert!(text.contains("EFISOCK_SMOKE_PORT=<port>"), "{text}");
        let e = QemuError::File {
            what: "create /x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(e.to_string().starts_with("create /x: "));
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            QemuError::MissingArtifact("/t/a.efi".into()).to_string(),
            "build succeeded but /t/a.efi is missing"
        );
    }
}
