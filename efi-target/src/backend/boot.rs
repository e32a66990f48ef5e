//! `BootServices` passthrough: each method calls the boot-services table's
//! function pointer of the same name and returns its status unchanged.
//!
//! The only state is the TSC rate for [`BootServices::monotonic_ns`] (see
//! `clock`). Pool memory is `EfiBootServicesData`, as the boundary requires.

use core::ffi::c_void;
use core::ptr;

use efisock::firmware::{BootServices, Event, EventNotifyFn, EventType, Status, TimerDelay, Tpl};
use uefi_raw::table::boot::{BootServices as RawBootServices, MemoryType};

use super::clock::{self, CalibrationError, TscRate};

/// How long the one-time TSC calibration stalls, in microseconds.
pub const CALIBRATION_STALL_US: usize = 10_000;

/// The firmware's boot services plus a calibrated monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct EfiBoot {
    bs: *mut RawBootServices,
    rate: TscRate,
}

impl EfiBoot {
    /// Wraps a boot-services table and calibrates the counter against one
    /// `Stall` of [`CALIBRATION_STALL_US`].
    ///
    /// # Safety
    /// `bs` must be the boot-services table of the running firmware, and boot
    /// services must stay available (no `ExitBootServices`) while the returned
    /// value or anything derived from it is used.
    pub unsafe fn new(bs: *mut RawBootServices) -> Result<Self, CalibrationError> {
        let t0 = clock::read_counter();
        // SAFETY: `bs` is the live boot-services table (caller contract);
        // Stall takes a plain integer.
        let _ = unsafe { ((*bs).stall)(CALIBRATION_STALL_US) };
        let t1 = clock::read_counter();
        let rate =
            TscRate::from_measurement(t0, t1.wrapping_sub(t0), CALIBRATION_STALL_US as u64 * 1000)?;
        Ok(Self { bs, rate })
    }

    /// The measured counter rate (ticks per second), for reports.
    pub fn counter_hz(&self) -> u64 {
        self.rate.ticks_per_second()
    }

    fn table(&self) -> &RawBootServices {
        // SAFETY: `new`'s contract keeps the table valid and unmoved while
        // boot services are available; we only read function pointers.
        unsafe { &*self.bs }
    }
}

// SAFETY: every call goes straight to the firmware, which honours the TPL
// rules for notify functions itself.
unsafe impl BootServices for EfiBoot {
    unsafe fn create_event(
        &self,
        event_type: EventType,
        notify_tpl: Tpl,
        notify_function: Option<EventNotifyFn>,
        notify_context: *mut c_void,
    ) -> Result<Event, Status> {
        let mut event: Event = ptr::null_mut();
        // SAFETY: `event` is a valid out pointer; the context's lifetime is the
        // caller's contract, forwarded unchanged.
        let s = unsafe {
            (self.table().create_event)(
                event_type,
                notify_tpl,
                notify_function,
                notify_context,
                &mut event,
            )
        };
        if s == Status::SUCCESS {
            Ok(event)
        } else {
            Err(s)
        }
    }

    fn close_event(&self, event: Event) -> Status {
        // SAFETY: the firmware validates the event handle itself.
        unsafe { (self.table().close_event)(event) }
    }

    fn signal_event(&self, event: Event) -> Status {
        // SAFETY: the firmware validates the event handle itself.
        unsafe { (self.table().signal_event)(event) }
    }

    fn check_event(&self, event: Event) -> Status {
        // SAFETY: the firmware validates the event handle itself.
        unsafe { (self.table().check_event)(event) }
    }

    fn wait_for_event(&self, events: &[Event]) -> Result<usize, Status> {
        let mut index = 0usize;
        // SAFETY: `events` is a live slice of `events.len()` handles; `index`
        // is a valid out pointer.
        let s = unsafe { (self.table().wait_for_event)(events.len(), events.as_ptr(), &mut index) };
        if s == Status::SUCCESS {
            Ok(index)
        } else {
            Err(s)
        }
    }

    fn set_timer(&self, event: Event, delay: TimerDelay, trigger_time: u64) -> Status {
        // SAFETY: plain values; the firmware validates the event.
        unsafe { (self.table().set_timer)(event, delay, trigger_time) }
    }

    fn raise_tpl(&self, new_tpl: Tpl) -> Tpl {
        // SAFETY: plain value; TPL discipline is the caller's (boundary docs).
        unsafe { (self.table().raise_tpl)(new_tpl) }
    }

    fn restore_tpl(&self, old_tpl: Tpl) {
        // SAFETY: plain value; TPL discipline is the caller's (boundary docs).
        unsafe { (self.table().restore_tpl)(old_tpl) }
    }

    fn stall(&self, microseconds: usize) -> Status {
        // SAFETY: plain value.
        unsafe { (self.table().stall)(microseconds) }
    }

    fn allocate_pool(&self, size: usize) -> Result<*mut u8, Status> {
        let mut buffer: *mut u8 = ptr::null_mut();
        // SAFETY: `buffer` is a valid out pointer.
        let s = unsafe {
            (self.table().allocate_pool)(MemoryType::BOOT_SERVICES_DATA, size, &mut buffer)
        };
        if s == Status::SUCCESS {
            Ok(buffer)
        } else {
            Err(s)
        }
    }

    unsafe fn free_pool(&self, buffer: *mut u8) -> Status {
        // SAFETY: `buffer` came from `allocate_pool` and is not firmware-owned
        // (caller contract).
        unsafe { (self.table().free_pool)(buffer) }
    }

    fn monotonic_ns(&self) -> u64 {
        self.rate.ns_at(clock::read_counter())
    }
}
