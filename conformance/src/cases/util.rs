//! Small helpers the cases share: connecting to a service, bounded reads.

use std::time::Duration;

use efisock::{Errno, Socket};

use crate::pattern::{Fnv64, fill_pattern};
use crate::runner::{CaseError, CaseResult, Context};
use crate::target::SocketTarget;

/// The timeout every case socket gets, so that no case can hang: a failing
/// wait ends as a timeout error that names the call.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// A new socket with [`CASE_TIMEOUT`].
pub fn socket<T: SocketTarget>(t: &T) -> Result<Socket<T::P>, CaseError> {
    let s = t.net().socket().context("socket()")?;
    s.settimeout(Some(CASE_TIMEOUT)).context("settimeout")?;
    Ok(s)
}

/// A socket connected to the peer service on `port`.
pub fn connect<T: SocketTarget>(t: &T, port: u16) -> Result<Socket<T::P>, CaseError> {
    let s = socket(t)?;
    s.connect(t.peer(port))
        .context(format_args!("connect to {}", t.peer(port)))?;
    Ok(s)
}

/// Reads exactly `n` bytes (fails on EOF or error before that).
pub fn recv_exact<P: efisock::firmware::Platform + 'static>(
    s: &Socket<P>,
    n: usize,
) -> Result<Vec<u8>, CaseError> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let chunk = s
            .recv(n - out.len())
            .context(format_args!("recv after {} of {n} bytes", out.len()))?;
        if chunk.is_empty() {
            return Err(CaseError::new(format!(
                "EOF after {} of {n} bytes",
                out.len()
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads until EOF, at most `limit` bytes; returns count and checksum, and
/// whether the bytes were the pattern from offset 0.
pub fn recv_to_eof<P: efisock::firmware::Platform + 'static>(
    s: &Socket<P>,
    limit: u64,
) -> Result<(u64, u64, bool), CaseError> {
    let mut sum = Fnv64::new();
    let mut is_pattern = true;
    let mut expected = vec![0u8; 65536];
    loop {
        let chunk = s
            .recv(65536)
            .context(format_args!("recv after {} bytes", sum.len()))?;
        if chunk.is_empty() {
            return Ok((sum.len(), sum.value(), is_pattern));
        }
        fill_pattern(sum.len(), &mut expected[..chunk.len()]);
        is_pattern &= expected[..chunk.len()] == chunk[..];
        sum.update(&chunk);
        if sum.len() > limit {
            return Err(CaseError::new(format!(
                "more than {limit} bytes before EOF"
            )));
        }
    }
}

/// `n` bytes of the pattern from offset 0.
pub fn pattern(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fill_pattern(0, &mut v);
    v
}

/// Fails unless `result` is the error `errno`.
pub fn expect_errno<T: std::fmt::Debug>(
    result: efisock::Result<T>,
    errno: Errno,
    what: &str,
) -> CaseResult {
    match result {
        Err(e) if e.errno() == Some(errno) => Ok(()),
        Err(e) => Err(CaseError::new(format!(
            "{what}: expected {}, got {e}",
            errno.name()
        ))),
        Ok(v) => Err(CaseError::new(format!(
            "{what}: expected {}, got Ok({v:?})",
            errno.name()
        ))),
    }
}
