//! The platform of an application written with the `uefi` crate.

use core::fmt;

use super::{EfiPlatform, LocateError};

/// Why [`EfiPlatform::from_uefi`] found no platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromUefiError {
    /// The `uefi` crate has no system table (the application was not
    /// started through `#[uefi::entry]` or `uefi::table::set_system_table`).
    NoSystemTable,
    /// Boot services were exited.
    NoBootServices,
    /// The protocols or the clock were not found.
    Locate(LocateError),
}

impl fmt::Display for FromUefiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSystemTable => f.write_str("the uefi crate has no system table"),
            Self::NoBootServices => f.write_str("boot services are no longer available"),
            Self::Locate(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl core::error::Error for FromUefiError {}

impl EfiPlatform {
    /// [`EfiPlatform::locate`] with the system table and image handle the
    /// `uefi` crate keeps (set by `#[uefi::entry]`), for applications written
    /// with that crate.
    ///
    /// The platform must not be used after boot services are exited (which
    /// the `uefi` crate only does in the `unsafe` `exit_boot_services`).
    ///
    /// # Panics
    /// If the `uefi` crate's image handle was never set.
    pub fn from_uefi() -> Result<Self, FromUefiError> {
        let st = uefi::table::system_table_raw().ok_or(FromUefiError::NoSystemTable)?;
        // SAFETY: the uefi crate only stores the firmware's live system table
        // (the contract of `uefi::table::set_system_table`).
        let bs = unsafe { st.as_ref() }.boot_services;
        if bs.is_null() {
            return Err(FromUefiError::NoBootServices);
        }
        let image = uefi::boot::image_handle();
        // SAFETY: `bs` is the live boot-services table (checked non-null
        // above, so boot services are active) and `image` this application's
        // image handle; the caller stops using the platform when boot
        // services end (documented above).
        unsafe { Self::locate(bs, image.as_ptr()) }.map_err(FromUefiError::Locate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_uefi_without_a_system_table_says_so() {
        assert_eq!(
            EfiPlatform::from_uefi().unwrap_err(),
            FromUefiError::NoSystemTable
        );
    }
}
