//! A criterion [`Measurement`] whose unit is **virtual firmware
//! nanoseconds**: the simulator's clock (`Sim::now_ns`) read before and
//! after the workload.
//!
//! Why: on the simulator, host wall time measures how fast the simulator
//! runs, not how fast the firmware would be. The virtual clock advances only
//! by the sim's cost model (per firmware call, per Poll, per frame, per
//! copied byte, plus the 10 ms MNP tick and link timing), so the figure is
//! what the workload would take on EDK2 under that model, and for a given
//! seed it is the same on every machine and every run.
//!
//! Use: the bench calls `Bencher::iter_custom` and returns
//! [`VirtualTime::elapsed`] of a fresh world; `start`/`end` read the clock
//! bound to the current thread with [`VirtualTime::bind`], so `iter` works
//! too while a world is bound. With no world bound they read 0, so a
//! mis-wired bench reports 0 ns (conspicuous) instead of host time.

use std::cell::RefCell;

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};
use efisock_sim::Sim;

thread_local! {
    static BOUND: RefCell<Option<Sim>> = const { RefCell::new(None) };
}

/// Virtual firmware time of the simulator bound to this thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct VirtualTime;

/// Unbinds the simulator when dropped.
pub struct Bound(());

impl Drop for Bound {
    fn drop(&mut self) {
        BOUND.with(|b| b.borrow_mut().take());
    }
}

impl VirtualTime {
    /// Makes `sim` the clock `start`/`end` read on this thread until the
    /// returned guard is dropped.
    pub fn bind(sim: &Sim) -> Bound {
        BOUND.with(|b| *b.borrow_mut() = Some(sim.clone()));
        Bound(())
    }

    /// Virtual ns now on the bound simulator (0 if none is bound).
    pub fn now_ns() -> u64 {
        BOUND.with(|b| b.borrow().as_ref().map_or(0, Sim::now_ns))
    }
}

impl Measurement for VirtualTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        Self::now_ns()
    }
    fn end(&self, start: u64) -> u64 {
        Self::now_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a.saturating_add(*b)
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &VirtualFormatter
    }
}

/// Formats virtual nanoseconds with a `(virt)` suffix so they are never
/// mistaken for wall time.
struct VirtualFormatter;

fn unit_for(typical_ns: f64) -> (f64, &'static str) {
    if typical_ns < 1e3 {
        (1.0, "ns(virt)")
    } else if typical_ns < 1e6 {
        (1e-3, "µs(virt)")
    } else if typical_ns < 1e9 {
        (1e-6, "ms(virt)")
    } else {
        (1e-9, "s(virt)")
    }
}

impl ValueFormatter for VirtualFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = unit_for(typical);
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        // Per virtual second: elements or bytes / (ns / 1e9).
        let (amount, unit) = match *throughput {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => {
                (b as f64 / 1_048_576.0, "MiB/s(virt)")
            }
            Throughput::Elements(e) => (e as f64, "elem/s(virt)"),
            Throughput::Bits(b) => (b as f64 / 1e6, "Mbit/s(virt)"),
            Throughput::ElementsAndBytes { elements, .. } => (elements as f64, "elem/s(virt)"),
        };
        let _ = typical;
        // A zero duration has no finite rate; report 0 rather than inf.
        values
            .iter_mut()
            .for_each(|v| *v = if *v > 0.0 { amount * 1e9 / *v } else { 0.0 });
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns(virt)"
    }
}
