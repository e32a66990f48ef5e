//! Plain events for `CheckEvent`.

use core::ptr;

use super::error::RawError;
use crate::firmware::{BootServices, Event, EventType, Status, Tpl};

/// An event without a notify function: `CheckEvent` reports and resets its
/// signal, so a loop can count exactly the Polls a token needed. Closed on
/// drop unless [`RawEvent::leak`]ed.
#[derive(Debug)]
pub struct RawEvent<'a, B: BootServices> {
    boot: &'a B,
    event: Event,
}

impl<'a, B: BootServices> RawEvent<'a, B> {
    /// `CreateEvent(0, TPL_CALLBACK, no notify)`.
    pub fn new(boot: &'a B) -> Result<Self, RawError> {
        // SAFETY: no notify function, so the null context is never used.
        let event =
            unsafe { boot.create_event(EventType::empty(), Tpl::CALLBACK, None, ptr::null_mut()) }
                .map_err(|s| RawError::new("CreateEvent", s))?;
        Ok(RawEvent { boot, event })
    }

    /// `CreateEvent(EVT_TIMER, TPL_CALLBACK, no notify)`: a timer to arm
    /// with `SetTimer` and wait on with `WaitForEvent` or `CheckEvent`.
    pub fn timer(boot: &'a B) -> Result<Self, RawError> {
        // SAFETY: no notify function, so the null context is never used.
        let event =
            unsafe { boot.create_event(EventType::TIMER, Tpl::CALLBACK, None, ptr::null_mut()) }
                .map_err(|s| RawError::new("CreateEvent", s))?;
        Ok(RawEvent { boot, event })
    }

    /// The event handle.
    pub fn handle(&self) -> Event {
        self.event
    }

    /// `CheckEvent`: true if it was signalled (which resets it).
    pub fn signalled(&self) -> bool {
        self.boot.check_event(self.event) == Status::SUCCESS
    }

    /// Gives the event up without closing it, because a token the firmware
    /// still owns refers to it.
    pub fn leak(self) -> Event {
        let event = self.event;
        core::mem::forget(self);
        event
    }
}

impl<B: BootServices> Drop for RawEvent<'_, B> {
    fn drop(&mut self) {
        let _ = self.boot.close_event(self.event);
    }
}
