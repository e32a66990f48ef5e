//! A TCP4 child driven directly.

use core::mem::ManuallyDrop;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::ptr;

use super::config::active_config;
use super::config::passive_config;
use super::error::RawError;
use super::wait::{WaitLimit, poll_until};
use crate::firmware::{
    Boolean, Handle, Ipv4Address, Platform, Status, Tcp4, Tcp4ConfigData, Tcp4ConnectionState,
    Tcp4Of, Tcp4ServiceBinding,
};

/// One child of the TCP4 service binding and its protocol instance. Dropping
/// it resets the instance (`Configure(NULL)`, which aborts pending tokens)
/// and destroys the child.
pub struct RawChild<P: Platform> {
    platform: P,
    handle: Handle,
    tcp: Tcp4Of<P>,
    station: Option<Ipv4Addr>,
}

impl<P: Platform> RawChild<P> {
    /// `CreateChild`, then the TCP4 protocol on it (the child is destroyed
    /// again if that fails).
    pub fn create(platform: P) -> Result<Self, RawError> {
        let handle = platform
            .tcp4_service()
            .create_child()
            .map_err(|s| RawError::new("CreateChild", s))?;
        Self::adopt(platform, handle)
    }

    /// Takes over a child the firmware created (an Accept's new child):
    /// opens the TCP4 protocol on `handle`; from then on it is reset and
    /// destroyed like a created one. If the protocol cannot be opened the
    /// child is destroyed at once.
    pub fn adopt(platform: P, handle: Handle) -> Result<Self, RawError> {
        let service = platform.tcp4_service();
        let tcp = match service.open_tcp4(handle) {
            Ok(tcp) => tcp,
            Err(s) => {
                let _ = service.destroy_child(handle);
                return Err(RawError::new("OpenProtocol(Tcp4)", s));
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
    /// UseDefaultAddress with ALREADY_STARTED (a /24 is assumed).
    pub fn with_station(mut self, station: Ipv4Addr) -> Self {
        self.station = Some(station);
        self
    }

    /// The protocol instance.
    pub fn tcp(&self) -> &Tcp4Of<P> {
        &self.tcp
    }

    /// The platform the child belongs to.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The child handle.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Configure as an active instance towards `remote`, default address,
    /// ephemeral port.
    pub fn configure_active(&self, remote: SocketAddrV4) -> Status {
        self.configure(active_config(remote, 0))
    }

    /// Configure as an active instance towards `remote` from local `port`.
    pub fn configure_active_from(&self, port: u16, remote: SocketAddrV4) -> Status {
        self.configure(active_config(remote, port))
    }

    /// Configure as a passive instance on `port`.
    pub fn configure_passive(&self, port: u16) -> Status {
        self.configure(passive_config(port))
    }

    /// Configure with a caller-built `config` (for control options); the
    /// ALREADY_STARTED fallback of [`with_station`](Self::with_station)
    /// applies.
    ///
    /// # Safety
    /// `config.control_option` is null or points to a `Tcp4Option` valid
    /// for reads during the call.
    pub unsafe fn configure_with(&self, config: Tcp4ConfigData) -> Status {
        self.configure(config)
    }

    fn configure(&self, mut config: Tcp4ConfigData) -> Status {
        // SAFETY: `config` is a valid, fully initialised, exclusively
        // borrowed Tcp4ConfigData that lives across the call, so the
        // firmware may write its station address and port back into it; its
        // control_option is null (the defaults) or valid for reads
        // (`configure_with`'s contract).
        let status = unsafe { self.tcp.configure(&mut config) };
        if status != Status::ALREADY_STARTED {
            return status;
        }
        // Old firmware rejects UseDefaultAddress once the address is set
        // (BITS passes it explicitly); do the same so callers reach the
        // behaviour they measure.
        let Some(station) = self.station else {
            return status;
        };
        config.access_point.use_default_address = Boolean::FALSE;
        config.access_point.station_address = Ipv4Address(station.octets());
        config.access_point.subnet_mask = Ipv4Address([255, 255, 255, 0]);
        // SAFETY: as above.
        unsafe { self.tcp.configure(&mut config) }
    }

    /// `Configure(NULL)`: the brutal reset; EDK2 aborts every pending token
    /// inside the call.
    pub fn reset(&self) -> Status {
        // SAFETY: a null configuration is the documented reset request.
        unsafe { self.tcp.configure(ptr::null_mut()) }
    }

    /// The connection state from `GetModeData`.
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

    /// Polls until `done` holds; false if [`WaitLimit::DEFAULT`] ran out
    /// first (see [`poll_until`]).
    pub fn poll_until(&self, mut done: impl FnMut(&Self) -> bool) -> bool {
        poll_until(self.platform.boot(), &self.tcp, WaitLimit::DEFAULT, || {
            done(self)
        })
        .done
    }

    /// `DestroyChild` without the reset a drop does first, returning its
    /// status; reset first yourself if tokens may be pending.
    pub fn destroy(self) -> Status {
        let this = ManuallyDrop::new(self);
        let status = this.platform.tcp4_service().destroy_child(this.handle);
        // SAFETY: `this` is never used or dropped again, so each field is
        // read out (and dropped) exactly once.
        let (platform, tcp) = unsafe { (ptr::read(&this.platform), ptr::read(&this.tcp)) };
        drop(tcp);
        drop(platform);
        status
    }
}

impl<P: Platform> Drop for RawChild<P> {
    fn drop(&mut self) {
        let _ = self.reset();
        let _ = self.platform.tcp4_service().destroy_child(self.handle);
    }
}
