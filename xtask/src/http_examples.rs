//! `cargo xtask http-examples`: the HTTP/1.1 example apps in OVMF, driven by
//! real programs nobody here wrote.
//!
//! (a) Python's `http.server` (`xtask/http/server.py`, a minimal subclass
//!     adding POST and a chunked route) serves a generated file on
//!     127.0.0.1; `efisock-http-client` boots in OVMF, fetches it from
//!     10.0.2.2 (keep-alive GET, chunked GET) and POSTs a body; its
//!     `EFISOCK-HTTP` lines are checked here against checksums computed
//!     independently on the host.
//! (b) `efisock-http-server` boots with `hostfwd=tcp:127.0.0.1:H-:G`; `curl`
//!     makes two GETs on one connection (reuse checked with
//!     `%{num_connects}`), a POST of 1.5 MiB (curl sends
//!     `Expect: 100-continue`) whose checksum the guest reports back, and a
//!     `Connection: close` GET that completes the guest's request quota.
//!
//! Why generated bodies with FNV-1a-64: no large files in the repo, and
//! every byte is checked without trusting the guest's own arithmetic (the
//! generator and hash are re-implemented here, independently of
//! `efi-target/apps/src/bin/http_common`). Everything is loopback, QEMU always
//! runs under a wall-clock limit, and serial logs stay under
//! `target/efisock-http/{client,server}/`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::qemu::{
    EfiBuild, EfisockLine, QemuError, QemuOptions, QemuOutcome, build_efi_bin, ensure_tools, log,
    run_qemu, target_dir, workspace_root,
};

const USAGE: &str = "usage: cargo xtask http-examples [--debug] [--timeout SECS] \
                     [--only client|server] [--get-len BYTES] [--post-len BYTES]";

/// The guest port the server example listens on.
const GUEST_PORT: u16 = 8080;

/// FNV-1a-64 (host-side reimplementation).
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The example bodies: byte `i` is byte `i % 8` (little-endian) of
/// `splitmix64(seed + i / 8)` (host-side reimplementation).
pub fn generated(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        let mut z = seed.wrapping_add(i).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// The raw value of `"key":` in a flat, compact JSON object (strings
/// without their quotes; escapes are not decoded, which the guest's values
/// never contain).
pub fn json_field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let at = body.find(&pat)? + pat.len();
    let rest = &body[at..];
    if let Some(s) = rest.strip_prefix('"') {
        return s.find('"').map(|e| &s[..e]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// A numeric field, NaN when absent (printed as "NaN", never hidden).
fn float_field(body: &str, key: &str) -> f64 {
    json_field(body, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// Tails a serial log while QEMU runs, stamping each `EFISOCK-*` line with
/// the host time it first appeared (for boot timing and readiness).
struct SerialWatch {
    seen: Arc<Mutex<Vec<(Instant, EfisockLine)>>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl SerialWatch {
    fn start(path: PathBuf) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (Arc::clone(&seen), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            while !st2.load(Ordering::Relaxed) {
                if let Ok(raw) = fs::read(&path) {
                    let text = String::from_utf8_lossy(&raw);
                    // Only complete lines: a line still being written is
                    // picked up on the next pass.
                    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
                    let lines = log::parse_lines(complete);
                    if let Ok(mut v) = s2.lock() {
                        let now = Instant::now();
                        let have = v.len();
                        if lines.len() > have {
                            v.extend(lines.into_iter().skip(have).map(|l| (now, l)));
                        }
                    }
                }
                thread::sleep(Duration::from_millis(25));
            }
        });
        SerialWatch {
            seen,
            stop,
            handle: Some(handle),
        }
    }

    fn first(&self, kind: &str) -> Option<(Instant, String)> {
        let v = self.seen.lock().ok()?;
        v.iter()
            .find(|(_, l)| l.kind == kind)
            .map(|(t, l)| (*t, l.body.clone()))
    }

    /// Waits up to `limit` for a line of `kind`, or until `gave_up()`.
    fn wait_for(
        &self,
        kind: &str,
        limit: Duration,
        gave_up: &dyn Fn() -> bool,
    ) -> Option<(Instant, String)> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(x) = self.first(kind) {
                return Some(x);
            }
            if gave_up() {
                // One last look: the line may have landed just before exit.
                thread::sleep(Duration::from_millis(60));
                return self.first(kind);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A QEMU boot running on its own thread.
struct Boot {
    started: Instant,
    handle: thread::JoinHandle<Result<QemuOutcome, QemuError>>,
    watch: SerialWatch,
}

impl Boot {
    fn start(efi: PathBuf, opts: QemuOptions) -> Self {
        let serial = opts.work_dir.join("serial.log");
        // run_qemu deletes the old log first; remove it here too so the
        // watcher never reads the previous run's lines.
        let _ = fs::remove_file(&serial);
        let started = Instant::now();
        let handle = thread::spawn(move || run_qemu(&efi, &opts));
        let watch = SerialWatch::start(serial);
        Boot {
            started,
            handle,
            watch,
        }
    }

    fn finished(&self) -> bool {
        self.handle.is_finished()
    }

    fn join(self) -> Result<(QemuOutcome, Option<Duration>), String> {
        let out = self
            .handle
            .join()
            .map_err(|_| "the QEMU thread panicked".to_string())??;
        let boot = self
            .watch
            .first("HELLO")
            .map(|(t, _)| t.saturating_duration_since(self.started));
        self.watch.stop();
        Ok((out, boot))
    }
}

fn write_options(work: &Path, text: &str) -> Result<(), String> {
    let esp = work.join("esp");
    fs::create_dir_all(&esp).map_err(|e| format!("create {}: {e}", esp.display()))?;
    fs::write(esp.join("efisock-args.txt"), format!("{text}\n"))
        .map_err(|e| format!("write the options file: {e}"))
}

fn print_lines(who: &str, out: &QemuOutcome) {
    for l in &out.lines {
        println!("  [{who}] {}{} {}", log::PREFIX, l.kind, l.body);
    }
}

/// Guest verdict: DONE 0, exit code 0, no timeout.
fn check_exit(who: &str, out: &QemuOutcome) -> Result<(), String> {
    let done = log::done_code(&out.lines);
    if out.timed_out {
        return Err(format!(
            "{who}: QEMU killed by the wall-clock limit; see {}",
            out.serial_log.display()
        ));
    }
    if done != Some(0) || out.app_code != Some(0) {
        return Err(format!(
            "{who}: EFISOCK-DONE {done:?}, isa-debug-exit code {:?} (1 setup, 2 DHCP, 3 net, \
             4 verify, 5 panic, 6 deadline); see {}",
            out.app_code,
            out.serial_log.display()
        ));
    }
    Ok(())
}

fn field_ms(out: &QemuOutcome, kind: &str) -> Option<f64> {
    out.lines
        .iter()
        .find(|l| l.kind == kind)
        .and_then(|l| json_field(&l.body, "ms")?.parse().ok())
}

/// Starts `server.py`; returns the child and its port.
fn start_python(www: &Path, log_path: &Path, max_s: u64) -> Result<(Child, u16), String> {
    let script = workspace_root().join("xtask/http/server.py");
    let errlog =
        fs::File::create(log_path).map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--dir", &www.display().to_string()])
        .args(["--port", "0", "--max-seconds", &max_s.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errlog)
        .spawn()
        .map_err(|e| format!("cannot start python3 {}: {e}", script.display()))?;
    let stdout = child.stdout.take().ok_or("python3 has no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    match line
        .trim()
        .strip_prefix("LISTENING ")
        .map(str::parse::<u16>)
    {
        Some(Ok(p)) if p > 0 => Ok((child, p)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "server.py did not report its port (got '{}'); see {}",
                line.trim(),
                log_path.display()
            ))
        }
    }
}

/// Settings for one run.
#[derive(Debug, Clone)]
struct Settings {
    release: bool,
    timeout: Duration,
    client: bool,
    server: bool,
    get_len: usize,
    post_len: usize,
}

fn client_case(s: &Settings, efi: PathBuf) -> Result<Vec<String>, String> {
    let work = target_dir().join("efisock-http/client");
    let www = work.join("www");
    fs::create_dir_all(&www).map_err(|e| format!("create {}: {e}", www.display()))?;
    let blob = generated(0x5eed, s.get_len);
    let get_fnv = fnv1a64(&blob);
    fs::write(www.join("blob.bin"), &blob).map_err(|e| format!("write blob.bin: {e}"))?;
    let post_seed = 0xb0d1u64;
    let post_fnv = fnv1a64(&generated(post_seed, s.post_len));
    let pylog = work.join("python-http.log");
    let (mut py, port) = start_python(&www, &pylog, s.timeout.as_secs() + 60)?;
    println!(
        "client: python3 http.server on 127.0.0.1:{port} (guest: 10.0.2.2:{port}) serving \
         blob.bin ({} B, fnv1a64 {}); POST {} B expected fnv1a64 {}",
        s.get_len,
        hex(get_fnv),
        s.post_len,
        hex(post_fnv)
    );
    let result = (|| {
        write_options(
            &work,
            &format!(
                "--port {port} --get-path /blob.bin --chunked-path /chunked/blob.bin \
                 --get-len {} --get-fnv {} --post-path /upload --post-len {} \
                 --post-seed {post_seed} --timeout-s 120",
                s.get_len,
                hex(get_fnv),
                s.post_len
            ),
        )?;
        let opts = QemuOptions {
            timeout: s.timeout,
            work_dir: work.clone(),
            ..QemuOptions::default()
        };
        Boot::start(efi, opts).join()
    })();
    let _ = py.kill();
    let _ = py.wait();
    let (out, boot) = result?;
    print_lines("client", &out);
    let mut report = Vec::new();
    check_exit("client", &out)?;
    let http: Vec<&EfisockLine> = out.lines.iter().filter(|l| l.kind == "HTTP").collect();
    for want in ["get", "get-chunked", "post"] {
        let l = http
            .iter()
            .find(|l| json_field(&l.body, "exchange") == Some(want))
            .ok_or_else(|| format!("client: no EFISOCK-HTTP line for '{want}'"))?;
        if json_field(&l.body, "ok") != Some("true") {
            return Err(format!("client: exchange '{want}' failed: {}", l.body));
        }
        // Independent host-side check of what the guest reports.
        let (bytes, fnv) = match want {
            "post" => (
                json_field(&l.body, "server_length"),
                json_field(&l.body, "server_fnv1a64"),
            ),
            _ => (json_field(&l.body, "bytes"), json_field(&l.body, "fnv1a64")),
        };
        let (want_len, want_fnv) = if want == "post" {
            (s.post_len, post_fnv)
        } else {
            (s.get_len, get_fnv)
        };
        if bytes != Some(&want_len.to_string()) || fnv != Some(&hex(want_fnv)) {
            return Err(format!(
                "client: '{want}' reports {bytes:?} bytes / {fnv:?}, host expects {want_len} / {}",
                hex(want_fnv)
            ));
        }
        report.push(format!(
            "client {want:<11} {} B  fnv1a64 {}  {:.0} ms  {:.2} MB/s  framing {}",
            want_len,
            hex(want_fnv),
            float_field(&l.body, "ms"),
            float_field(&l.body, "mb_per_s"),
            json_field(&l.body, "framing").unwrap_or("?"),
        ));
    }
    let served = fs::read_to_string(&pylog).unwrap_or_default();
    let requests = served
        .lines()
        .filter(|l| l.contains("\"GET ") || l.contains("\"POST "))
        .count();
    report.insert(
        0,
        format!(
            "client boot→HELLO {:.2} s, DHCP {:.0} ms, QEMU wall {:.2} s, python saw {requests} requests \
             (log {}), serial {}",
            boot.map_or(f64::NAN, |d| d.as_secs_f64()),
            field_ms(&out, "DHCP").unwrap_or(f64::NAN),
            out.wall.as_secs_f64(),
            pylog.display(),
            out.serial_log.display()
        ),
    );
    if requests != 3 {
        return Err(format!(
            "client: python3 logged {requests} requests, expected 3: {served}"
        ));
    }
    Ok(report)
}

fn free_port() -> Result<u16, String> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

const CURL_W: &str = "%{http_code} %{size_download} %{size_upload} %{time_total} %{num_connects} \
                      %{speed_download} %{speed_upload}\\n";

/// One `curl -w` result line.
#[derive(Debug, Clone, PartialEq)]
struct CurlStat {
    code: u16,
    down: u64,
    up: u64,
    secs: f64,
    connects: u32,
    down_bps: f64,
    up_bps: f64,
}

fn parse_curl_w(text: &str) -> Result<Vec<CurlStat>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let bad = || format!("unexpected curl -w line '{l}'");
            if f.len() != 7 {
                return Err(bad());
            }
            Ok(CurlStat {
                code: f[0].parse().map_err(|_| bad())?,
                down: f[1].parse().map_err(|_| bad())?,
                up: f[2].parse().map_err(|_| bad())?,
                secs: f[3].parse().map_err(|_| bad())?,
                connects: f[4].parse().map_err(|_| bad())?,
                down_bps: f[5].parse().map_err(|_| bad())?,
                up_bps: f[6].parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

fn curl(dir: &Path, args: &[String]) -> Result<Vec<CurlStat>, String> {
    let out = Command::new("curl")
        .current_dir(dir)
        .args([
            "-sS",
            "--connect-timeout",
            "20",
            "--max-time",
            "300",
            "-w",
            CURL_W,
        ])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "  $ curl {}\n    -> {}",
        args.join(" "),
        stdout.trim().replace('\n', " | ")
    );
    if !out.status.success() {
        return Err(format!(
            "curl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_curl_w(&stdout)
}

fn server_case(s: &Settings, efi: PathBuf) -> Result<Vec<String>, String> {
    let work = target_dir().join("efisock-http/server");
    fs::create_dir_all(&work).map_err(|e| format!("create {}: {e}", work.display()))?;
    let hport = free_port()?;
    let (get_len, get_seed) = (s.get_len, 77u64);
    let deadline = s.timeout.as_secs().saturating_sub(20).clamp(30, 600);
    write_options(
        &work,
        &format!(
            "--port {GUEST_PORT} --max-requests 4 --deadline-s {deadline} --idle-s 30 \
             --get-len {get_len} --get-seed {get_seed}"
        ),
    )?;
    let opts = QemuOptions {
        timeout: s.timeout,
        work_dir: work.clone(),
        hostfwd: vec![(hport, GUEST_PORT)],
        ..QemuOptions::default()
    };
    println!("server: hostfwd 127.0.0.1:{hport} -> guest:{GUEST_PORT}");
    let boot = Boot::start(efi, opts);
    let ready = boot.watch.wait_for("READY", s.timeout, &|| boot.finished());
    let base = format!("http://127.0.0.1:{hport}");
    let driven = match &ready {
        None => Err("server: the guest never printed EFISOCK-READY".to_string()),
        Some(_) => drive_server(&work, &base, s, get_len, get_seed),
    };
    let started = boot.started;
    let (out, boot_time) = boot.join()?;
    print_lines("server", &out);
    let mut report = driven?;
    check_exit("server", &out)?;
    let http: Vec<&EfisockLine> = out.lines.iter().filter(|l| l.kind == "HTTP").collect();
    if http.len() != 4
        || http
            .iter()
            .any(|l| json_field(&l.body, "status") != Some("200"))
    {
        return Err(format!(
            "server: expected 4 EFISOCK-HTTP lines with status 200, got {}",
            http.len()
        ));
    }
    let post = http
        .iter()
        .find(|l| json_field(&l.body, "method") == Some("POST"))
        .ok_or("server: no POST line")?;
    report.push(format!(
        "server guest POST line: bytes_in {} fnv_in {} 100-continue {} ({:.0} ms, {:.2} MB/s in the guest)",
        json_field(&post.body, "bytes_in").unwrap_or("?"),
        json_field(&post.body, "fnv_in").unwrap_or("?"),
        json_field(&post.body, "continue").unwrap_or("false"),
        float_field(&post.body, "ms"),
        float_field(&post.body, "mb_per_s"),
    ));
    report.insert(
        0,
        format!(
            "server boot→HELLO {:.2} s, DHCP {:.0} ms, READY after {:.2} s, QEMU wall {:.2} s, serial {}",
            boot_time.map_or(f64::NAN, |d| d.as_secs_f64()),
            field_ms(&out, "DHCP").unwrap_or(f64::NAN),
            ready.map_or(f64::NAN, |(t, _)| t.saturating_duration_since(started).as_secs_f64()),
            out.wall.as_secs_f64(),
            out.serial_log.display()
        ),
    );
    Ok(report)
}

/// The curl side of the server case.
fn drive_server(
    work: &Path,
    base: &str,
    s: &Settings,
    get_len: usize,
    get_seed: u64,
) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    let _ = fs::remove_file(work.join("headers.txt"));
    // Two GETs in one curl invocation: the second must reuse the connection.
    let st = curl(
        work,
        &[
            "-D".into(),
            "headers.txt".into(),
            "-o".into(),
            "get1.bin".into(),
            format!("{base}/gen"),
            "-o".into(),
            "get2.bin".into(),
            format!("{base}/gen/100000"),
        ],
    )?;
    if st.len() != 2 || st.iter().any(|c| c.code != 200) {
        return Err(format!("server: keep-alive GETs: {st:?}"));
    }
    if st[0].connects != 1 || st[1].connects != 0 {
        return Err(format!(
            "server: the second GET did not reuse the connection (num_connects {} then {})",
            st[0].connects, st[1].connects
        ));
    }
    let headers = fs::read_to_string(work.join("headers.txt")).unwrap_or_default();
    for (file, len, stat) in [("get1.bin", get_len, &st[0]), ("get2.bin", 100_000, &st[1])] {
        let got = fs::read(work.join(file)).map_err(|e| format!("read {file}: {e}"))?;
        let want = fnv1a64(&generated(get_seed, len));
        if got.len() != len || fnv1a64(&got) != want {
            return Err(format!(
                "server: {file}: {} B fnv1a64 {}, expected {len} B {}",
                got.len(),
                hex(fnv1a64(&got)),
                hex(want)
            ));
        }
        if !headers
            .to_ascii_lowercase()
            .contains(&format!("x-fnv1a64: {}", hex(want)))
        {
            return Err(format!(
                "server: no X-Fnv1a64: {} header for {file}",
                hex(want)
            ));
        }
        report.push(format!(
            "server GET {file}: {len} B fnv1a64 {} verified, {:.3} s, {:.2} MB/s, connects {}",
            hex(want),
            stat.secs,
            stat.down_bps / 1e6,
            stat.connects
        ));
    }
    // The POST (≥ 1 MiB; curl adds Expect: 100-continue).
    let body = generated(0xc0ffee, s.post_len);
    let want = fnv1a64(&body);
    fs::write(work.join("post.bin"), &body).map_err(|e| format!("write post.bin: {e}"))?;
    let st = curl(
        work,
        &[
            "-H".into(),
            "Content-Type: application/octet-stream".into(),
            "--data-binary".into(),
            "@post.bin".into(),
            "-o".into(),
            "post.json".into(),
            format!("{base}/upload"),
        ],
    )?;
    let reply = fs::read_to_string(work.join("post.json")).unwrap_or_default();
    let (len, fnv) = (json_field(&reply, "length"), json_field(&reply, "fnv1a64"));
    if st.first().map(|c| c.code) != Some(200)
        || len != Some(&s.post_len.to_string())
        || fnv != Some(&hex(want))
    {
        return Err(format!(
            "server: POST of {} B (fnv1a64 {}) answered {st:?} {reply}",
            s.post_len,
            hex(want)
        ));
    }
    report.push(format!(
        "server POST {} B: guest reports {reply}, host fnv1a64 {} — match; {:.3} s, upload {:.2} MB/s",
        s.post_len,
        hex(want),
        st[0].secs,
        st[0].up_bps / 1e6
    ));
    // The last request of the quota, with Connection: close.
    let st = curl(
        work,
        &[
            "-H".into(),
            "Connection: close".into(),
            "-o".into(),
            "get3.bin".into(),
            format!("{base}/gen/1000"),
        ],
    )?;
    let got = fs::read(work.join("get3.bin")).map_err(|e| format!("read get3.bin: {e}"))?;
    if st.first().map(|c| c.code) != Some(200)
        || fnv1a64(&got) != fnv1a64(&generated(get_seed, 1000))
    {
        return Err(format!(
            "server: Connection: close GET: {st:?}, {} B",
            got.len()
        ));
    }
    report.push("server GET /gen/1000 with Connection: close: 1000 B verified".into());
    Ok(report)
}

fn parse_args(args: &[String]) -> Result<Settings, String> {
    let mut s = Settings {
        release: true,
        timeout: Duration::from_secs(300),
        client: true,
        server: true,
        get_len: 2 * 1024 * 1024,
        post_len: 1536 * 1024,
    };
    let mut it = args.iter();
    let num = |v: Option<&String>, what: &str, lo: u64, hi: u64| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{what} needs a value; {USAGE}"))?;
        v.parse::<u64>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
            .ok_or_else(|| format!("{what}: want {lo}..={hi}, got '{v}'"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => s.release = false,
            "--timeout" => s.timeout = Duration::from_secs(num(it.next(), "--timeout", 30, 3600)?),
            "--get-len" => s.get_len = num(it.next(), "--get-len", 0, 64 << 20)? as usize,
            "--post-len" => s.post_len = num(it.next(), "--post-len", 1 << 20, 64 << 20)? as usize,
            "--only" => match it.next().map(String::as_str) {
                Some("client") => s.server = false,
                Some("server") => s.client = false,
                other => return Err(format!("--only client|server, got {other:?}")),
            },
            other => return Err(format!("unknown argument '{other}'; {USAGE}")),
        }
    }
    Ok(s)
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// curl (installed with apt-get when root) and python3 must be present.
fn ensure_peers() -> Result<(), String> {
    if !in_path("python3") {
        return Err("python3 is required for the client case (apt-get install -y python3)".into());
    }
    if in_path("curl") {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err("curl is missing; install it with: sudo apt-get install -y curl".into());
    }
    let ok = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "curl"])
        .status()
        .is_ok_and(|s| s.success());
    if ok && in_path("curl") {
        Ok(())
    } else {
        Err("apt-get install -y curl failed; install curl by hand".into())
    }
}

/// `cargo xtask http-examples [...]`: see the module docs.
pub fn http_examples(args: &[String]) -> Result<(), String> {
    let s = parse_args(args)?;
    let t0 = Instant::now();
    ensure_tools()?;
    ensure_peers()?;
    let spec = |bin| EfiBuild {
        package: "efisock-efi-apps",
        bin,
        features: vec!["http-apps"],
        no_default_features: false,
        std: true,
    };
    let client_efi = build_efi_bin(&spec("efisock-http-client"), s.release)?;
    let server_efi = build_efi_bin(&spec("efisock-http-server"), s.release)?;
    println!(
        "built {} and {} in {:.1} s",
        client_efi.display(),
        server_efi.display(),
        t0.elapsed().as_secs_f64()
    );
    let mut failures = Vec::new();
    let mut report = Vec::new();
    if s.client {
        match client_case(&s, client_efi) {
            Ok(r) => report.extend(r),
            Err(e) => failures.push(e),
        }
    }
    if s.server {
        match server_case(&s, server_efi) {
            Ok(r) => report.extend(r),
            Err(e) => failures.push(e),
        }
    }
    println!("== http-examples report");
    for r in &report {
        println!("  {r}");
    }
    println!("== wall time {:.1} s", t0.elapsed().as_secs_f64());
    if failures.is_empty() {
        println!("== http-examples: all checks passed");
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_and_generator_match_the_guest_definitions() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        // splitmix64(0) first output, little-endian.
        assert_eq!(generated(0, 8), 0xe220a8397b1dcdafu64.to_le_bytes());
        let g = generated(9, 1001);
        assert_eq!(g.len(), 1001);
        assert_eq!(&generated(9, 17)[..], &g[..17]);
    }

    #[test]
    fn json_fields_of_guest_lines() {
        let b = r#"{"exchange":"get","ok":true,"bytes":2097152,"ms":12.5,"x":null}"#;
        assert_eq!(json_field(b, "exchange"), Some("get"));
        assert_eq!(json_field(b, "ok"), Some("true"));
        assert_eq!(json_field(b, "bytes"), Some("2097152"));
        assert_eq!(json_field(b, "x"), Some("null"));
        assert_eq!(json_field(b, "nope"), None);
    }

    #[test]
    fn curl_write_out_lines() {
        let v = parse_curl_w("200 1048576 0 0.5 1 2097152 0\n200 10 0 0.1 0 100 0\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].code, v[0].down, v[0].connects), (200, 1048576, 1));
        assert_eq!(v[1].connects, 0);
        assert!(parse_curl_w("200 x\n").is_err());
    }

    #[test]
    fn arguments() {
        let s = parse_args(&[
            "--only".into(),
            "server".into(),
            "--timeout".into(),
            "100".into(),
        ])
        .unwrap();
        assert!(s.server && !s.client);
        assert_eq!(s.timeout, Duration::from_secs(100));
        assert!(parse_args(&["--post-len".into(), "10".into()]).is_err());
        assert!(parse_args(&["--bogus".into()]).is_err());
    }

    /// Boots both examples (slow); `cargo test -p xtask -- --ignored
    /// --nocapture http_examples_boot`.
    #[test]
    #[ignore = "builds std for UEFI and boots QEMU twice"]
    fn http_examples_boot() {
        http_examples(&[]).unwrap();
    }
}
