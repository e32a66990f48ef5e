//! The machine-readable report (`--json`): JSON Lines on stdout.
//!
//! One object per line. Seeds are strings (`"0x…"`) because JSON numbers
//! lose precision above 2^53.
//!
//! Before the first case:
//! `{"type":"start","cases":["group/name",…],"seeds":["0x…",…],"base_seed":"0x…"}`
//!
//! Per case execution:
//! `{"type":"case","id":"group/name","group":str,"name":str,"passed":bool,
//!   "message":str|null,"wall_ns":u64,"virtual_ns":u64,"seed":"0x…",
//!   "replay":str|null,"trace":str|null}` — `replay` is set on failures,
//! `trace` when `--trace` is on (the rendered log and call summary).
//!
//! At the end:
//! `{"type":"summary","passed":u64,"failed":u64,"total":u64,"wall_ns":u64,
//!   "virtual_ns":u64,"base_seed":"0x…","seeds":["0x…",…],
//!   "failures":[{"id":str,"seed":"0x…"},…]}`
//!
//! With `--trace`, one more line follows the summary:
//! `{"type":"trace_summary","table":str}` (the per-call table over the whole
//! run, written by the suite driver).

use std::io::Write;

use serde_json::{Value, json};

use super::report::{CaseReport, Reporter, RunHeader, RunSummary};
use super::seed::fmt_seed;

/// Writes the JSON Lines report to `W`.
#[derive(Debug)]
pub struct JsonReporter<W: Write> {
    out: W,
}

impl<W: Write> JsonReporter<W> {
    /// A reporter writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, v: Value) {
        // See TextReporter: output errors do not change the run's result.
        let _ = writeln!(self.out, "{v}");
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<W: Write> Reporter for JsonReporter<W> {
    fn start(&mut self, h: &RunHeader) {
        let seeds: Vec<String> = h.seeds.iter().map(|&s| fmt_seed(s)).collect();
        self.emit(json!({
            "type": "start",
            "cases": h.case_ids,
            "seeds": seeds,
            "base_seed": fmt_seed(h.base_seed),
        }));
    }

    fn case_done(&mut self, r: &CaseReport, replay: &str, trace: Option<&str>) {
        self.emit(json!({
            "type": "case",
            "id": r.id(),
            "group": r.group,
            "name": r.name,
            "passed": r.passed,
            "message": r.message,
            "wall_ns": nanos(r.wall),
            "virtual_ns": r.virtual_ns,
            "seed": fmt_seed(r.seed),
            "replay": if r.passed { None } else { Some(replay) },
            "trace": trace,
        }));
    }

    fn finish(&mut self, s: &RunSummary) {
        let seeds: Vec<String> = s.seeds.iter().map(|&x| fmt_seed(x)).collect();
        let failures: Vec<Value> = s
            .failures
            .iter()
            .map(|(id, seed)| json!({"id": id, "seed": fmt_seed(*seed)}))
            .collect();
        self.emit(json!({
            "type": "summary",
            "passed": s.passed,
            "failed": s.failed,
            "total": s.total(),
            "wall_ns": nanos(s.wall),
            "virtual_ns": s.virtual_ns,
            "base_seed": fmt_seed(s.base_seed),
            "seeds": seeds,
            "failures": failures,
        }));
        let _ = self.out.flush();
    }
}
