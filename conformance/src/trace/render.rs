//! Rendering captured events: the strace-like log and the summary table.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::TraceEvent;

fn ts(t: Option<u64>) -> String {
    match t {
        Some(t) => format!("[{:>4}.{:09}]", t / 1_000_000_000, t % 1_000_000_000),
        None => "[   ?.?????????]".to_string(),
    }
}

fn opt_u64(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

fn opt_str(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("?")
}

fn is_success(status: &str) -> bool {
    status.strip_prefix("EFI_").unwrap_or(status) == "SUCCESS"
}

/// One line per event.
pub fn render_log(events: &[TraceEvent]) -> String {
    let mut out = String::new();
    for ev in events {
        match ev {
            TraceEvent::Call {
                instance,
                call,
                args,
                status,
                t_ns,
                elapsed_ns,
            } => {
                let elapsed = match elapsed_ns {
                    Some(e) => format!("<{}.{:06}>", e / 1_000_000_000, (e % 1_000_000_000) / 1000),
                    None => "<?>".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{} #{} {}({}) = {}  {}",
                    ts(*t_ns),
                    opt_u64(*instance),
                    opt_str(call),
                    args.as_deref().unwrap_or(""),
                    opt_str(status),
                    elapsed
                );
            }
            TraceEvent::Completion {
                instance,
                token,
                status,
                t_ns,
            } => {
                let _ = writeln!(
                    out,
                    "{} #{} completion {} = {}",
                    ts(*t_ns),
                    opt_u64(*instance),
                    opt_str(token),
                    opt_str(status)
                );
            }
            TraceEvent::Notify { slot, t_ns } => {
                let _ = writeln!(out, "{} notify slot {}", ts(*t_ns), opt_u64(*slot));
            }
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Row {
    count: u64,
    errors: u64,
    total_ns: u64,
}

/// Aggregated per-call statistics; can be accumulated over many cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    rows: BTreeMap<String, Row>,
    completions: u64,
    failed_completions: u64,
    notifies: u64,
}

impl CallStats {
    /// Statistics of `events`.
    pub fn of(events: &[TraceEvent]) -> Self {
        let mut s = Self::default();
        s.add(events);
        s
    }

    /// Adds `events` to the statistics.
    pub fn add(&mut self, events: &[TraceEvent]) {
        for ev in events {
            match ev {
                TraceEvent::Call {
                    call,
                    status,
                    elapsed_ns,
                    ..
                } => {
                    let row = self.rows.entry(opt_str(call).to_string()).or_default();
                    row.count += 1;
                    if !is_success(opt_str(status)) {
                        row.errors += 1;
                    }
                    row.total_ns = row.total_ns.saturating_add(elapsed_ns.unwrap_or(0));
                }
                TraceEvent::Completion { status, .. } => {
                    self.completions += 1;
                    if !is_success(opt_str(status)) {
                        self.failed_completions += 1;
                    }
                }
                TraceEvent::Notify { .. } => self.notifies += 1,
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.completions == 0 && self.notifies == 0
    }

    /// The table (sorted by total virtual time, then name) and a line
    /// counting completions and notifies.
    pub fn render(&self) -> String {
        let mut sorted: Vec<(&String, &Row)> = self.rows.iter().collect();
        sorted.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(b.0)));
        let width = sorted
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max("total".len());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>7}  {:>14}  {:>12}",
            "call", "count", "errors", "total virt s", "avg virt us"
        );
        let (mut count, mut errors, mut total) = (0u64, 0u64, 0u64);
        for (name, r) in &sorted {
            let _ = writeln!(
                out,
                "{:<width$}  {:>8}  {:>7}  {:>14.6}  {:>12.3}",
                name,
                r.count,
                r.errors,
                r.total_ns as f64 / 1e9,
                r.total_ns as f64 / 1e3 / r.count as f64
            );
            count += r.count;
            errors += r.errors;
            total = total.saturating_add(r.total_ns);
        }
        let avg = if count == 0 {
            0.0
        } else {
            total as f64 / 1e3 / count as f64
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>8}  {:>7}  {:>14.6}  {:>12.3}",
            "total",
            count,
            errors,
            total as f64 / 1e9,
            avg
        );
        let _ = writeln!(
            out,
            "completions: {} ({} not SUCCESS), notifies: {}",
            self.completions, self.failed_completions, self.notifies
        );
        out
    }
}

/// The per-call table of `events` (see [`CallStats::render`]).
pub fn render_summary(events: &[TraceEvent]) -> String {
    CallStats::of(events).render()
}

/// The log, a blank line, the summary, and a note if events were dropped.
pub fn render_events(events: &[TraceEvent], dropped: u64) -> String {
    let mut out = render_log(events);
    if dropped > 0 {
        let _ = writeln!(
            out,
            "... {dropped} more events not kept (limit {})",
            super::MAX_EVENTS
        );
    }
    out.push('\n');
    out.push_str(&render_summary(events));
    out
}
