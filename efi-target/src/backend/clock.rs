//! Monotonic nanoseconds from the CPU's time-stamp counter.
//!
//! UEFI has no monotonic clock service: `GetNextMonotonicCount` counts calls,
//! not time, and `GetTime` is the RTC (one-second resolution, slow, wall time).
//! The core needs cheap nanosecond timestamps on every firmware call, so we
//! read the TSC (`rdtsc`, a few cycles) and convert with a rate measured once
//! at start against `BootServices.Stall`, which OVMF implements with a
//! calibrated hardware timer. Modern x86-64 CPUs (and QEMU's TCG `-cpu max`)
//! have an invariant TSC, so the rate does not change with power states.
//!
//! The conversion itself is plain integer arithmetic in [`TscRate`], so it is
//! unit-tested on the host.

/// Ticks-per-nanosecond conversion, stored as a 32.32 fixed-point multiplier
/// of nanoseconds per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscRate {
    /// Nanoseconds per tick, times 2^32.
    ns_per_tick_fp32: u64,
    /// Counter value taken as time zero.
    origin: u64,
}

/// Why a calibration could not produce a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationError {
    /// The counter did not advance across the calibration stall.
    CounterStopped,
    /// The calibration interval was zero.
    ZeroInterval,
}

impl TscRate {
    /// A rate from a measurement: `ticks` counter ticks elapsed during
    /// `interval_ns` nanoseconds; `origin` is the counter value of time zero.
    pub fn from_measurement(
        origin: u64,
        ticks: u64,
        interval_ns: u64,
    ) -> Result<Self, CalibrationError> {
        if interval_ns == 0 {
            return Err(CalibrationError::ZeroInterval);
        }
        if ticks == 0 {
            return Err(CalibrationError::CounterStopped);
        }
        let fp = ((u128::from(interval_ns)) << 32) / u128::from(ticks);
        // A rate slower than one tick per 2^32 ns cannot be a TSC; saturate.
        let ns_per_tick_fp32 = u64::try_from(fp).unwrap_or(u64::MAX).max(1);
        Ok(Self {
            ns_per_tick_fp32,
            origin,
        })
    }

    /// Nanoseconds since the origin for counter value `now`; a counter value
    /// before the origin (impossible with an invariant TSC) reads as 0.
    pub fn ns_at(&self, now: u64) -> u64 {
        let ticks = now.saturating_sub(self.origin);
        let ns = (u128::from(ticks) * u128::from(self.ns_per_tick_fp32)) >> 32;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Counter ticks per second, for reports.
    pub fn ticks_per_second(&self) -> u64 {
        let tps = (1_000_000_000u128 << 32) / u128::from(self.ns_per_tick_fp32);
        u64::try_from(tps).unwrap_or(u64::MAX)
    }
}

/// The raw counter of this CPU.
#[cfg(target_arch = "x86_64")]
pub fn read_counter() -> u64 {
    // SAFETY: `rdtsc` has no memory effects and is available on every x86-64
    // CPU; it only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The raw counter of this CPU (the ARM generic timer's virtual count).
#[cfg(target_arch = "aarch64")]
pub fn read_counter() -> u64 {
    let v: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects; UEFI runs at EL1/EL2
    // where the register is accessible.
    unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_ghz_counter_converts_exactly() {
        // 3 GHz: 30_000_000 ticks in 10 ms.
        let r = TscRate::from_measurement(1000, 30_000_000, 10_000_000).unwrap();
        assert_eq!(r.ns_at(1000), 0);
        let one_s = r.ns_at(1000 + 3_000_000_000);
        assert!((999_999_990..=1_000_000_000).contains(&one_s), "{one_s}");
        let tps = r.ticks_per_second();
        assert!((2_999_999_000..=3_000_001_000).contains(&tps), "{tps}");
    }

    #[test]
    fn counter_before_origin_reads_zero() {
        let r = TscRate::from_measurement(5000, 1000, 1000).unwrap();
        assert_eq!(r.ns_at(10), 0);
        assert_eq!(r.ns_at(6000), 1000);
    }

    #[test]
    fn bad_measurements_are_errors() {
        assert_eq!(
            TscRate::from_measurement(0, 0, 10),
            Err(CalibrationError::CounterStopped)
        );
        assert_eq!(
            TscRate::from_measurement(0, 10, 0),
            Err(CalibrationError::ZeroInterval)
        );
    }

    #[test]
    fn huge_tick_counts_do_not_overflow() {
        let r = TscRate::from_measurement(0, 3, 1).unwrap();
        assert!(r.ns_at(u64::MAX) > 0);
    }
}
