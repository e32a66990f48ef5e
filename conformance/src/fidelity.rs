//! The fidelity report: the same case list on the simulator and in OVMF,
//! side by side (`--compare` writes it to `docs/fidelity.md`).
//!
//! Why: the simulator is only worth trusting where it agrees with the real
//! firmware. Every row shows both verdicts and the per-target expectation
//! from [`crate::expectations`]; a row whose outcomes differ without a table
//! entry is marked as an unexplained divergence. The call-level column gives
//! [`crate::calllog`]'s diff of the two recordings: "identical" or the first
//! divergence, with the written reason from
//! [`crate::expectations::CALL_LEVEL`]; a non-identical case without one is
//! an unexplained call-level divergence.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::calllog::CaseDiff;
use crate::calllog::normalise::RULES;
use crate::expectations::{call_level_reason, entry};
use crate::runner::{CaseReport, Reporter, RunHeader, RunSummary};

/// A reporter that forwards to another and keeps every report.
pub struct Collect<'a> {
    inner: &'a mut dyn Reporter,
    /// The reports seen so far.
    pub reports: Vec<CaseReport>,
}

impl<'a> Collect<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn Reporter) -> Self {
        Self {
            inner,
            reports: Vec::new(),
        }
    }
}

impl Reporter for Collect<'_> {
    fn start(&mut self, header: &RunHeader) {
        self.inner.start(header);
    }
    fn case_done(&mut self, report: &CaseReport, replay: &str, trace: Option<&str>) {
        self.reports.push(report.clone());
        self.inner.case_done(report, replay, trace);
    }
    fn finish(&mut self, summary: &RunSummary) {
        self.inner.finish(summary);
    }
}

fn verdict(r: Option<&CaseReport>) -> &'static str {
    match r {
        None => "not run",
        Some(r) if r.passed => "pass",
        Some(_) => "FAIL",
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Rows whose outcomes differ between the targets without an entry in the
/// expectations table (or against it).
pub fn unexplained(sim: &[CaseReport], ovmf: &[CaseReport]) -> Vec<String> {
    let o: BTreeMap<String, &CaseReport> = ovmf.iter().map(|r| (r.id(), r)).collect();
    let mut bad = Vec::new();
    for s in sim {
        let id = s.id();
        let Some(q) = o.get(&id) else {
            bad.push(format!("{id}: not run in OVMF"));
            continue;
        };
        let got = (s.passed, q.passed);
        match entry(&id) {
            Some(e) if !(e.sim.accepts(s.passed) && e.ovmf.accepts(q.passed)) => bad.push(format!(
                "{id}: sim {}, ovmf {} differs from the table (sim {:?}, ovmf {:?})",
                verdict(Some(s)),
                verdict(Some(q)),
                e.sim,
                e.ovmf
            )),
            None if got != (true, true) => bad.push(format!(
                "{id}: sim {}, ovmf {}",
                verdict(Some(s)),
                verdict(Some(q))
            )),
            _ => {}
        }
    }
    bad
}

/// Call-level diffs by (case id, seed).
pub type CallDiffs = BTreeMap<(String, u64), CaseDiff>;

/// `call-level: K of N cases identical` over `diffs`.
pub fn call_level_line(diffs: &CallDiffs) -> String {
    let k = diffs.values().filter(|d| d.identical()).count();
    format!("call-level: {k} of {} cases identical", diffs.len())
}

/// How many of the identical cases recorded no firmware call at all (their
/// identity says nothing about the firmware).
pub fn empty_count(diffs: &CallDiffs) -> usize {
    diffs
        .values()
        .filter(|d| **d == CaseDiff::Identical { steps: 0 })
        .count()
}

/// Non-identical cases without a reason in `expectations::CALL_LEVEL`.
pub fn unexplained_calls(diffs: &CallDiffs) -> Vec<String> {
    diffs
        .iter()
        .filter(|(_, d)| !d.identical())
        .filter(|((id, _), _)| call_level_reason(id).is_none())
        .map(|((id, seed), d)| format!("{id} (seed {seed:#x}): {d}"))
        .collect()
}

fn call_cell(diffs: &CallDiffs, id: &str, seed: u64) -> String {
    match diffs.get(&(id.to_string(), seed)) {
        None => "not recorded".to_string(),
        Some(d) if d.identical() => "identical".to_string(),
        Some(d) => match call_level_reason(id) {
            Some(r) => format!(
                "{} — reason: {} To close it: {}",
                cell(&d.to_string()),
                cell(r.why),
                cell(r.next)
            ),
            None => format!("{} — UNEXPLAINED", cell(&d.to_string())),
        },
    }
}

/// The markdown report. `header` is a free-form paragraph (how it was run);
/// `calls` the call-level diffs.
pub fn render(sim: &[CaseReport], ovmf: &[CaseReport], calls: &CallDiffs, header: &str) -> String {
    let o: BTreeMap<String, &CaseReport> = ovmf.iter().map(|r| (r.id(), r)).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# Fidelity: simulator vs OVMF\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release -- --compare`; do not edit by hand.\n\n{header}\n"
    );
    let sp = sim.iter().filter(|r| r.passed).count();
    let op = ovmf.iter().filter(|r| r.passed).count();
    let bad = unexplained(sim, ovmf);
    let _ = writeln!(
        md,
        "Simulator: {sp}/{} pass. OVMF: {op}/{} pass. Unexplained divergences: {}.\n",
        sim.len(),
        ovmf.len(),
        bad.len()
    );
    let _ = writeln!(
        md,
        "{} ({} of them make no firmware call through the core's traced calls). \
         Unexplained call-level divergences: {}.\n",
        call_level_line(calls),
        empty_count(calls),
        unexplained_calls(calls).len()
    );
    let _ = writeln!(
        md,
        "| case | sim | OVMF | call-level | per-target expectation | OVMF message |\n\
         |---|---|---|---|---|---|"
    );
    for s in sim {
        let id = s.id();
        let q = o.get(&id).copied();
        let expectation = match entry(&id) {
            Some(e) => format!("sim {:?}, OVMF {:?}: {}", e.sim, e.ovmf, cell(e.why)),
            None => "pass on both".to_string(),
        };
        let msg = q
            .and_then(|q| q.message.as_deref())
            .map(cell)
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| `{id}` | {} | {} | {} | {expectation} | {msg} |",
            verdict(Some(s)),
            verdict(q),
            call_cell(calls, &id, s.seed)
        );
    }
    if !bad.is_empty() {
        let _ = writeln!(md, "\n## Unexplained divergences\n");
        for b in &bad {
            let _ = writeln!(md, "- {}", cell(b));
        }
    }
    let _ = writeln!(
        md,
        "\n## Call-level normalisation\n\nBefore the diff, both recordings go through \
         these rules (`conformance/src/calllog/normalise.rs`); everything else must be equal \
         step by step: every firmware call with its arguments and status, every completion \
         with its token, status and byte count, `Tcp4.GetModeData`'s connection state. Arguments \
         are rendered when the call returns, so a call that writes into its arguments shows \
         what it wrote (EDK2's `Tcp4.Configure` writes the default station address and the \
         bound port back into the caller's access point: `TcpConfigurePcb` and `TcpBind` in \
         `NetworkPkg/TcpDxe/TcpDispatcher.c`).\n"
    );
    for (rule, why) in RULES {
        let _ = writeln!(md, "- {rule} Why: {why}");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(id: &str, passed: bool) -> CaseReport {
        let (g, n) = id.split_once('/').unwrap();
        CaseReport {
            name: n.to_string().into(),
            group: g.to_string().into(),
            passed,
            message: (!passed).then(|| "why | not".into()),
            wall: Duration::ZERO,
            virtual_ns: 0,
            seed: 1,
        }
    }

    #[test]
    fn divergences_are_explained_only_by_the_table() {
        let sim = vec![
            r("a/x", true),
            r("connect/connect_timeout", true),
            r("a/y", true),
        ];
        let ovmf = vec![
            r("a/x", true),
            r("connect/connect_timeout", false),
            r("a/y", false),
        ];
        let bad = unexplained(&sim, &ovmf);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("a/y"));
        let mut calls = CallDiffs::new();
        calls.insert(("a/x".into(), 1), CaseDiff::Identical { steps: 3 });
        calls.insert(
            ("a/y".into(), 1),
            CaseDiff::Diverges {
                step: 2,
                what: "simulator `x`, OVMF `y`".into(),
            },
        );
        assert_eq!(
            call_level_line(&calls),
            "call-level: 1 of 2 cases identical"
        );
        assert_eq!(unexplained_calls(&calls).len(), 1);
        let md = render(&sim, &ovmf, &calls, "test");
        assert!(
            md.contains("| `a/y` | pass | FAIL | step 2: simulator `x`, OVMF `y` — UNEXPLAINED | pass on both | why \\| not |"),
            "{md}"
        );
        assert!(md.contains("| `a/x` | pass | pass | identical |"), "{md}");
        assert!(md.contains(
            "call-level: 1 of 2 cases identical (0 of them make no firmware call through the \
             core's traced calls). Unexplained call-level divergences: 1."
        ));
        assert!(md.contains("## Call-level normalisation"));
        assert!(md.contains("Unexplained divergences: 1."));
        assert!(md.contains("sim Pass, OVMF Fail"));
    }
}
