//! Run configuration: seed, firmware profile and its quirks, virtual costs,
//! notify scheduling, link faults, fault knobs, DHCP, replay tape, and what
//! to do on a breach.

use std::net::Ipv4Addr;

use crate::decide::{Scheduler, Tape};

mod faults;
mod profile;

pub use faults::{Faults, ParseFaultsError};
pub use profile::{Profile, Quirks, UnknownProfile, UnknownQuirk};

/// Virtual time charged for work, so that performance comparisons between
/// strategies (e.g. polling or not) are meaningful and deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostModel {
    /// Every firmware call (boot services, TCP4, Ip4Config2).
    pub per_call_ns: u64,
    /// Extra for each `Tcp4.Poll`.
    pub poll_ns: u64,
    /// Each frame the SUT's stack processes.
    pub per_frame_ns: u64,
    /// Copying one byte between caller buffers and the stack, in picoseconds.
    pub per_byte_copy_ps: u64,
}

impl Default for CostModel {
    fn default() -> Self {
        // Calibrated against OVMF (edk2-stable202211) under QEMU TCG by
        // `cargo xtask bench-report` (docs/benchmarks.md).
        CostModel {
            per_call_ns: 4_000,
            poll_ns: 0,
            per_frame_ns: 40_000,
            per_byte_copy_ps: 2_500,
        }
    }
}

/// When notify functions run: a shorthand for FIFO or
/// [`Scheduler::Uniform`] ([`SimConfig::scheduler`] is the general switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyMode {
    /// As [`SimConfig::scheduler`] says (default [`Scheduler::Fifo`]: FIFO
    /// order as soon as the TPL allows, at call return and during waits).
    Fifo,
    /// Same as `scheduler = Scheduler::Uniform` (when the scheduler is left
    /// at `Fifo`): at every firmware-call boundary (entry and exit) pending
    /// notifies are delivered or deferred (boundedly), in an order chosen by
    /// the seed.
    Anytime,
}

/// Fault knobs of every link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way latency.
    pub latency_ns: u64,
    /// Serialisation rate; 0 = unlimited.
    pub bandwidth_bps: u64,
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability a packet is delayed past later ones.
    pub reorder: f64,
    /// Uniform extra delay in `0..jitter_ns`.
    pub jitter_ns: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency_ns: 100_000,
            bandwidth_bps: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            jitter_ns: 0,
        }
    }
}

/// The DHCP server's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpConfig {
    /// Time from selecting the DHCP policy to the address being applied.
    pub delay_ns: u64,
    /// Never answer.
    pub fail: bool,
    /// Offered address.
    pub address: Ipv4Addr,
    /// Offered mask.
    pub mask: Ipv4Addr,
    /// Offered gateway.
    pub gateway: Ipv4Addr,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            delay_ns: 3_500_000_000,
            fail: false,
            address: Ipv4Addr::new(10, 0, 2, 15),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            gateway: Ipv4Addr::new(10, 0, 2, 2),
        }
    }
}

/// What to do when a contract breach is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreachPolicy {
    /// Store it (see `Sim::breaches`).
    Record,
    /// Panic with the report.
    Panic,
}

/// Everything that defines a run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The one seed everything derives from.
    pub seed: u64,
    /// Firmware generation.
    pub profile: Profile,
    /// Behaviour switches (default: the profile's).
    pub quirks: Quirks,
    /// Virtual time costs.
    pub cost: CostModel,
    /// Notify scheduling (legacy switch; `Anytime` means `Uniform`).
    pub notify: NotifyMode,
    /// Who picks notify decisions.
    pub scheduler: Scheduler,
    /// Fault knobs (besides the per-link ones in `link`).
    pub faults: Faults,
    /// Replay tape: when present it supplies the decision values.
    pub tape: Option<Tape>,
    /// Link faults.
    pub link: LinkConfig,
    /// DHCP server.
    pub dhcp: DhcpConfig,
    /// Breach handling.
    pub breach_policy: BreachPolicy,
}

impl SimConfig {
    /// Defaults: edk2-stable202211 with its quirks, FIFO notifies, no
    /// faults, clean link, no tape.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            profile: Profile::Edk2Stable202211,
            quirks: Profile::Edk2Stable202211.quirks(),
            cost: CostModel::default(),
            notify: NotifyMode::Fifo,
            scheduler: Scheduler::Fifo,
            faults: Faults::none(),
            tape: None,
            link: LinkConfig::default(),
            dhcp: DhcpConfig::default(),
            breach_policy: BreachPolicy::Record,
        }
    }

    /// The scheduler in effect: `scheduler`, except that the legacy
    /// `notify = NotifyMode::Anytime` with `scheduler` left at `Fifo` means
    /// `Uniform`.
    pub fn effective_scheduler(&self) -> Scheduler {
        match (self.scheduler, self.notify) {
            (Scheduler::Fifo, NotifyMode::Anytime) => Scheduler::Uniform,
            (s, _) => s,
        }
    }

    /// Select a profile; also resets the quirks to the profile's.
    pub fn with_profile(mut self, p: Profile) -> Self {
        self.profile = p;
        self.quirks = p.quirks();
        self
    }
}
