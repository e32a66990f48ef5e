//! EFI_STATUS values that `uefi-raw` does not name.
//!
//! The UEFI specification (Appendix D) defines the network error codes
//! 100..=106; EDK2's TCP driver reports connection outcomes with them.

use uefi_raw::Status;

const fn error(code: usize) -> Status {
    Status(Status::ERROR_BIT | code)
}

/// EFI_NETWORK_UNREACHABLE (ICMP network unreachable).
pub const NETWORK_UNREACHABLE: Status = error(100);
/// EFI_HOST_UNREACHABLE (ICMP host unreachable).
pub const HOST_UNREACHABLE: Status = error(101);
/// EFI_PROTOCOL_UNREACHABLE (ICMP protocol unreachable).
pub const PROTOCOL_UNREACHABLE: Status = error(102);
/// EFI_PORT_UNREACHABLE (ICMP port unreachable).
pub const PORT_UNREACHABLE: Status = error(103);
/// EFI_CONNECTION_FIN: the peer closed its sending side (FIN received).
pub const CONNECTION_FIN: Status = error(104);
/// EFI_CONNECTION_RESET: an RST arrived (also a closed port on Connect).
pub const CONNECTION_RESET: Status = error(105);
/// EFI_CONNECTION_REFUSED: RST in SYN_RCVD after a simultaneous open.
pub const CONNECTION_REFUSED: Status = error(106);

/// A short, stable name for a status, for traces and error messages.
pub fn name(status: Status) -> &'static str {
    match status {
        Status::SUCCESS => "SUCCESS",
        Status::LOAD_ERROR => "LOAD_ERROR",
        Status::INVALID_PARAMETER => "INVALID_PARAMETER",
        Status::UNSUPPORTED => "UNSUPPORTED",
        Status::BAD_BUFFER_SIZE => "BAD_BUFFER_SIZE",
        Status::BUFFER_TOO_SMALL => "BUFFER_TOO_SMALL",
        Status::NOT_READY => "NOT_READY",
        Status::DEVICE_ERROR => "DEVICE_ERROR",
        Status::OUT_OF_RESOURCES => "OUT_OF_RESOURCES",
        Status::NOT_FOUND => "NOT_FOUND",
        Status::ACCESS_DENIED => "ACCESS_DENIED",
        Status::NO_MAPPING => "NO_MAPPING",
        Status::TIMEOUT => "TIMEOUT",
        Status::NOT_STARTED => "NOT_STARTED",
        Status::ALREADY_STARTED => "ALREADY_STARTED",
        Status::ABORTED => "ABORTED",
        Status::ICMP_ERROR => "ICMP_ERROR",
        Status::PROTOCOL_ERROR => "PROTOCOL_ERROR",
        NETWORK_UNREACHABLE => "NETWORK_UNREACHABLE",
        HOST_UNREACHABLE => "HOST_UNREACHABLE",
        PROTOCOL_UNREACHABLE => "PROTOCOL_UNREACHABLE",
        PORT_UNREACHABLE => "PORT_UNREACHABLE",
        CONNECTION_FIN => "CONNECTION_FIN",
        CONNECTION_RESET => "CONNECTION_RESET",
        CONNECTION_REFUSED => "CONNECTION_REFUSED",
        _ => "UNKNOWN_STATUS",
    }
}
