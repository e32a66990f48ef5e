//! The real firmware behind `efisock`'s boundary traits.
//!
//! A thin passthrough: every trait method calls the firmware function of the
//! same name through `uefi-raw`'s function-pointer tables and returns the
//! status unchanged. The only code beyond ABI translation is finding the
//! protocols once at start ([`EfiPlatform::locate`]) and the calibrated
//! counter behind `monotonic_ns` (see [`clock`]).
//!
//! These types hold raw firmware pointers and are neither `Send` nor `Sync`:
//! UEFI boot services are single-threaded (BSP only).

// Events and handles are opaque firmware handles, not pointers we
// dereference: the firmware validates them (EDK2 checks each event's and
// handle's signature and returns INVALID_PARAMETER), and the boundary
// traits fix these methods as safe.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod boot;
pub mod clock;
#[cfg(feature = "uefi")]
mod from_uefi;
pub mod ip4_config2;
pub mod tcp4;

use core::ffi::c_void;
use core::fmt;
use core::ptr;

use efisock::firmware::{Handle, Platform, Status};
use uefi_raw::Guid;
use uefi_raw::protocol::network::ip4_config2::Ip4Config2Protocol;
use uefi_raw::protocol::network::tcp4::Tcp4Protocol;
use uefi_raw::table::boot::BootServices as RawBootServices;

pub use boot::EfiBoot;
#[cfg(feature = "uefi")]
pub use from_uefi::FromUefiError;
pub use ip4_config2::EfiIp4Config2;
pub use tcp4::{EfiTcp4, EfiTcp4Service};

/// `LocateHandleBuffer` search type `ByProtocol` (UEFI 2.11, 7.3.15).
const BY_PROTOCOL: i32 = 2;
/// `OpenProtocol` attribute `EFI_OPEN_PROTOCOL_GET_PROTOCOL`.
pub(crate) const OPEN_PROTOCOL_GET_PROTOCOL: u32 = 0x0000_0002;

/// Why the platform could not be assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateError {
    /// The TSC did not advance across the calibration stall.
    Calibration(clock::CalibrationError),
    /// `LocateHandleBuffer(ByProtocol, TCP4 service binding)` failed
    /// (`NOT_FOUND`: no NIC is connected to the TCP4 driver).
    NoTcp4Service(Status),
    /// TCP4 service bindings exist but none of their handles also carries
    /// `EFI_IP4_CONFIG2_PROTOCOL`; `last` is the last `OpenProtocol` status.
    NoIp4Config2 {
        /// How many TCP4 service-binding handles were examined.
        handles: usize,
        /// The last failing status.
        last: Status,
    },
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Calibration(e) => write!(f, "TSC calibration against Stall failed: {e:?}"),
            Self::NoTcp4Service(s) => write!(
                f,
                "no TCP4 service binding (LocateHandleBuffer: {}); is a NIC present and connected?",
                efisock::firmware::status::name(*s)
            ),
            Self::NoIp4Config2 { handles, last } => write!(
                f,
                "{handles} TCP4 service handle(s), none with Ip4Config2 (last: {})",
                efisock::firmware::status::name(*last)
            ),
        }
    }
}

/// The firmware's boot services, the TCP4 service binding of the first NIC
/// that has both TCP4 and Ip4Config2, and that NIC's Ip4Config2.
#[derive(Debug, Clone, Copy)]
pub struct EfiPlatform {
    boot: EfiBoot,
    tcp4: EfiTcp4Service,
    ip4: EfiIp4Config2,
    nic: Handle,
}

impl EfiPlatform {
    /// Calibrates the clock and finds the protocols: the handles carrying the
    /// TCP4 service binding (LocateHandleBuffer ByProtocol), the first of
    /// which also carries Ip4Config2 is used.
    ///
    /// # Safety
    /// `bs` is the running firmware's boot-services table and `image` this
    /// application's image handle; boot services must remain available while
    /// the platform (or anything derived from it) is used.
    pub unsafe fn locate(bs: *mut RawBootServices, image: Handle) -> Result<Self, LocateError> {
        // SAFETY: forwarded caller contract.
        let boot = unsafe { EfiBoot::new(bs) }.map_err(LocateError::Calibration)?;
        let mut count = 0usize;
        let mut handles: *mut Handle = ptr::null_mut();
        // SAFETY: `bs` is live; GUID is static; out pointers are valid.
        let s = unsafe {
            ((*bs).locate_handle_buffer)(
                BY_PROTOCOL,
                &Tcp4Protocol::SERVICE_BINDING_GUID,
                ptr::null(),
                &mut count,
                &mut handles,
            )
        };
        if s != Status::SUCCESS {
            return Err(LocateError::NoTcp4Service(s));
        }
        if handles.is_null() || count == 0 {
            return Err(LocateError::NoTcp4Service(Status::NOT_FOUND));
        }
        let mut found = None;
        let mut last = Status::NOT_FOUND;
        for i in 0..count {
            // SAFETY: the firmware returned `count` handles at `handles`.
            let h = unsafe { *handles.add(i) };
            // SAFETY: `bs` live, `h` from the firmware, `image` per contract.
            let sb = unsafe { open(bs, h, &Tcp4Protocol::SERVICE_BINDING_GUID, image) };
            // SAFETY: as above.
            let ip = unsafe { open(bs, h, &Ip4Config2Protocol::GUID, image) };
            match (sb, ip) {
                (Ok(sb), Ok(ip)) => {
                    found = Some((h, sb, ip));
                    break;
                }
                (Err(e), _) | (_, Err(e)) => last = e,
            }
        }
        // SAFETY: the handle array was pool-allocated by LocateHandleBuffer
        // and is ours to free; nothing references it any more.
        let _ = unsafe { ((*bs).free_pool)(handles.cast()) };
        let (nic, sb, ip) = found.ok_or(LocateError::NoIp4Config2 {
            handles: count,
            last,
        })?;
        Ok(Self {
            boot,
            // SAFETY: `sb` is the live service binding of `nic`; `bs`/`image`
            // per this function's contract.
            tcp4: unsafe { EfiTcp4Service::from_raw(bs, sb.cast(), image) },
            // SAFETY: `ip` is the live Ip4Config2 interface of `nic`.
            ip4: unsafe { EfiIp4Config2::from_raw(ip.cast()) },
            nic,
        })
    }

    /// The NIC handle in use (carries both protocols).
    pub fn nic_handle(&self) -> Handle {
        self.nic
    }
}

/// `OpenProtocol(GET_PROTOCOL)`: the interface pointer, or the failing status.
///
/// # Safety
/// `bs` is the live boot-services table.
unsafe fn open(
    bs: *mut RawBootServices,
    handle: Handle,
    guid: &'static Guid,
    image: Handle,
) -> Result<*mut c_void, Status> {
    let mut iface: *mut c_void = ptr::null_mut();
    // SAFETY: `bs` live (contract); `guid` static; `iface` valid out pointer.
    let s = unsafe {
        ((*bs).open_protocol)(
            handle,
            guid,
            &mut iface,
            image,
            ptr::null_mut(),
            OPEN_PROTOCOL_GET_PROTOCOL,
        )
    };
    match (s, iface.is_null()) {
        (Status::SUCCESS, false) => Ok(iface),
        (Status::SUCCESS, true) => Err(Status::NOT_FOUND),
        (e, _) => Err(e),
    }
}

impl Platform for EfiPlatform {
    type Boot = EfiBoot;
    type Tcp4Service = EfiTcp4Service;
    type Ip4Config = EfiIp4Config2;

    fn boot(&self) -> &EfiBoot {
        &self.boot
    }

    fn tcp4_service(&self) -> &EfiTcp4Service {
        &self.tcp4
    }

    fn ip4_config2(&self) -> &EfiIp4Config2 {
        &self.ip4
    }
}
