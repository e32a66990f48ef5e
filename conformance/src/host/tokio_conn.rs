//! One TCP connection of the tokio host, seen by a peer as a [`PeerIo`].
//!
//! Peers are sans-IO and never block, so this adapter keeps two buffers and
//! moves bytes between them and the socket with nonblocking
//! `try_read`/`try_write` in [`TcpPeerIo::pump`]; the connection task
//! ([`drive`]) alternates pump, `peer.poll`, pump, and a wait for socket
//! readiness, the peer's wake time, or the host's stop signal.
//!
//! `send_queue()` must mean "sent but not acknowledged": the source-rst peer
//! resets only when it is 0, and a reset discards whatever the kernel has
//! not delivered yet. So it is the bytes still in this adapter's buffer plus,
//! on Linux, the kernel's unacknowledged bytes (`TIOCOUTQ`, which for TCP is
//! `write_seq - snd_una`). Elsewhere only the adapter's buffer counts, and a
//! reset right after a large send can overtake data still in the kernel;
//! readiness gives no signal for ACKs, so while that queue is non-empty the
//! task re-polls every [`ACK_POLL`].

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::peers::{Peer, PeerConnState, PeerIo};

/// Most received bytes buffered for the peer; beyond it the socket is not
/// read, so the kernel's window closes (what `accept-hold` relies on).
pub const RX_CAP: usize = 256 * 1024;
/// Most bytes a peer may queue here before `send` pushes back.
pub const TX_CAP: usize = 64 * 1024;
/// Re-poll interval while the kernel still holds unacknowledged bytes.
pub const ACK_POLL: Duration = Duration::from_millis(2);

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Closed in both directions.
    Closed,
    /// Reset (by either side) or timed out.
    Reset,
    /// Still open when the host stopped.
    CutAtStop,
}

/// A [`PeerIo`] over a tokio [`TcpStream`].
#[derive(Debug)]
pub struct TcpPeerIo {
    stream: Option<TcpStream>,
    epoch: Instant,
    local: SocketAddrV4,
    peer: SocketAddrV4,
    rx: VecDeque<u8>,
    tx: VecDeque<u8>,
    eof: bool,
    close_requested: bool,
    fin_sent: bool,
    state: PeerConnState,
    wake_ns: Option<u64>,
    error: Option<String>,
}

fn v4(a: io::Result<SocketAddr>) -> SocketAddrV4 {
    match a {
        Ok(SocketAddr::V4(a)) => a,
        // The host binds IPv4 loopback only; anything else is reported as
        // the unspecified address rather than guessed.
        _ => SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
    }
}

impl TcpPeerIo {
    /// Wraps an established stream; `epoch` is the host's time origin.
    pub fn new(stream: TcpStream, epoch: Instant) -> Self {
        let local = v4(stream.local_addr());
        let peer = v4(stream.peer_addr());
        // Small segments (headers, reports) should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Self {
            stream: Some(stream),
            epoch,
            local,
            peer,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            eof: false,
            close_requested: false,
            fin_sent: false,
            state: PeerConnState::Established,
            wake_ns: None,
            error: None,
        }
    }

    /// A connection that never came up (connect refused or timed out), so a
    /// peer can still observe its terminal state.
    pub fn failed(peer: SocketAddrV4, state: PeerConnState, epoch: Instant) -> Self {
        Self {
            stream: None,
            epoch,
            local: SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
            peer,
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            eof: true,
            close_requested: false,
            fin_sent: false,
            state,
            wake_ns: None,
            error: None,
        }
    }

    /// An unexpected I/O error (not a reset), if one ended the connection.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn fail(&mut self, e: &io::Error) {
        self.state = match e.kind() {
            io::ErrorKind::TimedOut => PeerConnState::TimedOut,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => PeerConnState::Reset,
            _ => {
                self.error = Some(format!("{}: {e}", self.peer));
                PeerConnState::Reset
            }
        };
        self.stream = None;
        self.tx.clear();
    }

    /// Moves bytes between the socket and the buffers without blocking,
    /// sends FIN once a requested close has flushed, and updates the state.
    /// Returns whether anything moved or changed (then the peer must be
    /// polled again: it may have been waiting for send space or input).
    pub fn pump(&mut self) -> bool {
        let before = (self.rx.len(), self.tx.len(), self.state, self.fin_sent);
        self.pump_inner();
        before != (self.rx.len(), self.tx.len(), self.state, self.fin_sent)
    }

    fn pump_inner(&mut self) {
        let Some(stream) = self.stream.as_ref() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut failure = None;
        while !self.eof && self.rx.len() < RX_CAP {
            let room = (RX_CAP - self.rx.len()).min(buf.len());
            match stream.try_read(&mut buf[..room]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.rx.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // A reset that arrives while the receive buffer is full (a service
        // that does not read) is not seen by reading; the socket's pending
        // error shows it. (Only then: reading first delivers the data that
        // arrived before the reset.)
        if failure.is_none() && !self.eof && self.rx.len() >= RX_CAP {
            if let Ok(Some(e)) = stream.take_error() {
                failure = Some(e);
            }
        }
        while failure.is_none() && !self.tx.is_empty() {
            let (head, _) = self.tx.as_slices();
            match stream.try_write(head) {
                Ok(n) => {
                    self.tx.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            self.fail(&e);
            return;
        }
        if self.close_requested && self.tx.is_empty() && !self.fin_sent {
            if let Err(e) = SockRef::from(stream).shutdown(std::net::Shutdown::Write) {
                self.fail(&e);
                return;
            }
            self.fin_sent = true;
        }
        self.state = match (self.fin_sent, self.eof) {
            (true, true) => PeerConnState::Closed,
            (_, true) => PeerConnState::PeerFin,
            _ => PeerConnState::Established,
        };
    }

    /// Bytes the kernel holds unacknowledged (Linux; 0 elsewhere).
    fn kernel_unacked(&self) -> usize {
        #[cfg(target_os = "linux")]
        if let Some(s) = &self.stream {
            use std::os::fd::AsRawFd;
            let mut n: libc::c_int = 0;
            // SAFETY: the fd belongs to a live socket owned by `s` for the
            // whole call, and TIOCOUTQ writes exactly one c_int to `n`.
            let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
            if r == 0 && n > 0 {
                return n as usize;
            }
        }
        0
    }

    /// What to wait for next: socket interest, and whether timed re-polls
    /// are needed (the kernel's unacknowledged bytes, or a reset while the
    /// receive buffer is full and the socket is not being read).
    fn interest(&self) -> (Option<Interest>, bool) {
        if self.stream.is_none() {
            return (None, false);
        }
        let read = !self.eof && self.rx.len() < RX_CAP;
        let write = !self.tx.is_empty();
        let interest = match (read, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        let unread_full = !self.eof && self.rx.len() >= RX_CAP;
        (
            interest,
            unread_full || (self.tx.is_empty() && self.kernel_unacked() > 0),
        )
    }
}

impl PeerIo for TcpPeerIo {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn state(&self) -> PeerConnState {
        self.state
    }

    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.rx.len());
        for (dst, src) in buf.iter_mut().zip(self.rx.drain(..n)) {
            *dst = src;
        }
        n
    }

    fn send(&mut self, data: &[u8]) -> usize {
        if self.stream.is_none() || self.close_requested {
            return 0;
        }
        let n = data.len().min(TX_CAP - self.tx.len());
        self.tx.extend(&data[..n]);
        n
    }

    fn send_queue(&self) -> usize {
        // The kernel counts a sent FIN in its queue (`write_seq` moves past
        // it) until it is acknowledged; it is not a byte.
        let kernel = self.kernel_unacked();
        let kernel = if self.fin_sent {
            kernel.saturating_sub(1)
        } else {
            kernel
        };
        self.tx.len() + kernel
    }

    fn close(&mut self) {
        self.close_requested = true;
    }

    fn abort(&mut self) {
        if let Some(s) = self.stream.take() {
            // Linger 0 makes the drop below send RST and discard queued data.
            let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        self.tx.clear();
        self.state = PeerConnState::Reset;
    }

    fn local_addr(&self) -> SocketAddrV4 {
        self.local
    }

    fn peer_addr(&self) -> SocketAddrV4 {
        self.peer
    }

    fn wake_at(&mut self, t_ns: u64) {
        self.wake_ns = Some(self.wake_ns.map_or(t_ns, |w| w.min(t_ns)));
    }
}

/// Drives `peer` over `io` until the connection ends or `stop` turns true;
/// `after_poll` runs after every `peer.poll` (connect-back requests).
pub async fn drive<P: Peer + ?Sized>(
    peer: &mut P,
    io: &mut TcpPeerIo,
    stop: &mut watch::Receiver<bool>,
    mut after_poll: impl FnMut(&mut P),
) -> Ending {
    loop {
        io.pump();
        io.wake_ns = None;
        peer.poll(io);
        after_poll(peer);
        let progressed = io.pump();
        if io.state.is_terminal() {
            // One last look at the final state, as the contract promises.
            peer.poll(io);
            after_poll(peer);
            return if io.state == PeerConnState::Closed {
                Ending::Closed
            } else {
                Ending::Reset
            };
        }
        if *stop.borrow() {
            return Ending::CutAtStop;
        }
        if progressed {
            // Buffers moved after the poll (e.g. send space opened): poll
            // again before waiting, yielding so other connections run too.
            tokio::task::yield_now().await;
            continue;
        }
        let (interest, ack_poll) = io.interest();
        let wake = io.wake_ns.map(|t| {
            let now = io.now_ns();
            tokio::time::Instant::now() + Duration::from_nanos(t.saturating_sub(now))
        });
        let ready = async {
            match (interest, io.stream.as_ref()) {
                (Some(i), Some(s)) => s.ready(i).await.map(|_| ()),
                _ => std::future::pending().await,
            }
        };
        let woke = tokio::select! {
            r = ready => r.err().map(Woke::Error),
            () = sleep_opt(wake) => None,
            () = tokio::time::sleep(ACK_POLL), if ack_poll => None,
            r = stop.changed() => r.is_err().then_some(Woke::StopGone),
        };
        match woke {
            Some(Woke::Error(e)) => io.fail(&e),
            // The host is gone without a stop signal: stop as well.
            Some(Woke::StopGone) => return Ending::CutAtStop,
            None => {}
        }
    }
}

enum Woke {
    Error(io::Error),
    StopGone,
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
