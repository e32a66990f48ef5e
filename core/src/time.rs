//! Deadline arithmetic on the firmware's monotonic nanosecond clock.
//!
//! Why: timeouts come as `Duration`s (unbounded), the clock is a `u64` of
//! nanoseconds; the conversions must saturate instead of overflowing, and
//! "zero" must mean "poll once", never "forever".

use core::time::Duration;

/// Nanoseconds in `d`, saturated to `u64`.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The deadline `timeout` after `now`; None (forever) for no timeout.
pub(crate) fn deadline(now: u64, timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| now.saturating_add(nanos(t)))
}

/// The earlier of two optional deadlines (None = never).
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// How a call with this socket timeout behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocking {
    /// `settimeout(0)` / `setblocking(False)`: never wait (EAGAIN).
    No,
    /// Wait until the deadline (None: forever); then `Error::timeout`.
    Until(Option<u64>),
}

/// The behaviour of a socket whose timeout is `timeout`, at `now`.
pub(crate) fn blocking(now: u64, timeout: Option<Duration>) -> Blocking {
    match timeout {
        Some(t) if t.is_zero() => Blocking::No,
        t => Blocking::Until(deadline(now, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate() {
        assert_eq!(deadline(5, None), None);
        assert_eq!(deadline(5, Some(Duration::from_nanos(10))), Some(15));
        assert_eq!(
            deadline(u64::MAX - 1, Some(Duration::from_secs(1))),
            Some(u64::MAX)
        );
        assert_eq!(nanos(Duration::MAX), u64::MAX);
        assert_eq!(nanos(Duration::from_millis(3)), 3_000_000);
    }

    #[test]
    fn earliest_treats_none_as_never() {
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(3), None), Some(3));
        assert_eq!(earliest(None, Some(4)), Some(4));
        assert_eq!(earliest(Some(9), Some(4)), Some(4));
    }

    #[test]
    fn zero_timeout_is_nonblocking_not_forever() {
        assert_eq!(blocking(100, Some(Duration::ZERO)), Blocking::No);
        assert_eq!(blocking(100, None), Blocking::Until(None));
        assert_eq!(
            blocking(100, Some(Duration::from_nanos(1))),
            Blocking::Until(Some(101))
        );
    }
}
