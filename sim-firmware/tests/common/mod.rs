//! Test helpers: tokens and buffers in pool memory, configs, waits, and a few
//! peer applications. They drive the raw `efisock::firmware` traits.
#![allow(dead_code)]

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use efisock::firmware::{
    BootServices, Event, EventType, Ip4Config2, Ip4Config2DataType, Ip4Config2ManualAddress,
    Ipv4Address, Platform, Status, Tcp4, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConfigData,
    Tcp4ConnectionState, Tcp4ConnectionToken, Tcp4FragmentData, Tcp4IoToken, Tcp4ListenToken,
    Tcp4Option, Tcp4ReceiveData, Tcp4ServiceBinding, Tcp4TransmitData, TimerDelay, Tpl,
};
use efisock::raw::{
    CompletionHeader as Token, PoolBuf, WaitLimit, active_config, passive_config, poll_until,
};
use efisock_sim::{
    ConnHandler, ConnIo, PeerConnState, Sim, SimBoot, SimConfig, SimPlatform, SimTcp4,
};

pub const SUT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// The stall of one `Env::wait` step.
const STALL_NS: u64 = 1_000_000;
/// The Poll bound of `Env::wait_polling`, far above any test's needs.
const MAX_POLLS: u64 = 50_000_000;

pub struct Env {
    pub sim: Sim,
    pub p: SimPlatform,
}

impl Env {
    /// A sim with the static address 10.0.2.15/24 applied.
    pub fn new(cfg: SimConfig) -> Env {
        let sim = Sim::new(cfg);
        let p = sim.platform();
        let e = Env { sim, p };
        e.set_static();
        e
    }
    pub fn unaddressed(cfg: SimConfig) -> Env {
        let sim = Sim::new(cfg);
        let p = sim.platform();
        Env { sim, p }
    }
    pub fn boot(&self) -> &SimBoot {
        self.p.boot()
    }
    pub fn set_static(&self) {
        let m = Ip4Config2ManualAddress {
            address: Ipv4Address(SUT.octets()),
            subnet_mask: Ipv4Address([255, 255, 255, 0]),
        };
        // SAFETY: `m` is a live `Ip4Config2ManualAddress` and `data_size` is
        // its size; the simulator copies the bytes during the call.
        let st = unsafe {
            self.p.ip4_config2().set_data(
                Ip4Config2DataType::MANUAL_ADDRESS,
                size_of::<Ip4Config2ManualAddress>(),
                &m as *const _ as *const _,
            )
        };
        assert_eq!(st, Status::SUCCESS);
    }
    pub fn child(&self) -> (efisock::firmware::Handle, SimTcp4) {
        let h = self.p.tcp4_service().create_child().unwrap();
        let t = self.p.tcp4_service().open_tcp4(h).unwrap();
        (h, t)
    }
    pub fn destroy(&self, h: efisock::firmware::Handle) {
        assert_eq!(self.p.tcp4_service().destroy_child(h), Status::SUCCESS);
    }
    /// A plain (no notify) event for CheckEvent/WaitForEvent.
    pub fn event(&self) -> Event {
        // SAFETY: no notify function, so the (null) context is never used.
        unsafe {
            self.boot().create_event(
                EventType::empty(),
                Tpl::APPLICATION,
                None,
                core::ptr::null_mut(),
            )
        }
        .unwrap()
    }
    pub fn close_event(&self, e: Event) {
        assert_eq!(self.boot().close_event(e), Status::SUCCESS);
    }
    /// Poll the event with CheckEvent + Stall(1 ms) until signalled or `ns`
    /// pass (at most one check per stalled millisecond).
    pub fn wait(&self, e: Event, ns: u64) -> bool {
        let end = self.sim.now_ns() + ns;
        for _ in 0..=ns / STALL_NS {
            if self.sim.now_ns() >= end {
                break;
            }
            if self.boot().check_event(e) == Status::SUCCESS {
                return true;
            }
            let _ = self.boot().stall((STALL_NS / 1000) as usize);
        }
        false
    }
    /// Like `wait`, but calls Tcp4.Poll in the loop instead of stalling.
    pub fn wait_polling(&self, t: &SimTcp4, e: Event, ns: u64) -> bool {
        let limit = WaitLimit {
            max_polls: MAX_POLLS,
            max_ns: ns,
        };
        poll_until(self.boot(), t, limit, || {
            self.boot().check_event(e) == Status::SUCCESS
        })
        .done
    }
    pub fn boot_check(&self, e: Event) -> Status {
        self.boot().check_event(e)
    }
    /// A zeroed pool block of `size_of::<T>()` bytes, freed with `free`.
    pub fn alloc<T>(&self) -> *mut T {
        self.alloc_bytes(size_of::<T>()).cast()
    }
    /// A zeroed pool block of `len` (at least 1) bytes, freed with `free`.
    pub fn alloc_bytes(&self, len: usize) -> *mut u8 {
        PoolBuf::zeroed(self.boot(), len).unwrap().into_raw()
    }
    /// FreePool, asserting SUCCESS.
    pub fn free<T>(&self, p: *mut T) {
        assert_eq!(
            // SAFETY: `SimBoot::free_pool` never dereferences an unknown pointer
            // (INVALID_PARAMETER), and a block the firmware still owns is
            // quarantined, not released, so no pointer the firmware holds dangles.
            unsafe { self.boot().free_pool(p as *mut u8) },
            Status::SUCCESS
        );
    }
}

pub fn addr(a: Ipv4Addr) -> Ipv4Address {
    Ipv4Address(a.octets())
}

pub fn active_cfg(remote: Ipv4Addr, port: u16, station_port: u16) -> Tcp4ConfigData {
    active_config(SocketAddrV4::new(remote, port), station_port)
}

pub fn passive_cfg(port: u16) -> Tcp4ConfigData {
    passive_config(port)
}

/// A ControlOption with defaults (as EDK2 reads them) and a given backlog.
pub fn options(backlog: u32, send_buf: u32) -> Tcp4Option {
    Tcp4Option {
        receive_buffer_size: 0,
        send_buffer_size: send_buf,
        max_syn_back_log: backlog,
        connection_timeout: 0,
        data_retries: 0,
        fin_timeout: 2,
        time_wait_timeout: 2,
        keep_alive_probes: 0,
        keep_alive_time: 0,
        keep_alive_interval: 0,
        enable_nagle: true.into(),
        enable_time_stamp: false.into(),
        enable_window_scaling: true.into(),
        enable_selective_ack: false.into(),
        enable_path_mtu_discovery: false.into(),
    }
}

/// A completion token of type `T` in pool memory with its own plain event.
///
/// Invariant relied on by the safe wrappers below: `ptr` (private, never
/// reassigned) is a zero-initialised pool block of `size_of::<T>()` bytes
/// until `free` consumes the `Tok`. The simulated firmware is single-threaded
/// and touches tokens only inside firmware calls, and `SimBoot::free_pool`
/// quarantines (keeps allocated) any block a pending token still references,
/// so the block stays valid for as long as the firmware may use it.
pub struct Tok<T: Token> {
    ptr: *mut T,
    pub event: Event,
}

impl<T: Token> Tok<T> {
    pub fn new(env: &Env) -> Self {
        let ptr = env.alloc::<T>();
        let tok = Tok {
            ptr,
            event: env.event(),
        };
        tok.set_event(tok.event);
        tok
    }
    /// The raw token pointer, for calls that deliberately break the contract.
    pub fn ptr(&self) -> *mut T {
        self.ptr
    }
    fn completion(&self) -> *mut Tcp4CompletionToken {
        self.ptr as *mut Tcp4CompletionToken
    }
    /// Point the token at another event (notify events, reuse checks).
    pub fn set_event(&self, event: Event) {
        // SAFETY: `ptr` is a live pool block holding a `T: Token`, which starts
        // with a `Tcp4CompletionToken` (Tok invariant); the firmware is
        // single-threaded and not running, so the write races with nothing.
        unsafe { (*self.completion()).event = event };
    }
    pub fn status(&self) -> Status {
        // SAFETY: as in `set_event`; a read of the completion token's status.
        unsafe { (*self.completion()).status }
    }
    pub fn free(self, env: &Env) {
        env.free(self.ptr);
        env.close_event(self.event);
    }
}

impl Tok<Tcp4ListenToken> {
    /// `NewChildHandle` as written by the firmware at completion.
    pub fn new_child(&self) -> efisock::firmware::Handle {
        // SAFETY: `ptr` is a live pool block holding a `Tcp4ListenToken` (Tok
        // invariant), zero-initialised and otherwise written only by the
        // single-threaded firmware inside its calls.
        unsafe { (*self.ptr).new_child_handle }
    }
}

impl Tok<Tcp4CloseToken> {
    pub fn set_abort_on_close(&self, abort: bool) {
        // SAFETY: `ptr` is a live pool block holding a `Tcp4CloseToken` (Tok
        // invariant); the firmware is not running, so the write races with
        // nothing.
        unsafe { (*self.ptr).abort_on_close = abort.into() };
    }
}

pub type ConnTok = Tok<Tcp4ConnectionToken>;
pub type ListenTok = Tok<Tcp4ListenToken>;
pub type CloseTok = Tok<Tcp4CloseToken>;

/// An I/O token with one data block of `frags` fragments over one buffer.
///
/// Invariant relied on by the safe wrappers below (all fields but `tok` are
/// private and never reassigned): `tok`'s packet points to `data`, a pool
/// block holding a `Tcp4TransmitData` (`rx == false`) or `Tcp4ReceiveData`
/// (`rx == true`) header followed by a table of `fragment_count` fragments
/// whose lengths sum to `len` and whose buffers lie inside `buf`, a pool block
/// of at least `len` bytes. For a receive block `data_length <= len` always
/// holds. All blocks stay allocated while the firmware may touch them (see
/// `Tok`).
pub struct Io {
    pub tok: Tok<Tcp4IoToken>,
    data: *mut u8,
    buf: *mut u8,
    len: usize,
    rx: bool,
}

impl Io {
    fn block(env: &Env, header: usize, len: usize, frags: usize) -> (*mut u8, *mut u8) {
        let bsize = header + frags * size_of::<Tcp4FragmentData>();
        let data = env.alloc_bytes(bsize);
        // Zeroed, so every byte `received` may read is initialised.
        let buf = env.alloc_bytes(len);
        // SAFETY: `header` < `bsize`, so the offset stays inside `data`.
        let table = unsafe { data.add(header) } as *mut Tcp4FragmentData;
        let per = len / frags;
        for i in 0..frags {
            let l = if i + 1 == frags {
                len - per * (frags - 1)
            } else {
                per
            };
            // SAFETY: entry `i` < `frags` lies inside `data` (sized for `frags`
            // entries; pool blocks are 16-byte aligned and `header` is 16), and
            // `per * i` <= `len` keeps the buffer pointer inside `buf`.
            unsafe {
                *table.add(i) = Tcp4FragmentData {
                    fragment_length: l as u32,
                    fragment_buf: buf.add(per * i),
                };
            }
        }
        (data, buf)
    }
    pub fn tx(env: &Env, bytes: &[u8]) -> Io {
        Self::tx_frags(env, bytes, 1)
    }
    pub fn tx_frags(env: &Env, bytes: &[u8], frags: usize) -> Io {
        let tok = Tok::<Tcp4IoToken>::new(env);
        let (data, buf) = Self::block(env, size_of::<Tcp4TransmitData>(), bytes.len(), frags);
        // SAFETY: `buf` holds at least `bytes.len()` bytes and is a separate
        // allocation; `data` is a fresh, aligned block starting with a
        // `Tcp4TransmitData`; `tok.ptr` is a fresh `Tcp4IoToken` block.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
            let tx = data as *mut Tcp4TransmitData;
            (*tx).push = true.into();
            (*tx).data_length = bytes.len() as u32;
            (*tx).fragment_count = frags as u32;
            (*tok.ptr).packet.tx_data = tx;
        }
        Io {
            tok,
            data,
            buf,
            len: bytes.len(),
            rx: false,
        }
    }
    pub fn rx(env: &Env, len: usize) -> Io {
        let tok = Tok::<Tcp4IoToken>::new(env);
        let (data, buf) = Self::block(env, size_of::<Tcp4ReceiveData>(), len, 1);
        // SAFETY: `data` is a fresh, aligned block starting with a
        // `Tcp4ReceiveData`; `tok.ptr` is a fresh `Tcp4IoToken` block.
        unsafe {
            let rx = data as *mut Tcp4ReceiveData;
            (*rx).data_length = len as u32;
            (*rx).fragment_count = 1;
            (*tok.ptr).packet.rx_data = rx;
        }
        Io {
            tok,
            data,
            buf,
            len,
            rx: true,
        }
    }
    /// Raw pointer to the data buffer, for deliberate contract breaches.
    pub fn buf(&self) -> *mut u8 {
        self.buf
    }
    /// Raw pointer to the transmit/receive data block.
    pub fn data(&self) -> *mut u8 {
        self.data
    }
    /// Overwrite `DataLength` (malformed-argument tests). For a receive
    /// token it may not exceed the buffer, which keeps `received` in bounds.
    pub fn set_data_length(&self, n: u32) {
        if self.rx {
            assert!(n as usize <= self.len, "receive DataLength beyond buffer");
            // SAFETY: `data` is a live pool block starting with a
            // `Tcp4ReceiveData` (Io invariant); the single-threaded firmware is
            // not running, so the write races with nothing.
            unsafe { (*(self.data as *mut Tcp4ReceiveData)).data_length = n };
        } else {
            // SAFETY: `data` is a live pool block starting with a
            // `Tcp4TransmitData` (Io invariant); the firmware validates
            // DataLength against the fragment table before using it.
            unsafe { (*(self.data as *mut Tcp4TransmitData)).data_length = n };
        }
    }
    /// Reset a receive token for another use (after completion).
    pub fn rearm_rx(&self) {
        assert!(self.rx, "rearm_rx on a transmit token");
        // SAFETY: `data` is a live receive block with one fragment entry right
        // after the header (Io invariant); restoring both lengths to `len`
        // keeps them within `buf`.
        unsafe {
            let rx = self.data as *mut Tcp4ReceiveData;
            (*rx).data_length = self.len as u32;
            let table = self.data.add(size_of::<Tcp4ReceiveData>()) as *mut Tcp4FragmentData;
            (*table).fragment_length = self.len as u32;
        }
    }
    pub fn received(&self) -> Vec<u8> {
        assert!(self.rx, "received on a transmit token");
        // SAFETY: `data` is a live receive block and its `data_length` never
        // exceeds `len` (Io invariant; the firmware writes at most the
        // fragment total), and `buf` holds `len` bytes, zeroed at allocation,
        // so the slice is in bounds and initialised.
        unsafe {
            let rx = self.data as *mut Tcp4ReceiveData;
            std::slice::from_raw_parts(self.buf, (*rx).data_length as usize).to_vec()
        }
    }
    pub fn status(&self) -> Status {
        self.tok.status()
    }
    pub fn free(self, env: &Env) {
        env.free(self.buf);
        env.free(self.data);
        self.tok.free(env);
    }
}

// ---- safe wrappers for the raw Tcp4 calls --------------------------------
//
// Each is sound for the simulator only (`SimTcp4` + `SimBoot`): the tokens
// come from `Tok`/`Io`, whose pool blocks stay allocated while the firmware
// owns them, even if a test frees them early (quarantine).

/// `Configure` with `cfg`, which must carry no `ControlOption` (see
/// `configure_opt`).
pub fn configure(t: &SimTcp4, cfg: &Tcp4ConfigData) -> Status {
    assert!(cfg.control_option.is_null(), "use configure_opt");
    // The firmware writes the station address and port back: give it a
    // copy, so the caller's `cfg` stays as it was.
    let mut c = Tcp4ConfigData {
        type_of_service: cfg.type_of_service,
        time_to_live: cfg.time_to_live,
        access_point: cfg.access_point.clone(),
        control_option: core::ptr::null_mut(),
    };
    // SAFETY: `c` is a live, exclusively borrowed local and its
    // `control_option` is null, so everything the firmware reads or writes
    // is valid; the simulator keeps no pointer into it.
    unsafe { t.configure(&mut c) }
}

/// `Configure` with `cfg` and `opt` as its `ControlOption`.
pub fn configure_opt(t: &SimTcp4, cfg: &Tcp4ConfigData, opt: &mut Tcp4Option) -> Status {
    let mut c = Tcp4ConfigData {
        type_of_service: cfg.type_of_service,
        time_to_live: cfg.time_to_live,
        access_point: cfg.access_point.clone(),
        control_option: opt,
    };
    // SAFETY: `c` and `opt` are live for the whole call and `c` is
    // exclusively borrowed; the simulator copies the configuration and
    // options, writes back into `c` only, and keeps no pointer into them.
    unsafe { t.configure(&mut c) }
}

/// `Configure(NULL)`: the brutal reset.
pub fn reset(t: &SimTcp4) -> Status {
    // SAFETY: a null `config_data` is explicitly allowed.
    unsafe { t.configure(core::ptr::null_mut()) }
}

/// `GetModeData` for the connection state only.
pub fn get_state(t: &SimTcp4, st: &mut Tcp4ConnectionState) -> Status {
    // SAFETY: `st` is a live exclusive reference; every other output is null.
    unsafe {
        t.get_mode_data(
            st,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    }
}

/// `Connect` with a pool token.
pub fn connect_tok(t: &SimTcp4, c: &ConnTok) -> Status {
    // SAFETY: `c.ptr` is a live, initialised pool `Tcp4ConnectionToken` that
    // stays allocated while the firmware owns it (Tok invariant).
    unsafe { t.connect(c.ptr) }
}

/// `Accept` with a pool token.
pub fn accept(t: &SimTcp4, a: &ListenTok) -> Status {
    // SAFETY: `a.ptr` is a live, initialised pool `Tcp4ListenToken` that
    // stays allocated while the firmware owns it (Tok invariant).
    unsafe { t.accept(a.ptr) }
}

/// `Close` with a pool token.
pub fn close_tok(t: &SimTcp4, c: &CloseTok) -> Status {
    // SAFETY: `c.ptr` is a live, initialised pool `Tcp4CloseToken` that stays
    // allocated while the firmware owns it (Tok invariant).
    unsafe { t.close(c.ptr) }
}

/// `Transmit` with a transmit `Io`.
pub fn transmit(t: &SimTcp4, io: &Io) -> Status {
    assert!(!io.rx, "transmit with a receive token");
    // SAFETY: token, transmit data, fragment table and buffer are live pool
    // blocks with a consistent table that stay allocated while the firmware
    // owns them (Io invariant); a DataLength changed by `set_data_length` is
    // checked against the table before any buffer is read.
    unsafe { t.transmit(io.tok.ptr) }
}

/// `Receive` with a receive `Io`.
pub fn receive(t: &SimTcp4, io: &Io) -> Status {
    assert!(io.rx, "receive with a transmit token");
    // SAFETY: token, receive data, fragment table and buffer are live pool
    // blocks whose fragments lie inside `buf` and stay allocated while the
    // firmware owns them (Io invariant).
    unsafe { t.receive(io.tok.ptr) }
}

/// `Cancel` of one token.
pub fn cancel<T: Token>(t: &SimTcp4, tok: &Tok<T>) -> Status {
    // SAFETY: `tok.ptr` is a live pool block starting with a
    // `Tcp4CompletionToken` (`T: Token`); the firmware only compares it with
    // its pending tokens and writes the status of a pending one.
    unsafe { t.cancel(tok.completion()) }
}

/// Configure `t` and Connect to `remote:port`, waiting for completion.
pub fn connect(env: &Env, t: &SimTcp4, remote: Ipv4Addr, port: u16) -> Status {
    let cfg = active_cfg(remote, port, 0);
    assert_eq!(configure(t, &cfg), Status::SUCCESS);
    let c = ConnTok::new(env);
    assert_eq!(connect_tok(t, &c), Status::SUCCESS);
    assert!(
        env.wait(c.event, 200_000_000_000),
        "connect never completed"
    );
    let st = c.status();
    c.free(env);
    st
}

/// Graceful Close and wait; returns the close token's status.
pub fn close(env: &Env, t: &SimTcp4, abort: bool) -> Status {
    let c = CloseTok::new(env);
    c.set_abort_on_close(abort);
    assert_eq!(close_tok(t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 30_000_000_000), "close never completed");
    let st = c.status();
    c.free(env);
    st
}

// ---- peer applications ----------------------------------------------

/// What a peer connection observed.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub bytes: Vec<u8>,
    pub states: Vec<PeerConnState>,
    pub accepted: usize,
}

pub type Shared = Rc<RefCell<Seen>>;

fn note(seen: &Shared, io: &dyn ConnIo) {
    let st = io.state();
    let mut s = seen.borrow_mut();
    if s.states.last() != Some(&st) {
        s.states.push(st);
    }
}

/// Echoes everything; closes after the peer's FIN.
pub struct Echo {
    pub seen: Shared,
    pending: Vec<u8>,
    closed: bool,
}
impl ConnHandler for Echo {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        note(&self.seen, io);
        let mut buf = [0u8; 4096];
        loop {
            if !self.pending.is_empty() {
                let n = io.send(&self.pending);
                self.pending.drain(..n);
                if !self.pending.is_empty() {
                    break;
                }
            }
            let n = io.recv(&mut buf);
            if n == 0 {
                break;
            }
            self.seen.borrow_mut().bytes.extend_from_slice(&buf[..n]);
            self.pending.extend_from_slice(&buf[..n]);
        }
        if io.state() == PeerConnState::PeerFin && self.pending.is_empty() && !self.closed {
            self.closed = true;
            io.close();
        }
    }
}

/// Reads everything (or nothing if `read` is false); closes after peer FIN.
pub struct Sink {
    pub seen: Shared,
    pub read: bool,
    closed: bool,
}
impl ConnHandler for Sink {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        note(&self.seen, io);
        if self.read {
            let mut buf = [0u8; 16384];
            loop {
                let n = io.recv(&mut buf);
                if n == 0 {
                    break;
                }
                self.seen.borrow_mut().bytes.extend_from_slice(&buf[..n]);
            }
        }
        if self.read && io.state() == PeerConnState::PeerFin && !self.closed {
            self.closed = true;
            io.close();
        }
    }
}

/// Sends `data`, then closes (FIN) if `close`.
pub struct Source {
    pub seen: Shared,
    pub data: Vec<u8>,
    pub sent: usize,
    pub close: bool,
    closed: bool,
}
impl ConnHandler for Source {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        note(&self.seen, io);
        if matches!(
            io.state(),
            PeerConnState::Established | PeerConnState::PeerFin
        ) {
            while self.sent < self.data.len() {
                let n = io.send(&self.data[self.sent..]);
                if n == 0 {
                    break;
                }
                self.sent += n;
            }
            if self.sent == self.data.len() && self.close && !self.closed {
                self.closed = true;
                io.close();
            }
        }
    }
}

pub fn shared() -> Shared {
    Rc::new(RefCell::new(Seen::default()))
}

pub fn listen_echo(sim: &Sim, port: u16) -> Shared {
    let seen = shared();
    let s2 = seen.clone();
    sim.peer_host().listen(
        port,
        Box::new(move || {
            s2.borrow_mut().accepted += 1;
            Box::new(Echo {
                seen: s2.clone(),
                pending: vec![],
                closed: false,
            })
        }),
    );
    seen
}

pub fn listen_sink(sim: &Sim, port: u16, read: bool) -> Shared {
    let seen = shared();
    let s2 = seen.clone();
    sim.peer_host().listen(
        port,
        Box::new(move || {
            s2.borrow_mut().accepted += 1;
            Box::new(Sink {
                seen: s2.clone(),
                read,
                closed: false,
            })
        }),
    );
    seen
}

pub fn listen_source(sim: &Sim, port: u16, data: Vec<u8>, close: bool) -> Shared {
    let seen = shared();
    let s2 = seen.clone();
    sim.peer_host().listen(
        port,
        Box::new(move || {
            s2.borrow_mut().accepted += 1;
            Box::new(Source {
                seen: s2.clone(),
                data: data.clone(),
                sent: 0,
                close,
                closed: false,
            })
        }),
    );
    seen
}

pub fn peer_connect(sim: &Sim, port: u16, handler: Box<dyn ConnHandler>) {
    sim.peer_host()
        .connect(SocketAddrV4::new(SUT, port), handler);
}

pub fn relative_timer(env: &Env, ns: u64) -> Event {
    // SAFETY: no notify function, so the (null) context is never used.
    let e = unsafe {
        env.boot().create_event(
            EventType::TIMER,
            Tpl::APPLICATION,
            None,
            core::ptr::null_mut(),
        )
    }
    .unwrap();
    assert_eq!(
        env.boot().set_timer(e, TimerDelay::RELATIVE, ns / 100),
        Status::SUCCESS
    );
    e
}

pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn assert_clean(env: &Env) {
    let b = env.sim.finish();
    assert!(
        b.is_empty(),
        "breaches: {:#?}",
        b.iter().map(|b| b.to_string()).collect::<Vec<_>>()
    );
}
