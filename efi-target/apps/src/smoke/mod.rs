//! The network smoke test: DHCP, then one TCP echo exchange with a host-side
//! server, driven through the raw TCP4 toolkit (`efisock::raw`) only.
//!
//! It proves the backend end to end and *measures* real firmware behaviour
//! (statuses, Poll counts, timings, segment sizes) that calibrates the
//! simulator; see `efi-target/OBSERVED.md`. It is generic over [`Platform`],
//! so it contains no firmware-specific code.
//!
//! Wire protocol with the host echo server (`qemu-harness/src/echo.rs`): the
//! guest sends a 4-byte big-endian length `L` followed by `L` pattern bytes;
//! the server echoes all `4 + L` bytes, then shuts down its sending side (FIN)
//! and closes once the guest closes. Every wait is bounded by a Poll count and
//! a time limit.

mod addressing;
mod dhcp;
mod exchange;
mod probe;

use alloc::string::String;

use efisock::firmware::{BootServices, Platform, Status};
use efisock::raw::WaitLimit;

use crate::json::JsonObject;

/// Exit code: everything worked and the echo matched.
pub const EXIT_OK: u8 = 0;
/// Exit code: the platform (TCP4 service, Ip4Config2, clock) was not found.
pub const EXIT_NO_PLATFORM: u8 = 1;
/// Exit code: no DHCP address within the time limit.
pub const EXIT_DHCP: u8 = 2;
/// Exit code: a TCP4 call or completion failed or timed out.
pub const EXIT_TCP: u8 = 3;
/// Exit code: the echoed bytes differ from what was sent.
pub const EXIT_MISMATCH: u8 = 4;
/// Exit code: the application panicked.
pub const EXIT_PANIC: u8 = 5;

/// Parameters of one smoke run.
#[derive(Debug, Clone)]
pub struct SmokeConfig {
    /// The echo server's address (slirp's host alias 10.0.2.2 in QEMU).
    pub remote: [u8; 4],
    /// The echo server's port.
    pub port: u16,
    /// Payload bytes after the 4-byte length header.
    pub payload_len: u32,
    /// Bytes per Receive token.
    pub rx_buffer: u32,
    /// Limit for obtaining a DHCP address.
    pub dhcp_timeout_ms: u64,
    /// Limit for each token's completion.
    pub op_timeout_ms: u64,
    /// Limit on Poll calls per token.
    pub max_polls: u64,
}

impl SmokeConfig {
    /// The run both smoke applications make inside QEMU: the echo server on
    /// slirp's host alias 10.0.2.2 at `port`, 6000 payload bytes, 2 KiB
    /// Receives, 20 s for DHCP, 10 s and 5 000 000 Polls per token.
    pub fn qemu(port: u16) -> Self {
        Self {
            remote: [10, 0, 2, 2],
            port,
            payload_len: 6000,
            rx_buffer: 2048,
            dhcp_timeout_ms: 20_000,
            op_timeout_ms: 10_000,
            max_polls: 5_000_000,
        }
    }

    /// The bound of every token wait.
    fn wait_limit(&self) -> WaitLimit {
        WaitLimit {
            max_polls: self.max_polls,
            max_ns: self.op_timeout_ms * 1_000_000,
        }
    }

    /// The echo server's address.
    fn peer(&self) -> core::net::SocketAddrV4 {
        core::net::SocketAddrV4::new(self.remote.into(), self.port)
    }
}

/// The result of a run: an exit code (the `EXIT_*` constants) and the
/// summary object printed as `EFISOCK-RESULT`.
#[derive(Debug)]
pub struct SmokeOutcome {
    /// One of the `EXIT_*` constants.
    pub code: u8,
    /// The summary as a JSON object.
    pub summary: String,
}

/// Something the run reports as it goes: `(kind, json)`, printed by the
/// application as `EFISOCK-<kind> <json>`.
pub type Emit<'a> = &'a mut dyn FnMut(&str, &str);

/// Runs DHCP and the echo exchange, emitting one `STEP` line per step.
pub fn run<P: Platform + Clone>(p: &P, cfg: &SmokeConfig, emit: Emit<'_>) -> SmokeOutcome {
    let boot = p.boot();
    let t0 = boot.monotonic_ns();
    let mut summary = JsonObject::new();
    // Observation only, and before DHCP on purpose: a UseDefaultAddress
    // Configure without a lease is what it measures (it also turns DHCP on).
    let (step, unmapped) = addressing::before_lease(p, cfg);
    emit("STEP", &step);
    let code = match dhcp::dhcp(p, cfg, emit) {
        Err(()) => EXIT_DHCP,
        Ok(addr) => {
            if let Some(child) = unmapped {
                emit("STEP", &addressing::unmapped_after_lease(p, cfg, child));
            }
            summary.str("address", &fmt_ip(addr));
            let mut exchange = exchange::Exchange::new(p, cfg);
            let code = exchange.run(emit);
            if code == EXIT_OK {
                // Observation only (does not change the exit code): what a
                // Connect to a port nobody listens on completes with.
                emit("STEP", &probe::closed_port_probe(p, cfg));
                emit("STEP", &addressing::after_lease(p, cfg));
            }
            exchange.summarise(&mut summary);
            code
        }
    };
    summary
        .u64("total_ms", (boot.monotonic_ns() - t0) / 1_000_000)
        .u64("code", u64::from(code))
        .bool("ok", code == EXIT_OK);
    SmokeOutcome {
        code,
        summary: summary.finish(),
    }
}

fn fmt_ip(a: [u8; 4]) -> String {
    alloc::format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

fn st(s: Status) -> &'static str {
    efisock::firmware::status::name(s)
}

/// The deterministic test pattern: length header, then `i*7+3 mod 251`.
pub fn fill_payload(buf: &mut [u8], payload_len: u32) {
    let (head, body) = buf.split_at_mut(4);
    head.copy_from_slice(&payload_len.to_be_bytes());
    for (i, b) in body.iter_mut().enumerate() {
        *b = ((i * 7 + 3) % 251) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_length_header_and_pattern() {
        let mut b = [0u8; 10];
        fill_payload(&mut b, 6);
        assert_eq!(&b[..4], &[0, 0, 0, 6]);
        assert_eq!(&b[4..], &[3, 10, 17, 24, 31, 38]);
    }
}
