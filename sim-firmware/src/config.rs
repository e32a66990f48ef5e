//! Run configuration: seed, firmware profile and its quirks, virtual costs,
//! notify scheduling, link faults, fault knobs, DHCP, replay tape, and what
//! to do on a breach.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

use crate::decide::{Scheduler, Tape};
use crate::rng::Rng;

/// Which firmware generation to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// EDK2 edk2-stable202211 (TcpDxe, Cancel implemented).
    Edk2Stable202211,
    /// Pre-2016 EDK2 / the old Tcp4Dxe as BITS met it.
    Legacy,
}

impl Profile {
    /// Stable name, as accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Edk2Stable202211 => "edk2-stable202211",
            Profile::Legacy => "legacy",
        }
    }

    /// The quirk set of this profile.
    pub fn quirks(self) -> Quirks {
        let modern = Quirks {
            cancel_unsupported: false,
            receive_fin_as_return_value: true,
            close_with_unread_data_sends_rst: true,
            connect_closed_port_reports_reset: true,
            time_wait_holds_port: true,
            backlog_full_drops_syn: true,
            use_default_address_already_started: false,
            listen_any_unsupported: false,
            completions_inside_call: true,
            data_after_close_sends_rst: true,
            stored_error_leaks_into_next_connection: true,
        };
        match self {
            Profile::Edk2Stable202211 => modern,
            Profile::Legacy => Quirks {
                cancel_unsupported: true,
                use_default_address_already_started: true,
                listen_any_unsupported: true,
                ..modern
            },
        }
    }
}

/// A profile name that is not one of [`Profile::name`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown profile {:?} (expected \"edk2-stable202211\" or \"legacy\")",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, UnknownProfile> {
        match s {
            "edk2-stable202211" => Ok(Profile::Edk2Stable202211),
            "legacy" => Ok(Profile::Legacy),
            other => Err(UnknownProfile(other.to_string())),
        }
    }
}

/// One switch per EDK2 behaviour that differs from a textbook TCP or between
/// firmware generations. References are to tianocore/edk2 `NetworkPkg/TcpDxe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// `Cancel` always returns UNSUPPORTED (Tcp4Dxe before 2016; `Tcp4Cancel`
    /// was a stub in MdeModulePkg/Universal/Network/Tcp4Dxe/Tcp4Main.c).
    pub cancel_unsupported: bool,
    /// `Receive` returns CONNECTION_FIN as the function result when the FIN is
    /// in and nothing is buffered (SockInterface.c `SockRcv`); off: the token
    /// is queued and completes with CONNECTION_FIN.
    pub receive_fin_as_return_value: bool,
    /// `Close` with unread received data completes in the call and sends RST
    /// (SockInterface.c `SockClose` → TcpDispatcher.c `TcpDisconnect`, which
    /// resets when `GET_RCV_DATASIZE` != 0); off: graceful FIN.
    pub close_with_unread_data_sends_rst: bool,
    /// RST+ACK in SYN_SENT completes Connect with CONNECTION_RESET
    /// (TcpInput.c sets `SockError = EFI_CONNECTION_RESET`); off: REFUSED.
    pub connect_closed_port_reports_reset: bool,
    /// A station port stays in use while an instance is in TIME_WAIT
    /// (TcpDispatcher.c `TcpBind` → `TcpFindTcbByPeer` scans `mTcpRunQue`).
    pub time_wait_holds_port: bool,
    /// SYNs beyond MaxSynBackLog are dropped silently (TcpInput.c
    /// `TcpCloneTcb` fails when `ConnCnt + BacklogCnt >= BackLog`); off:
    /// answered with RST.
    pub backlog_full_drops_syn: bool,
    /// Configure with UseDefaultAddress=TRUE returns ALREADY_STARTED (old
    /// Tcp4Dxe's `Tcp4ConfigurePcb` on some firmware; BITS passes the
    /// DHCP address explicitly).
    pub use_default_address_already_started: bool,
    /// A passive instance on station address 0.0.0.0 is rejected with
    /// INVALID_PARAMETER (old firmware; BITS special-cases 0.0.0.0).
    pub listen_any_unsupported: bool,
    /// Completions caused by a call run their notify functions as that call
    /// returns (EfiReleaseLock → RestoreTPL in SockInterface.c); off: they
    /// are deferred to the next MNP tick / Poll.
    pub completions_inside_call: bool,
    /// Data arriving after the local Close (FIN_WAIT_*, CLOSING, TIME_WAIT,
    /// LAST_ACK) resets the connection (TcpInput.c, seventh step:
    /// `TCP_LOCAL_CLOSED (Tcb->State) && Nbuf->TotalSize != 0` →
    /// `RESET_THEN_DROP`); off: the data is silently discarded.
    pub data_after_close_sends_rst: bool,
    /// The socket error stored by a reset/timeout survives a new Connect on
    /// the same child and is delivered to its first Receive (SockInterface.c
    /// `SockRcv` checks `Sock->SockError` first; only Receive and
    /// Configure(NULL) clear it; code-read). Off: Connect clears it.
    pub stored_error_leaks_into_next_connection: bool,
}

const QUIRK_NAMES: &[&str] = &[
    "cancel_unsupported",
    "receive_fin_as_return_value",
    "close_with_unread_data_sends_rst",
    "connect_closed_port_reports_reset",
    "time_wait_holds_port",
    "backlog_full_drops_syn",
    "use_default_address_already_started",
    "listen_any_unsupported",
    "completions_inside_call",
    "data_after_close_sends_rst",
    "stored_error_leaks_into_next_connection",
];

/// A quirk name that is not one of [`Quirks::names`]; its message lists
/// the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownQuirk(pub String);

impl fmt::Display for UnknownQuirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown quirk {:?}; known: {}",
            self.0,
            QUIRK_NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownQuirk {}

impl Quirks {
    /// Names of every quirk switch.
    pub fn names() -> &'static [&'static str] {
        QUIRK_NAMES
    }

    fn slot(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "cancel_unsupported" => &mut self.cancel_unsupported,
            "receive_fin_as_return_value" => &mut self.receive_fin_as_return_value,
            "close_with_unread_data_sends_rst" => &mut self.close_with_unread_data_sends_rst,
            "connect_closed_port_reports_reset" => &mut self.connect_closed_port_reports_reset,
            "time_wait_holds_port" => &mut self.time_wait_holds_port,
            "backlog_full_drops_syn" => &mut self.backlog_full_drops_syn,
            "use_default_address_already_started" => &mut self.use_default_address_already_started,
            "listen_any_unsupported" => &mut self.listen_any_unsupported,
            "completions_inside_call" => &mut self.completions_inside_call,
            "data_after_close_sends_rst" => &mut self.data_after_close_sends_rst,
            "stored_error_leaks_into_next_connection" => {
                &mut self.stored_error_leaks_into_next_connection
            }
            _ => return None,
        })
    }

    /// Turn one quirk on or off by name.
    pub fn set(&mut self, name: &str, on: bool) -> Result<(), UnknownQuirk> {
        match self.slot(name) {
            Some(b) => {
                *b = on;
                Ok(())
            }
            None => Err(UnknownQuirk(name.to_string())),
        }
    }

    /// Read one quirk by name.
    pub fn get(&self, name: &str) -> Option<bool> {
        let mut copy = *self;
        copy.slot(name).map(|b| *b)
    }
}

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
            per_call_ns: 3_000,
            poll_ns: 0,
            per_frame_ns: 60_000,
            per_byte_copy_ps: 2_000,
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

/// Fault knobs beyond the per-link ones: what the run's decisions may
/// inject. Probabilities are per packet / per call / per completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability a packet is lost (swarm keeps it <= 0.30 so TCP stays live).
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability a packet is delayed past later ones.
    pub reorder: f64,
    /// Probability a packet suffers a latency spike (10..=500 ms, the size
    /// being a `LinkDelay` decision).
    pub spike: f64,
    /// Timer events and MNP ticks fire up to 2 ms late (`TimerJitter`).
    pub jitter: bool,
    /// Probability a call (or a pending token, at a call) gets an unusual
    /// but legal status (`StatusInjection`; see `Sim::injected`).
    pub inject: f64,
    /// Added to the DHCP server's delay.
    pub dhcp_delay_ns: u64,
    /// The DHCP server never answers.
    pub dhcp_fail: bool,
    /// Bias towards late delivery: completions produced inside a call are
    /// notified at the next tick/Poll with this probability (under any
    /// scheduler), and non-FIFO schedulers defer notifies more often.
    pub late_bias: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::none()
    }
}

/// Stream of the swarm generator (distinct from every run stream).
const SWARM_STREAM: u64 = 0x5_3A7A;

impl Faults {
    /// No faults: every knob off.
    pub fn none() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            spike: 0.0,
            jitter: false,
            inject: 0.0,
            dhcp_delay_ns: 0,
            dhcp_fail: false,
            late_bias: 0.0,
        }
    }

    /// True when every knob is off.
    pub fn is_none(&self) -> bool {
        *self == Faults::none()
    }

    /// Swarm testing (Groce et al., ISSTA 2012): each knob independently on
    /// or off from `seed` (even odds, except `dhcp_fail` at 1 in 4, because
    /// a failing DHCP server masks every other fault until `Sim::heal`),
    /// with magnitudes from `seed`, quantised to 0.001 (so the `Display`
    /// form is short) and loss <= 0.30.
    pub fn swarm(seed: u64) -> Self {
        let mut r = Rng::new(seed, SWARM_STREAM);
        // A probability in [lo, hi], a multiple of 0.001.
        let prob = |r: &mut Rng, lo: u64, hi: u64| -> f64 {
            if r.chance(0.5) {
                (lo + r.below(hi - lo + 1)) as f64 / 1000.0
            } else {
                0.0
            }
        };
        let loss = prob(&mut r, 10, 300);
        let duplicate = prob(&mut r, 5, 50);
        let reorder = prob(&mut r, 10, 200);
        let spike = prob(&mut r, 5, 50);
        let jitter = r.chance(0.5);
        let inject = prob(&mut r, 1, 20);
        let dhcp_delay_ns = if r.chance(0.5) {
            (1 + r.below(10_000)) * 1_000_000
        } else {
            0
        };
        let dhcp_fail = r.chance(0.25);
        let late_bias = prob(&mut r, 100, 900);
        Faults {
            loss,
            duplicate,
            reorder,
            spike,
            jitter,
            inject,
            dhcp_delay_ns,
            dhcp_fail,
            late_bias,
        }
    }
}

/// `none`, or the knobs that are on, comma-separated, in this order:
/// `loss=P,dup=P,reorder=P,spike=P,jitter,inject=P,dhcp_delay=NS,dhcp_fail,late=P`
/// (`P` a decimal probability as Rust prints an f64, `NS` nanoseconds).
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let p = |parts: &mut Vec<String>, k: &str, v: f64| {
            if v != 0.0 {
                parts.push(format!("{k}={v}"));
            }
        };
        p(&mut parts, "loss", self.loss);
        p(&mut parts, "dup", self.duplicate);
        p(&mut parts, "reorder", self.reorder);
        p(&mut parts, "spike", self.spike);
        if self.jitter {
            parts.push("jitter".into());
        }
        p(&mut parts, "inject", self.inject);
        if self.dhcp_delay_ns != 0 {
            parts.push(format!("dhcp_delay={}", self.dhcp_delay_ns));
        }
        if self.dhcp_fail {
            parts.push("dhcp_fail".into());
        }
        if self.late_bias != 0.0 {
            parts.push(format!("late={}", self.late_bias));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// Why a string is not a [`Faults`] (knob names as written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseFaultsError {
    /// The empty string (`none` means no faults).
    Empty,
    /// A knob appears twice in `text`.
    Repeated {
        /// The knob.
        knob: String,
        /// The whole string.
        text: String,
    },
    /// A knob that needs a value has none.
    MissingValue {
        /// The knob.
        knob: String,
        /// What its value stands for (`P`, `NS`).
        placeholder: &'static str,
    },
    /// A probability knob's value is not a number.
    NotANumber {
        /// The knob.
        knob: String,
        /// The value given.
        value: String,
    },
    /// A probability knob's value is outside [0, 1].
    NotAProbability {
        /// The knob.
        knob: String,
        /// The value given.
        value: String,
    },
    /// A switch knob was given a value.
    TakesNoValue {
        /// The knob.
        knob: String,
        /// The value given.
        value: String,
    },
    /// `dhcp_delay` is not a whole number of nanoseconds.
    NotNanoseconds {
        /// The value given.
        value: String,
    },
    /// An empty item (two commas, or a trailing one) in `text`.
    EmptyKnob {
        /// The whole string.
        text: String,
    },
    /// A knob with no such name.
    UnknownKnob {
        /// The knob.
        knob: String,
    },
}

impl fmt::Display for ParseFaultsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseFaultsError::Empty => {
                f.write_str("faults: empty string (write \"none\" for no faults)")
            }
            ParseFaultsError::Repeated { knob, text } => {
                write!(f, "faults: knob {knob:?} given twice in {text:?}")
            }
            ParseFaultsError::MissingValue { knob, placeholder } => write!(
                f,
                "faults: knob {knob:?} needs a value ({knob}={placeholder})"
            ),
            ParseFaultsError::NotANumber { knob, value } => {
                write!(f, "faults: {knob}={value:?} is not a number")
            }
            ParseFaultsError::NotAProbability { knob, value } => {
                write!(f, "faults: {knob}={value} is not a probability in [0, 1]")
            }
            ParseFaultsError::TakesNoValue { knob, value } => {
                write!(
                    f,
                    "faults: knob {knob:?} takes no value (got {knob}={value})"
                )
            }
            ParseFaultsError::NotNanoseconds { value } => write!(
                f,
                "faults: dhcp_delay={value:?} is not a whole number of nanoseconds"
            ),
            ParseFaultsError::EmptyKnob { text } => write!(f, "faults: empty knob in {text:?}"),
            ParseFaultsError::UnknownKnob { knob } => write!(
                f,
                "faults: unknown knob {knob:?} (known: loss, dup, reorder, spike, jitter, inject, dhcp_delay, dhcp_fail, late)"
            ),
        }
    }
}

impl std::error::Error for ParseFaultsError {}

impl FromStr for Faults {
    type Err = ParseFaultsError;
    /// Parses what `Display` writes (knobs in any order, each at most once).
    fn from_str(s: &str) -> Result<Self, ParseFaultsError> {
        let mut out = Faults::none();
        if s == "none" {
            return Ok(out);
        }
        if s.is_empty() {
            return Err(ParseFaultsError::Empty);
        }
        let mut seen: Vec<&str> = Vec::new();
        for item in s.split(',') {
            let (key, val) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            if seen.contains(&key) {
                return Err(ParseFaultsError::Repeated {
                    knob: key.to_string(),
                    text: s.to_string(),
                });
            }
            seen.push(key);
            let prob = |v: Option<&str>| -> Result<f64, ParseFaultsError> {
                let v = knob_value(key, v, "P")?;
                let x: f64 = v.parse().map_err(|_| ParseFaultsError::NotANumber {
                    knob: key.to_string(),
                    value: v.to_string(),
                })?;
                if !(0.0..=1.0).contains(&x) {
                    return Err(ParseFaultsError::NotAProbability {
                        knob: key.to_string(),
                        value: v.to_string(),
                    });
                }
                Ok(x)
            };
            let flag = |v: Option<&str>| -> Result<bool, ParseFaultsError> {
                match v {
                    None => Ok(true),
                    Some(v) => Err(ParseFaultsError::TakesNoValue {
                        knob: key.to_string(),
                        value: v.to_string(),
                    }),
                }
            };
            match key {
                "loss" => out.loss = prob(val)?,
                "dup" => out.duplicate = prob(val)?,
                "reorder" => out.reorder = prob(val)?,
                "spike" => out.spike = prob(val)?,
                "jitter" => out.jitter = flag(val)?,
                "inject" => out.inject = prob(val)?,
                "dhcp_delay" => {
                    let v = knob_value(key, val, "NS")?;
                    out.dhcp_delay_ns =
                        v.parse().map_err(|_| ParseFaultsError::NotNanoseconds {
                            value: v.to_string(),
                        })?;
                }
                "dhcp_fail" => out.dhcp_fail = flag(val)?,
                "late" => out.late_bias = prob(val)?,
                "" => {
                    return Err(ParseFaultsError::EmptyKnob {
                        text: s.to_string(),
                    });
                }
                other => {
                    return Err(ParseFaultsError::UnknownKnob {
                        knob: other.to_string(),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// A knob's value, or the error naming what it should have been.
fn knob_value<'a>(
    knob: &str,
    value: Option<&'a str>,
    placeholder: &'static str,
) -> Result<&'a str, ParseFaultsError> {
    value.ok_or_else(|| ParseFaultsError::MissingValue {
        knob: knob.to_string(),
        placeholder,
    })
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
