//! The network smoke test: DHCP, then one TCP echo exchange with a host-side
//! server, driven through the raw boundary traits only.
//!
//! It exists to prove the backend end to end and to *measure* real firmware
//! behaviour (statuses, Poll counts, timings, segment sizes) that calibrates
//! the simulator; see `efi-target/OBSERVED.md`. It is generic over
//! [`Platform`], so it contains no firmware-specific code.
//!
//! Wire protocol with the host echo server (`xtask/src/qemu_echo.rs`): the
//! guest sends a 4-byte big-endian length `L` followed by `L` pattern bytes;
//! the server echoes all `4 + L` bytes, then shuts down its sending side (FIN)
//! and closes once the guest closes. Every wait is bounded by a Poll count and
//! a time limit.

pub mod pool;

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use efisock::firmware::status::{self, CONNECTION_FIN};
use efisock::firmware::{
    BootServices, Event, EventType, Ip4Config2, Ip4Config2DataType, Ip4Config2InterfaceInfo,
    Ip4Config2Policy, Ipv4Address, Platform, Status, Tcp4, Tcp4AccessPoint, Tcp4CloseToken,
    Tcp4ConfigData, Tcp4ConnectionToken, Tcp4FragmentData, Tcp4IoToken, Tcp4Packet,
    Tcp4ReceiveData, Tcp4ServiceBinding, Tcp4TransmitData, Tpl,
};
use uefi_raw::Boolean;

use crate::json::JsonObject;
use pool::PoolBuf;

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
pub fn run<P: Platform>(p: &P, cfg: &SmokeConfig, emit: Emit<'_>) -> SmokeOutcome {
    let boot = p.boot();
    let t0 = boot.monotonic_ns();
    let mut summary = JsonObject::new();
    let code = match dhcp(p, cfg, emit) {
        Err(()) => EXIT_DHCP,
        Ok(addr) => {
            summary.str("address", &fmt_ip(addr));
            let mut tcp = TcpRun::new(p, cfg);
            let code = tcp.run(emit);
            if code == EXIT_OK {
                // Observation only (does not change the exit code): what a
                // Connect to a port nobody listens on completes with.
                let probe = closed_port_probe(p, cfg);
                emit("STEP", &probe);
            }
            summary
                .u64("connect_polls", tcp.connect_polls)
                .bool("transmit_done_in_call", tcp.tx_in_call)
                .u64_array("rx_segments", &tcp.rx_sizes)
                .u64_array("rx_polls", &tcp.rx_polls)
                .u64_array("rx_wait_us", &tcp.rx_wait_us)
                .str("fin_seen_as", tcp.fin_seen_as)
                .u64("echoed_bytes", tcp.echoed);
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
    status::name(s)
}

/// Sets the DHCP policy and waits (bounded) for an address.
fn dhcp<P: Platform>(p: &P, cfg: &SmokeConfig, emit: Emit<'_>) -> Result<[u8; 4], ()> {
    let boot = p.boot();
    let ip = p.ip4_config2();
    let t0 = boot.monotonic_ns();
    let mut step = JsonObject::new();
    step.str("step", "dhcp");

    let mut policy = Ip4Config2Policy::STATIC;
    let mut size = size_of::<Ip4Config2Policy>();
    // SAFETY: `size` and `policy` are valid for the size passed.
    let get = unsafe {
        ip.get_data(
            Ip4Config2DataType::POLICY,
            &mut size,
            ptr::from_mut(&mut policy).cast::<c_void>(),
        )
    };
    step.str("get_policy", st(get))
        .u64("old_policy", policy.0 as u64);
    let dhcp = Ip4Config2Policy::DHCP;
    // SAFETY: `dhcp` is valid for reads of its size.
    let set = unsafe {
        ip.set_data(
            Ip4Config2DataType::POLICY,
            size_of::<Ip4Config2Policy>(),
            ptr::from_ref(&dhcp).cast::<c_void>(),
        )
    };
    step.str("set_policy", st(set));

    let limit = cfg.dhcp_timeout_ms * 1_000_000;
    let mut checks = 0u64;
    let mut last;
    let result = loop {
        checks += 1;
        match interface_info(boot, ip) {
            Ok((addr, mask)) if addr != [0; 4] => {
                step.str("address", &fmt_ip(addr))
                    .str("mask", &fmt_ip(mask));
                break Ok(addr);
            }
            Ok(_) => last = Status::NOT_READY,
            Err(s) => last = s,
        }
        if boot.monotonic_ns() - t0 > limit {
            step.str("error", "timeout").str("last_status", st(last));
            break Err(());
        }
        let _ = boot.stall(10_000);
    };
    step.u64("checks", checks)
        .u64("ms", (boot.monotonic_ns() - t0) / 1_000_000)
        .bool("ok", result.is_ok());
    emit("STEP", &step.finish());
    result
}

/// `GetData(InterfaceInfo)`: station address and mask.
fn interface_info<B: BootServices, I: Ip4Config2>(
    boot: &B,
    ip: &I,
) -> Result<([u8; 4], [u8; 4]), Status> {
    let mut size = 512usize;
    // The route table is appended to the structure, so the size varies: grow
    // once or twice on BUFFER_TOO_SMALL.
    for _ in 0..3 {
        let buf = PoolBuf::zeroed(boot, size.max(size_of::<Ip4Config2InterfaceInfo>()))?;
        let mut len = buf.len();
        // SAFETY: `buf` is writable for `len` bytes and not firmware-owned.
        let s = unsafe {
            ip.get_data(
                Ip4Config2DataType::INTERFACE_INFO,
                &mut len,
                buf.as_ptr::<c_void>(),
            )
        };
        match s {
            Status::SUCCESS => {
                // SAFETY: the firmware wrote a full structure at the start of
                // the 8-aligned pool buffer.
                let info = unsafe { ptr::read(buf.as_ptr::<Ip4Config2InterfaceInfo>()) };
                return Ok((info.station_addr.0, info.subnet_mask.0));
            }
            Status::BUFFER_TOO_SMALL if len > size => size = len,
            other => return Err(other),
        }
    }
    Err(Status::BUFFER_TOO_SMALL)
}

/// Transmit/receive data with one fragment, laid out as the firmware expects
/// (the fragment table is a flexible array member at the end).
#[repr(C)]
struct TxData1 {
    head: Tcp4TransmitData,
    frag: [Tcp4FragmentData; 1],
}

#[repr(C)]
struct RxData1 {
    head: Tcp4ReceiveData,
    frag: [Tcp4FragmentData; 1],
}

/// Connect to `port + 1` on the same host, where the host side has no
/// listener: EDK2 reports the RST as the Connect token's status. Returns the
/// step's JSON; never fails the run.
fn closed_port_probe<P: Platform>(p: &P, cfg: &SmokeConfig) -> String {
    let boot = p.boot();
    let svc = p.tcp4_service();
    let mut j = JsonObject::new();
    let port = cfg.port.wrapping_add(1).max(1);
    j.str("step", "closed_port_probe")
        .u64("port", u64::from(port));
    let child = match svc.create_child() {
        Ok(c) => c,
        Err(s) => {
            j.str("create_child", st(s));
            return j.finish();
        }
    };
    let mut leaked = false;
    if let Ok(tcp) = svc.open_tcp4(child) {
        let cfg_data = Tcp4ConfigData {
            type_of_service: 0,
            time_to_live: 64,
            access_point: Tcp4AccessPoint {
                use_default_address: Boolean::TRUE,
                station_address: Ipv4Address([0; 4]),
                subnet_mask: Ipv4Address([0; 4]),
                station_port: 0,
                remote_address: Ipv4Address(cfg.remote),
                remote_port: port,
                active_flag: Boolean::TRUE,
            },
            control_option: ptr::null_mut(),
        };
        // SAFETY: valid for reads during the call; null control option.
        let s = unsafe { tcp.configure(&cfg_data) };
        j.str("configure", st(s));
        // SAFETY: no notify function, so no context lifetime to honour.
        let ev =
            unsafe { boot.create_event(EventType::empty(), Tpl::CALLBACK, None, ptr::null_mut()) };
        let tok = PoolBuf::for_type::<Tcp4ConnectionToken>(boot);
        if let (Status::SUCCESS, Ok(ev), Ok(tok)) = (s, ev, tok) {
            let t = tok.as_ptr::<Tcp4ConnectionToken>();
            // SAFETY: pool memory sized for the token, not firmware-owned.
            unsafe {
                (*t).completion_token.event = ev;
                (*t).completion_token.status = Status::NOT_READY;
            }
            // SAFETY: the token lives in pool memory until signalled (leaked
            // below otherwise).
            let c = unsafe { tcp.connect(t) };
            j.str("connect", st(c));
            let mut signalled = c != Status::SUCCESS;
            if c == Status::SUCCESS {
                let mut run = TcpRun::new(p, cfg);
                run.outstanding.push(ev);
                let w = run.wait(&tcp, ev);
                j.u64("polls", w.polls).u64("wait_us", w.ns / 1000);
                if w.done {
                    // SAFETY: signalled: the firmware wrote the status.
                    j.str("token", st(unsafe { (*t).completion_token.status }));
                    signalled = true;
                } else {
                    j.str("error", "timeout");
                }
            }
            // SAFETY: null is the documented reset argument.
            let r = unsafe { tcp.configure(ptr::null()) };
            j.str("configure_null", st(r));
            if !signalled {
                signalled = boot.check_event(ev) == Status::SUCCESS;
            }
            if signalled {
                drop(tok);
                let _ = boot.close_event(ev);
            } else {
                tok.leak();
                leaked = true;
            }
        }
    }
    j.str("destroy_child", st(svc.destroy_child(child)))
        .bool("leaked_token", leaked);
    j.finish()
}

/// How a bounded wait ended.
struct Waited {
    done: bool,
    polls: u64,
    ns: u64,
}

/// Pool memory for every token and buffer of the exchange.
struct Mem<'b, B: BootServices> {
    conn: PoolBuf<'b, B>,
    tx_tok: PoolBuf<'b, B>,
    tx_data: PoolBuf<'b, B>,
    payload: PoolBuf<'b, B>,
    rx_tok: PoolBuf<'b, B>,
    rx_data: PoolBuf<'b, B>,
    rx_buf: PoolBuf<'b, B>,
    close_tok: PoolBuf<'b, B>,
}

impl<'b, B: BootServices> Mem<'b, B> {
    fn new(boot: &'b B, total: usize, rx: usize) -> Result<Self, Status> {
        Ok(Self {
            conn: PoolBuf::for_type::<Tcp4ConnectionToken>(boot)?,
            tx_tok: PoolBuf::for_type::<Tcp4IoToken>(boot)?,
            tx_data: PoolBuf::for_type::<TxData1>(boot)?,
            payload: PoolBuf::zeroed(boot, total)?,
            rx_tok: PoolBuf::for_type::<Tcp4IoToken>(boot)?,
            rx_data: PoolBuf::for_type::<RxData1>(boot)?,
            rx_buf: PoolBuf::zeroed(boot, rx)?,
            close_tok: PoolBuf::for_type::<Tcp4CloseToken>(boot)?,
        })
    }

    fn leak(self) {
        for b in [
            self.conn,
            self.tx_tok,
            self.tx_data,
            self.payload,
            self.rx_tok,
            self.rx_data,
            self.rx_buf,
            self.close_tok,
        ] {
            b.leak();
        }
    }
}

/// Events of the four tokens (type 0: no notify function, so CheckEvent
/// reports and resets the signal and the loop can count Polls exactly).
#[derive(Clone, Copy)]
struct Events {
    conn: Event,
    tx: Event,
    rx: Event,
    close: Event,
}

/// The TCP part, with its measurements.
struct TcpRun<'p, P: Platform> {
    p: &'p P,
    cfg: &'p SmokeConfig,
    /// Events of tokens submitted and not yet seen signalled.
    outstanding: Vec<Event>,
    connect_polls: u64,
    tx_in_call: bool,
    rx_sizes: Vec<u64>,
    /// Polls each Receive needed (0: completed inside the call).
    rx_polls: Vec<u64>,
    /// Microseconds each Receive waited after its call returned.
    rx_wait_us: Vec<u64>,
    fin_seen_as: &'static str,
    echoed: u64,
}

fn destroy_step(s: Status) -> String {
    let mut j = JsonObject::new();
    j.str("step", "destroy_child")
        .str("status", st(s))
        .bool("ok", s == Status::SUCCESS);
    j.finish()
}

/// The deterministic test pattern: length header, then `i*7+3 mod 251`.
pub fn fill_payload(buf: &mut [u8], payload_len: u32) {
    let (head, body) = buf.split_at_mut(4);
    head.copy_from_slice(&payload_len.to_be_bytes());
    for (i, b) in body.iter_mut().enumerate() {
        *b = ((i * 7 + 3) % 251) as u8;
    }
}

impl<'p, P: Platform> TcpRun<'p, P> {
    fn new(p: &'p P, cfg: &'p SmokeConfig) -> Self {
        Self {
            p,
            cfg,
            outstanding: Vec::new(),
            connect_polls: 0,
            tx_in_call: false,
            rx_sizes: Vec::new(),
            rx_polls: Vec::new(),
            rx_wait_us: Vec::new(),
            fin_seen_as: "none",
            echoed: 0,
        }
    }

    /// Check the event first, then Poll: a token signalled inside the call
    /// needs 0 Polls.
    fn wait<T: Tcp4>(&mut self, tcp: &T, event: Event) -> Waited {
        let boot = self.p.boot();
        let t0 = boot.monotonic_ns();
        let limit = self.cfg.op_timeout_ms * 1_000_000;
        let mut polls = 0;
        loop {
            let s = boot.check_event(event);
            let ns = boot.monotonic_ns() - t0;
            if s == Status::SUCCESS {
                self.outstanding.retain(|e| *e != event);
                return Waited {
                    done: true,
                    polls,
                    ns,
                };
            }
            if s != Status::NOT_READY || polls >= self.cfg.max_polls || ns > limit {
                return Waited {
                    done: false,
                    polls,
                    ns,
                };
            }
            let _ = tcp.poll();
            polls += 1;
        }
    }

    fn run(&mut self, emit: Emit<'_>) -> u8 {
        let boot = self.p.boot();
        let svc = self.p.tcp4_service();
        let mut step = JsonObject::new();
        step.str("step", "create_child");
        let child = match svc.create_child() {
            Ok(c) => c,
            Err(s) => {
                step.str("status", st(s)).bool("ok", false);
                emit("STEP", &step.finish());
                return EXIT_TCP;
            }
        };
        step.str("status", "SUCCESS");
        let tcp = match svc.open_tcp4(child) {
            Ok(t) => t,
            Err(s) => {
                step.str("open_tcp4", st(s)).bool("ok", false);
                emit("STEP", &step.finish());
                emit("STEP", &destroy_step(svc.destroy_child(child)));
                return EXIT_TCP;
            }
        };
        step.str("open_tcp4", "SUCCESS").bool("ok", true);
        emit("STEP", &step.finish());

        let mut raw = [ptr::null_mut(); 4];
        let mut ev_status = Status::SUCCESS;
        for e in raw.iter_mut() {
            // SAFETY: no notify function, so no context lifetime to honour.
            match unsafe {
                boot.create_event(EventType::empty(), Tpl::CALLBACK, None, ptr::null_mut())
            } {
                Ok(ev) => *e = ev,
                Err(s) => ev_status = s,
            }
        }
        let total = 4 + self.cfg.payload_len as usize;
        let (code, leaked) = match (
            ev_status,
            Mem::new(boot, total, self.cfg.rx_buffer as usize),
        ) {
            (Status::SUCCESS, Ok(mut mem)) => {
                let events = Events {
                    conn: raw[0],
                    tx: raw[1],
                    rx: raw[2],
                    close: raw[3],
                };
                let code = match self.exchange(&tcp, &mut mem, events, emit) {
                    Ok(()) => EXIT_OK,
                    Err(c) => c,
                };
                let leaked = self.reset(&tcp, emit);
                if leaked {
                    mem.leak();
                }
                (code, leaked)
            }
            (s, m) => {
                let s = m.err().unwrap_or(s);
                let mut j = JsonObject::new();
                j.str("step", "allocate")
                    .str("status", st(s))
                    .bool("ok", false);
                emit("STEP", &j.finish());
                (EXIT_TCP, false)
            }
        };
        emit("STEP", &destroy_step(svc.destroy_child(child)));
        // An event a token might still signal is never closed.
        if !leaked {
            for ev in raw.into_iter().filter(|e| !e.is_null()) {
                let _ = boot.close_event(ev);
            }
        }
        code
    }

    /// Configure(NULL) (EDK2 aborts every pending token inside the call),
    /// then confirm each outstanding token was signalled. Returns whether any
    /// remains unsignalled, in which case its memory must be leaked.
    fn reset<T: Tcp4>(&mut self, tcp: &T, emit: Emit<'_>) -> bool {
        let boot = self.p.boot();
        let had = self.outstanding.len();
        // SAFETY: null is the documented reset argument.
        let reset = unsafe { tcp.configure(ptr::null()) };
        self.outstanding
            .retain(|e| boot.check_event(*e) != Status::SUCCESS);
        let mut j = JsonObject::new();
        j.str("step", "reset")
            .str("configure_null", st(reset))
            .u64("outstanding_before", had as u64)
            .u64("unsignalled_after", self.outstanding.len() as u64)
            .bool("ok", self.outstanding.is_empty());
        emit("STEP", &j.finish());
        !self.outstanding.is_empty()
    }

    fn exchange<T: Tcp4>(
        &mut self,
        tcp: &T,
        mem: &mut Mem<'_, P::Boot>,
        ev: Events,
        emit: Emit<'_>,
    ) -> Result<(), u8> {
        let boot = self.p.boot();
        let total = 4 + self.cfg.payload_len as usize;
        // SAFETY: not firmware-owned yet.
        fill_payload(unsafe { mem.payload.bytes_mut() }, self.cfg.payload_len);

        // Configure: active, default (DHCP) address, ephemeral local port.
        let cfg_data = Tcp4ConfigData {
            type_of_service: 0,
            time_to_live: 64,
            access_point: Tcp4AccessPoint {
                use_default_address: Boolean::TRUE,
                station_address: Ipv4Address([0; 4]),
                subnet_mask: Ipv4Address([0; 4]),
                station_port: 0,
                remote_address: Ipv4Address(self.cfg.remote),
                remote_port: self.cfg.port,
                active_flag: Boolean::TRUE,
            },
            control_option: ptr::null_mut(),
        };
        let t = boot.monotonic_ns();
        // SAFETY: `cfg_data` is valid for reads for the call; the control
        // option is null (firmware defaults).
        let s = unsafe { tcp.configure(&cfg_data) };
        let mut j = JsonObject::new();
        j.str("step", "configure")
            .str("status", st(s))
            .u64("us", (boot.monotonic_ns() - t) / 1000)
            .bool("ok", s == Status::SUCCESS);
        emit("STEP", &j.finish());
        if s != Status::SUCCESS {
            return Err(EXIT_TCP);
        }

        // Connect.
        let conn = mem.conn.as_ptr::<Tcp4ConnectionToken>();
        // SAFETY: pool memory sized for the token, not firmware-owned.
        unsafe {
            (*conn).completion_token.event = ev.conn;
            (*conn).completion_token.status = Status::NOT_READY;
        }
        let t = boot.monotonic_ns();
        // SAFETY: the token lives in pool memory until signalled (leaked
        // otherwise, see `reset`).
        let s = unsafe { tcp.connect(conn) };
        let call_us = (boot.monotonic_ns() - t) / 1000;
        if s == Status::SUCCESS {
            self.outstanding.push(ev.conn);
        }
        let w = if s == Status::SUCCESS {
            Some(self.wait(tcp, ev.conn))
        } else {
            None
        };
        let mut j = JsonObject::new();
        j.str("step", "connect")
            .str("call", st(s))
            .u64("call_us", call_us);
        let ok = self.token_result(&mut j, w.as_ref(), || {
            // SAFETY: signalled, so the firmware no longer owns the token.
            unsafe { (*conn).completion_token.status }
        });
        if let Some(w) = &w {
            self.connect_polls = w.polls;
        }
        emit("STEP", &j.finish());
        if !ok {
            return Err(EXIT_TCP);
        }

        // Transmit the whole message in one token, one fragment.
        let tx_tok = mem.tx_tok.as_ptr::<Tcp4IoToken>();
        let tx_data = mem.tx_data.as_ptr::<TxData1>();
        // SAFETY: pool memory sized for these structs, not firmware-owned.
        unsafe {
            (*tx_data).head.push = Boolean::TRUE;
            (*tx_data).head.urgent = Boolean::FALSE;
            (*tx_data).head.data_length = total as u32;
            (*tx_data).head.fragment_count = 1;
            (*tx_data).frag[0] = Tcp4FragmentData {
                fragment_length: total as u32,
                fragment_buf: mem.payload.as_ptr::<u8>(),
            };
            (*tx_tok).completion_token.event = ev.tx;
            (*tx_tok).completion_token.status = Status::NOT_READY;
            (*tx_tok).packet = Tcp4Packet {
                tx_data: tx_data.cast::<Tcp4TransmitData>(),
            };
        }
        let t = boot.monotonic_ns();
        // SAFETY: token, data and payload live in pool memory until signalled.
        let s = unsafe { tcp.transmit(tx_tok) };
        let call_us = (boot.monotonic_ns() - t) / 1000;
        if s == Status::SUCCESS {
            self.outstanding.push(ev.tx);
        }
        let w = if s == Status::SUCCESS {
            Some(self.wait(tcp, ev.tx))
        } else {
            None
        };
        let mut j = JsonObject::new();
        j.str("step", "transmit")
            .u64("bytes", total as u64)
            .str("call", st(s))
            .u64("call_us", call_us);
        let ok = self.token_result(&mut j, w.as_ref(), || {
            // SAFETY: signalled, so the firmware no longer owns the token.
            unsafe { (*tx_tok).completion_token.status }
        });
        self.tx_in_call = w.as_ref().is_some_and(|w| w.done && w.polls == 0);
        emit("STEP", &j.finish());
        if !ok {
            return Err(EXIT_TCP);
        }

        // Receive until every byte came back, then once more for the FIN.
        let mut echoed: Vec<u8> = Vec::with_capacity(total);
        let mut mismatch = false;
        let max_receives = total / 64 + 16;
        let mut fin = false;
        for _ in 0..max_receives {
            let rx_tok = mem.rx_tok.as_ptr::<Tcp4IoToken>();
            let rx_data = mem.rx_data.as_ptr::<RxData1>();
            let cap = self.cfg.rx_buffer;
            // SAFETY: pool memory sized for these structs; the previous
            // Receive completed, so the firmware does not own them.
            unsafe {
                (*rx_data).head.urgent = Boolean::FALSE;
                (*rx_data).head.data_length = cap;
                (*rx_data).head.fragment_count = 1;
                (*rx_data).frag[0] = Tcp4FragmentData {
                    fragment_length: cap,
                    fragment_buf: mem.rx_buf.as_ptr::<u8>(),
                };
                (*rx_tok).completion_token.event = ev.rx;
                (*rx_tok).completion_token.status = Status::NOT_READY;
                (*rx_tok).packet = Tcp4Packet {
                    rx_data: rx_data.cast::<Tcp4ReceiveData>(),
                };
            }
            // SAFETY: token, data and buffer live in pool memory until
            // signalled.
            let s = unsafe { tcp.receive(rx_tok) };
            if s == CONNECTION_FIN {
                self.fin_seen_as = "receive_return";
                fin = true;
                break;
            }
            if s != Status::SUCCESS {
                let mut j = JsonObject::new();
                j.str("step", "receive")
                    .str("call", st(s))
                    .bool("ok", false);
                emit("STEP", &j.finish());
                return Err(EXIT_TCP);
            }
            self.outstanding.push(ev.rx);
            let w = self.wait(tcp, ev.rx);
            if !w.done {
                let mut j = JsonObject::new();
                j.str("step", "receive")
                    .str("error", "timeout")
                    .u64("polls", w.polls)
                    .u64("received", echoed.len() as u64)
                    .bool("ok", false);
                emit("STEP", &j.finish());
                return Err(EXIT_TCP);
            }
            // SAFETY: signalled: the firmware wrote status and data and no
            // longer owns the token, data or buffer.
            let (status, len) = unsafe {
                (
                    (*rx_tok).completion_token.status,
                    (*rx_data).head.data_length,
                )
            };
            if status == CONNECTION_FIN {
                self.fin_seen_as = "token_status";
                fin = true;
                break;
            }
            if status != Status::SUCCESS || len > cap {
                let mut j = JsonObject::new();
                j.str("step", "receive")
                    .str("token", st(status))
                    .u64("data_length", u64::from(len))
                    .bool("ok", false);
                emit("STEP", &j.finish());
                return Err(EXIT_TCP);
            }
            self.rx_sizes.push(u64::from(len));
            self.rx_polls.push(w.polls);
            self.rx_wait_us.push(w.ns / 1000);
            // SAFETY: not firmware-owned (signalled); `len <= cap` bytes.
            let got = unsafe { &mem.rx_buf.bytes()[..len as usize] };
            echoed.extend_from_slice(got);
            if echoed.len() > total {
                mismatch = true;
            }
        }
        self.echoed = echoed.len() as u64;
        // SAFETY: the transmit token completed; the payload is ours again.
        let sent = unsafe { mem.payload.bytes() };
        mismatch |= echoed.as_slice() != sent;
        let mut j = JsonObject::new();
        j.str("step", "receive")
            .u64("receives", self.rx_sizes.len() as u64)
            .u64("bytes", echoed.len() as u64)
            .u64(
                "max_segment",
                self.rx_sizes.iter().copied().max().unwrap_or(0),
            )
            .str("fin_seen_as", self.fin_seen_as)
            .bool("match", !mismatch)
            .bool("ok", fin && !mismatch);
        emit("STEP", &j.finish());
        if mismatch {
            return Err(EXIT_MISMATCH);
        }
        if !fin {
            return Err(EXIT_TCP);
        }

        // Graceful close (the peer already sent its FIN: passive close).
        let close = mem.close_tok.as_ptr::<Tcp4CloseToken>();
        // SAFETY: pool memory sized for the token, not firmware-owned.
        unsafe {
            (*close).completion_token.event = ev.close;
            (*close).completion_token.status = Status::NOT_READY;
            (*close).abort_on_close = Boolean::FALSE;
        }
        let t = boot.monotonic_ns();
        // SAFETY: the token lives in pool memory until signalled.
        let s = unsafe { tcp.close(close) };
        let call_us = (boot.monotonic_ns() - t) / 1000;
        if s == Status::SUCCESS {
            self.outstanding.push(ev.close);
        }
        let w = if s == Status::SUCCESS {
            Some(self.wait(tcp, ev.close))
        } else {
            None
        };
        let mut j = JsonObject::new();
        j.str("step", "close")
            .str("call", st(s))
            .u64("call_us", call_us);
        let ok = self.token_result(&mut j, w.as_ref(), || {
            // SAFETY: signalled, so the firmware no longer owns the token.
            unsafe { (*close).completion_token.status }
        });
        emit("STEP", &j.finish());
        if ok { Ok(()) } else { Err(EXIT_TCP) }
    }

    /// Adds a token's wait figures and status; true if it completed SUCCESS.
    fn token_result(
        &self,
        j: &mut JsonObject,
        w: Option<&Waited>,
        status: impl FnOnce() -> Status,
    ) -> bool {
        let Some(w) = w else {
            j.bool("ok", false);
            return false;
        };
        j.u64("polls", w.polls).u64("wait_us", w.ns / 1000);
        if !w.done {
            j.str("error", "timeout").bool("ok", false);
            return false;
        }
        let s = status();
        j.str("token", st(s)).bool("ok", s == Status::SUCCESS);
        s == Status::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn one_fragment_layouts_match_flexible_array_offsets() {
        // The firmware reads fragment_table right after the header fields.
        assert_eq!(offset_of!(TxData1, frag), size_of::<Tcp4TransmitData>());
        assert_eq!(offset_of!(RxData1, frag), size_of::<Tcp4ReceiveData>());
        assert_eq!(size_of::<Tcp4TransmitData>(), 16);
        assert_eq!(size_of::<Tcp4ReceiveData>(), 16);
    }

    #[test]
    fn payload_has_length_header_and_pattern() {
        let mut b = [0u8; 10];
        fill_payload(&mut b, 6);
        assert_eq!(&b[..4], &[0, 0, 0, 6]);
        assert_eq!(&b[4..], &[3, 10, 17, 24, 31, 38]);
    }
}
