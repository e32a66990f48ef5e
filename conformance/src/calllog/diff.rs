//! Aligning two normalised recordings and naming the first divergence.

use std::fmt;

use super::file::Recording;
use super::normalise::{NormStep, normalise};

/// The call-level verdict of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseDiff {
    /// Same normalised steps on both.
    Identical {
        /// How many normalised steps.
        steps: usize,
    },
    /// They differ from `step` (1-based) on.
    Diverges {
        /// 1-based index of the first differing normalised step.
        step: usize,
        /// The divergence in words.
        what: String,
    },
    /// One side has no recording, or a truncated one.
    Incomplete {
        /// Why it cannot be compared.
        why: String,
    },
}

impl CaseDiff {
    /// Whether the case is call-level identical.
    pub fn identical(&self) -> bool {
        matches!(self, CaseDiff::Identical { .. })
    }
}

impl fmt::Display for CaseDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseDiff::Identical { steps: 0 } => {
                f.write_str("identical (no firmware call recorded on either)")
            }
            CaseDiff::Identical { steps } => write!(f, "identical ({steps} steps)"),
            CaseDiff::Diverges { step, what } => write!(f, "step {step}: {what}"),
            CaseDiff::Incomplete { why } => write!(f, "not compared: {why}"),
        }
    }
}

/// How the two sides are named in the words of a divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    /// The first side (the simulator).
    pub a: &'static str,
    /// The second side (OVMF, or a recording from elsewhere).
    pub b: &'static str,
}

/// `--compare`'s names.
pub const SIM_VS_OVMF: Labels = Labels {
    a: "simulator",
    b: "OVMF",
};

/// `--replay-log`'s names.
pub const SIM_VS_RECORDING: Labels = Labels {
    a: "simulator",
    b: "recording",
};

fn side(s: Option<&NormStep>) -> String {
    match s {
        None => "ends".to_string(),
        Some(s) if s.detail.is_empty() => format!("`{}`", s.key),
        Some(s) => format!("`{}` ({})", s.key, s.detail),
    }
}

/// The later completion on `rest` of the token `step` completes, if any:
/// the same key but for its timing.
fn later_completion<'a>(step: &NormStep, rest: &'a [NormStep]) -> Option<(usize, &'a NormStep)> {
    step.timing.as_ref()?;
    let want = strip_timing(&step.key);
    rest.iter()
        .enumerate()
        .find(|(_, s)| s.timing.is_some() && strip_timing(&s.key) == want)
}

/// The words for the first differing pair, at `i` in `a` and `b`.
fn describe(a: &[NormStep], b: &[NormStep], i: usize, l: Labels) -> String {
    let (x, y) = (a.get(i), b.get(i));
    if let (Some(x), Some(y)) = (x, y) {
        if let (Some(tx), Some(ty)) = (&x.timing, &y.timing) {
            if tx.call == ty.call && strip_timing(&x.key) == strip_timing(&y.key) {
                return format!(
                    "{} token: {} {}, {} {}",
                    tx.call,
                    l.a,
                    tx.describe(),
                    l.b,
                    ty.describe()
                );
            }
        }
        // A token one side completes here and the other only later: say
        // how the later one waited, and what that side did first.
        if let (Some(tx), Some((k, later))) = (&x.timing, later_completion(x, &b[i..])) {
            if let Some(tl) = &later.timing {
                return format!(
                    "{} token: {} {}, {} {} ({k} step(s) later on the {}, which first has {})",
                    tx.call,
                    l.a,
                    tx.describe(),
                    l.b,
                    tl.describe(),
                    l.b,
                    side(Some(y))
                );
            }
        }
        if let (Some(ty), Some((k, later))) = (&y.timing, later_completion(y, &a[i..])) {
            if let Some(tl) = &later.timing {
                return format!(
                    "{} token: {} {}, {} {} ({k} step(s) later on the {}, which first has {})",
                    ty.call,
                    l.a,
                    tl.describe(),
                    l.b,
                    ty.describe(),
                    l.a,
                    side(Some(x))
                );
            }
        }
    }
    format!("{} {}, {} {}", l.a, side(x), l.b, side(y))
}

fn strip_timing(key: &str) -> &str {
    key.trim_end_matches(", inside the call")
        .trim_end_matches(", after waiting")
}

/// Aligns two normalised recordings step by step.
pub fn diff_steps(sim: &[NormStep], ovmf: &[NormStep], l: Labels) -> CaseDiff {
    let n = sim.len().max(ovmf.len());
    for i in 0..n {
        if sim.get(i).map(|s| &s.key) != ovmf.get(i).map(|s| &s.key) {
            return CaseDiff::Diverges {
                step: i + 1,
                what: describe(sim, ovmf, i, l),
            };
        }
    }
    CaseDiff::Identical { steps: n }
}

/// Normalises and diffs the simulator's and OVMF's recordings of a case. A
/// truncated recording is compared over what both kept: a divergence there
/// is reported, otherwise the case is [`CaseDiff::Incomplete`].
pub fn compare(sim: &Recording, ovmf: &Recording, l: Labels) -> CaseDiff {
    let (a, b) = (normalise(&sim.steps), normalise(&ovmf.steps));
    let d = diff_steps(&a, &b, l);
    let truncated: Vec<String> = [(l.a, sim.dropped), (l.b, ovmf.dropped)]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(who, n)| format!("the {who} recording was truncated ({n} steps dropped)"))
        .collect();
    if truncated.is_empty() {
        return d;
    }
    match d {
        CaseDiff::Diverges { step, what } if step <= a.len().min(b.len()) => {
            CaseDiff::Diverges { step, what }
        }
        _ => CaseDiff::Incomplete {
            why: truncated.join("; "),
        },
    }
}
