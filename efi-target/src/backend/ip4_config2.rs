//! `EFI_IP4_CONFIG2_PROTOCOL` passthrough (DHCP/static policy, addresses).

use core::ffi::c_void;

use efisock::firmware::{Event, Ip4Config2, Ip4Config2DataType, Status};
use uefi_raw::protocol::network::ip4_config2::Ip4Config2Protocol;

/// The Ip4Config2 interface of one NIC.
#[derive(Debug, Clone, Copy)]
pub struct EfiIp4Config2 {
    proto: *mut Ip4Config2Protocol,
}

impl EfiIp4Config2 {
    /// Wraps a protocol interface pointer.
    ///
    /// # Safety
    /// `proto` must be a live `EFI_IP4_CONFIG2_PROTOCOL` interface for as long
    /// as boot services are available.
    pub unsafe fn from_raw(proto: *mut Ip4Config2Protocol) -> Self {
        Self { proto }
    }

    fn table(&self) -> &Ip4Config2Protocol {
        // SAFETY: `from_raw`'s contract keeps the interface alive.
        unsafe { &*self.proto }
    }
}

// SAFETY: sizes are forwarded unchanged to the firmware, which honours them.
unsafe impl Ip4Config2 for EfiIp4Config2 {
    unsafe fn set_data(
        &self,
        data_type: Ip4Config2DataType,
        data_size: usize,
        data: *const c_void,
    ) -> Status {
        // SAFETY: `data` is valid for `data_size` bytes (caller contract).
        unsafe { (self.table().set_data)(self.proto, data_type, data_size, data) }
    }

    unsafe fn get_data(
        &self,
        data_type: Ip4Config2DataType,
        data_size: *mut usize,
        data: *mut c_void,
    ) -> Status {
        // SAFETY: `data_size` valid, `data` writable for `*data_size` bytes
        // (caller contract).
        unsafe { (self.table().get_data)(self.proto, data_type, data_size, data) }
    }

    fn register_data_notify(&self, data_type: Ip4Config2DataType, event: Event) -> Status {
        // SAFETY: plain values; the firmware validates the event.
        unsafe { (self.table().register_data_notify)(self.proto, data_type, event) }
    }

    fn unregister_data_notify(&self, data_type: Ip4Config2DataType, event: Event) -> Status {
        // SAFETY: plain values; the firmware validates the event.
        unsafe { (self.table().unregister_data_notify)(self.proto, data_type, event) }
    }
}
