//! Code shared by the two HTTP/1.1 example applications
//! (`http_client.rs`, `http_server.rs`), included by each with `#[path]`.
//!
//! Why a shared directory instead of the `efisock-efi-apps` library: the
//! library is `no_std` (it also backs the no_std smoke app), while these
//! examples are std applications; keeping their code next to them keeps the
//! library's contract unchanged. Everything except `guest` is plain std code, generic
//! over `Read + Write`, so its unit tests run on the host against real
//! loopback sockets (`cargo test -p efisock-efi-apps --features http-apps`).

pub mod body;
pub mod fnv;
#[cfg(target_os = "uefi")]
pub mod guest;
pub mod opts;
pub mod wire;

use std::io::{self, Read, Write};
use std::time::Duration;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: no platform, or a bad options file.
pub const EXIT_SETUP: u8 = 1;
/// Exit code: DHCP failed.
pub const EXIT_DHCP: u8 = 2;
/// Exit code: a socket/network operation failed (socket, bind, listen).
pub const EXIT_NET: u8 = 3;
/// Exit code: an exchange failed or a body did not verify.
pub const EXIT_VERIFY: u8 = 4;
/// Exit code: panic (see `guest::install_panic_hook`).
pub const EXIT_PANIC: u8 = 5;
/// Exit code: the server's deadline passed before its request quota.
pub const EXIT_DEADLINE: u8 = 6;

/// A connected byte stream the examples can drive: efisock sockets in the
/// guest, `std::net::TcpStream` in host tests.
pub trait Stream: Read + Write {
    /// Bounds every later blocking read/write.
    fn set_timeout(&self, d: Duration) -> io::Result<()>;
    /// Closes gracefully (everything written is delivered first).
    fn finish(self) -> io::Result<()>;
}

#[cfg(test)]
impl Stream for std::net::TcpStream {
    fn set_timeout(&self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }

    fn finish(self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}
