//! The firmware's own limit: a hand-written tight loop directly on
//! `EFI_TCP4_PROTOCOL`, without efisock's socket layer (feature `bench-app`).
//!
//! Why: issue #5 asks how close efisock gets to what the firmware can do.
//! This loop is the simplest correct client: one token at a time, armed,
//! then `CheckEvent` + `Tcp4.Poll` until its event is signalled (the
//! busy-poll strategy with nothing in between), repeat. Events have no
//! notify function (type 0), so `CheckEvent` reports and resets the signal.
//! Every wait is bounded by a firmware-time deadline. Memory the firmware
//! may reference lives in pool buffers that are leaked if a token could not
//! be confirmed signalled.

use alloc::format;
use alloc::string::String;
use core::mem::ManuallyDrop;
use core::ptr;

use efisock::firmware::status::{self, CONNECTION_FIN};
use efisock::firmware::{
    BootServices, Event, EventType, Handle, Ipv4Address, Platform, Status, Tcp4, Tcp4AccessPoint,
    Tcp4ConfigData, Tcp4ConnectionToken, Tcp4FragmentData, Tcp4IoToken, Tcp4Of, Tcp4Packet,
    Tcp4ReceiveData, Tcp4ServiceBinding, Tcp4TransmitData, Tpl,
};
use uefi_raw::Boolean;

use crate::smoke::pool::PoolBuf;

/// Bytes per Receive token and per Transmit token of the bulk loops.
pub const RAW_CHUNK: usize = 64 * 1024;

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

/// Counters of one raw connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawStats {
    /// `Tcp4.Poll` calls.
    pub polls: u64,
    /// Every firmware call (Poll, CheckEvent, Transmit, Receive, ...).
    pub calls: u64,
}

/// One active TCP4 child driven by the tight loop.
pub struct RawConn<'p, P: Platform> {
    p: &'p P,
    child: Handle,
    tcp: Tcp4Of<P>,
    event: Event,
    /// Whether a token using `event` may still be owned by the firmware.
    pending: bool,
    /// Token and buffer memory; dropped (freed) only when no token is
    /// pending, leaked otherwise.
    mem: ManuallyDrop<RawMem<'p, P::Boot>>,
    /// Counters so far.
    pub stats: RawStats,
}

struct RawMem<'b, B: BootServices> {
    conn: PoolBuf<'b, B>,
    io: PoolBuf<'b, B>,
    tx: PoolBuf<'b, B>,
    rx: PoolBuf<'b, B>,
    buf: PoolBuf<'b, B>,
}

fn st(s: Status) -> &'static str {
    status::name(s)
}

impl<'p, P: Platform> RawConn<'p, P> {
    /// CreateChild, Configure (active, default address), Connect, and wait
    /// for the connect token until `deadline_ns` (firmware clock).
    pub fn connect(p: &'p P, remote: [u8; 4], port: u16, deadline_ns: u64) -> Result<Self, String> {
        let boot = p.boot();
        let svc = p.tcp4_service();
        let child = svc
            .create_child()
            .map_err(|s| format!("CreateChild: {}", st(s)))?;
        let tcp = match svc.open_tcp4(child) {
            Ok(t) => t,
            Err(s) => {
                let _ = svc.destroy_child(child);
                return Err(format!("OpenProtocol(Tcp4): {}", st(s)));
            }
        };
        // SAFETY: no notify function, so there is no context to keep alive.
        let event = match unsafe {
            boot.create_event(EventType::empty(), Tpl::CALLBACK, None, ptr::null_mut())
        } {
            Ok(e) => e,
            Err(s) => {
                let _ = svc.destroy_child(child);
                return Err(format!("CreateEvent: {}", st(s)));
            }
        };
        let alloc = || -> Result<_, Status> {
            Ok((
                PoolBuf::for_type::<Tcp4ConnectionToken>(boot)?,
                PoolBuf::for_type::<Tcp4IoToken>(boot)?,
                PoolBuf::for_type::<TxData1>(boot)?,
                PoolBuf::for_type::<RxData1>(boot)?,
                PoolBuf::zeroed(boot, RAW_CHUNK)?,
            ))
        };
        let (conn, io, tx, rx, buf) = match alloc() {
            Ok(m) => m,
            Err(s) => {
                let _ = boot.close_event(event);
                let _ = svc.destroy_child(child);
                return Err(format!("AllocatePool: {}", st(s)));
            }
        };
        let mut c = RawConn {
            p,
            child,
            tcp,
            event,
            pending: false,
            mem: ManuallyDrop::new(RawMem {
                conn,
                io,
                tx,
                rx,
                buf,
            }),
            stats: RawStats::default(),
        };
        let cfg = Tcp4ConfigData {
            type_of_service: 0,
            time_to_live: 64,
            access_point: Tcp4AccessPoint {
                use_default_address: Boolean::TRUE,
                station_address: Ipv4Address([0; 4]),
                subnet_mask: Ipv4Address([0; 4]),
                station_port: 0,
                remote_address: Ipv4Address(remote),
                remote_port: port,
                active_flag: Boolean::TRUE,
            },
            control_option: ptr::null_mut(),
        };
        // SAFETY: `cfg` is valid for reads during the call; null control option.
        let s = unsafe { c.tcp.configure(&cfg) };
        c.stats.calls += 1;
        if s != Status::SUCCESS {
            return Err(format!("Configure: {}", st(s)));
        }
        let tok = c.mem.conn.as_ptr::<Tcp4ConnectionToken>();
        // SAFETY: pool memory sized for the token, not firmware-owned.
        unsafe {
            (*tok).completion_token.event = c.event;
            (*tok).completion_token.status = Status::NOT_READY;
        }
        // SAFETY: the token lives in pool memory owned by `c` until
        // signalled (leaked by `Drop` otherwise).
        let s = unsafe { c.tcp.connect(tok) };
        c.stats.calls += 1;
        if s != Status::SUCCESS {
            return Err(format!("Connect: {}", st(s)));
        }
        c.pending = true;
        c.wait(deadline_ns, "connect")?;
        // SAFETY: signalled: the firmware wrote the status and let go.
        let s = unsafe { (*tok).completion_token.status };
        if s != Status::SUCCESS {
            return Err(format!("connect token: {}", st(s)));
        }
        Ok(c)
    }

    /// CheckEvent, then Poll, until the pending token is signalled.
    fn wait(&mut self, deadline_ns: u64, what: &str) -> Result<(), String> {
        let boot = self.p.boot();
        loop {
            self.stats.calls += 1;
            match boot.check_event(self.event) {
                Status::SUCCESS => {
                    self.pending = false;
                    return Ok(());
                }
                Status::NOT_READY => {}
                other => return Err(format!("{what}: CheckEvent {}", st(other))),
            }
            if boot.monotonic_ns() >= deadline_ns {
                return Err(format!("{what}: no completion before the deadline"));
            }
            let _ = self.tcp.poll();
            self.stats.polls += 1;
            self.stats.calls += 1;
        }
    }

    /// Transmits `data` (at most [`RAW_CHUNK`] bytes) in one token and
    /// waits for its completion.
    pub fn send(&mut self, data: &[u8], deadline_ns: u64) -> Result<(), String> {
        let len = data.len().min(RAW_CHUNK);
        // SAFETY: no token is pending (the previous one was signalled), so
        // the firmware does not own the buffer.
        unsafe { self.mem.buf.bytes_mut()[..len].copy_from_slice(&data[..len]) };
        let tok = self.mem.io.as_ptr::<Tcp4IoToken>();
        let tx = self.mem.tx.as_ptr::<TxData1>();
        // SAFETY: pool memory sized for these structs, not firmware-owned.
        unsafe {
            (*tx).head.push = Boolean::TRUE;
            (*tx).head.urgent = Boolean::FALSE;
            (*tx).head.data_length = len as u32;
            (*tx).head.fragment_count = 1;
            (*tx).frag[0] = Tcp4FragmentData {
                fragment_length: len as u32,
                fragment_buf: self.mem.buf.as_ptr::<u8>(),
            };
            (*tok).completion_token.event = self.event;
            (*tok).completion_token.status = Status::NOT_READY;
            (*tok).packet = Tcp4Packet {
                tx_data: tx.cast::<Tcp4TransmitData>(),
            };
        }
        // SAFETY: token, data and buffer stay in pool memory until signalled.
        let s = unsafe { self.tcp.transmit(tok) };
        self.stats.calls += 1;
        if s != Status::SUCCESS {
            return Err(format!("Transmit: {}", st(s)));
        }
        self.pending = true;
        self.wait(deadline_ns, "transmit")?;
        // SAFETY: signalled.
        let s = unsafe { (*tok).completion_token.status };
        if s != Status::SUCCESS {
            return Err(format!("transmit token: {}", st(s)));
        }
        if len < data.len() {
            return self.send(&data[len..], deadline_ns);
        }
        Ok(())
    }

    /// Arms one Receive of up to `out.len()` (at most [`RAW_CHUNK`]) bytes
    /// and waits for it; `Ok(0)` is the peer's FIN.
    pub fn recv(&mut self, out: &mut [u8], deadline_ns: u64) -> Result<usize, String> {
        let cap = out.len().min(RAW_CHUNK) as u32;
        let tok = self.mem.io.as_ptr::<Tcp4IoToken>();
        let rx = self.mem.rx.as_ptr::<RxData1>();
        // SAFETY: pool memory sized for these structs, not firmware-owned.
        unsafe {
            (*rx).head.urgent = Boolean::FALSE;
            (*rx).head.data_length = cap;
            (*rx).head.fragment_count = 1;
            (*rx).frag[0] = Tcp4FragmentData {
                fragment_length: cap,
                fragment_buf: self.mem.buf.as_ptr::<u8>(),
            };
            (*tok).completion_token.event = self.event;
            (*tok).completion_token.status = Status::NOT_READY;
            (*tok).packet = Tcp4Packet {
                rx_data: rx.cast::<Tcp4ReceiveData>(),
            };
        }
        // SAFETY: token, data and buffer stay in pool memory until signalled.
        let s = unsafe { self.tcp.receive(tok) };
        self.stats.calls += 1;
        if s == CONNECTION_FIN {
            return Ok(0);
        }
        if s != Status::SUCCESS {
            return Err(format!("Receive: {}", st(s)));
        }
        self.pending = true;
        self.wait(deadline_ns, "receive")?;
        // SAFETY: signalled: status, length and data were written.
        let (s, len) = unsafe {
            (
                (*tok).completion_token.status,
                (*rx).head.data_length.min(cap),
            )
        };
        if s == CONNECTION_FIN {
            return Ok(0);
        }
        if s != Status::SUCCESS {
            return Err(format!("receive token: {}", st(s)));
        }
        // SAFETY: not firmware-owned any more; `len <= cap` bytes written.
        out[..len as usize].copy_from_slice(unsafe { &self.mem.buf.bytes()[..len as usize] });
        Ok(len as usize)
    }
}

impl<P: Platform> Drop for RawConn<'_, P> {
    /// Configure(NULL) (EDK2 aborts every pending token inside the call and
    /// resets the connection), DestroyChild; a token still unsignalled
    /// afterwards keeps its memory (leaked) and its event.
    fn drop(&mut self) {
        let boot = self.p.boot();
        // SAFETY: null is the documented reset argument.
        let _ = unsafe { self.tcp.configure(ptr::null()) };
        if self.pending && boot.check_event(self.event) == Status::SUCCESS {
            self.pending = false;
        }
        let _ = self.p.tcp4_service().destroy_child(self.child);
        if !self.pending {
            let _ = boot.close_event(self.event);
            // SAFETY: no token is pending, so the firmware owns none of this
            // memory, and `mem` is not used after this point.
            unsafe { ManuallyDrop::drop(&mut self.mem) };
        }
    }
}
