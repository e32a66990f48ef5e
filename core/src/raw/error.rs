//! A failed firmware call.

use core::fmt;

use crate::firmware::Status;
use crate::firmware::status::name;

/// A firmware call of the raw toolkit that returned an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawError {
    /// The UEFI function, e.g. `"CreateChild"` or `"AllocatePool"`.
    pub call: &'static str,
    /// What it returned.
    pub status: Status,
}

impl RawError {
    /// The error of `call` returning `status`.
    pub const fn new(call: &'static str, status: Status) -> Self {
        Self { call, status }
    }
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, name(self.status))
    }
}

impl core::error::Error for RawError {}

/// `Ok` for `SUCCESS`, otherwise the error of `call` with `status`.
pub fn check(call: &'static str, status: Status) -> Result<(), RawError> {
    if status == Status::SUCCESS {
        Ok(())
    } else {
        Err(RawError::new(call, status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_passes_success_only() {
        assert_eq!(check("Poll", Status::SUCCESS), Ok(()));
        let e = check("Connect", Status::NOT_STARTED).unwrap_err();
        assert_eq!(e, RawError::new("Connect", Status::NOT_STARTED));
        assert_eq!(alloc::format!("{e}"), "Connect: NOT_STARTED");
    }
}
