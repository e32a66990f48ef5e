//! Raw EFI_TCP4 access for the quirk probes.
//!
//! The probes ask the firmware itself how it behaves (does Cancel work, does
//! Transmit complete inside the call, ...), below the socket layer, so they
//! drive the boundary traits with hand-made tokens. Tokens, data structures
//! and buffers live in `allocate_pool` memory and are never freed while the
//! firmware may still own them: a token whose event was not seen signalled is
//! leaked on purpose (the simulator then reports the leak, and the probe has
//! failed anyway).

use std::net::SocketAddrV4;
use std::ptr;

use efisock::firmware::{
    Boolean, BootServices, Event, EventType, Handle, Ipv4Address, Platform, Status, Tcp4,
    Tcp4AccessPoint, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConfigData, Tcp4ConnectionState,
    Tcp4ConnectionToken, Tcp4FragmentData, Tcp4IoToken, Tcp4Of, Tcp4Packet, Tcp4ReceiveData,
    Tcp4ServiceBinding, Tcp4TransmitData, Tpl,
};

/// Bounds every wait of a probe: firmware time and number of Poll calls.
const WAIT_LIMIT_NS: u64 = 10_000_000_000;
const WAIT_LIMIT_POLLS: u32 = 2_000_000;

/// One TCP4 child driven directly.
pub struct RawChild<P: Platform> {
    platform: P,
    handle: Handle,
    tcp: Tcp4Of<P>,
    station: Option<std::net::Ipv4Addr>,
}

impl<P: Platform> RawChild<P> {
    /// CreateChild + open its TCP4 protocol.
    pub fn create(platform: P) -> Result<Self, String> {
        let handle = platform
            .tcp4_service()
            .create_child()
            .map_err(|s| format!("CreateChild: {s:?}"))?;
        let tcp = match platform.tcp4_service().open_tcp4(handle) {
            Ok(tcp) => tcp,
            Err(s) => {
                let _ = platform.tcp4_service().destroy_child(handle);
                return Err(format!("open TCP4 on the child: {s:?}"));
            }
        };
        Ok(RawChild {
            platform,
            handle,
            tcp,
            station: None,
        })
    }

    /// The address to pass explicitly when the firmware refuses
    /// UseDefaultAddress with ALREADY_STARTED (a /24 on the test network).
    pub fn with_station(mut self, station: std::net::Ipv4Addr) -> Self {
        self.station = Some(station);
        self
    }

    /// The protocol instance.
    pub fn tcp(&self) -> &Tcp4Of<P> {
        &self.tcp
    }

    /// Configure as an active instance towards `remote`, default address,
    /// ephemeral port.
    pub fn configure_active(&self, remote: SocketAddrV4) -> Status {
        self.configure(remote, 0, true)
    }

    /// Configure as an active instance towards `remote` from local `port`.
    pub fn configure_active_from(&self, port: u16, remote: SocketAddrV4) -> Status {
        self.configure(remote, port, true)
    }

    /// Configure as a passive instance on `port`.
    pub fn configure_passive(&self, port: u16) -> Status {
        self.configure(SocketAddrV4::new([0, 0, 0, 0].into(), 0), port, false)
    }

    fn configure(&self, remote: SocketAddrV4, port: u16, active: bool) -> Status {
        let config = Tcp4ConfigData {
            type_of_service: 0,
            time_to_live: 64,
            access_point: Tcp4AccessPoint {
                use_default_address: Boolean::TRUE,
                station_address: Ipv4Address([0; 4]),
                subnet_mask: Ipv4Address([0; 4]),
                station_port: port,
                remote_address: Ipv4Address(remote.ip().octets()),
                remote_port: remote.port(),
                active_flag: if active {
                    Boolean::TRUE
                } else {
                    Boolean::FALSE
                },
            },
            control_option: ptr::null_mut(),
        };
        // SAFETY: `config` is a valid, fully initialised Tcp4ConfigData that
        // lives across the call; a null control_option selects the defaults.
        let status = unsafe { self.tcp.configure(&config) };
        if status != Status::ALREADY_STARTED {
            return status;
        }
        // Old firmware rejects UseDefaultAddress once the address is set
        // (BITS passes it explicitly); do the same so probes reach the
        // behaviour they measure.
        let Some(station) = self.station else {
            return status;
        };
        let mut config = config;
        config.access_point.use_default_address = Boolean::FALSE;
        config.access_point.station_address = Ipv4Address(station.octets());
        config.access_point.subnet_mask = Ipv4Address([255, 255, 255, 0]);
        // SAFETY: as above.
        unsafe { self.tcp.configure(&config) }
    }

    /// Configure(NULL): the brutal reset.
    pub fn reset(&self) -> Status {
        // SAFETY: a null configuration is the documented reset request.
        unsafe { self.tcp.configure(ptr::null()) }
    }

    /// The connection state from GetModeData.
    pub fn state(&self) -> Result<Tcp4ConnectionState, Status> {
        let mut state = Tcp4ConnectionState::CLOSED;
        // SAFETY: `state` is valid for writes; the other outputs are null,
        // which GetModeData allows.
        let status = unsafe {
            self.tcp.get_mode_data(
                &mut state,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if status == Status::SUCCESS {
            Ok(state)
        } else {
            Err(status)
        }
    }

    /// Polls until `done` holds; false if the bounds ran out first.
    pub fn poll_until(&self, mut done: impl FnMut(&Self) -> bool) -> bool {
        let boot = self.platform.boot();
        let start = boot.monotonic_ns();
        for _ in 0..WAIT_LIMIT_POLLS {
            if done(self) {
                return true;
            }
            let _ = self.tcp.poll();
            if boot.monotonic_ns().saturating_sub(start) > WAIT_LIMIT_NS {
                break;
            }
        }
        done(self)
    }
}

impl<P: Platform> Drop for RawChild<P> {
    fn drop(&mut self) {
        // Abort whatever is still pending, then release the child.
        let _ = self.reset();
        let _ = self.platform.tcp4_service().destroy_child(self.handle);
    }
}

/// A plain event (no notify function) that CheckEvent can test.
pub struct RawEvent<'a, B: BootServices> {
    boot: &'a B,
    event: Event,
    owned: bool,
}

impl<'a, B: BootServices> RawEvent<'a, B> {
    /// CreateEvent(0, TPL_CALLBACK, no notify).
    pub fn new(boot: &'a B) -> Result<Self, String> {
        // SAFETY: no notify function, so the null context is never used.
        let event =
            unsafe { boot.create_event(EventType::empty(), Tpl::CALLBACK, None, ptr::null_mut()) }
                .map_err(|s| format!("CreateEvent: {s:?}"))?;
        Ok(RawEvent {
            boot,
            event,
            owned: true,
        })
    }

    /// The event handle.
    pub fn handle(&self) -> Event {
        self.event
    }

    /// CheckEvent: true if it was signalled (and resets it).
    pub fn signalled(&self) -> bool {
        self.boot.check_event(self.event) == Status::SUCCESS
    }
}

impl<B: BootServices> Drop for RawEvent<'_, B> {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.boot.close_event(self.event);
        }
    }
}

/// Pool memory for one token type plus its data, freed only once signalled.
struct PoolBlock<'a, B: BootServices> {
    boot: &'a B,
    ptr: *mut u8,
    released: bool,
}

impl<'a, B: BootServices> PoolBlock<'a, B> {
    fn zeroed(boot: &'a B, size: usize) -> Result<Self, String> {
        let ptr = boot
            .allocate_pool(size)
            .map_err(|s| format!("AllocatePool: {s:?}"))?;
        // SAFETY: AllocatePool returned `size` writable bytes at `ptr`.
        unsafe { ptr::write_bytes(ptr, 0, size) };
        Ok(PoolBlock {
            boot,
            ptr,
            released: true,
        })
    }
}

impl<B: BootServices> Drop for PoolBlock<'_, B> {
    fn drop(&mut self) {
        if self.released {
            // SAFETY: `ptr` came from allocate_pool and the firmware no
            // longer owns it (`released` is false while a token is pending).
            let _ = unsafe { self.boot.free_pool(self.ptr) };
        }
    }
}

/// The kinds of token a probe submits.
pub enum TokenKind {
    /// Tcp4ConnectionToken.
    Connect,
    /// Tcp4IoToken with a receive buffer of this many bytes.
    Receive(usize),
    /// Tcp4IoToken carrying these bytes.
    Transmit(Vec<u8>),
    /// Tcp4CloseToken.
    Close {
        /// AbortOnClose.
        abort: bool,
    },
}

/// One token in pool memory with its event.
pub struct RawToken<'a, B: BootServices> {
    event: RawEvent<'a, B>,
    block: PoolBlock<'a, B>,
    kind: TokenKind,
    seen_signalled: bool,
}

/// Layout: [token][rx/tx data + 1 fragment][buffer]
const TOKEN_AREA: usize = 64;
const DATA_AREA: usize = 64;

impl<'a, B: BootServices> RawToken<'a, B> {
    /// A token of `kind` with a fresh event.
    pub fn new(boot: &'a B, kind: TokenKind) -> Result<Self, String> {
        Self::with_event(boot, kind, RawEvent::new(boot)?)
    }

    fn with_event(boot: &'a B, kind: TokenKind, event: RawEvent<'a, B>) -> Result<Self, String> {
        let buffer = match &kind {
            TokenKind::Receive(n) => *n,
            TokenKind::Transmit(bytes) => bytes.len(),
            _ => 0,
        };
        let block = PoolBlock::zeroed(boot, TOKEN_AREA + DATA_AREA + buffer)?;
        let token = RawToken {
            event,
            block,
            kind,
            seen_signalled: false,
        };
        token.init();
        Ok(token)
    }

    fn init(&self) {
        let base = self.block.ptr;
        let completion = Tcp4CompletionToken {
            event: self.event.handle(),
            status: Status::NOT_READY,
        };
        // SAFETY: the block is TOKEN_AREA + DATA_AREA + buffer bytes, 8-byte
        // aligned by AllocatePool; every write below stays inside it, and the
        // structs fit their areas (checked by the const assertions below).
        unsafe {
            let data = base.add(TOKEN_AREA);
            let buffer = base.add(TOKEN_AREA + DATA_AREA);
            match &self.kind {
                TokenKind::Connect => {
                    (base as *mut Tcp4ConnectionToken).write(Tcp4ConnectionToken {
                        completion_token: completion,
                    });
                }
                TokenKind::Close { abort } => {
                    (base as *mut Tcp4CloseToken).write(Tcp4CloseToken {
                        completion_token: completion,
                        abort_on_close: if *abort {
                            Boolean::TRUE
                        } else {
                            Boolean::FALSE
                        },
                    });
                }
                TokenKind::Receive(n) => {
                    let rx = data as *mut Tcp4ReceiveData;
                    rx.write(Tcp4ReceiveData {
                        urgent: Boolean::FALSE,
                        data_length: *n as u32,
                        fragment_count: 1,
                        fragment_table: [],
                    });
                    (rx.add(1) as *mut Tcp4FragmentData).write(Tcp4FragmentData {
                        fragment_length: *n as u32,
                        fragment_buf: buffer,
                    });
                    (base as *mut Tcp4IoToken).write(Tcp4IoToken {
                        completion_token: completion,
                        packet: Tcp4Packet { rx_data: rx },
                    });
                }
                TokenKind::Transmit(bytes) => {
                    ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len());
                    let tx = data as *mut Tcp4TransmitData;
                    tx.write(Tcp4TransmitData {
                        push: Boolean::TRUE,
                        urgent: Boolean::FALSE,
                        data_length: bytes.len() as u32,
                        fragment_count: 1,
                        fragment_table: [],
                    });
                    (tx.add(1) as *mut Tcp4FragmentData).write(Tcp4FragmentData {
                        fragment_length: bytes.len() as u32,
                        fragment_buf: buffer,
                    });
                    (base as *mut Tcp4IoToken).write(Tcp4IoToken {
                        completion_token: completion,
                        packet: Tcp4Packet { tx_data: tx },
                    });
                }
            }
        }
    }

    fn completion(&self) -> *mut Tcp4CompletionToken {
        self.block.ptr as *mut Tcp4CompletionToken
    }

    /// Submits the token with the call matching its kind; on SUCCESS the
    /// firmware owns it until signalled.
    pub fn submit<T: Tcp4>(&mut self, tcp: &T) -> Status {
        let base = self.block.ptr;
        // SAFETY: the token was initialised by `init`, lives in pool memory
        // that is not freed while the firmware owns it (`released` is cleared
        // below on SUCCESS), and matches the call's token type.
        let status = unsafe {
            match self.kind {
                TokenKind::Connect => tcp.connect(base as *mut Tcp4ConnectionToken),
                TokenKind::Close { .. } => tcp.close(base as *mut Tcp4CloseToken),
                TokenKind::Receive(_) => tcp.receive(base as *mut Tcp4IoToken),
                TokenKind::Transmit(_) => tcp.transmit(base as *mut Tcp4IoToken),
            }
        };
        if status == Status::SUCCESS {
            self.block.released = false;
        }
        status
    }

    /// Cancel this token.
    pub fn cancel<T: Tcp4>(&self, tcp: &T) -> Status {
        // SAFETY: the completion token is the first field of every token
        // kind and lives in pool memory that outlives the call.
        unsafe { tcp.cancel(self.completion()) }
    }

    /// Whether the firmware has signalled the token (remembered once seen).
    pub fn done(&mut self) -> bool {
        if !self.seen_signalled && self.event.signalled() {
            self.seen_signalled = true;
            self.block.released = true;
        }
        self.seen_signalled
    }

    /// The status the firmware wrote (NOT_READY until it completes).
    pub fn status(&self) -> Status {
        // SAFETY: the completion token is initialised and in pool memory; a
        // volatile read because the firmware writes it behind our back.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.completion()).status)) }
    }

    /// For a completed Receive: the bytes delivered.
    pub fn received(&self) -> Vec<u8> {
        let TokenKind::Receive(_) = self.kind else {
            return Vec::new();
        };
        // SAFETY: Receive tokens have rx data at TOKEN_AREA whose DataLength
        // the firmware rewrote to the bytes placed in the buffer.
        unsafe {
            let rx = self.block.ptr.add(TOKEN_AREA) as *const Tcp4ReceiveData;
            let len = ptr::read_volatile(ptr::addr_of!((*rx).data_length)) as usize;
            std::slice::from_raw_parts(self.block.ptr.add(TOKEN_AREA + DATA_AREA), len).to_vec()
        }
    }
}
