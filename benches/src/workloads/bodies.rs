//! The socket code of each workload: it moves the bytes, verifies what came
//! back and stops at the plan's count or budget.

use efisock::Socket;
use efisock::firmware::Platform;
use efisock_conformance::pattern::{Fnv64, fill_pattern, pattern_checksum};
use efisock_conformance::peers::{ports, protocol};
use efisock_conformance::target::SocketTarget;

use super::{CALL_TIMEOUT, CHUNK, Clock, Plan, RR_BYTES, SELECT_CONNECTIONS};
use crate::error::WorkloadError;

pub(super) fn connect<T: SocketTarget>(t: &T, port: u16) -> Result<Socket<T::P>, WorkloadError> {
    let s = t
        .net()
        .socket()
        .map_err(|e| WorkloadError::Failed(format!("socket(): {e}")))?;
    s.settimeout(Some(CALL_TIMEOUT))
        .map_err(|e| WorkloadError::Failed(format!("settimeout: {e}")))?;
    s.connect(t.peer(port))
        .map_err(|e| WorkloadError::Failed(format!("connect to {}: {e}", t.peer(port))))?;
    Ok(s)
}

pub(super) fn recv_exact<P: Platform + 'static>(
    s: &Socket<P>,
    buf: &mut [u8],
) -> Result<(), WorkloadError> {
    let mut have = 0;
    while have < buf.len() {
        let n = s.recv_into(&mut buf[have..]).map_err(|e| {
            WorkloadError::Failed(format!("recv after {have} of {} bytes: {e}", buf.len()))
        })?;
        if n == 0 {
            return Err(WorkloadError::Failed(format!(
                "EOF after {have} of {} bytes",
                buf.len()
            )));
        }
        have += n;
    }
    Ok(())
}

/// Receives up to `n` bytes; on the budget it stops early and closes (an
/// abortive close: unread data). Verifies the prefix it got.
pub(super) fn bulk_receive<T: SocketTarget>(
    t: &T,
    n: u64,
    clock: &Clock,
) -> Result<u64, WorkloadError> {
    let s = connect(t, ports::SOURCE_FIN)?;
    s.sendall(&protocol::source_request(n))
        .map_err(|e| WorkloadError::Failed(format!("source request: {e}")))?;
    let mut buf = vec![0u8; CHUNK];
    let mut sum = Fnv64::new();
    let mut eof = false;
    while !clock.over(t.net()) {
        let got = s
            .recv_into(&mut buf)
            .map_err(|e| WorkloadError::Failed(format!("recv after {} bytes: {e}", sum.len())))?;
        if got == 0 {
            eof = true;
            break;
        }
        sum.update(&buf[..got]);
        if sum.len() > n {
            return Err(WorkloadError::Failed(format!(
                "more than {n} bytes before EOF"
            )));
        }
    }
    if (eof && sum.len() != n) || sum.value() != pattern_checksum(0, sum.len()) {
        return Err(WorkloadError::Failed(format!(
            "received {} of {n} bytes (EOF {eof}), checksum {:#x}",
            sum.len(),
            sum.value()
        )));
    }
    s.close()
        .map_err(|e| WorkloadError::Failed(format!("close: {e}")))?;
    Ok(sum.len())
}

/// Sends `plan.count` bytes in sink connections of `plan.send_unit` bytes
/// each, every one verified by the sink's report; the budget is checked
/// between connections.
pub(super) fn bulk_send<T: SocketTarget>(
    t: &T,
    plan: &Plan,
    clock: &Clock,
) -> Result<u64, WorkloadError> {
    let unit = if plan.send_unit == 0 {
        plan.count
    } else {
        plan.send_unit
    };
    let mut sent = 0u64;
    while sent < plan.count && !clock.over(t.net()) {
        let n = unit.min(plan.count - sent);
        bulk_send_one(t, n).map_err(|e| e.context(format_args!("after {sent} bytes")))?;
        sent += n;
    }
    Ok(sent)
}

pub(super) fn bulk_send_one<T: SocketTarget>(t: &T, n: u64) -> Result<(), WorkloadError> {
    let s = connect(t, ports::SINK)?;
    s.sendall(&protocol::sink_request(n))
        .map_err(|e| WorkloadError::Failed(format!("sink header: {e}")))?;
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < n {
        let len = (n - sent).min(CHUNK as u64) as usize;
        fill_pattern(sent, &mut buf[..len]);
        s.sendall(&buf[..len])
            .map_err(|e| WorkloadError::Failed(format!("sendall after {sent} bytes: {e}")))?;
        sent += len as u64;
    }
    let mut report = [0u8; protocol::SINK_REPORT_LEN];
    recv_exact(&s, &mut report)?;
    let report = protocol::SinkReport::decode(&report);
    if report.count != n || report.checksum != pattern_checksum(0, n) {
        return Err(WorkloadError::Failed(format!(
            "sink report {report:?} for {n} bytes"
        )));
    }
    s.close()
        .map_err(|e| WorkloadError::Failed(format!("close: {e}")))
}

pub(super) fn request_response<T: SocketTarget>(
    t: &T,
    count: u64,
    clock: &Clock,
) -> Result<u64, WorkloadError> {
    let s = connect(t, ports::ECHO)?;
    let mut req = [0u8; RR_BYTES];
    let mut resp = [0u8; RR_BYTES];
    let mut done = 0u64;
    while done < count && !clock.over(t.net()) {
        let i = done;
        fill_pattern(i * RR_BYTES as u64, &mut req);
        s.sendall(&req)
            .map_err(|e| WorkloadError::Failed(format!("round trip {i}: send: {e}")))?;
        recv_exact(&s, &mut resp)
            .map_err(|e| WorkloadError::Failed(format!("round trip {i}: {e}")))?;
        if resp != req {
            return Err(WorkloadError::Failed(format!(
                "round trip {i}: echo differs"
            )));
        }
        done += 1;
    }
    s.close()
        .map_err(|e| WorkloadError::Failed(format!("close: {e}")))?;
    Ok(done)
}

pub(super) fn select_loop<T: SocketTarget>(
    t: &T,
    socks: &[Socket<T::P>],
    rounds: u64,
    clock: &Clock,
) -> Result<u64, WorkloadError> {
    let refs: Vec<&Socket<T::P>> = socks.iter().collect();
    let mut buf = [0u8; RR_BYTES];
    let mut round = 0usize;
    while (round as u64) < rounds && !clock.over(t.net()) {
        for (i, s) in socks.iter().enumerate() {
            fill_pattern((round * SELECT_CONNECTIONS + i) as u64, &mut buf);
            s.sendall(&buf)
                .map_err(|e| WorkloadError::Failed(format!("round {round}: send on {i}: {e}")))?;
        }
        let mut got = vec![0usize; socks.len()];
        let mut done = 0;
        while done < socks.len() {
            let ready = t
                .net()
                .select(&refs, &[], &[], Some(CALL_TIMEOUT))
                .map_err(|e| WorkloadError::Failed(format!("round {round}: select: {e}")))?;
            if ready.is_empty() {
                return Err(WorkloadError::Failed(format!(
                    "round {round}: select timed out"
                )));
            }
            for id in ready.read {
                let i = socks.iter().position(|s| s.fileno() == id).ok_or_else(|| {
                    WorkloadError::Failed(format!("select returned an unknown socket {id:?}"))
                })?;
                if got[i] == RR_BYTES {
                    return Err(WorkloadError::Failed(format!(
                        "round {round}: conn {i} readable after its echo"
                    )));
                }
                let n = socks[i]
                    .recv_into(&mut buf[..RR_BYTES - got[i]])
                    .map_err(|e| {
                        WorkloadError::Failed(format!("round {round}: recv on {i}: {e}"))
                    })?;
                if n == 0 {
                    return Err(WorkloadError::Failed(format!("round {round}: EOF on {i}")));
                }
                let mut want = [0u8; RR_BYTES];
                fill_pattern((round * SELECT_CONNECTIONS + i) as u64, &mut want);
                if buf[..n] != want[got[i]..got[i] + n] {
                    return Err(WorkloadError::Failed(format!(
                        "round {round}: echo on {i} differs"
                    )));
                }
                got[i] += n;
                if got[i] == RR_BYTES {
                    done += 1;
                }
            }
        }
        round += 1;
    }
    Ok(round as u64)
}

pub(super) fn connect_rate<T: SocketTarget>(
    t: &T,
    count: u64,
    clock: &Clock,
) -> Result<u64, WorkloadError> {
    let mut done = 0u64;
    while done < count && !clock.over(t.net()) {
        let i = done;
        let s = connect(t, ports::ECHO)
            .map_err(|e| WorkloadError::Failed(format!("connection {i}: {e}")))?;
        s.sendall(&[i as u8])
            .map_err(|e| WorkloadError::Failed(format!("connection {i}: send: {e}")))?;
        let mut b = [0u8; 1];
        recv_exact(&s, &mut b)
            .map_err(|e| WorkloadError::Failed(format!("connection {i}: {e}")))?;
        if b[0] != i as u8 {
            return Err(WorkloadError::Failed(format!(
                "connection {i}: echoed {:#x}",
                b[0]
            )));
        }
        s.close()
            .map_err(|e| WorkloadError::Failed(format!("connection {i}: close: {e}")))?;
        done += 1;
    }
    Ok(done)
}
