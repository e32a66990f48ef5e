//! The host side of the smoke test: a bounded TCP echo server on 127.0.0.1.
//!
//! Protocol (matches `efi-target/apps/src/smoke`): the client sends a 4-byte
//! big-endian length `L` and `L` bytes; the server echoes all `4 + L` bytes
//! as they arrive, then shuts down its sending side (FIN) and waits for the
//! client to close. The server binds loopback only, serves at most
//! [`MAX_CONNECTIONS`] connections, and stops at its deadline or on
//! [`EchoServer::stop`], whichever comes first.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::QemuError;

/// Connections served before the server stops by itself.
pub const MAX_CONNECTIONS: usize = 4;
/// Largest accepted `L` (guards against a corrupted header).
pub const MAX_PAYLOAD: u32 = 64 << 20;
const TICK: Duration = Duration::from_millis(50);

/// What one connection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnReport {
    /// The peer's address (10.0.2.2 traffic arrives from 127.0.0.1).
    pub peer: String,
    /// Bytes echoed back.
    pub echoed: u64,
    /// Whether the full `4 + L` message was echoed and FIN sent.
    pub complete: bool,
    /// Whether the client closed its side afterwards (EOF seen).
    pub client_closed: bool,
    /// First I/O error, if any.
    pub error: Option<String>,
}

/// A running echo server.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<ConnReport>>,
}

impl EchoServer {
    /// Binds `127.0.0.1:port` and serves until `lifetime` elapses or `stop`.
    pub fn start(port: u16, lifetime: Duration) -> Result<Self, QemuError> {
        let failed = |what: String| move |source| QemuError::Echo { what, source };
        let listener = TcpListener::bind(("127.0.0.1", port))
            .map_err(failed(format!("bind 127.0.0.1:{port}")))?;
        listener
            .set_nonblocking(true)
            .map_err(failed("set_nonblocking".into()))?;
        let addr = listener.local_addr().map_err(failed("local_addr".into()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let deadline = Instant::now() + lifetime;
        let thread = thread::Builder::new()
            .name("efisock-echo".into())
            .spawn(move || serve(listener, &flag, deadline))
            .map_err(failed("spawn".into()))?;
        Ok(Self { addr, stop, thread })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and returns one report per connection served.
    pub fn stop(self) -> Vec<ConnReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| {
            vec![ConnReport {
                error: Some("echo server thread panicked".into()),
                ..ConnReport::default()
            }]
        })
    }
}

fn serve(listener: TcpListener, stop: &AtomicBool, deadline: Instant) -> Vec<ConnReport> {
    let mut reports = Vec::new();
    while reports.len() < MAX_CONNECTIONS && !stop.load(Ordering::Relaxed) {
        if Instant::now() >= deadline {
            break;
        }
        match listener.accept() {
            Ok((s, peer)) => reports.push(echo_one(s, peer, stop, deadline)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
            Err(e) => {
                reports.push(ConnReport {
                    error: Some(format!("accept: {e}")),
                    ..ConnReport::default()
                });
                thread::sleep(TICK);
            }
        }
    }
    reports
}

fn echo_one(
    mut s: TcpStream,
    peer: SocketAddr,
    stop: &AtomicBool,
    deadline: Instant,
) -> ConnReport {
    let mut r = ConnReport {
        peer: peer.to_string(),
        ..ConnReport::default()
    };
    if let Err(e) = s
        .set_nonblocking(false)
        .and_then(|()| s.set_read_timeout(Some(TICK)))
    {
        r.error = Some(format!("socket setup: {e}"));
        return r;
    }
    let mut header = Vec::with_capacity(4);
    let mut expected: Option<u64> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            r.error
                .get_or_insert_with(|| "stopped before the client closed".into());
            return r;
        }
        let n = match s.read(&mut buf) {
            Ok(0) => {
                r.client_closed = true;
                return r;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                r.error = Some(format!("read: {e}"));
                return r;
            }
        };
        if r.complete {
            // Data after the full message: not part of the protocol.
            r.error = Some(format!("{n} unexpected bytes after the message"));
            return r;
        }
        let mut chunk = &buf[..n];
        if let Some(limit) = expected {
            let room = usize::try_from(limit - r.echoed).unwrap_or(usize::MAX);
            chunk = &chunk[..chunk.len().min(room)];
        }
        if let Err(e) = s.write_all(chunk) {
            r.error = Some(format!("write: {e}"));
            return r;
        }
        r.echoed += chunk.len() as u64;
        if expected.is_none() {
            let take = (4 - header.len()).min(chunk.len());
            header.extend_from_slice(&chunk[..take]);
            if header.len() == 4 {
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                if len > MAX_PAYLOAD {
                    r.error = Some(format!("length header {len} exceeds {MAX_PAYLOAD}"));
                    return r;
                }
                expected = Some(4 + u64::from(len));
            }
        }
        if expected == Some(r.echoed) && !r.complete {
            r.complete = true;
            if let Err(e) = s.shutdown(Shutdown::Write) {
                r.error = Some(format!("shutdown: {e}"));
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_message_then_fin() {
        let srv = EchoServer::start(0, Duration::from_secs(10)).unwrap();
        let mut c = TcpStream::connect(srv.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut msg = 5u32.to_be_bytes().to_vec();
        msg.extend_from_slice(b"hello");
        // Send in two pieces to cross the header boundary.
        c.write_all(&msg[..2]).unwrap();
        thread::sleep(Duration::from_millis(20));
        c.write_all(&msg[2..]).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap(); // ends at the server's FIN
        assert_eq!(back, msg);
        drop(c);
        // Let the server read our FIN before it is told to stop: a stop that
        // wins that race reports the connection as cut (seen under load).
        thread::sleep(Duration::from_millis(300));
        let reports = srv.stop();
        assert_eq!(reports.len(), 1);
        assert!(reports[0].complete);
        assert_eq!(reports[0].echoed, 9);
        assert!(reports[0].client_closed, "{reports:?}");
        assert_eq!(reports[0].error, None);
    }

    #[test]
    fn stops_by_itself_at_deadline() {
        let t = Instant::now();
        let srv = EchoServer::start(0, Duration::from_millis(200)).unwrap();
        thread::sleep(Duration::from_millis(400));
        assert!(srv.stop().is_empty());
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn oversized_header_is_rejected() {
        let srv = EchoServer::start(0, Duration::from_secs(10)).unwrap();
        let mut c = TcpStream::connect(srv.addr()).unwrap();
        c.write_all(&u32::MAX.to_be_bytes()).unwrap();
        let mut back = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.read_to_end(&mut back);
        drop(c);
        let reports = srv.stop();
        assert!(reports[0].error.as_deref().unwrap().contains("exceeds"));
        assert!(!reports[0].complete);
    }
}
