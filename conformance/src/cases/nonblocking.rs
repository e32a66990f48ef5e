//! Nonblocking sockets and backpressure.

use std::time::Duration;

use efisock::Errno;

use super::util::{connect, expect_errno, pattern, recv_exact, socket};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "nonblocking",
            name: "connect_inprogress_already_isconn",
            about: "EINPROGRESS, then EALREADY, writable when done, then EISCONN",
            run: connect_inprogress::<T>,
        },
        Case {
            group: "nonblocking",
            name: "connect_refused_via_so_error",
            about: "a refused nonblocking connect shows as writable with SO_ERROR 111",
            run: connect_refused_so_error::<T>,
        },
        Case {
            group: "nonblocking",
            name: "recv_eagain",
            about: "recv with nothing queued is EAGAIN",
            run: recv_eagain::<T>,
        },
        Case {
            group: "nonblocking",
            name: "accept_eagain",
            about: "accept with no pending connection is EAGAIN",
            run: accept_eagain::<T>,
        },
        Case {
            group: "nonblocking",
            name: "send_eagain_when_full",
            about: "send against a peer that never reads ends in EAGAIN, bounded",
            run: send_eagain_when_full::<T>,
        },
        Case {
            group: "nonblocking",
            name: "recv_after_eagain_gets_data",
            about: "data arriving after EAGAIN is delivered whole",
            run: recv_after_eagain::<T>,
        },
        Case {
            group: "backpressure",
            name: "sendall_timeout_against_hold",
            about: "sendall to a peer that never reads times out; nothing hangs",
            run: sendall_timeout_against_hold::<T>,
        },
        Case {
            group: "backpressure",
            name: "hold_not_writable",
            about: "select does not report writable once the send budget is full",
            run: hold_not_writable::<T>,
        },
        Case {
            group: "backpressure",
            name: "sendall_slow_reader",
            about: "sendall 512 KiB to a reader slowed by the link; checksum matches",
            run: sendall_slow_reader::<T>,
        },
        Case {
            group: "timeout",
            name: "net_wait_deadline_ends_blocking_recv",
            about: "a blocking recv without a timeout ends at the Net's wait deadline, data intact",
            run: net_wait_deadline::<T>,
        },
        Case {
            group: "timeout",
            name: "recv_timeout_keeps_late_data",
            about: "recv times out, then data arriving later is not lost",
            run: recv_timeout_keeps_late_data::<T>,
        },
    ]
}

fn connect_inprogress<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = t.net().socket().context("socket")?;
    s.setblocking(false);
    expect_errno(
        s.connect(t.peer(ports::ECHO)),
        Errno::EINPROGRESS,
        "first connect",
    )?;
    expect_errno(
        s.connect(t.peer(ports::ECHO)),
        Errno::EALREADY,
        "second connect",
    )?;
    let ready = t
        .net()
        .select(&[], &[&s], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    ensure_eq!(ready.write, vec![s.fileno()], "writable once connected");
    ensure_eq!(s.so_error(), 0, "SO_ERROR after success");
    expect_errno(
        s.connect(t.peer(ports::ECHO)),
        Errno::EISCONN,
        "connect when connected",
    )?;
    ensure_eq!(s.send(b"nb").context("send")?, 2, "send");
    Ok(())
}

fn connect_refused_so_error<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = t.net().socket().context("socket")?;
    s.setblocking(false);
    expect_errno(
        s.connect(t.peer(ports::REFUSED)),
        Errno::EINPROGRESS,
        "connect",
    )?;
    let ready = t
        .net()
        .select(&[], &[&s], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    ensure_eq!(ready.write, vec![s.fileno()], "writable once refused");
    ensure_eq!(s.so_error(), Errno::ECONNREFUSED.code(), "SO_ERROR");
    Ok(())
}

fn recv_eagain<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.setblocking(false);
    expect_errno(s.recv(10), Errno::EAGAIN, "recv")
}

fn accept_eagain<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = socket(t)?;
    s.listen(1).context("listen")?;
    s.setblocking(false);
    expect_errno(s.accept().map(|_| ()), Errno::EAGAIN, "accept")
}

/// Sends nonblocking until EAGAIN; returns the bytes accepted.
fn fill<P: efisock::firmware::Platform + 'static>(
    s: &efisock::Socket<P>,
) -> Result<usize, CaseError> {
    let chunk = pattern(64 * 1024);
    let mut total = 0;
    for _ in 0..4096 {
        match s.send(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.errno() == Some(Errno::EAGAIN) => return Ok(total),
            Err(e) => return Err(CaseError::new(format!("send after {total} bytes: {e}"))),
        }
    }
    Err(CaseError::new(format!("no EAGAIN after {total} bytes")))
}

fn send_eagain_when_full<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ACCEPT_HOLD)?;
    s.setblocking(false);
    let first = fill(&s)?;
    ensure!(first > 0, "some bytes accepted before EAGAIN");
    t.net().sleep(Duration::from_millis(500));
    let more = fill(&s)?;
    ensure!(
        first + more < 64 << 20,
        "send accepted {} bytes against a peer that never reads",
        first + more
    );
    Ok(())
}

fn recv_after_eagain<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.setblocking(false);
    expect_errno(s.recv(10), Errno::EAGAIN, "recv before data")?;
    s.send(b"late").context("send")?;
    s.setblocking(true);
    s.settimeout(Some(Duration::from_secs(10)))
        .context("settimeout")?;
    ensure_eq!(recv_exact(&s, 4)?, b"late".to_vec(), "data after EAGAIN");
    Ok(())
}

fn sendall_timeout_against_hold<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ACCEPT_HOLD)?;
    s.settimeout(Some(Duration::from_millis(500)))
        .context("settimeout")?;
    match s.sendall(&pattern(32 << 20)) {
        Err(e) if e.is_timeout() => Ok(()),
        other => Err(CaseError::new(format!("expected a timeout, got {other:?}"))),
    }
}

fn hold_not_writable<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ACCEPT_HOLD)?;
    let ready = t
        .net()
        .select(&[], &[&s], &[], Some(Duration::ZERO))
        .context("select")?;
    ensure_eq!(ready.write, vec![s.fileno()], "writable when fresh");
    s.setblocking(false);
    // The firmware keeps taking data into its own send buffer for a while;
    // fill until a round after a pause accepts nothing.
    // Saturated means two rounds in a row, half a second apart, took nothing.
    let mut idle_rounds = 0;
    for _ in 0..256 {
        idle_rounds = if fill(&s)? == 0 { idle_rounds + 1 } else { 0 };
        if idle_rounds == 2 {
            break;
        }
        t.net().sleep(Duration::from_millis(500));
    }
    let saturated = idle_rounds == 2;
    ensure!(
        saturated,
        "the send path never filled up against a peer that never reads"
    );
    let ready = t
        .net()
        .select(&[], &[&s], &[], Some(Duration::from_millis(200)))
        .context("select")?;
    ensure!(ready.write.is_empty(), "not writable with the budget full");
    Ok(())
}

fn sendall_slow_reader<T: SocketTarget>(t: &mut T) -> CaseResult {
    // A slow path (2 Mbit/s, 20 ms each way) makes the sink a slow reader
    // where the target controls its network.
    t.slow_down_links(2_000_000, 20_000_000);
    let s = connect(t, ports::SINK)?;
    s.settimeout(Some(Duration::from_secs(60)))
        .context("settimeout")?;
    let n = 512 * 1024;
    s.sendall(&protocol::sink_request(n as u64))
        .context("header")?;
    s.sendall(&pattern(n)).context("sendall")?;
    let report = recv_exact(&s, protocol::SINK_REPORT_LEN)?;
    let report = protocol::SinkReport::decode(report.as_slice().try_into().unwrap());
    ensure_eq!(report.count, n as u64, "count");
    ensure_eq!(
        report.checksum,
        crate::pattern::pattern_checksum(0, n as u64),
        "checksum"
    );
    Ok(())
}

fn recv_timeout_keeps_late_data<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.settimeout(Some(Duration::from_millis(200)))
        .context("settimeout")?;
    match s.recv(10) {
        Err(e) if e.is_timeout() => {}
        other => return Err(CaseError::new(format!("expected timeout, got {other:?}"))),
    }
    s.sendall(b"after timeout").context("sendall")?;
    s.settimeout(Some(Duration::from_secs(10)))
        .context("settimeout")?;
    ensure_eq!(recv_exact(&s, 13)?, b"after timeout".to_vec(), "late data");
    Ok(())
}

fn net_wait_deadline<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.settimeout(None).context("settimeout(None)")?;
    t.net().set_wait_deadline(Some(Duration::from_millis(300)));
    let start = t.net().now();
    let result = s.recv(10);
    let waited = t.net().now() - start;
    t.net().set_wait_deadline(None);
    match result {
        Err(e) if e.is_timeout() => {}
        other => return Err(CaseError::new(format!("expected a timeout, got {other:?}"))),
    }
    ensure!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(400),
        "recv waited {waited:?} for a 300 ms wait deadline"
    );
    s.settimeout(Some(Duration::from_secs(10)))
        .context("settimeout")?;
    s.sendall(b"still fine").context("sendall")?;
    ensure_eq!(
        recv_exact(&s, 10)?,
        b"still fine".to_vec(),
        "the socket works after the deadline"
    );
    Ok(())
}
