//! `efisock-http-client`: an HTTP/1.1 client inside OVMF over `efisock`.
//!
//! Driven by `cargo xtask http-examples`, which serves a generated file with
//! Python's `http.server` on the host's 127.0.0.1 and puts the port and the
//! expected checksums in `\efisock-args.txt` on the ESP. The app gets an
//! address by DHCP, then performs three exchanges against 10.0.2.2:PORT:
//!
//! 1. `get`: GET the file on a keep-alive connection (Content-Length body);
//! 2. `get-chunked`: GET the same bytes re-framed as `Transfer-Encoding:
//!    chunked` on the *same* connection, with `Connection: close`, and check
//!    that the server then closes it;
//! 3. `post`: POST a generated body on a new connection; the server answers
//!    with the JSON `{length, fnv1a64}` of what it received.
//!
//! Each exchange prints `EFISOCK-HTTP {json}`; bodies are verified by
//! length and FNV-1a-64, never kept in memory. Exit codes: see
//! `http_common` (`EXIT_*`); the host reads them via isa-debug-exit.
#![cfg_attr(target_os = "uefi", feature(uefi_std))]

#[allow(dead_code)] // shared by both HTTP apps; each uses a subset
#[path = "http_common/mod.rs"]
mod common;

use std::io;
use std::time::Duration;

use common::body::Generated;
use common::fnv::Fnv;
use common::wire::{Conn, Framing, HttpError, ResponseHead};
use common::{EXIT_OK, EXIT_VERIFY, Stream};
use serde_json::{Value, json};

/// What to fetch and send, from the options file.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `Host` header value (`10.0.2.2:PORT`).
    pub host: String,
    /// Path of the file served with Content-Length.
    pub get_path: String,
    /// Path serving the same file chunked.
    pub chunked_path: String,
    /// Expected length of the file.
    pub get_len: u64,
    /// Expected FNV-1a-64 of the file.
    pub get_fnv: u64,
    /// Path to POST to.
    pub post_path: String,
    /// POST body length.
    pub post_len: u64,
    /// POST body generator seed.
    pub post_seed: u64,
    /// Bound on every blocking socket operation.
    pub op_timeout: Duration,
}

/// Largest response body accepted (the file is at most this big).
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Largest POST reply accepted (a small JSON object).
const MAX_REPLY: u64 = 4096;

fn write_head<S: Stream>(
    conn: &mut Conn<S>,
    plan: &Plan,
    method: &str,
    path: &str,
    extra: &[(&str, String)],
) -> Result<(), HttpError> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: efisock-http-client/0.1\r\nAccept: */*\r\n",
        plan.host
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
}

/// Reads the final response head, skipping interim 1xx responses.
fn read_final_head<S: Stream>(conn: &mut Conn<S>) -> Result<ResponseHead, HttpError> {
    loop {
        let h = conn.read_response_head()?;
        if (100..200).contains(&h.status) && h.status != 101 {
            continue;
        }
        return Ok(h);
    }
}

/// One exchange's result line.
struct Record {
    v: Value,
    ok: bool,
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { bytes as f64 / s / 1e6 } else { 0.0 }
}

/// GETs `path` and checks status 200, `want_framing`, length and checksum.
fn get<S: Stream>(
    conn: &mut Conn<S>,
    plan: &Plan,
    name: &str,
    path: &str,
    close: bool,
    want_framing: &str,
    now: &dyn Fn() -> Duration,
) -> (Record, bool) {
    let t0 = now();
    let conn_hdr = if close { "close" } else { "keep-alive" };
    let mut h = Fnv::new();
    let res = (|| {
        write_head(conn, plan, "GET", path, &[("Connection", conn_hdr.into())])?;
        let head = read_final_head(conn)?;
        let framing = head.framing("GET")?;
        conn.read_body(framing, MAX_BODY, &mut |b| h.update(b))?;
        Ok::<_, HttpError>((head, framing))
    })();
    let dt = now().saturating_sub(t0);
    let mut v = json!({
        "exchange": name, "method": "GET", "path": path,
        "bytes": h.len(), "fnv1a64": h.hex(),
        "expected_bytes": plan.get_len, "expected_fnv1a64": format!("{:016x}", plan.get_fnv),
        "ms": dt.as_secs_f64() * 1e3, "mb_per_s": mb_per_s(h.len(), dt),
    });
    match res {
        Ok((head, framing)) => {
            let keep = head.keep_alive();
            let ok = head.status == 200
                && framing.name() == want_framing
                && h.len() == plan.get_len
                && h.hash() == plan.get_fnv
                // After `Connection: close` the server must close (checked by
                // the caller); echoing the option is only a SHOULD (RFC 9112
                // §9.6), and Python's http.server does not. A keep-alive
                // request needs a persistent connection to continue.
                && (close || keep);
            v["status"] = json!(head.status);
            v["framing"] = json!(framing.name());
            v["keep_alive"] = json!(keep);
            v["ok"] = json!(ok);
            (Record { v, ok }, keep)
        }
        Err(e) => {
            v["ok"] = json!(false);
            v["error"] = json!(e.to_string());
            (Record { v, ok: false }, false)
        }
    }
}

/// POSTs the generated body and checks the server's `{length, fnv1a64}`.
fn post<S: Stream>(conn: &mut Conn<S>, plan: &Plan, now: &dyn Fn() -> Duration) -> Record {
    let t0 = now();
    let mut sent = Fnv::new();
    let res = (|| {
        write_head(
            conn,
            plan,
            "POST",
            &plan.post_path,
            &[
                ("Content-Type", "application/octet-stream".into()),
                ("Content-Length", plan.post_len.to_string()),
                ("Connection", "close".into()),
            ],
        )?;
        let mut g = Generated::new(plan.post_seed, plan.post_len);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = g.fill(&mut buf);
            if n == 0 {
                break;
            }
            sent.update(&buf[..n]);
            conn.write_all(&buf[..n])?;
        }
        let t_sent = now();
        let head = read_final_head(conn)?;
        let framing = head.framing("POST")?;
        let mut reply = Vec::new();
        conn.read_body(framing, MAX_REPLY, &mut |b| reply.extend_from_slice(b))?;
        Ok::<_, HttpError>((head, framing, reply, t_sent))
    })();
    let dt = now().saturating_sub(t0);
    let mut v = json!({
        "exchange": "post", "method": "POST", "path": plan.post_path,
        "bytes": sent.len(), "fnv1a64": sent.hex(),
        "ms": dt.as_secs_f64() * 1e3, "mb_per_s": mb_per_s(sent.len(), dt),
    });
    match res {
        Ok((head, framing, reply, t_sent)) => {
            v["status"] = json!(head.status);
            v["framing"] = json!(framing.name());
            v["upload_ms"] = json!(t_sent.saturating_sub(t0).as_secs_f64() * 1e3);
            let parsed: Result<Value, _> = serde_json::from_slice(&reply);
            let (len, fnv) = match &parsed {
                Ok(j) => (
                    j["length"].as_u64(),
                    j["fnv1a64"].as_str().map(str::to_string),
                ),
                Err(_) => (None, None),
            };
            v["server_length"] = json!(len);
            v["server_fnv1a64"] = json!(fnv);
            let ok = head.status == 200
                && sent.len() == plan.post_len
                && len == Some(sent.len())
                && fnv.as_deref().and_then(common::fnv::parse_hex) == Some(sent.hash());
            if let Err(e) = parsed {
                v["error"] = json!(format!("reply is not JSON: {e}"));
            }
            v["ok"] = json!(ok);
            Record { v, ok }
        }
        Err(e) => {
            v["ok"] = json!(false);
            v["error"] = json!(e.to_string());
            Record { v, ok: false }
        }
    }
}

/// Whether the peer closes the connection now (read returns EOF).
fn peer_closed<S: Stream>(conn: &mut Conn<S>) -> Result<bool, HttpError> {
    let mut extra = 0u64;
    conn.read_body(Framing::UntilClose, 0, &mut |b| extra += b.len() as u64)
        .map(|_| extra == 0)
}

/// Runs the three exchanges; reports each; true if all verified.
pub fn run<S: Stream>(
    plan: &Plan,
    connect: &mut dyn FnMut() -> io::Result<S>,
    now: &dyn Fn() -> Duration,
    report: &mut dyn FnMut(&Value),
) -> bool {
    let mut all_ok = true;
    fn fail(name: &str, what: &str, e: &dyn std::fmt::Display, report: &mut dyn FnMut(&Value)) {
        report(&json!({ "exchange": name, "ok": false, "error": format!("{what}: {e}") }));
    }
    // Connection 1: keep-alive GET, then the chunked GET with close.
    match connect() {
        Ok(s) => {
            let mut conn = Conn::new(s);
            let (r, keep) = get(
                &mut conn,
                plan,
                "get",
                &plan.get_path,
                false,
                "content-length",
                now,
            );
            report(&r.v);
            all_ok &= r.ok;
            if r.ok && keep {
                let (mut r, _) = get(
                    &mut conn,
                    plan,
                    "get-chunked",
                    &plan.chunked_path,
                    true,
                    "chunked",
                    now,
                );
                let closed = peer_closed(&mut conn);
                r.v["server_closed"] = json!(closed.as_ref().ok());
                r.ok &= matches!(closed, Ok(true));
                report(&r.v);
                all_ok &= r.ok;
            } else {
                all_ok = false;
            }
            if let Err(e) = conn.into_inner().finish() {
                fail("get-chunked", "close", &e, report);
                all_ok = false;
            }
        }
        Err(e) => {
            fail("get", "connect", &e, report);
            all_ok = false;
        }
    }
    // Connection 2: the POST.
    match connect() {
        Ok(s) => {
            let mut conn = Conn::new(s);
            let r = post(&mut conn, plan, now);
            report(&r.v);
            all_ok &= r.ok;
            if let Err(e) = conn.into_inner().finish() {
                fail("post", "close", &e, report);
                all_ok = false;
            }
        }
        Err(e) => {
            fail("post", "connect", &e, report);
            all_ok = false;
        }
    }
    all_ok
}

/// The exit code for a run's verdict.
pub fn exit_code(all_ok: bool) -> u8 {
    if all_ok { EXIT_OK } else { EXIT_VERIFY }
}

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!(
        "efisock-http-client is a UEFI application; run it with `cargo xtask http-examples`."
    );
    std::process::exit(2);
}

#[cfg(target_os = "uefi")]
fn main() {
    app::main()
}

#[cfg(target_os = "uefi")]
mod app {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Duration;

    use efisock::Net;
    use serde_json::json;

    use super::common::guest::{done, install_panic_hook, line, options, platform};
    use super::common::{EXIT_DHCP, EXIT_SETUP};
    use super::{Plan, exit_code, run};

    /// The host as seen from the guest (QEMU user networking).
    const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const KNOWN: &[&str] = &[
        "port",
        "get-path",
        "chunked-path",
        "get-len",
        "get-fnv",
        "post-path",
        "post-len",
        "post-seed",
        "timeout-s",
    ];

    fn plan() -> Result<(u16, Plan), String> {
        let o = options(KNOWN)?;
        let port = o.u64_in("port", 1..=65535, None)? as u16;
        let get_fnv = o.string("get-fnv")?;
        let plan = Plan {
            host: format!("{HOST}:{port}"),
            get_path: o.string("get-path")?,
            chunked_path: o.string("chunked-path")?,
            get_len: o.u64_in("get-len", 0..=super::MAX_BODY, None)?,
            get_fnv: super::common::fnv::parse_hex(&get_fnv)
                .ok_or_else(|| format!("--get-fnv: not 16 hex digits: '{get_fnv}'"))?,
            post_path: o.string("post-path")?,
            post_len: o.u64_in("post-len", 0..=super::MAX_BODY, None)?,
            post_seed: o.u64_in("post-seed", 0..=u64::MAX, None)?,
            op_timeout: Duration::from_secs(o.u64_in("timeout-s", 1..=3600, Some(60))?),
        };
        for p in [&plan.get_path, &plan.chunked_path, &plan.post_path] {
            if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(format!(
                    "path '{p}' must start with '/' and have no spaces/controls"
                ));
            }
        }
        Ok((port, plan))
    }

    pub fn main() {
        install_panic_hook();
        line("HELLO", r#"{"app":"efisock-http-client"}"#);
        let (port, plan) = match plan() {
            Ok(p) => p,
            Err(e) => {
                line(
                    "ERROR",
                    &json!({ "stage": "options", "error": e }).to_string(),
                );
                done(EXIT_SETUP);
            }
        };
        let net = match platform() {
            Ok(p) => Net::new(p),
            Err(e) => {
                line(
                    "ERROR",
                    &json!({ "stage": "platform", "error": e }).to_string(),
                );
                done(EXIT_SETUP);
            }
        };
        let t0 = net.now();
        match net.dhcp(Duration::from_secs(30)) {
            Ok(addr) => {
                let ms = net.now().saturating_sub(t0).as_secs_f64() * 1e3;
                line(
                    "DHCP",
                    &json!({ "addr": addr.to_string(), "ms": ms }).to_string(),
                );
            }
            Err(e) => {
                line(
                    "ERROR",
                    &json!({ "stage": "dhcp", "error": e.to_string() }).to_string(),
                );
                done(EXIT_DHCP);
            }
        }
        let peer = SocketAddrV4::new(HOST, port);
        let timeout = plan.op_timeout;
        let mut connect = || -> std::io::Result<efisock::Socket<_>> {
            let s = net.socket()?;
            s.settimeout(Some(timeout))?;
            s.connect(peer)?;
            Ok(s)
        };
        let now = || net.now();
        let t1 = net.now();
        let ok = run(&plan, &mut connect, &now, &mut |v| {
            line("HTTP", &v.to_string())
        });
        let ms = net.now().saturating_sub(t1).as_secs_f64() * 1e3;
        let stats = net.stats();
        let teardown = net
            .shutdown(Duration::from_secs(10))
            .err()
            .map(|e| e.to_string());
        line(
            "SUMMARY",
            &json!({
                "ok": ok, "ms": ms, "firmware_calls": stats.total_calls(),
                "teardown_error": teardown,
            })
            .to_string(),
        );
        done(exit_code(ok));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    const GET_SEED: u64 = 3;
    const GET_LEN: u64 = 50_000;

    fn generated(seed: u64, len: u64) -> Vec<u8> {
        let mut v = vec![0u8; len as usize];
        assert_eq!(Generated::new(seed, len).fill(&mut v), len as usize);
        v
    }

    /// A canned peer: connection 1 answers a Content-Length GET then a
    /// chunked GET and closes; connection 2 answers a POST with its checksum.
    /// `corrupt` flips one byte of the first body.
    fn peer(corrupt: bool) -> (u16, std::thread::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let file = generated(GET_SEED, GET_LEN);
            let (s, _) = l.accept().unwrap();
            let mut c = Conn::new(s);
            let r = c.read_request_head().unwrap().unwrap();
            assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/f"));
            let mut body = file.clone();
            if corrupt {
                body[GET_LEN as usize / 2] ^= 1;
            }
            c.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {GET_LEN}\r\n\r\n").as_bytes())
                .unwrap();
            c.write_all(&body).unwrap();
            if c.read_request_head().unwrap().is_some() {
                c.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                for piece in file.chunks(4093) {
                    c.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .unwrap();
                    c.write_all(piece).unwrap();
                    c.write_all(b"\r\n").unwrap();
                }
                c.write_all(b"0\r\n\r\n").unwrap();
            }
            drop(c);
            let (s, _) = l.accept().unwrap();
            let mut c = Conn::new(s);
            let r = c.read_request_head().unwrap().unwrap();
            let mut h = Fnv::new();
            c.read_body(r.framing().unwrap(), 1 << 30, &mut |b| h.update(b))
                .unwrap();
            let reply = json!({ "length": h.len(), "fnv1a64": h.hex() }).to_string();
            c.write_all(
                format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{reply}", reply.len())
                    .as_bytes(),
            )
            .unwrap();
        });
        (port, h)
    }

    fn plan(port: u16) -> Plan {
        Plan {
            host: format!("127.0.0.1:{port}"),
            get_path: "/f".into(),
            chunked_path: "/chunked/f".into(),
            get_len: GET_LEN,
            get_fnv: Generated::checksum(GET_SEED, GET_LEN).hash(),
            post_path: "/up".into(),
            post_len: 200_001,
            post_seed: 11,
            op_timeout: Duration::from_secs(10),
        }
    }

    fn go(corrupt: bool) -> (bool, Vec<Value>) {
        let (port, h) = peer(corrupt);
        let mut connect = || {
            let s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_timeout(Duration::from_secs(10))?;
            Ok(s)
        };
        let origin = Instant::now();
        let now = move || origin.elapsed();
        let mut lines = Vec::new();
        let ok = run(&plan(port), &mut connect, &now, &mut |v| {
            lines.push(v.clone())
        });
        h.join().unwrap();
        (ok, lines)
    }

    #[test]
    fn three_exchanges_verify() {
        let (ok, lines) = go(false);
        assert!(ok, "{lines:#?}");
        let names: Vec<&str> = lines
            .iter()
            .map(|v| v["exchange"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["get", "get-chunked", "post"]);
        assert_eq!(lines[0]["framing"], json!("content-length"));
        assert_eq!(lines[1]["framing"], json!("chunked"));
        assert_eq!(lines[1]["server_closed"], json!(true));
        assert_eq!(lines[2]["server_length"], json!(200_001));
        assert!(lines.iter().all(|v| v["ok"] == json!(true)));
        assert_eq!(exit_code(ok), EXIT_OK);
    }

    #[test]
    fn a_flipped_byte_fails_the_run() {
        let (ok, lines) = go(true);
        assert!(!ok);
        assert_eq!(lines[0]["ok"], json!(false));
        assert_eq!(lines[0]["bytes"], json!(GET_LEN));
        assert_ne!(lines[0]["fnv1a64"], lines[0]["expected_fnv1a64"]);
        assert_eq!(exit_code(ok), EXIT_VERIFY);
    }
}
