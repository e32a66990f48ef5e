//! `EFI_TCP4_PROTOCOL` and its service binding, passed straight through.
//!
//! Each method calls the firmware function of the same name with the
//! protocol's `This` pointer and returns the status unchanged; no checks, no
//! retries, no state. Socket logic belongs to the core, above the boundary.

use core::ffi::c_void;
use core::ptr;

use efisock::firmware::{
    Handle, Ip4ModeData, Ipv4Address, NetworkMode, Status, Tcp4, Tcp4CloseToken,
    Tcp4CompletionToken, Tcp4ConfigData, Tcp4ConnectionState, Tcp4ConnectionToken, Tcp4IoToken,
    Tcp4ListenToken, Tcp4ServiceBinding,
};
use uefi_raw::Boolean;
use uefi_raw::protocol::driver::ServiceBindingProtocol;
use uefi_raw::protocol::network::tcp4::Tcp4Protocol;
use uefi_raw::table::boot::BootServices as RawBootServices;

use super::OPEN_PROTOCOL_GET_PROTOCOL;

/// One TCP4 child's protocol interface.
#[derive(Debug, Clone, Copy)]
pub struct EfiTcp4 {
    proto: *mut Tcp4Protocol,
}

impl EfiTcp4 {
    /// Wraps a protocol interface pointer.
    ///
    /// # Safety
    /// `proto` must be a live `EFI_TCP4_PROTOCOL` interface, valid until its
    /// child is destroyed; no method may be called after that.
    pub unsafe fn from_raw(proto: *mut Tcp4Protocol) -> Self {
        Self { proto }
    }

    /// The interface pointer (for diagnostics).
    pub fn as_raw(&self) -> *mut Tcp4Protocol {
        self.proto
    }

    fn table(&self) -> &Tcp4Protocol {
        // SAFETY: `from_raw`'s contract keeps the interface alive while used.
        unsafe { &*self.proto }
    }
}

// SAFETY: the firmware implements the UEFI token contract itself; this type
// only forwards calls.
unsafe impl Tcp4 for EfiTcp4 {
    unsafe fn get_mode_data(
        &self,
        connection_state: *mut Tcp4ConnectionState,
        config_data: *mut Tcp4ConfigData,
        ip4_mode_data: *mut Ip4ModeData,
        managed_network_config_data: *mut c_void,
        simple_network_mode: *mut NetworkMode,
    ) -> Status {
        // SAFETY: output pointers are null or valid for writes (caller contract).
        unsafe {
            (self.table().get_mode_data)(
                self.proto,
                connection_state,
                config_data,
                ip4_mode_data,
                managed_network_config_data,
                simple_network_mode,
            )
        }
    }

    unsafe fn configure(&self, config_data: *mut Tcp4ConfigData) -> Status {
        // SAFETY: `config_data` is null or valid for reads and writes and
        // unaliased for the call (caller contract). uefi-raw types the
        // parameter `*const` after the specification's IN, but EDK2 writes
        // the station address, mask and assigned port through it, which the
        // writable pointer allows.
        unsafe { (self.table().configure)(self.proto, config_data) }
    }

    unsafe fn routes(
        &self,
        delete_route: bool,
        subnet_address: *const Ipv4Address,
        subnet_mask: *const Ipv4Address,
        gateway_address: *const Ipv4Address,
    ) -> Status {
        // SAFETY: the address pointers are valid for reads (caller contract).
        unsafe {
            (self.table().routes)(
                self.proto,
                Boolean::from(delete_route),
                subnet_address,
                subnet_mask,
                gateway_address,
            )
        }
    }

    unsafe fn connect(&self, token: *mut Tcp4ConnectionToken) -> Status {
        // SAFETY: the token stays valid until signalled (caller contract).
        unsafe { (self.table().connect)(self.proto, token) }
    }

    unsafe fn accept(&self, token: *mut Tcp4ListenToken) -> Status {
        // SAFETY: the token stays valid until signalled (caller contract).
        unsafe { (self.table().accept)(self.proto, token) }
    }

    unsafe fn transmit(&self, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: token, tx data and buffers stay valid until signalled
        // (caller contract).
        unsafe { (self.table().transmit)(self.proto, token) }
    }

    unsafe fn receive(&self, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: token, rx data and buffers stay valid until signalled
        // (caller contract).
        unsafe { (self.table().receive)(self.proto, token) }
    }

    unsafe fn close(&self, token: *mut Tcp4CloseToken) -> Status {
        // SAFETY: the token stays valid until signalled (caller contract).
        unsafe { (self.table().close)(self.proto, token) }
    }

    unsafe fn cancel(&self, token: *mut Tcp4CompletionToken) -> Status {
        // SAFETY: `token` is null or a submitted token (caller contract).
        unsafe { (self.table().cancel)(self.proto, token) }
    }

    fn poll(&self) -> Status {
        // SAFETY: Poll only takes `This`, which is live (from_raw contract).
        unsafe { (self.table().poll)(self.proto) }
    }
}

/// The TCP4 service binding of one NIC.
#[derive(Debug, Clone, Copy)]
pub struct EfiTcp4Service {
    bs: *mut RawBootServices,
    binding: *mut ServiceBindingProtocol,
    image: Handle,
}

impl EfiTcp4Service {
    /// Wraps a service binding interface.
    ///
    /// # Safety
    /// `bs` is the live boot-services table, `binding` a live
    /// `EFI_TCP4_SERVICE_BINDING_PROTOCOL` interface and `image` this
    /// application's image handle, all valid while boot services are.
    pub unsafe fn from_raw(
        bs: *mut RawBootServices,
        binding: *mut ServiceBindingProtocol,
        image: Handle,
    ) -> Self {
        Self { bs, binding, image }
    }
}

impl Tcp4ServiceBinding for EfiTcp4Service {
    type Tcp4 = EfiTcp4;

    fn create_child(&self) -> Result<Handle, Status> {
        // A null handle asks the service for a new handle.
        let mut child: Handle = ptr::null_mut();
        // SAFETY: `binding` is live (from_raw contract); `child` is a valid
        // in/out pointer holding null.
        let s = unsafe { ((*self.binding).create_child)(self.binding, &mut child) };
        if s == Status::SUCCESS {
            Ok(child)
        } else {
            Err(s)
        }
    }

    fn destroy_child(&self, child: Handle) -> Status {
        // SAFETY: `binding` is live; the firmware validates `child`.
        unsafe { ((*self.binding).destroy_child)(self.binding, child) }
    }

    fn open_tcp4(&self, child: Handle) -> Result<EfiTcp4, Status> {
        let mut iface: *mut c_void = ptr::null_mut();
        // SAFETY: `bs` is live; the GUID is a static; `iface` is a valid out
        // pointer. GET_PROTOCOL takes no reference, so nothing to close later.
        let s = unsafe {
            ((*self.bs).open_protocol)(
                child,
                &Tcp4Protocol::GUID,
                &mut iface,
                self.image,
                ptr::null_mut(),
                OPEN_PROTOCOL_GET_PROTOCOL,
            )
        };
        if s != Status::SUCCESS {
            return Err(s);
        }
        if iface.is_null() {
            return Err(Status::NOT_FOUND);
        }
        // SAFETY: the firmware returned a live TCP4 interface for `child`,
        // valid until `child` is destroyed.
        Ok(unsafe { EfiTcp4::from_raw(iface.cast()) })
    }
}
