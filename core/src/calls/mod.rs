//! Traced, counted wrappers around every firmware call.
//!
//! Why: leak tests and the strategy benchmarks need exact counts (calls by
//! function, live children/events/pool blocks), and debugging needs a trace
//! of every call with its status and duration. Routing every call through one
//! place makes both exact by construction: nothing in the core calls the
//! firmware traits directly except through [`Ctx`].

pub(crate) mod completion;
pub(crate) mod ipconfig;

use core::cell::Cell;
use core::ffi::c_void;
use core::fmt;

use crate::calls::completion::CompletionQueue;
use crate::config::NetConfig;
use crate::error::FirmwareCall;
use crate::firmware::{
    BootServices, Event, EventNotifyFn, EventType, Handle, Ip4Config2, Ip4Config2DataType,
    Platform, Status, Tcp4, Tcp4AccessPoint, Tcp4ConfigData, Tcp4ConnectionState,
    Tcp4ServiceBinding, TimerDelay, Tpl, status,
};

/// Every [`FirmwareCall`], in the order of [`crate::NetStats::calls`].
pub const FIRMWARE_CALLS: [FirmwareCall; 14] = [
    FirmwareCall::GetModeData,
    FirmwareCall::Configure,
    FirmwareCall::Routes,
    FirmwareCall::Connect,
    FirmwareCall::Accept,
    FirmwareCall::Transmit,
    FirmwareCall::Receive,
    FirmwareCall::Close,
    FirmwareCall::Cancel,
    FirmwareCall::Poll,
    FirmwareCall::CreateChild,
    FirmwareCall::DestroyChild,
    FirmwareCall::Ip4Config2,
    FirmwareCall::BootServices,
];

/// Index of `call` in [`FIRMWARE_CALLS`].
pub fn call_index(call: FirmwareCall) -> usize {
    FIRMWARE_CALLS
        .iter()
        .position(|c| *c == call)
        .unwrap_or(FIRMWARE_CALLS.len() - 1)
}

/// Exact counters (single-threaded: `Cell`s, never touched by notify functions).
#[derive(Default)]
pub(crate) struct Stats {
    pub calls: [Cell<u64>; 14],
    pub polls: Cell<u64>,
    pub stalls: Cell<u64>,
    pub timer_waits: Cell<u64>,
    pub wait_iterations: Cell<u64>,
    pub completions: Cell<u64>,
    pub notifies: Cell<u64>,
    pub children: Cell<usize>,
    pub events: Cell<usize>,
    pub pool: Cell<usize>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

fn inc(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn dec(c: &Cell<usize>) {
    c.set(c.get().saturating_sub(1));
}

impl Stats {
    pub fn count(&self, call: FirmwareCall) {
        bump(&self.calls[call_index(call)]);
    }
    pub fn completion(&self) {
        bump(&self.completions);
    }
    pub fn notify(&self) {
        bump(&self.notifies);
    }
    pub fn wait_iteration(&self) {
        bump(&self.wait_iterations);
    }
    /// A child created by the firmware for an accepted connection.
    pub fn adopt_child(&self) {
        inc(&self.children);
    }
}

/// Displays a `Status` by name.
pub(crate) struct St(pub Status);
impl fmt::Display for St {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(status::name(self.0))
    }
}

/// Everything a firmware call needs: the platform, the counters, the
/// completion queue and the configuration.
pub(crate) struct Ctx<'a, P: Platform> {
    pub p: &'a P,
    pub stats: &'a Stats,
    pub queue: &'a CompletionQueue,
    pub cfg: &'a NetConfig,
}

impl<P: Platform> Ctx<'_, P> {
    /// Monotonic time in ns.
    pub fn now(&self) -> u64 {
        self.p.boot().monotonic_ns()
    }

    /// Runs one firmware call, counts it and emits its `efisock::fw` trace.
    pub fn traced(
        &self,
        instance: u64,
        call: FirmwareCall,
        name: &'static str,
        args: &dyn fmt::Display,
        f: impl FnOnce() -> Status,
    ) -> Status {
        let t0 = self.now();
        let st = f();
        let t_ns = self.now();
        self.stats.count(call);
        tracing::trace!(
            target: "efisock::fw",
            instance,
            call = name,
            args = %args,
            status = status::name(st),
            t_ns,
            elapsed_ns = t_ns.saturating_sub(t0)
        );
        st
    }

    // ---- Tcp4 (non-token calls; token calls live in `slots`) ----

    /// `Configure`; `None` is the brutal reset.
    pub fn configure(
        &self,
        tcp: &impl Tcp4,
        instance: u64,
        cfg: Option<&mut Tcp4ConfigData>,
    ) -> Status {
        // The trace shows the access point as passed: a copy, because the
        // firmware writes into `cfg` during the call.
        let args = CfgArgs(cfg.as_deref().map(|c| c.access_point.clone()));
        let ptr = cfg.map_or(core::ptr::null_mut(), |c| c as *mut Tcp4ConfigData);
        self.traced(
            instance,
            FirmwareCall::Configure,
            "Tcp4.Configure",
            &args,
            // SAFETY: `ptr` is null or comes from an exclusive borrow of a
            // config the caller owns, so it is valid for the firmware's reads
            // and write-back and nothing else aliases it during the call;
            // its control option (if any) is alive for the call.
            || unsafe { tcp.configure(ptr) },
        )
    }

    /// `GetModeData` for the state and the configuration.
    pub fn mode(
        &self,
        tcp: &impl Tcp4,
        instance: u64,
    ) -> (Status, Tcp4ConnectionState, Option<Tcp4ConfigData>) {
        // A Cell, so the trace's arguments (rendered after the call) can
        // show the state the firmware wrote.
        let state = Cell::new(Tcp4ConnectionState::CLOSED);
        // SAFETY: Tcp4ConfigData is plain old data (integers, a nullable
        // pointer); all-zero is a valid value.
        let mut cfg: Tcp4ConfigData = unsafe { core::mem::zeroed() };
        let st = self.traced(
            instance,
            FirmwareCall::GetModeData,
            "Tcp4.GetModeData",
            &StateArg(&state),
            || {
                let mut out = Tcp4ConnectionState::CLOSED;
                // SAFETY: both out-pointers are valid local variables; the others are null.
                let st = unsafe {
                    tcp.get_mode_data(
                        &mut out,
                        &mut cfg,
                        core::ptr::null_mut(),
                        core::ptr::null_mut(),
                        core::ptr::null_mut(),
                    )
                };
                state.set(out);
                st
            },
        );
        let cfg = (st == Status::SUCCESS).then_some(cfg);
        (st, state.get(), cfg)
    }

    /// `Poll`.
    pub fn poll(&self, tcp: &impl Tcp4, instance: u64) -> Status {
        bump(&self.stats.polls);
        self.traced(instance, FirmwareCall::Poll, "Tcp4.Poll", &"", || {
            tcp.poll()
        })
    }

    // ---- Service binding ----

    /// `CreateChild` + open its Tcp4.
    pub fn create_child(
        &self,
        instance: u64,
    ) -> Result<(Handle, <P::Tcp4Service as Tcp4ServiceBinding>::Tcp4), Status> {
        let svc = self.p.tcp4_service();
        let mut handle = core::ptr::null_mut();
        let st = self.traced(
            instance,
            FirmwareCall::CreateChild,
            "Tcp4ServiceBinding.CreateChild",
            &"",
            || match svc.create_child() {
                Ok(h) => {
                    handle = h;
                    Status::SUCCESS
                }
                Err(e) => e,
            },
        );
        if st != Status::SUCCESS {
            return Err(st);
        }
        inc(&self.stats.children);
        match self.open(instance, handle) {
            Ok(tcp) => Ok((handle, tcp)),
            Err(e) => {
                let _ = self.destroy_child(instance, handle);
                Err(e)
            }
        }
    }

    /// Opens the Tcp4 protocol on a child handle (created or accepted).
    pub fn open(
        &self,
        instance: u64,
        child: Handle,
    ) -> Result<<P::Tcp4Service as Tcp4ServiceBinding>::Tcp4, Status> {
        let svc = self.p.tcp4_service();
        let mut out = None;
        let st = self.traced(
            instance,
            FirmwareCall::BootServices,
            "OpenProtocol(Tcp4)",
            &HandleArg(child),
            || match svc.open_tcp4(child) {
                Ok(t) => {
                    out = Some(t);
                    Status::SUCCESS
                }
                Err(e) => e,
            },
        );
        out.ok_or(st)
    }

    /// `DestroyChild`.
    pub fn destroy_child(&self, instance: u64, child: Handle) -> Status {
        let st = self.traced(
            instance,
            FirmwareCall::DestroyChild,
            "Tcp4ServiceBinding.DestroyChild",
            &HandleArg(child),
            || self.p.tcp4_service().destroy_child(child),
        );
        if st == Status::SUCCESS {
            dec(&self.stats.children);
        }
        st
    }

    // ---- Boot services ----

    /// `CreateEvent`.
    pub fn create_event(
        &self,
        event_type: EventType,
        tpl: Tpl,
        notify: Option<EventNotifyFn>,
        context: *mut c_void,
    ) -> Result<Event, Status> {
        let mut out = None;
        let st = self.traced(0, FirmwareCall::BootServices, "CreateEvent", &"", || {
            // SAFETY: the callers pass a context that outlives the event
            // (a slot header freed only after `close_event`) or null.
            match unsafe { self.p.boot().create_event(event_type, tpl, notify, context) } {
                Ok(e) => {
                    out = Some(e);
                    Status::SUCCESS
                }
                Err(e) => e,
            }
        });
        match out {
            Some(e) => {
                inc(&self.stats.events);
                Ok(e)
            }
            None => Err(st),
        }
    }

    /// `CloseEvent`.
    pub fn close_event(&self, event: Event) -> Status {
        let st = self.traced(0, FirmwareCall::BootServices, "CloseEvent", &"", || {
            self.p.boot().close_event(event)
        });
        if st == Status::SUCCESS {
            dec(&self.stats.events);
        }
        st
    }

    /// `AllocatePool`.
    pub fn allocate_pool(&self, size: usize) -> Result<*mut u8, Status> {
        let mut out = None;
        let st = self.traced(
            0,
            FirmwareCall::BootServices,
            "AllocatePool",
            &size,
            || match self.p.boot().allocate_pool(size) {
                Ok(p) if !p.is_null() => {
                    out = Some(p);
                    Status::SUCCESS
                }
                Ok(_) => Status::OUT_OF_RESOURCES,
                Err(e) => e,
            },
        );
        match out {
            Some(p) => {
                inc(&self.stats.pool);
                Ok(p)
            }
            None => Err(st),
        }
    }

    /// `FreePool`.
    ///
    /// # Safety
    /// `buffer` comes from `allocate_pool` and the firmware does not own it.
    pub unsafe fn free_pool(&self, buffer: *mut u8) -> Status {
        let st = self.traced(0, FirmwareCall::BootServices, "FreePool", &"", || {
            // SAFETY: guaranteed by the caller.
            unsafe { self.p.boot().free_pool(buffer) }
        });
        if st == Status::SUCCESS {
            dec(&self.stats.pool);
        }
        st
    }

    /// `Stall`.
    pub fn stall(&self, us: u64) {
        bump(&self.stats.stalls);
        let us = usize::try_from(us).unwrap_or(usize::MAX);
        let _ = self.traced(0, FirmwareCall::BootServices, "Stall", &us, || {
            self.p.boot().stall(us)
        });
    }

    /// `SetTimer(relative)` then `WaitForEvent` on `timer`.
    pub fn wait_timer(&self, timer: Event, us: u64) -> Status {
        bump(&self.stats.timer_waits);
        let ticks = us.saturating_mul(10).max(1);
        let st = self.traced(0, FirmwareCall::BootServices, "SetTimer", &ticks, || {
            self.p.boot().set_timer(timer, TimerDelay::RELATIVE, ticks)
        });
        if st != Status::SUCCESS {
            return st;
        }
        self.traced(
            0,
            FirmwareCall::BootServices,
            "WaitForEvent",
            &"timer",
            || match self.p.boot().wait_for_event(&[timer]) {
                Ok(_) => Status::SUCCESS,
                Err(e) => e,
            },
        )
    }

    // ---- Ip4Config2 ----

    /// `Ip4Config2.SetData`.
    pub fn ip_set(&self, data_type: Ip4Config2DataType, data: &[u8]) -> Status {
        self.traced(
            0,
            FirmwareCall::Ip4Config2,
            "Ip4Config2.SetData",
            &data_type.0,
            || {
                // SAFETY: `data` is valid for reads of its length.
                unsafe {
                    self.p.ip4_config2().set_data(
                        data_type,
                        data.len(),
                        data.as_ptr() as *const c_void,
                    )
                }
            },
        )
    }

    /// `Ip4Config2.GetData` into `buf`; returns the status and the size reported.
    pub fn ip_get(&self, data_type: Ip4Config2DataType, buf: &mut [u64]) -> (Status, usize) {
        let mut size = core::mem::size_of_val(buf);
        let st = self.traced(
            0,
            FirmwareCall::Ip4Config2,
            "Ip4Config2.GetData",
            &data_type.0,
            || {
                // SAFETY: `size` is a valid local; `buf` is valid for writes of `size` bytes.
                unsafe {
                    self.p.ip4_config2().get_data(
                        data_type,
                        &mut size,
                        buf.as_mut_ptr() as *mut c_void,
                    )
                }
            },
        );
        (st, size)
    }
}

/// The arguments of a `GetModeData` trace: the connection state the call
/// returned (what callers of the trace compare across firmware).
struct StateArg<'a>(&'a Cell<Tcp4ConnectionState>);
impl fmt::Display for StateArg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "state={:?}, config", self.0.get())
    }
}

struct HandleArg(Handle);
impl fmt::Display for HandleArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "child={:p}", self.0)
    }
}

struct CfgArgs(Option<Tcp4AccessPoint>);
impl fmt::Display for CfgArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("NULL"),
            Some(a) => {
                let s = a.station_address.0;
                let r = a.remote_address.0;
                write!(
                    f,
                    "default={} station={}.{}.{}.{}:{} remote={}.{}.{}.{}:{} active={}",
                    bool::from(a.use_default_address),
                    s[0],
                    s[1],
                    s[2],
                    s[3],
                    a.station_port,
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    a.remote_port,
                    bool::from(a.active_flag)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_has_a_distinct_index() {
        for (i, c) in FIRMWARE_CALLS.iter().enumerate() {
            assert_eq!(call_index(*c), i);
        }
    }
}
