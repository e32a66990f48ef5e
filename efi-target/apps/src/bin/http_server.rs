//! `efisock-http-server`: an HTTP/1.1 server inside OVMF over `efisock`.
//!
//! Driven by `cargo xtask http-examples`: QEMU forwards the host's
//! 127.0.0.1:HPORT to the guest port given in `\efisock-args.txt`, and the
//! host talks to it with `curl`. Behaviour:
//!
//! - `GET`/`HEAD /`, `/gen` → the generated body (`--get-len` bytes, seed
//!   `--get-seed`); `/gen/<n>` → `n` bytes (n ≤ 64 MiB); other paths → 404.
//!   Responses carry `Content-Length` and `X-Fnv1a64`.
//! - `POST` (any path) → reads the body (Content-Length or chunked, sending
//!   `100 Continue` when asked, as curl does for large uploads), replies
//!   `{"length":N,"fnv1a64":"…"}`.
//! - Other methods → 405 and close. Malformed requests → 400 and close.
//! - Keep-alive per HTTP/1.1 (`Connection: close` honoured; the response to
//!   the last request of the quota says `Connection: close`).
//!
//! Bounded: it stops after `--max-requests` requests or `--deadline-s`
//! seconds, whichever first; idle connections are dropped after `--idle-s`.
//! One connection at a time (the UEFI std has no threads; the examples need
//! no concurrency). Every request prints `EFISOCK-HTTP {json}`.
#![cfg_attr(target_os = "uefi", feature(uefi_std))]

#[allow(dead_code)] // shared by both HTTP apps; each uses a subset
#[path = "http_common/mod.rs"]
mod common;

use std::io;
use std::time::Duration;

use common::body::Generated;
use common::fnv::Fnv;
use common::wire::{Conn, Framing, HttpError, RequestHead};
use common::{EXIT_DEADLINE, EXIT_OK, Stream};
use serde_json::{Value, json};

/// Largest generated GET body.
pub const MAX_GEN: u64 = 64 * 1024 * 1024;
/// Largest POST body accepted.
pub const MAX_POST: u64 = 256 * 1024 * 1024;
/// Accept errors tolerated before giving up (a broken stack must not spin).
const MAX_ACCEPT_ERRORS: u32 = 20;

/// Server limits and content, from the options file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Stop after this many requests.
    pub max_requests: u32,
    /// Stop this long after start.
    pub deadline: Duration,
    /// Drop a connection idle this long.
    pub idle: Duration,
    /// Length of the default GET body.
    pub get_len: u64,
    /// Seed of every GET body.
    pub get_seed: u64,
}

/// Accepting connections with a bound.
pub trait Listener {
    /// The connection type.
    type S: Stream;
    /// Accepts one connection within `d`; `Ok(None)` on timeout.
    fn accept_within(&mut self, d: Duration) -> io::Result<Option<(Self::S, String)>>;
}

/// Why the server stopped and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Requests answered.
    pub requests: u32,
    /// Connections accepted.
    pub connections: u32,
    /// Requests/connections that failed.
    pub errors: u32,
    /// `quota`, `deadline` or `accept-errors`.
    pub stopped: &'static str,
}

impl Summary {
    /// The exit code: success only when the quota was served without errors.
    pub fn exit_code(&self) -> u8 {
        match self.stopped {
            "quota" if self.errors == 0 => EXIT_OK,
            "quota" => common::EXIT_VERIFY,
            "deadline" => EXIT_DEADLINE,
            _ => common::EXIT_NET,
        }
    }
}

fn write_response<S: Stream>(
    conn: &mut Conn<S>,
    status: u16,
    reason: &str,
    len: u64,
    keep: bool,
    extra: &[(&str, String)],
) -> Result<(), HttpError> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: efisock-http-server/0.1\r\nContent-Length: {len}\r\nConnection: {}\r\n",
        if keep { "keep-alive" } else { "close" }
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
}

fn simple<S: Stream>(
    conn: &mut Conn<S>,
    status: u16,
    reason: &str,
    body: &str,
    keep: bool,
    extra: &[(&str, String)],
) -> Result<u64, HttpError> {
    let mut hdrs = vec![("Content-Type", "text/plain".to_string())];
    hdrs.extend_from_slice(extra);
    write_response(conn, status, reason, body.len() as u64, keep, &hdrs)?;
    conn.write_all(body.as_bytes())?;
    Ok(body.len() as u64)
}

/// The generated body a GET path names, or None (404).
fn route(path: &str, cfg: &Config) -> Option<Result<u64, String>> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path {
        "/" | "/gen" => Some(Ok(cfg.get_len)),
        p => {
            let n = p.strip_prefix("/gen/")?;
            Some(match n.parse::<u64>() {
                Ok(n) if n <= MAX_GEN => Ok(n),
                Ok(n) => Err(format!("{n} bytes exceeds the {MAX_GEN}-byte limit\n")),
                Err(_) => Err(format!("not a length: '{n}'\n")),
            })
        }
    }
}

/// Answers one request; returns its record and whether to keep the
/// connection.
fn respond<S: Stream>(
    conn: &mut Conn<S>,
    req: &RequestHead,
    cfg: &Config,
    last: bool,
) -> Result<(Value, bool), HttpError> {
    let mut keep = req.keep_alive() && !last;
    let mut v = json!({ "method": req.method, "path": req.path });
    match req.method.as_str() {
        "GET" | "HEAD" => {
            // A GET body is legal but meaningless: read and discard it so the
            // next request parses from the right place.
            let framing = req.framing()?;
            let discarded = conn.read_body(framing, MAX_POST, &mut |_| {})?;
            v["bytes_in"] = json!(discarded);
            match route(&req.path, cfg) {
                Some(Ok(len)) => {
                    let fnv = Generated::checksum(cfg.get_seed, len);
                    write_response(
                        conn,
                        200,
                        "OK",
                        len,
                        keep,
                        &[
                            ("Content-Type", "application/octet-stream".into()),
                            ("X-Fnv1a64", fnv.hex()),
                            ("X-Seed", cfg.get_seed.to_string()),
                        ],
                    )?;
                    let mut sent = 0;
                    if req.method == "GET" {
                        let mut g = Generated::new(cfg.get_seed, len);
                        let mut buf = vec![0u8; 32 * 1024];
                        loop {
                            let n = g.fill(&mut buf);
                            if n == 0 {
                                break;
                            }
                            conn.write_all(&buf[..n])?;
                            sent += n as u64;
                        }
                    }
                    v["status"] = json!(200);
                    v["bytes_out"] = json!(sent);
                    v["fnv_out"] = json!(fnv.hex());
                }
                Some(Err(msg)) => {
                    v["status"] = json!(400);
                    v["bytes_out"] = json!(simple(conn, 400, "Bad Request", &msg, keep, &[])?);
                }
                None => {
                    v["status"] = json!(404);
                    v["bytes_out"] =
                        json!(simple(conn, 404, "Not Found", "not found\n", keep, &[])?);
                }
            }
        }
        "POST" => {
            let framing = match req.framing() {
                Ok(f) => f,
                Err(e) => {
                    // Unknown framing: the rest of the stream is unparseable.
                    v["status"] = json!(400);
                    v["error"] = json!(e.to_string());
                    simple(conn, 400, "Bad Request", &format!("{e}\n"), false, &[])?;
                    return Ok((v, false));
                }
            };
            if let Framing::Length(n) = framing
                && n > MAX_POST
            {
                v["status"] = json!(413);
                simple(
                    conn,
                    413,
                    "Content Too Large",
                    "body too large\n",
                    false,
                    &[],
                )?;
                return Ok((v, false));
            }
            if req.expects_continue() {
                conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                v["continue"] = json!(true);
            }
            let mut h = Fnv::new();
            conn.read_body(framing, MAX_POST, &mut |b| h.update(b))?;
            let reply = json!({ "length": h.len(), "fnv1a64": h.hex() }).to_string();
            write_response(
                conn,
                200,
                "OK",
                reply.len() as u64,
                keep,
                &[("Content-Type", "application/json".into())],
            )?;
            conn.write_all(reply.as_bytes())?;
            v["status"] = json!(200);
            v["framing_in"] = json!(framing.name());
            v["bytes_in"] = json!(h.len());
            v["fnv_in"] = json!(h.hex());
            v["bytes_out"] = json!(reply.len());
        }
        _ => {
            // The body (if any) was not read, so the connection must end.
            keep = false;
            v["status"] = json!(405);
            v["bytes_out"] = json!(simple(
                conn,
                405,
                "Method Not Allowed",
                "only GET, HEAD and POST\n",
                false,
                &[("Allow", "GET, HEAD, POST".into())],
            )?);
        }
    }
    v["keep_alive"] = json!(keep);
    Ok((v, keep))
}

/// Serves until the quota, the deadline, or too many accept errors.
pub fn serve<L: Listener>(
    listener: &mut L,
    cfg: &Config,
    now: &dyn Fn() -> Duration,
    report: &mut dyn FnMut(&str, &Value),
) -> Summary {
    let deadline = now().saturating_add(cfg.deadline);
    let mut sum = Summary {
        requests: 0,
        connections: 0,
        errors: 0,
        stopped: "quota",
    };
    let mut accept_errors = 0;
    while sum.requests < cfg.max_requests {
        let left = deadline.saturating_sub(now());
        if left.is_zero() {
            sum.stopped = "deadline";
            break;
        }
        let (stream, peer) = match listener.accept_within(left) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                sum.errors += 1;
                accept_errors += 1;
                report(
                    "ERROR",
                    &json!({ "stage": "accept", "error": e.to_string() }),
                );
                if accept_errors >= MAX_ACCEPT_ERRORS {
                    sum.stopped = "accept-errors";
                    break;
                }
                continue;
            }
        };
        sum.connections += 1;
        let id = sum.connections;
        let mut conn = Conn::new(stream);
        let mut on_conn = 0u32;
        loop {
            let left = deadline.saturating_sub(now());
            if left.is_zero() {
                break;
            }
            if let Err(e) = conn.stream().set_timeout(cfg.idle.min(left)) {
                sum.errors += 1;
                report(
                    "ERROR",
                    &json!({ "conn": id, "stage": "settimeout", "error": e.to_string() }),
                );
                break;
            }
            let t0 = now();
            let req = match conn.read_request_head() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    report("INFO", &json!({ "conn": id, "event": "idle-timeout" }));
                    break;
                }
                Err(e) => {
                    sum.errors += 1;
                    let _ = simple(&mut conn, 400, "Bad Request", &format!("{e}\n"), false, &[]);
                    report(
                        "ERROR",
                        &json!({ "conn": id, "stage": "request", "error": e.to_string() }),
                    );
                    break;
                }
            };
            on_conn += 1;
            sum.requests += 1;
            let last = sum.requests >= cfg.max_requests;
            let in0 = conn.bytes_in;
            let res = respond(&mut conn, &req, cfg, last);
            let dt = now().saturating_sub(t0);
            match res {
                Ok((mut v, keep)) => {
                    v["conn"] = json!(id);
                    v["req"] = json!(sum.requests);
                    v["req_on_conn"] = json!(on_conn);
                    v["peer"] = json!(peer);
                    v["ms"] = json!(dt.as_secs_f64() * 1e3);
                    let moved = v["bytes_out"].as_u64().unwrap_or(0) + (conn.bytes_in - in0);
                    let s = dt.as_secs_f64();
                    v["mb_per_s"] = json!(if s > 0.0 { moved as f64 / s / 1e6 } else { 0.0 });
                    report("HTTP", &v);
                    if !keep {
                        break;
                    }
                }
                Err(e) => {
                    sum.errors += 1;
                    report(
                        "ERROR",
                        &json!({ "conn": id, "req": sum.requests, "method": req.method,
                                 "path": req.path, "error": e.to_string() }),
                    );
                    break;
                }
            }
        }
        if let Err(e) = conn.into_inner().finish() {
            report(
                "ERROR",
                &json!({ "conn": id, "stage": "close", "error": e.to_string() }),
            );
        }
    }
    sum
}

#[cfg(not(target_os = "uefi"))]
fn main() {
    eprintln!(
        "efisock-http-server is a UEFI application; run it with `cargo xtask http-examples`."
    );
    std::process::exit(2);
}

#[cfg(target_os = "uefi")]
fn main() {
    app::main()
}

#[cfg(target_os = "uefi")]
mod app {
    use std::io;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::time::Duration;

    use efisock::{Net, Socket};
    use efisock_efi::backend::EfiPlatform;
    use serde_json::json;

    use super::common::guest::{done, install_panic_hook, line, options, platform};
    use super::common::{EXIT_DHCP, EXIT_NET, EXIT_SETUP};
    use super::{Config, Listener, serve};

    const KNOWN: &[&str] = &[
        "port",
        "max-requests",
        "deadline-s",
        "idle-s",
        "get-len",
        "get-seed",
    ];

    struct EfiListener(Socket<EfiPlatform>);

    impl Listener for EfiListener {
        type S = Socket<EfiPlatform>;
        fn accept_within(&mut self, d: Duration) -> io::Result<Option<(Self::S, String)>> {
            self.0.settimeout(Some(d))?;
            match self.0.accept() {
                Ok((s, peer)) => Ok(Some((s, peer.to_string()))),
                Err(e) if e.is_timeout() => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }

    fn config() -> Result<(u16, Config), String> {
        let o = options(KNOWN)?;
        Ok((
            o.u64_in("port", 1..=65535, None)? as u16,
            Config {
                max_requests: o.u64_in("max-requests", 1..=10_000, None)? as u32,
                deadline: Duration::from_secs(o.u64_in("deadline-s", 1..=3600, None)?),
                idle: Duration::from_secs(o.u64_in("idle-s", 1..=600, Some(30))?),
                get_len: o.u64_in("get-len", 0..=super::MAX_GEN, None)?,
                get_seed: o.u64_in("get-seed", 0..=u64::MAX, None)?,
            },
        ))
    }

    fn fail(stage: &str, e: impl std::fmt::Display, code: u8) -> ! {
        line(
            "ERROR",
            &json!({ "stage": stage, "error": e.to_string() }).to_string(),
        );
        done(code)
    }

    pub fn main() {
        install_panic_hook();
        line("HELLO", r#"{"app":"efisock-http-server"}"#);
        let (port, cfg) = config().unwrap_or_else(|e| fail("options", e, EXIT_SETUP));
        let net = Net::new(platform().unwrap_or_else(|e| fail("platform", e, EXIT_SETUP)));
        let t0 = net.now();
        let addr = net
            .dhcp(Duration::from_secs(30))
            .unwrap_or_else(|e| fail("dhcp", e, EXIT_DHCP));
        let ms = net.now().saturating_sub(t0).as_secs_f64() * 1e3;
        line(
            "DHCP",
            &json!({ "addr": addr.to_string(), "ms": ms }).to_string(),
        );
        let sock = net.socket().unwrap_or_else(|e| fail("socket", e, EXIT_NET));
        sock.bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .unwrap_or_else(|e| fail("bind", e, EXIT_NET));
        sock.listen(8)
            .unwrap_or_else(|e| fail("listen", e, EXIT_NET));
        line(
            "READY",
            &json!({ "addr": addr.to_string(), "port": port,
                     "max_requests": cfg.max_requests, "deadline_s": cfg.deadline.as_secs() })
            .to_string(),
        );
        let mut listener = EfiListener(sock);
        let now = || net.now();
        let t1 = net.now();
        let sum = serve(&mut listener, &cfg, &now, &mut |kind, v| {
            line(kind, &v.to_string())
        });
        let ms = net.now().saturating_sub(t1).as_secs_f64() * 1e3;
        let _ = listener.0.close();
        let teardown = net
            .shutdown(Duration::from_secs(10))
            .err()
            .map(|e| e.to_string());
        line(
            "SUMMARY",
            &json!({ "requests": sum.requests, "connections": sum.connections,
                     "errors": sum.errors, "stopped": sum.stopped, "ms": ms,
                     "teardown_error": teardown })
            .to_string(),
        );
        done(sum.exit_code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    struct HostListener(TcpListener);

    impl Listener for HostListener {
        type S = TcpStream;
        fn accept_within(&mut self, d: Duration) -> io::Result<Option<(TcpStream, String)>> {
            self.0.set_nonblocking(true)?;
            let end = Instant::now() + d;
            loop {
                match self.0.accept() {
                    Ok((s, peer)) => {
                        s.set_nonblocking(false)?;
                        return Ok(Some((s, peer.to_string())));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() >= end {
                            return Ok(None);
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    type Served = std::thread::JoinHandle<(Summary, Vec<(String, Value)>)>;

    fn start(cfg: Config) -> (u16, Served) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let origin = Instant::now();
            let now = move || origin.elapsed();
            let mut lines = Vec::new();
            let sum = serve(&mut HostListener(l), &cfg, &now, &mut |k, v| {
                lines.push((k.to_string(), v.clone()))
            });
            (sum, lines)
        });
        (port, h)
    }

    fn client(port: u16) -> Conn<TcpStream> {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn::new(s)
    }

    fn body(c: &mut Conn<TcpStream>, f: Framing) -> Fnv {
        let mut h = Fnv::new();
        c.read_body(f, 1 << 30, &mut |b| h.update(b)).unwrap();
        h
    }

    #[test]
    fn serves_get_post_continue_chunked_errors_then_stops_at_quota() {
        let cfg = Config {
            max_requests: 5,
            deadline: Duration::from_secs(30),
            idle: Duration::from_secs(5),
            get_len: 100_000,
            get_seed: 7,
        };
        let (port, h) = start(cfg);
        let mut c = client(port);
        // 1: GET, keep-alive.
        c.write_all(b"GET /gen HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = c.read_response_head().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.keep_alive());
        let f = r.framing("GET").unwrap();
        assert_eq!(f, Framing::Length(100_000));
        let got = body(&mut c, f);
        let want = Generated::checksum(7, 100_000);
        assert_eq!(got.hash(), want.hash());
        assert_eq!(r.headers.get("x-fnv1a64"), Some(want.hex()));
        // 2: POST with Expect: 100-continue on the same connection.
        let len = 300_000u64;
        c.write_all(
            format!("POST /up HTTP/1.1\r\nContent-Length: {len}\r\nExpect: 100-continue\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(c.read_response_head().unwrap().status, 100);
        let mut g = Generated::new(9, len);
        let mut buf = vec![0u8; 7000];
        loop {
            let n = g.fill(&mut buf);
            if n == 0 {
                break;
            }
            c.write_all(&buf[..n]).unwrap();
        }
        let r = c.read_response_head().unwrap();
        assert_eq!(r.status, 200);
        let mut reply = Vec::new();
        c.read_body(r.framing("POST").unwrap(), 4096, &mut |b| {
            reply.extend_from_slice(b)
        })
        .unwrap();
        let j: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(j["length"], json!(len));
        assert_eq!(j["fnv1a64"], json!(Generated::checksum(9, len).hex()));
        // 3: chunked POST.
        c.write_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        let r = c.read_response_head().unwrap();
        let mut reply = Vec::new();
        c.read_body(r.framing("POST").unwrap(), 4096, &mut |b| {
            reply.extend_from_slice(b)
        })
        .unwrap();
        let mut e = Fnv::new();
        e.update(b"abcde");
        let j: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(
            (j["length"].as_u64(), j["fnv1a64"].as_str()),
            (Some(5), Some(e.hex().as_str()))
        );
        drop(c);
        // 4 and 5 on a second connection: 404, then 405 (closes; quota).
        let mut c = client(port);
        c.write_all(b"GET /nope HTTP/1.1\r\n\r\nDELETE / HTTP/1.1\r\n\r\n")
            .unwrap();
        let r = c.read_response_head().unwrap();
        assert_eq!(r.status, 404);
        body(&mut c, r.framing("GET").unwrap());
        let r = c.read_response_head().unwrap();
        assert_eq!(r.status, 405);
        assert!(!r.keep_alive());
        body(&mut c, r.framing("DELETE").unwrap());
        let (sum, lines) = h.join().unwrap();
        assert_eq!(
            sum,
            Summary {
                requests: 5,
                connections: 2,
                errors: 0,
                stopped: "quota"
            }
        );
        assert_eq!(sum.exit_code(), EXIT_OK);
        let http: Vec<&Value> = lines
            .iter()
            .filter(|(k, _)| k == "HTTP")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(http.len(), 5);
        assert_eq!(http[1]["continue"], json!(true));
        assert_eq!(http[1]["bytes_in"], json!(len));
        assert_eq!(http[2]["framing_in"], json!("chunked"));
        assert_eq!(http[4]["status"], json!(405));
    }

    #[test]
    fn last_request_of_quota_closes_and_bad_requests_are_answered() {
        let cfg = Config {
            max_requests: 2,
            deadline: Duration::from_secs(30),
            idle: Duration::from_secs(5),
            get_len: 10,
            get_seed: 1,
        };
        let (port, h) = start(cfg);
        let mut c = client(port);
        c.write_all(b"this is not http\r\n\r\n").unwrap();
        let r = c.read_response_head().unwrap();
        assert_eq!(r.status, 400);
        let mut c = client(port);
        c.write_all(b"GET /gen/99999999999 HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\n")
            .unwrap();
        let r = c.read_response_head().unwrap();
        assert_eq!(r.status, 400);
        body(&mut c, r.framing("GET").unwrap());
        let r = c.read_response_head().unwrap();
        assert_eq!((r.status, r.keep_alive()), (200, false));
        assert_eq!(r.framing("HEAD").unwrap(), Framing::None);
        let (sum, _) = h.join().unwrap();
        assert_eq!((sum.requests, sum.errors, sum.stopped), (2, 1, "quota"));
        assert_ne!(sum.exit_code(), EXIT_OK);
    }

    #[test]
    fn deadline_stops_an_idle_server() {
        let cfg = Config {
            max_requests: 3,
            deadline: Duration::from_millis(300),
            idle: Duration::from_secs(5),
            get_len: 10,
            get_seed: 1,
        };
        let (_port, h) = start(cfg);
        let (sum, _) = h.join().unwrap();
        assert_eq!((sum.requests, sum.stopped), (0, "deadline"));
        assert_eq!(sum.exit_code(), EXIT_DEADLINE);
    }
}
