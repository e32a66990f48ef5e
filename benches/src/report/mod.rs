//! The Poll-strategy report: simulator predictions and OVMF measurements side by
//! side, rendered as a Markdown table and an SVG plot (feature `report`).
//!
//! The data comes from [`crate::workloads::Workload::run_planned`] on both
//! targets with the same [`Plan`]s; the tool `efisock-bench-report`
//! (`cargo xtask bench-report`) gathers it. Everything printed here is a
//! measured figure or a ratio of two figures from the same run. The SVG
//! plot is drawn in `plot`.

mod plot;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::workloads::{Plan, SELECT_CONNECTIONS, Workload};

/// Relative difference under which two rates count as tied in the ranking
/// check: OVMF under TCG on a shared 2-core machine shows 20-70 % spread
/// between repeated runs of the same cell.
pub const RANK_TIE: f64 = 0.25;

/// One workload's adaptive-backoff / busy-poll rate ratio: (workload,
/// simulator, OVMF).
pub type PairRatio = (&'static str, f64, f64);

/// Which implementation produced a row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impl {
    /// efisock with the named Poll strategy.
    Efisock(String),
    /// The hand-written tight loop on Tcp4 (OVMF only).
    RawLoop,
    /// Rust std's UEFI `TcpStream` (OVMF only).
    Std,
}

impl Impl {
    /// Display name.
    pub fn label(&self) -> String {
        match self {
            Impl::Efisock(s) => s.clone(),
            Impl::RawLoop => "raw Tcp4 loop".into(),
            Impl::Std => "std TcpStream".into(),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    /// Units done and verified.
    pub done: u64,
    /// Units planned.
    pub count: u64,
    /// Firmware time, ns.
    pub elapsed_ns: u64,
    /// Tcp4.Poll calls, when counted.
    pub polls: Option<u64>,
    /// Firmware calls, when counted.
    pub fw_calls: Option<u64>,
    /// Host wall time of the run, ns (simulator only: its own speed).
    pub host_wall_ns: Option<u64>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

impl Measurement {
    /// Units per firmware second; None for failed or empty runs.
    pub fn rate(&self) -> Option<f64> {
        (self.error.is_none() && self.elapsed_ns > 0 && self.done > 0)
            .then(|| self.done as f64 * 1e9 / self.elapsed_ns as f64)
    }
}

/// The rate in the unit the report shows for `w` (MB/s for bulk, echoes/s
/// for the select loop, round trips/s, connections/s).
pub fn display_rate(w: &Workload, rate: f64) -> f64 {
    match w {
        Workload::BulkReceive(_) | Workload::BulkSend(_) => rate / 1e6,
        Workload::SelectLoop => rate * SELECT_CONNECTIONS as f64,
        _ => rate,
    }
}

/// The unit of [`display_rate`].
pub fn display_unit(w: &Workload) -> &'static str {
    match w {
        Workload::BulkReceive(_) | Workload::BulkSend(_) => "MB/s",
        Workload::RequestResponse => "round trips/s",
        Workload::SelectLoop => "echoes/s",
        Workload::ConnectRate => "connections/s",
    }
}

/// Every figure of one report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Plans per workload name.
    pub plans: BTreeMap<&'static str, Plan>,
    /// Simulator runs: (workload name, impl) -> measurement.
    pub sim: BTreeMap<(&'static str, Impl), Measurement>,
    /// OVMF runs, same keys.
    pub ovmf: BTreeMap<(&'static str, Impl), Measurement>,
    /// OVMF only: (max - min) / median of the rates over repeated runs.
    pub ovmf_spread: BTreeMap<(&'static str, Impl), f64>,
    /// Strategies in report order (the core's default first).
    pub strategies: Vec<String>,
    /// The core's default strategy.
    pub default_strategy: String,
    /// Why there is no OVMF column, if there is none.
    pub ovmf_missing: Option<String>,
}

fn fmt_rate(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 10.0 => format!("{v:.0}x"),
        Some(v) => format!("{v:.2}x"),
    }
}

impl Report {
    fn rate(&self, ovmf: bool, w: &Workload, i: &Impl) -> Option<f64> {
        let map = if ovmf { &self.ovmf } else { &self.sim };
        map.get(&(w.name(), i.clone()))
            .and_then(Measurement::rate)
            .map(|r| display_rate(w, r))
    }

    /// The strategies ranked fastest first on one target (missing rates last).
    pub fn ranking(&self, ovmf: bool, w: &Workload) -> Vec<String> {
        let mut v: Vec<(String, f64)> = self
            .strategies
            .iter()
            .map(|s| {
                let r = self.rate(ovmf, w, &Impl::Efisock(s.clone())).unwrap_or(0.0);
                (s.clone(), r)
            })
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.into_iter().map(|(s, _)| s).collect()
    }

    /// Whether the two rankings agree, treating strategies within `tie` of
    /// each other (relative) on OVMF as tied: OVMF's measurement noise
    /// cannot order them.
    pub fn ranking_matches(&self, w: &Workload, tie: f64) -> bool {
        let sim = self.ranking(false, w);
        let rate = |s: &String| self.rate(true, w, &Impl::Efisock(s.clone()));
        // Every pair the simulator orders must not be ordered the other way
        // by more than `tie` on OVMF.
        for (i, a) in sim.iter().enumerate() {
            for b in &sim[i + 1..] {
                let sa = self.rate(false, w, &Impl::Efisock(a.clone()));
                let sb = self.rate(false, w, &Impl::Efisock(b.clone()));
                if ratio(sa, sb).is_some_and(|r| r <= 1.0 + tie) {
                    continue; // tied on the simulator
                }
                if let (Some(oa), Some(ob)) = (rate(a), rate(b))
                    && ob > oa * (1.0 + tie)
                {
                    return false;
                }
            }
        }
        true
    }

    /// How far the simulator is from OVMF: the mean of |ln(sim / OVMF)|
    /// over every efisock cell measured on both (0 = identical rates), and
    /// per workload adaptive-backoff / busy-poll on each target (the pair
    /// the cost model decides).
    pub fn calibration(&self) -> Option<(f64, Vec<PairRatio>)> {
        let mut sum = 0.0;
        let mut n = 0;
        let mut pairs = Vec::new();
        for w in Workload::all() {
            for s in &self.strategies {
                let i = Impl::Efisock(s.clone());
                if let (Some(a), Some(b)) = (self.rate(false, &w, &i), self.rate(true, &w, &i)) {
                    sum += (a / b).ln().abs();
                    n += 1;
                }
            }
            let ab = Impl::Efisock("adaptive-backoff".into());
            let bp = Impl::Efisock("busy-poll".into());
            if let (Some(s), Some(o)) = (
                ratio(self.rate(false, &w, &ab), self.rate(false, &w, &bp)),
                ratio(self.rate(true, &w, &ab), self.rate(true, &w, &bp)),
            ) {
                pairs.push((w.name(), s, o));
            }
        }
        (n > 0).then(|| (sum / n as f64, pairs))
    }

    /// The Markdown report (also printed to stdout by the tool).
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let has_ovmf = self.ovmf_missing.is_none();
        for w in Workload::all() {
            let Some(plan) = self.plans.get(w.name()) else {
                continue;
            };
            let _ = writeln!(
                o,
                "\n### {} ({} {}, budget {} ms of firmware time; rates in {})\n",
                w.name(),
                plan.count,
                w.unit(),
                plan.budget.map(|b| b.as_millis()).unwrap_or(0),
                display_unit(&w)
            );
            let _ = writeln!(
                o,
                "| implementation | sim | OVMF | OVMF spread | OVMF / sim | OVMF done | OVMF Polls per {} | sim rank | OVMF rank |",
                if matches!(w, Workload::BulkReceive(_) | Workload::BulkSend(_)) {
                    "KiB"
                } else {
                    "unit"
                }
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            let sim_rank = self.ranking(false, &w);
            let ovmf_rank = self.ranking(true, &w);
            let mut impls: Vec<Impl> = self
                .strategies
                .iter()
                .map(|s| Impl::Efisock(s.clone()))
                .collect();
            impls.push(Impl::RawLoop);
            impls.push(Impl::Std);
            for i in &impls {
                let s = self.rate(false, &w, i);
                let ov = self.ovmf.get(&(w.name(), i.clone()));
                if s.is_none() && ov.is_none() {
                    continue;
                }
                let r = self.rate(true, &w, i);
                let done = match ov {
                    Some(m) if m.error.is_some() => {
                        format!("error: {}", m.error.as_deref().unwrap_or(""))
                    }
                    Some(m) if m.done < m.count => format!("{} of {} (budget)", m.done, m.count),
                    Some(m) => format!("{}", m.done),
                    None => "-".into(),
                };
                let polls = ov
                    .and_then(|m| {
                        let p = m.polls? as f64;
                        (m.done > 0).then(|| match w {
                            Workload::BulkReceive(_) | Workload::BulkSend(_) => {
                                p * 1024.0 / m.done as f64
                            }
                            _ => p / m.done as f64,
                        })
                    })
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_else(|| "-".into());
                let rank = |list: &[String]| match i {
                    Impl::Efisock(n) => list
                        .iter()
                        .position(|x| x == n)
                        .map(|p| (p + 1).to_string())
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let name = match i {
                    Impl::Efisock(n) if *n == self.default_strategy => {
                        format!("efisock {n} (default)")
                    }
                    Impl::Efisock(n) => format!("efisock {n}"),
                    other => other.label(),
                };
                let _ = writeln!(
                    o,
                    "| {name} | {} | {} | {} | {} | {done} | {polls} | {} | {} |",
                    fmt_rate(s),
                    fmt_rate(r),
                    self.ovmf_spread
                        .get(&(w.name(), i.clone()))
                        .map(|v| format!("{:.0} %", v * 100.0))
                        .unwrap_or_else(|| "-".into()),
                    fmt_ratio(ratio(r, s)),
                    rank(&sim_rank),
                    if has_ovmf {
                        rank(&ovmf_rank)
                    } else {
                        String::new()
                    },
                );
            }
        }
        if let Some((err, pairs)) = self.calibration() {
            let _ = writeln!(
                o,
                "\n### Simulator vs OVMF\n\nMean |ln(sim / OVMF)| over the efisock cells: {err:.2} \
                 (e^{err:.2} = {:.1}x typical factor). adaptive-backoff / busy-poll, sim vs OVMF: {}.",
                err.exp(),
                pairs
                    .iter()
                    .map(|(w, s, o)| format!("{w} {s:.2} vs {o:.2}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let _ = writeln!(o, "\n### Ratios (same run)\n");
        let _ = writeln!(
            o,
            "| workload | best sim | best OVMF | best/timer-only sim | best/timer-only OVMF | default/raw loop OVMF | default/std OVMF | default/timer-only OVMF | ranking sim = OVMF |"
        );
        let _ = writeln!(o, "|---|---|---|---:|---:|---:|---:|---:|---|");
        let def = Impl::Efisock(self.default_strategy.clone());
        let timer = Impl::Efisock("timer-only".into());
        for w in Workload::all() {
            if !self.plans.contains_key(w.name()) {
                continue;
            }
            let best = |ovmf: bool| -> (String, Option<f64>) {
                let r = self.ranking(ovmf, &w);
                let first = r.first().cloned().unwrap_or_default();
                let rate = self.rate(ovmf, &w, &Impl::Efisock(first.clone()));
                (first, rate)
            };
            let (bs, bsr) = best(false);
            let (bo, bor) = if has_ovmf {
                best(true)
            } else {
                ("-".into(), None)
            };
            let _ = writeln!(
                o,
                "| {} | {bs} | {bo} | {} | {} | {} | {} | {} | {} |",
                w.name(),
                fmt_ratio(ratio(bsr, self.rate(false, &w, &timer))),
                fmt_ratio(ratio(bor, self.rate(true, &w, &timer))),
                fmt_ratio(ratio(
                    self.rate(true, &w, &def),
                    self.rate(true, &w, &Impl::RawLoop)
                )),
                fmt_ratio(ratio(
                    self.rate(true, &w, &def),
                    self.rate(true, &w, &Impl::Std)
                )),
                fmt_ratio(ratio(
                    self.rate(true, &w, &def),
                    self.rate(true, &w, &timer)
                )),
                if !has_ovmf {
                    "-"
                } else if self.ranking_matches(&w, RANK_TIE) {
                    "yes"
                } else {
                    "no"
                },
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn m(done: u64, ns: u64) -> Measurement {
        Measurement {
            done,
            count: done,
            elapsed_ns: ns,
            ..Measurement::default()
        }
    }

    #[test]
    fn ranks_ratios_and_renders() {
        let w = Workload::RequestResponse;
        let mut r = Report {
            strategies: vec!["busy-poll".into(), "timer-only".into()],
            default_strategy: "busy-poll".into(),
            ..Report::default()
        };
        r.plans.insert(
            w.name(),
            Plan {
                count: 100,
                budget: Some(Duration::from_secs(1)),
                send_unit: 0,
            },
        );
        let k = |s: &str| (w.name(), Impl::Efisock(s.into()));
        r.sim.insert(k("busy-poll"), m(100, 1_000_000));
        r.sim.insert(k("timer-only"), m(100, 100_000_000));
        r.ovmf.insert(k("busy-poll"), m(100, 2_000_000));
        r.ovmf.insert(k("timer-only"), m(10, 100_000_000));
        r.ovmf.insert((w.name(), Impl::RawLoop), m(100, 1_000_000));
        assert_eq!(r.ranking(true, &w), ["busy-poll", "timer-only"]);
        assert!(r.ranking_matches(&w, 0.1));
        let md = r.markdown();
        assert!(
            md.contains("| efisock busy-poll (default) | 100000 | 50000 | - | 0.50x |"),
            "{md}"
        );
        // best/timer-only: sim 100x, OVMF 500x; default/raw 0.50x.
        assert!(
            md.contains("| request_response | busy-poll | busy-poll | 100x | 500x | 0.50x |"),
            "{md}"
        );
        r.ovmf.insert(k("timer-only"), m(100, 1_000_000));
        r.ovmf.insert(k("busy-poll"), m(100, 10_000_000));
        assert!(!r.ranking_matches(&w, 0.1));
        assert!(r.svg().unwrap().contains("<svg"));
    }
}
