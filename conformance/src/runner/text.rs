//! The human-readable report: an aligned table, one row per case.
//!
//! ```text
//! PASS  connect/basic       wall     12.3 ms  virt    45.678 s
//! FAIL  transfer/one_mib    wall    130.0 ms  virt     3.200 s
//!       checksum: expected equal ...
//!       seed 0x1234
//!       replay: cargo run --release -- --seed 0x1234 --filter transfer/one_mib
//!
//! 1 passed, 1 failed
//! wall 0.142 s, virtual 48.878 s, seed 0x1234
//! ```
//!
//! The `N passed, N failed` line stands alone so CI can parse it with a
//! plain line match. With a seed sweep, each row also shows its seed.

use std::io::Write;
use std::time::Duration;

use super::report::{CaseReport, Reporter, RunHeader, RunSummary};
use super::seed::fmt_seed;

const INDENT: &str = "      ";

/// Writes the text report to `W` (usually stdout).
#[derive(Debug)]
pub struct TextReporter<W: Write> {
    out: W,
    width: usize,
    show_seed: bool,
}

impl<W: Write> TextReporter<W> {
    /// A reporter writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            width: 0,
            show_seed: false,
        }
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    // Output errors (closed pipe) are deliberately ignored: the run's result
    // is the exit code, and aborting a run because `| head` closed would hide
    // failures from the status.
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{s}");
    }
}

/// `12.3 ms` style, right-aligned in a fixed width.
pub fn fmt_wall(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1e3)
}

/// `45.678 s` style, right-aligned in a fixed width.
pub fn fmt_virt(ns: u64) -> String {
    format!("{:>9.3} s", ns as f64 / 1e9)
}

impl<W: Write> Reporter for TextReporter<W> {
    fn start(&mut self, header: &RunHeader) {
        self.width = header.case_ids.iter().map(String::len).max().unwrap_or(0);
        self.show_seed = header.seeds.len() > 1;
        if header.case_ids.is_empty() {
            self.line("no cases selected");
        }
    }

    fn case_done(&mut self, r: &CaseReport, replay: &str, trace: Option<&str>) {
        let verdict = if r.passed { "PASS" } else { "FAIL" };
        let mut row = format!(
            "{verdict}  {:<w$}  wall {}  virt {}",
            r.id(),
            fmt_wall(r.wall),
            fmt_virt(r.virtual_ns),
            w = self.width
        );
        if self.show_seed {
            row.push_str(&format!("  seed {}", fmt_seed(r.seed)));
        }
        self.line(&row);
        if let Some(msg) = &r.message {
            for l in msg.lines() {
                self.line(&format!("{INDENT}{l}"));
            }
        }
        if !r.passed {
            self.line(&format!("{INDENT}seed {}", fmt_seed(r.seed)));
            self.line(&format!("{INDENT}replay: {replay}"));
        }
        if let Some(t) = trace {
            for l in t.lines() {
                self.line(&format!("{INDENT}{l}"));
            }
        }
    }

    fn finish(&mut self, s: &RunSummary) {
        self.line("");
        self.line(&format!("{} passed, {} failed", s.passed, s.failed));
        let seeds = if s.seeds.len() > 1 {
            format!(
                "base seed {}, {} seeds (run 0 = base, run i = splitmix64 stream i)",
                fmt_seed(s.base_seed),
                s.seeds.len()
            )
        } else {
            format!("seed {}", fmt_seed(s.base_seed))
        };
        self.line(&format!(
            "wall {:.3} s, virtual {:.3} s, {seeds}",
            s.wall.as_secs_f64(),
            s.virtual_ns as f64 / 1e9
        ));
        for (id, seed) in &s.failures {
            self.line(&format!("failed: {id} (seed {})", fmt_seed(*seed)));
        }
        let _ = self.out.flush();
    }
}
