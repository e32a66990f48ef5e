//! Data transfer: small and 1 MiB, checked byte for byte or by checksum;
//! partial reads leave the rest queued.

use std::time::Duration;

use super::util::{connect, pattern, recv_exact, recv_to_eof};
use super::witness::{connect_witnessed, ended_view, expect_bytes_in, expect_graceful};
use crate::pattern::{Fnv64, find_pattern_mismatch, pattern_checksum};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

const MIB: u64 = 1 << 20;

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "transfer",
            name: "echo_4k_exact",
            about: "4 KiB through echo comes back identical; the peer read exactly those bytes, then a FIN",
            run: echo_4k_exact::<T>,
        },
        Case {
            group: "transfer",
            name: "sink_1mib_checksum",
            about: "1 MiB sendall to the sink; its count and checksum match, as the witness saw them, then a FIN",
            run: sink_1mib_checksum::<T>,
        },
        Case {
            group: "transfer",
            name: "source_1mib_checksum",
            about: "1 MiB from the source to EOF; count, checksum and order match; the peer saw all of it acknowledged, then a FIN",
            run: source_1mib_checksum::<T>,
        },
        Case {
            group: "transfer",
            name: "recv_one_leaves_rest",
            about: "recv(1) takes one byte and leaves the rest queued",
            run: recv_one_leaves_rest::<T>,
        },
        Case {
            group: "transfer",
            name: "recv_into_partial",
            about: "recv_into fills at most the buffer and keeps the rest",
            run: recv_into_partial::<T>,
        },
        Case {
            group: "transfer",
            name: "echo_interleaved_256k",
            about: "send and receive 256 KiB interleaved through echo",
            run: echo_interleaved_256k::<T>,
        },
        Case {
            group: "transfer",
            name: "send_returns_count",
            about: "send returns how many bytes it accepted (> 0, <= len)",
            run: send_returns_count::<T>,
        },
        Case {
            group: "transfer",
            name: "io_read_write_traits",
            about: "std::io::Write/Read on a socket move the bytes",
            run: io_read_write_traits::<T>,
        },
    ]
}

fn echo_4k_exact<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::ECHO)?;
    let data = pattern(4096);
    s.sendall(&data).context("sendall")?;
    let got = recv_exact(&s, data.len())?;
    ensure!(
        got == data,
        "echoed data differs at {:?}",
        find_pattern_mismatch(0, &got)
    );
    s.close().context("close")?;
    let view = ended_view(t, token)?;
    expect_bytes_in(&view, 4096, pattern_checksum(0, 4096), "echo's input")?;
    ensure_eq!(view.bytes_out, 4096, "bytes echoed");
    expect_graceful(&view, "close after the whole echo was read")
}

fn sink_1mib_checksum<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::SINK)?;
    let header = protocol::sink_request(MIB);
    s.sendall(&header).context("sink header")?;
    let data = pattern(MIB as usize);
    s.sendall(&data).context("sendall 1 MiB")?;
    let report = recv_exact(&s, protocol::SINK_REPORT_LEN)?;
    let report = protocol::SinkReport::decode(report.as_slice().try_into().unwrap());
    ensure_eq!(report.count, MIB, "sink byte count");
    ensure_eq!(report.checksum, pattern_checksum(0, MIB), "sink checksum");
    s.close().context("close")?;
    let view = ended_view(t, token)?;
    let mut stream = Fnv64::new();
    stream.update(&header);
    stream.update(&data);
    expect_bytes_in(&view, stream.len(), stream.value(), "header and data")?;
    expect_graceful(&view, "close after the report")
}

fn source_1mib_checksum<T: SocketTarget>(t: &mut T) -> CaseResult {
    let (s, token) = connect_witnessed(t, ports::SOURCE_FIN)?;
    s.sendall(&protocol::source_request(MIB))
        .context("request")?;
    let (count, checksum, is_pattern) = recv_to_eof(&s, MIB)?;
    ensure_eq!(count, MIB, "bytes before EOF");
    ensure_eq!(checksum, pattern_checksum(0, MIB), "checksum");
    ensure!(is_pattern, "bytes arrived in order");
    s.close().context("close")?;
    let view = ended_view(t, token)?;
    ensure_eq!(
        (view.bytes_out, view.acked_out),
        (MIB, MIB),
        "bytes the source sent and saw acknowledged"
    );
    expect_graceful(&view, "close after EOF")
}

/// Waits until `n` bytes are readable without taking them (select says
/// readable; then the bytes are all there once the source's FIN arrived).
fn source_with_eof<T: SocketTarget>(t: &T, n: u64) -> Result<efisock::Socket<T::P>, CaseError> {
    let s = connect(t, ports::SOURCE_FIN)?;
    s.sendall(&protocol::source_request(n)).context("request")?;
    let ready = t
        .net()
        .select(&[&s], &[], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    ensure!(ready.read == vec![s.fileno()], "source socket readable");
    // Give the rest of the bytes (and the FIN) time to arrive.
    t.net().sleep(Duration::from_millis(500));
    Ok(s)
}

fn recv_one_leaves_rest<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = source_with_eof(t, 100)?;
    let first = s.recv(1).context("recv(1)")?;
    ensure_eq!(first, pattern(1), "first byte");
    let rest = recv_exact(&s, 99)?;
    ensure_eq!(
        rest,
        pattern(100)[1..].to_vec(),
        "the other 99 bytes, in order"
    );
    ensure_eq!(
        s.recv(10).context("recv at EOF")?,
        Vec::<u8>::new(),
        "then EOF"
    );
    Ok(())
}

fn recv_into_partial<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = source_with_eof(t, 50)?;
    let mut buf = [0u8; 20];
    let n = s.recv_into(&mut buf).context("recv_into")?;
    ensure!(n > 0 && n <= 20, "recv_into returned {n}");
    let rest = recv_exact(&s, 50 - n)?;
    let mut all = buf[..n].to_vec();
    all.extend_from_slice(&rest);
    ensure_eq!(all, pattern(50), "all 50 bytes in order");
    Ok(())
}

fn echo_interleaved_256k<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let data = pattern(256 * 1024);
    let mut received = Vec::with_capacity(data.len());
    for chunk in data.chunks(16 * 1024) {
        s.sendall(chunk).context("sendall chunk")?;
        let got = recv_exact(&s, chunk.len())?;
        received.extend_from_slice(&got);
    }
    ensure!(
        received == data,
        "echo mismatch at {:?}",
        find_pattern_mismatch(0, &received)
    );
    Ok(())
}

fn send_returns_count<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let data = pattern(1000);
    let n = s.send(&data).context("send")?;
    ensure!(n > 0 && n <= data.len(), "send returned {n}");
    let got = recv_exact(&s, n)?;
    ensure_eq!(got, data[..n].to_vec(), "echo of what send accepted");
    Ok(())
}

fn io_read_write_traits<T: SocketTarget>(t: &mut T) -> CaseResult {
    use std::io::{Read, Write};
    let mut s = connect(t, ports::ECHO)?;
    s.write_all(b"via std::io").context("write_all")?;
    let mut buf = [0u8; 11];
    s.read_exact(&mut buf).context("read_exact")?;
    ensure_eq!(&buf, b"via std::io", "bytes via std::io");
    Ok(())
}
