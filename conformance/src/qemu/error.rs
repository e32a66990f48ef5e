//! Why a `--target qemu` run could not happen.

use std::error::Error;
use std::fmt;

use efisock_qemu::QemuError;

use crate::error::{HostError, ParseError};

/// Why the suite could not be booted in OVMF (bad options, tools, build,
/// host peers, QEMU failing to start); a run that happened but failed cases
/// is not an error.
#[derive(Debug)]
pub enum QemuRunError {
    /// An environment limit is not a whole number of seconds in range.
    Limit {
        /// The variable, e.g. `EFISOCK_CASE_TIMEOUT`.
        name: &'static str,
        /// What it held.
        value: String,
    },
    /// The options could not be written for the guest.
    Options(ParseError),
    /// Installing tools, building the UEFI binary or running QEMU failed.
    Qemu(QemuError),
    /// A host-side file or socket operation failed.
    Io {
        /// The step, e.g. `create target/efisock-qemu/esp`.
        what: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The peer services could not start.
    Host(HostError),
}

impl fmt::Display for QemuRunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuRunError::Limit { name, value } => {
                write!(f, "{name}={value} is not 1..=86400 seconds")
            }
            QemuRunError::Options(e) => write!(f, "{e}"),
            QemuRunError::Qemu(e) => write!(f, "{e}"),
            QemuRunError::Io { what, source } => write!(f, "{what}: {source}"),
            QemuRunError::Host(e) => write!(f, "{e}"),
        }
    }
}

impl Error for QemuRunError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            QemuRunError::Limit { .. } => None,
            QemuRunError::Options(e) => Some(e),
            QemuRunError::Qemu(e) => Some(e),
            QemuRunError::Io { source, .. } => Some(source),
            QemuRunError::Host(e) => Some(e),
        }
    }
}

impl From<ParseError> for QemuRunError {
    fn from(e: ParseError) -> Self {
        QemuRunError::Options(e)
    }
}

impl From<QemuError> for QemuRunError {
    fn from(e: QemuError) -> Self {
        QemuRunError::Qemu(e)
    }
}

impl From<HostError> for QemuRunError {
    fn from(e: HostError) -> Self {
        QemuRunError::Host(e)
    }
}

impl QemuRunError {
    /// An I/O failure during `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> QemuRunError {
        let what = what.into();
        move |source| QemuRunError::Io { what, source }
    }
}
