//! Totals per workload × strategy, gathered while criterion runs, and the
//! summary tables printed at the end of the bench.
//!
//! Why: criterion reports one measurement per bench id (here virtual time);
//! the summary also wants the simulator's own speed (host wall time per
//! simulated second) and the ratio of each strategy to timer-only. Both
//! come from the same iterations, so they are accumulated here instead of
//! running every workload a second time under `WallTime`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Accumulated figures for one workload × strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeedRow {
    /// Iterations measured (warm-up included).
    pub iters: u64,
    /// Virtual firmware time of those iterations, ns.
    pub virtual_ns: u64,
    /// Host wall time of those iterations (simulation work), ns.
    pub wall_ns: u64,
    /// Virtual time of the first iteration on a fresh world, ns: the
    /// figure that depends on the seed only.
    pub first_virtual_ns: Option<u64>,
}

impl SpeedRow {
    /// Mean virtual time per iteration, ns (0 with no iterations).
    pub fn virtual_per_iter_ns(&self) -> f64 {
        if self.iters == 0 {
            0.0
        } else {
            self.virtual_ns as f64 / self.iters as f64
        }
    }

    /// Host wall seconds per simulated second (None before any virtual time).
    pub fn wall_per_virtual(&self) -> Option<f64> {
        (self.virtual_ns > 0).then(|| self.wall_ns as f64 / self.virtual_ns as f64)
    }
}

/// All rows, in workload then strategy order of first appearance.
#[derive(Debug, Default, Clone)]
pub struct SpeedTable {
    rows: BTreeMap<(usize, usize), SpeedRow>,
    workloads: Vec<String>,
    strategies: Vec<String>,
}

fn index_of(list: &mut Vec<String>, name: &str) -> usize {
    match list.iter().position(|n| n == name) {
        Some(i) => i,
        None => {
            list.push(name.to_string());
            list.len() - 1
        }
    }
}

impl SpeedTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one batch: `iters` iterations that took `virtual_ns` of virtual
    /// time and `wall` of host time; `first_virtual_ns` is the first
    /// iteration's virtual time on the fresh world.
    pub fn record(
        &mut self,
        workload: &str,
        strategy: &str,
        iters: u64,
        virtual_ns: u64,
        wall: Duration,
        first_virtual_ns: u64,
    ) {
        let w = index_of(&mut self.workloads, workload);
        let s = index_of(&mut self.strategies, strategy);
        let row = self.rows.entry((w, s)).or_default();
        row.iters += iters;
        row.virtual_ns = row.virtual_ns.saturating_add(virtual_ns);
        row.wall_ns = row
            .wall_ns
            .saturating_add(u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX));
        row.first_virtual_ns.get_or_insert(first_virtual_ns);
    }

    /// The row for `workload` × `strategy`, if any batch was recorded.
    pub fn row(&self, workload: &str, strategy: &str) -> Option<SpeedRow> {
        let w = self.workloads.iter().position(|n| n == workload)?;
        let s = self.strategies.iter().position(|n| n == strategy)?;
        self.rows.get(&(w, s)).copied()
    }

    /// The summary: per workload, each strategy's virtual time per
    /// iteration, its speed-up over timer-only, and host wall time per
    /// simulated second; then best/timer-only per workload.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<17} {:<19} {:>6} {:>14} {:>14} {:>10} {:>12}",
            "workload",
            "strategy",
            "iters",
            "virt/iter ms",
            "first iter ms",
            "x timer",
            "wall s/sim s"
        );
        for (wi, workload) in self.workloads.iter().enumerate() {
            let timer = self
                .row(workload, "timer-only")
                .map(|r| r.virtual_per_iter_ns())
                .filter(|v| *v > 0.0);
            let mut best: Option<(&str, f64)> = None;
            for (si, strategy) in self.strategies.iter().enumerate() {
                let Some(row) = self.rows.get(&(wi, si)) else {
                    continue;
                };
                let per = row.virtual_per_iter_ns();
                if best.is_none_or(|(_, b)| per < b) {
                    best = Some((strategy, per));
                }
                let ratio = timer
                    .map(|t| format!("{:.2}", t / per))
                    .unwrap_or_else(|| "-".into());
                let speed = row
                    .wall_per_virtual()
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into());
                let _ = writeln!(
                    out,
                    "{:<17} {:<19} {:>6} {:>14.3} {:>14.3} {:>10} {:>12}",
                    workload,
                    strategy,
                    row.iters,
                    per / 1e6,
                    row.first_virtual_ns.unwrap_or(0) as f64 / 1e6,
                    ratio,
                    speed
                );
            }
            if let (Some((name, b)), Some(t)) = (best, timer) {
                let _ = writeln!(
                    out,
                    "{:<17} best: {name}, best/timer-only speed-up {:.2}x",
                    workload,
                    t / b
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_and_renders_ratios() {
        let mut t = SpeedTable::new();
        t.record(
            "w",
            "timer-only",
            2,
            4_000_000,
            Duration::from_millis(2),
            2_000_000,
        );
        t.record(
            "w",
            "busy-poll",
            1,
            500_000,
            Duration::from_millis(1),
            500_000,
        );
        t.record(
            "w",
            "busy-poll",
            1,
            500_000,
            Duration::from_millis(1),
            700_000,
        );
        let r = t.row("w", "busy-poll").unwrap();
        assert_eq!(r.iters, 2);
        assert_eq!(r.virtual_ns, 1_000_000);
        assert_eq!(r.first_virtual_ns, Some(500_000));
        assert_eq!(r.wall_per_virtual(), Some(2.0));
        let text = t.render();
        assert!(
            text.contains("best: busy-poll, best/timer-only speed-up 4.00x"),
            "{text}"
        );
        assert!(t.row("w", "event-wait").is_none());
    }
}
