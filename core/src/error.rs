//! Errors with POSIX meaning, and the EFI_STATUS → errno table.
//!
//! Every error a socket call returns carries an [`Errno`] (or is a
//! [`ErrorKind::Timeout`], Python's `socket.timeout`), plus the firmware call
//! and status that caused it when one did. The mapping from firmware statuses
//! is one table, [`errno_for`], documented and tested below.
//!
//! | firmware call      | EFI status                         | errno          |
//! |--------------------|------------------------------------|----------------|
//! | Connect            | CONNECTION_RESET (closed port)     | ECONNREFUSED   |
//! | Connect            | CONNECTION_REFUSED                 | ECONNREFUSED   |
//! | Connect            | PORT/PROTOCOL_UNREACHABLE (ICMP)   | ECONNREFUSED   |
//! | any                | TIMEOUT                            | ETIMEDOUT      |
//! | any                | NETWORK_UNREACHABLE                | ENETUNREACH    |
//! | any                | HOST_UNREACHABLE                   | EHOSTUNREACH   |
//! | Receive            | CONNECTION_FIN                     | none: EOF      |
//! | Transmit           | CONNECTION_FIN                     | EPIPE          |
//! | other than Connect | CONNECTION_RESET                   | ECONNRESET     |
//! | other than Connect | CONNECTION_REFUSED, PORT_UNREACH.  | ECONNREFUSED   |
//! | any                | ABORTED                            | ECONNABORTED   |
//! | any                | NO_MAPPING                         | ENETDOWN       |
//! | Configure          | INVALID_PARAMETER (valid request)  | EADDRINUSE     |
//! | Configure          | ACCESS_DENIED                      | EISCONN        |
//! | Configure          | OUT_OF_RESOURCES                   | EADDRNOTAVAIL  |
//! | any other          | OUT_OF_RESOURCES                   | ENOBUFS        |
//! | any                | NOT_STARTED                        | ENOTCONN       |
//! | any                | UNSUPPORTED                        | EOPNOTSUPP     |
//! | any                | ACCESS_DENIED (other calls)        | EIO            |
//! | any                | anything else                      | EIO            |
//!
//! `Configure` returning INVALID_PARAMETER for a request the core has already
//! validated can only mean the station port is held by another instance
//! (including one in TIME_WAIT), hence EADDRINUSE. ACCESS_DENIED from any other
//! call means the core and the firmware disagree about the instance's state: it
//! is reported as EIO with the status attached, never silently retried.

use core::fmt;

use crate::firmware::{Status, status};

/// POSIX error numbers, with Linux's values (as Python reports them there).
///
/// ```
/// use efisock::Errno;
///
/// assert_eq!(Errno::ECONNREFUSED.code(), 111);
/// assert_eq!(Errno::ECONNREFUSED.to_string(), "[Errno 111] Connection refused");
/// ```
#[allow(missing_docs)] // each variant is the POSIX name; `Errno::message` describes it
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Errno {
    EPERM,
    EIO,
    EBADF,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EINVAL,
    EPIPE,
    ENOTSOCK,
    EDESTADDRREQ,
    EOPNOTSUPP,
    EAFNOSUPPORT,
    EADDRINUSE,
    EADDRNOTAVAIL,
    ENETDOWN,
    ENETUNREACH,
    ECONNABORTED,
    ECONNRESET,
    ENOBUFS,
    EISCONN,
    ENOTCONN,
    ETIMEDOUT,
    ECONNREFUSED,
    EHOSTUNREACH,
    EALREADY,
    EINPROGRESS,
}

impl Errno {
    /// The numeric value on Linux x86_64.
    pub const fn code(self) -> i32 {
        match self {
            Errno::EPERM => 1,
            Errno::EIO => 5,
            Errno::EBADF => 9,
            Errno::EAGAIN => 11,
            Errno::ENOMEM => 12,
            Errno::EACCES => 13,
            Errno::EFAULT => 14,
            Errno::EINVAL => 22,
            Errno::EPIPE => 32,
            Errno::ENOTSOCK => 88,
            Errno::EDESTADDRREQ => 89,
            Errno::EOPNOTSUPP => 95,
            Errno::EAFNOSUPPORT => 97,
            Errno::EADDRINUSE => 98,
            Errno::EADDRNOTAVAIL => 99,
            Errno::ENETDOWN => 100,
            Errno::ENETUNREACH => 101,
            Errno::ECONNABORTED => 103,
            Errno::ECONNRESET => 104,
            Errno::ENOBUFS => 105,
            Errno::EISCONN => 106,
            Errno::ENOTCONN => 107,
            Errno::ETIMEDOUT => 110,
            Errno::ECONNREFUSED => 111,
            Errno::EHOSTUNREACH => 113,
            Errno::EALREADY => 114,
            Errno::EINPROGRESS => 115,
        }
    }

    /// The symbolic name, e.g. `"ECONNRESET"`.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::EIO => "EIO",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EINVAL => "EINVAL",
            Errno::EPIPE => "EPIPE",
            Errno::ENOTSOCK => "ENOTSOCK",
            Errno::EDESTADDRREQ => "EDESTADDRREQ",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EAFNOSUPPORT => "EAFNOSUPPORT",
            Errno::EADDRINUSE => "EADDRINUSE",
            Errno::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            Errno::ENETDOWN => "ENETDOWN",
            Errno::ENETUNREACH => "ENETUNREACH",
            Errno::ECONNABORTED => "ECONNABORTED",
            Errno::ECONNRESET => "ECONNRESET",
            Errno::ENOBUFS => "ENOBUFS",
            Errno::EISCONN => "EISCONN",
            Errno::ENOTCONN => "ENOTCONN",
            Errno::ETIMEDOUT => "ETIMEDOUT",
            Errno::ECONNREFUSED => "ECONNREFUSED",
            Errno::EHOSTUNREACH => "EHOSTUNREACH",
            Errno::EALREADY => "EALREADY",
            Errno::EINPROGRESS => "EINPROGRESS",
        }
    }

    /// The message `strerror` gives on Linux.
    pub const fn message(self) -> &'static str {
        match self {
            Errno::EPERM => "Operation not permitted",
            Errno::EIO => "Input/output error",
            Errno::EBADF => "Bad file descriptor",
            Errno::EAGAIN => "Resource temporarily unavailable",
            Errno::ENOMEM => "Cannot allocate memory",
            Errno::EACCES => "Permission denied",
            Errno::EFAULT => "Bad address",
            Errno::EINVAL => "Invalid argument",
            Errno::EPIPE => "Broken pipe",
            Errno::ENOTSOCK => "Socket operation on non-socket",
            Errno::EDESTADDRREQ => "Destination address required",
            Errno::EOPNOTSUPP => "Operation not supported",
            Errno::EAFNOSUPPORT => "Address family not supported by protocol",
            Errno::EADDRINUSE => "Address already in use",
            Errno::EADDRNOTAVAIL => "Cannot assign requested address",
            Errno::ENETDOWN => "Network is down",
            Errno::ENETUNREACH => "Network is unreachable",
            Errno::ECONNABORTED => "Software caused connection abort",
            Errno::ECONNRESET => "Connection reset by peer",
            Errno::ENOBUFS => "No buffer space available",
            Errno::EISCONN => "Transport endpoint is already connected",
            Errno::ENOTCONN => "Transport endpoint is not connected",
            Errno::ETIMEDOUT => "Connection timed out",
            Errno::ECONNREFUSED => "Connection refused",
            Errno::EHOSTUNREACH => "No route to host",
            Errno::EALREADY => "Operation already in progress",
            Errno::EINPROGRESS => "Operation now in progress",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[Errno {}] {}", self.code(), self.message())
    }
}

/// The firmware function whose status is being interpreted.
#[allow(missing_docs)] // the names are the EFI_TCP4_PROTOCOL / service functions
///
/// ```
/// use efisock::error::FirmwareCall;
///
/// assert_eq!(FirmwareCall::Connect.name(), "Tcp4.Connect");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FirmwareCall {
    GetModeData,
    Configure,
    Routes,
    Connect,
    Accept,
    Transmit,
    Receive,
    Close,
    Cancel,
    Poll,
    CreateChild,
    DestroyChild,
    Ip4Config2,
    BootServices,
}

impl FirmwareCall {
    /// The name used in traces, e.g. `"Tcp4.Connect"`.
    pub const fn name(self) -> &'static str {
        match self {
            FirmwareCall::GetModeData => "Tcp4.GetModeData",
            FirmwareCall::Configure => "Tcp4.Configure",
            FirmwareCall::Routes => "Tcp4.Routes",
            FirmwareCall::Connect => "Tcp4.Connect",
            FirmwareCall::Accept => "Tcp4.Accept",
            FirmwareCall::Transmit => "Tcp4.Transmit",
            FirmwareCall::Receive => "Tcp4.Receive",
            FirmwareCall::Close => "Tcp4.Close",
            FirmwareCall::Cancel => "Tcp4.Cancel",
            FirmwareCall::Poll => "Tcp4.Poll",
            FirmwareCall::CreateChild => "Tcp4ServiceBinding.CreateChild",
            FirmwareCall::DestroyChild => "Tcp4ServiceBinding.DestroyChild",
            FirmwareCall::Ip4Config2 => "Ip4Config2",
            FirmwareCall::BootServices => "BootServices",
        }
    }
}

/// What a failed firmware status means at the socket layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
///
/// ```
/// use efisock::error::{FirmwareCall, StatusMeaning, errno_for};
/// use efisock::firmware::status;
/// use efisock::Errno;
///
/// // The same status means different things at different calls.
/// assert_eq!(
///     errno_for(FirmwareCall::Receive, status::CONNECTION_FIN),
///     StatusMeaning::EndOfStream
/// );
/// assert_eq!(
///     errno_for(FirmwareCall::Transmit, status::CONNECTION_FIN),
///     StatusMeaning::Error(Errno::EPIPE)
/// );
/// ```
pub enum StatusMeaning {
    /// The call or token succeeded.
    Success,
    /// The peer's FIN: end of stream for Receive.
    EndOfStream,
    /// An error with this errno.
    Error(Errno),
}

/// The EFI_STATUS → errno table (see the module docs). `status` is either a
/// call's return value or a completed token's status.
pub fn errno_for(call: FirmwareCall, status: Status) -> StatusMeaning {
    use FirmwareCall as C;
    use StatusMeaning::{EndOfStream, Error as E, Success};
    if status == Status::SUCCESS {
        return Success;
    }
    match (call, status) {
        (C::Receive, status::CONNECTION_FIN) => EndOfStream,
        (_, status::CONNECTION_FIN) => E(Errno::EPIPE),
        (C::Connect, status::CONNECTION_RESET) => E(Errno::ECONNREFUSED),
        (_, status::CONNECTION_RESET) => E(Errno::ECONNRESET),
        (_, status::CONNECTION_REFUSED) => E(Errno::ECONNREFUSED),
        (_, status::PORT_UNREACHABLE) | (_, status::PROTOCOL_UNREACHABLE) => E(Errno::ECONNREFUSED),
        (_, status::NETWORK_UNREACHABLE) => E(Errno::ENETUNREACH),
        (_, status::HOST_UNREACHABLE) => E(Errno::EHOSTUNREACH),
        (_, Status::TIMEOUT) => E(Errno::ETIMEDOUT),
        (_, Status::ABORTED) => E(Errno::ECONNABORTED),
        (_, Status::NO_MAPPING) => E(Errno::ENETDOWN),
        (C::Configure, Status::INVALID_PARAMETER) => E(Errno::EADDRINUSE),
        (C::Configure, Status::ACCESS_DENIED) => E(Errno::EISCONN),
        (C::Configure, Status::OUT_OF_RESOURCES) => E(Errno::EADDRNOTAVAIL),
        (_, Status::OUT_OF_RESOURCES) => E(Errno::ENOBUFS),
        (_, Status::NOT_STARTED) => E(Errno::ENOTCONN),
        (_, Status::UNSUPPORTED) => E(Errno::EOPNOTSUPP),
        _ => E(Errno::EIO),
    }
}

/// What went wrong, in socket terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
///
/// ```
/// use efisock::{Errno, Error, ErrorKind};
///
/// assert_eq!(Error::os(Errno::EAGAIN, "recv").kind(), ErrorKind::Os(Errno::EAGAIN));
/// assert_eq!(Error::timeout("recv").kind(), ErrorKind::Timeout);
/// ```
pub enum ErrorKind {
    /// An OS-style error (Python's `OSError` with this errno).
    Os(Errno),
    /// The socket's timeout (`settimeout`) expired: Python's `socket.timeout`.
    /// Nothing was lost: data that arrives later is still delivered.
    Timeout,
    /// A string was not a valid address (Python's `OSError: illegal IP address string`).
    AddrParse,
}

/// A socket error: the kind, the API or firmware call it came from, and the
/// EFI status when firmware reported one.
#[derive(Debug, Clone, PartialEq, Eq)]
///
/// ```
/// use efisock::error::FirmwareCall;
/// use efisock::firmware::status;
/// use efisock::{Errno, Error};
///
/// let e = Error::from_status(FirmwareCall::Connect, status::CONNECTION_RESET);
/// assert_eq!(e.errno(), Some(Errno::ECONNREFUSED));
/// assert_eq!(e.status(), Some(status::CONNECTION_RESET));
/// assert_eq!(
///     e.to_string(),
///     "[Errno 111] Connection refused (Tcp4.Connect: EFI_CONNECTION_RESET 0x8000000000000069)"
/// );
/// // With `std`, it converts to an io::Error of the closest kind.
/// let io = std::io::Error::from(e);
/// assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
pub struct Error {
    kind: ErrorKind,
    context: &'static str,
    status: Option<Status>,
}

impl Error {
    /// An OS-style error raised by the socket layer itself (no firmware status).
    pub const fn os(errno: Errno, context: &'static str) -> Self {
        Error {
            kind: ErrorKind::Os(errno),
            context,
            status: None,
        }
    }

    /// An error derived from a firmware status through [`errno_for`]. For
    /// statuses that are not errors at that call (SUCCESS, or FIN on Receive)
    /// this yields EIO so that a caller's logic slip is still loud.
    pub fn from_status(call: FirmwareCall, status: Status) -> Self {
        let errno = match errno_for(call, status) {
            StatusMeaning::Error(errno) => errno,
            StatusMeaning::Success | StatusMeaning::EndOfStream => Errno::EIO,
        };
        Error {
            kind: ErrorKind::Os(errno),
            context: call.name(),
            status: Some(status),
        }
    }

    /// The socket timeout expired.
    pub const fn timeout(context: &'static str) -> Self {
        Error {
            kind: ErrorKind::Timeout,
            context,
            status: None,
        }
    }

    /// An address string could not be parsed.
    pub const fn addr_parse(context: &'static str) -> Self {
        Error {
            kind: ErrorKind::AddrParse,
            context,
            status: None,
        }
    }

    /// What went wrong.
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The errno, if this is an OS-style error.
    pub const fn errno(&self) -> Option<Errno> {
        match self.kind {
            ErrorKind::Os(errno) => Some(errno),
            ErrorKind::Timeout | ErrorKind::AddrParse => None,
        }
    }

    /// True for the socket-timeout error.
    pub const fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout)
    }

    /// The firmware status behind this error, if any.
    pub const fn status(&self) -> Option<Status> {
        self.status
    }

    /// The API or firmware call that failed, e.g. `"connect"` or `"Tcp4.Connect"`.
    pub const fn context(&self) -> &'static str {
        self.context
    }
}

impl From<Errno> for Error {
    fn from(errno: Errno) -> Self {
        Error::os(errno, "")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Os(errno) => write!(f, "{errno}")?,
            ErrorKind::Timeout => f.write_str("timed out")?,
            ErrorKind::AddrParse => f.write_str("illegal IP address string")?,
        }
        match (self.context, self.status) {
            ("", None) => Ok(()),
            (context, None) => write!(f, " ({context})"),
            (context, Some(status)) => {
                write!(
                    f,
                    " ({context}: EFI_{} {:#x})",
                    status::name(status),
                    status.0
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// Keeps the whole message (errno, call, EFI status) behind the closest
    /// `std::io::ErrorKind`.
    fn from(error: Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match error.kind {
            ErrorKind::Timeout => K::TimedOut,
            ErrorKind::AddrParse => K::InvalidInput,
            ErrorKind::Os(errno) => match errno {
                Errno::EAGAIN => K::WouldBlock,
                Errno::ECONNRESET => K::ConnectionReset,
                Errno::ECONNREFUSED => K::ConnectionRefused,
                Errno::ECONNABORTED => K::ConnectionAborted,
                Errno::ENOTCONN => K::NotConnected,
                Errno::EADDRINUSE => K::AddrInUse,
                Errno::EADDRNOTAVAIL => K::AddrNotAvailable,
                Errno::EPIPE => K::BrokenPipe,
                Errno::ETIMEDOUT => K::TimedOut,
                Errno::EINVAL => K::InvalidInput,
                _ => K::Other,
            },
        };
        std::io::Error::new(kind, error)
    }
}

/// Result of a socket operation.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use FirmwareCall as C;
    use StatusMeaning::{EndOfStream, Error as E, Success};

    /// The documented table, row by row.
    #[test]
    fn status_table_matches_the_docs() {
        let rows: &[(FirmwareCall, Status, StatusMeaning)] = &[
            (C::Connect, Status::SUCCESS, Success),
            (C::Connect, status::CONNECTION_RESET, E(Errno::ECONNREFUSED)),
            (
                C::Connect,
                status::CONNECTION_REFUSED,
                E(Errno::ECONNREFUSED),
            ),
            (C::Connect, status::PORT_UNREACHABLE, E(Errno::ECONNREFUSED)),
            (
                C::Connect,
                status::PROTOCOL_UNREACHABLE,
                E(Errno::ECONNREFUSED),
            ),
            (C::Connect, Status::TIMEOUT, E(Errno::ETIMEDOUT)),
            (
                C::Connect,
                status::NETWORK_UNREACHABLE,
                E(Errno::ENETUNREACH),
            ),
            (C::Connect, status::HOST_UNREACHABLE, E(Errno::EHOSTUNREACH)),
            (C::Connect, Status::ABORTED, E(Errno::ECONNABORTED)),
            (C::Connect, Status::NO_MAPPING, E(Errno::ENETDOWN)),
            (C::Receive, status::CONNECTION_FIN, EndOfStream),
            (C::Transmit, status::CONNECTION_FIN, E(Errno::EPIPE)),
            (C::Receive, status::CONNECTION_RESET, E(Errno::ECONNRESET)),
            (C::Transmit, status::CONNECTION_RESET, E(Errno::ECONNRESET)),
            (C::Accept, status::CONNECTION_RESET, E(Errno::ECONNRESET)),
            (C::Receive, Status::TIMEOUT, E(Errno::ETIMEDOUT)),
            (C::Receive, Status::ABORTED, E(Errno::ECONNABORTED)),
            (C::Configure, Status::NO_MAPPING, E(Errno::ENETDOWN)),
            (
                C::Configure,
                Status::INVALID_PARAMETER,
                E(Errno::EADDRINUSE),
            ),
            (C::Configure, Status::ACCESS_DENIED, E(Errno::EISCONN)),
            (
                C::Configure,
                Status::OUT_OF_RESOURCES,
                E(Errno::EADDRNOTAVAIL),
            ),
            (C::Transmit, Status::OUT_OF_RESOURCES, E(Errno::ENOBUFS)),
            (C::Receive, Status::NOT_STARTED, E(Errno::ENOTCONN)),
            (C::Cancel, Status::UNSUPPORTED, E(Errno::EOPNOTSUPP)),
            (C::Transmit, Status::ACCESS_DENIED, E(Errno::EIO)),
            (C::Receive, Status::DEVICE_ERROR, E(Errno::EIO)),
        ];
        for &(call, status, expected) in rows {
            assert_eq!(
                errno_for(call, status),
                expected,
                "{call:?} {}",
                status::name(status)
            );
        }
    }

    #[test]
    fn display_names_errno_call_and_status() {
        let e = Error::from_status(C::Connect, status::CONNECTION_RESET);
        assert_eq!(
            e.to_string(),
            "[Errno 111] Connection refused (Tcp4.Connect: EFI_CONNECTION_RESET 0x8000000000000069)"
        );
        assert_eq!(e.errno(), Some(Errno::ECONNREFUSED));
        assert_eq!(Error::timeout("recv").to_string(), "timed out (recv)");
        assert!(Error::timeout("recv").is_timeout());
    }

    #[cfg(feature = "std")]
    #[test]
    fn io_error_kinds_table() {
        use std::io::ErrorKind as K;
        let rows: &[(Error, K)] = &[
            (Error::timeout("recv"), K::TimedOut),
            (Error::os(Errno::EAGAIN, "x"), K::WouldBlock),
            (Error::os(Errno::ECONNRESET, "x"), K::ConnectionReset),
            (Error::os(Errno::ECONNREFUSED, "x"), K::ConnectionRefused),
            (Error::os(Errno::ECONNABORTED, "x"), K::ConnectionAborted),
            (Error::os(Errno::ENOTCONN, "x"), K::NotConnected),
            (Error::os(Errno::EADDRINUSE, "x"), K::AddrInUse),
            (Error::os(Errno::EADDRNOTAVAIL, "x"), K::AddrNotAvailable),
            (Error::os(Errno::EPIPE, "x"), K::BrokenPipe),
            (Error::os(Errno::ETIMEDOUT, "x"), K::TimedOut),
            (Error::os(Errno::EINVAL, "x"), K::InvalidInput),
            (Error::os(Errno::ENOBUFS, "x"), K::Other),
            (Error::os(Errno::EIO, "x"), K::Other),
        ];
        for (error, kind) in rows {
            let io = std::io::Error::from(error.clone());
            assert_eq!(io.kind(), *kind, "{error}");
            assert_eq!(io.to_string(), error.to_string(), "the message is kept");
        }
        let parse = crate::addr::inet_aton("not an address").unwrap_err();
        assert_eq!(std::io::Error::from(parse).kind(), K::InvalidInput);
    }

    #[test]
    fn success_as_error_is_loud_not_silent() {
        let e = Error::from_status(C::Receive, status::CONNECTION_FIN);
        assert_eq!(e.errno(), Some(Errno::EIO));
        assert_eq!(e.status(), Some(status::CONNECTION_FIN));
    }
}
