//! Fault knobs beyond the links': what a run's decisions may inject, the
//! swarm generator, and their text form.

use core::fmt;
use core::str::FromStr;

use crate::rng::Rng;

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
    /// status EDK2 can return there (`StatusInjection`; see `Sim::injected`).
    pub inject: f64,
    /// **Not EDK2.** Probability a Tcp4.Poll returns NOT_READY, TIMEOUT or
    /// DEVICE_ERROR instead of processing a frame. The UEFI specification
    /// allows these, but EDK2's Tcp4.Poll always returns SUCCESS: the
    /// dispatcher discards the IP4 Poll's result (TcpDispatcher.c
    /// `SOCK_POLL`, l.777-784). A robustness fault for other firmware; the
    /// swarm generator never turns it on.
    pub non_edk2_poll: f64,
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
            non_edk2_poll: 0.0,
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
            non_edk2_poll: 0.0,
            dhcp_delay_ns,
            dhcp_fail,
            late_bias,
        }
    }
}

/// `none`, or the knobs that are on, comma-separated, in this order:
/// `loss=P,dup=P,reorder=P,spike=P,jitter,inject=P,dhcp_delay=NS,dhcp_fail,late=P,non_edk2_poll=P`
/// (`P` a decimal probability as Rust prints an f64, `NS` nanoseconds;
/// `non_edk2_poll` is a status EDK2 never returns, see [`Faults::non_edk2_poll`]).
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
        p(&mut parts, "non_edk2_poll", self.non_edk2_poll);
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
                "faults: unknown knob {knob:?} (known: loss, dup, reorder, spike, jitter, inject, dhcp_delay, dhcp_fail, late, non_edk2_poll (Poll statuses EDK2 never returns))"
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
                "non_edk2_poll" => out.non_edk2_poll = prob(val)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_knob_and_value() {
        assert_eq!(
            "loss=2".parse::<Faults>(),
            Err(ParseFaultsError::NotAProbability {
                knob: "loss".into(),
                value: "2".into()
            })
        );
        assert_eq!(
            "jitter=1".parse::<Faults>(),
            Err(ParseFaultsError::TakesNoValue {
                knob: "jitter".into(),
                value: "1".into()
            })
        );
        let e = "dhcp_delay".parse::<Faults>().unwrap_err();
        assert_eq!(
            e,
            ParseFaultsError::MissingValue {
                knob: "dhcp_delay".into(),
                placeholder: "NS"
            }
        );
        assert_eq!(
            e.to_string(),
            "faults: knob \"dhcp_delay\" needs a value (dhcp_delay=NS)"
        );
        assert_eq!("".parse::<Faults>(), Err(ParseFaultsError::Empty));
    }

    #[test]
    fn non_edk2_poll_round_trips_and_is_never_swarmed() {
        let f: Faults = "inject=0.01,non_edk2_poll=0.5".parse().expect("parses");
        assert_eq!((f.inject, f.non_edk2_poll), (0.01, 0.5));
        assert_eq!(f.to_string(), "inject=0.01,non_edk2_poll=0.5");
        assert!((0..200).all(|seed| Faults::swarm(seed).non_edk2_poll == 0.0));
    }
}
