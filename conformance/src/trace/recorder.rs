//! The capturing layer and the handle that reads what it captured.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::{CallStats, TARGET_COMPLETION, TARGET_FW, TARGET_NOTIFY};
use crate::runner::CaseTrace;

/// At most this many events are kept per capture; more are counted as
/// dropped and the count is printed with the log (never lost silently).
pub const MAX_EVENTS: usize = 1 << 20;

/// One captured event. Fields the emitter did not provide are `None` and
/// render as `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A firmware call returned (`efisock::fw`).
    Call {
        /// Protocol instance number.
        instance: Option<u64>,
        /// Call name, e.g. `Tcp4.Connect`.
        call: Option<String>,
        /// Rendered arguments.
        args: Option<String>,
        /// Returned status, e.g. `SUCCESS`.
        status: Option<String>,
        /// Time at return, ns.
        t_ns: Option<u64>,
        /// Time spent inside the call, ns.
        elapsed_ns: Option<u64>,
    },
    /// A completed token was drained (`efisock::completion`).
    Completion {
        /// Protocol instance number.
        instance: Option<u64>,
        /// Token kind: connect/accept/transmit/receive/close.
        token: Option<String>,
        /// Completion status.
        status: Option<String>,
        /// Time, ns.
        t_ns: Option<u64>,
    },
    /// A notify function recorded a completion (`efisock::notify`).
    Notify {
        /// Token slot id.
        slot: Option<u64>,
        /// Time, ns.
        t_ns: Option<u64>,
    },
}

#[derive(Default)]
struct Fields {
    instance: Option<u64>,
    slot: Option<u64>,
    t_ns: Option<u64>,
    elapsed_ns: Option<u64>,
    call: Option<String>,
    args: Option<String>,
    status: Option<String>,
    token: Option<String>,
}

impl Fields {
    fn set_u64(&mut self, name: &str, v: u64) {
        match name {
            "instance" => self.instance = Some(v),
            "slot" => self.slot = Some(v),
            "t_ns" => self.t_ns = Some(v),
            "elapsed_ns" => self.elapsed_ns = Some(v),
            _ => self.set_str(name, v.to_string()),
        }
    }

    fn set_str(&mut self, name: &str, v: String) {
        match name {
            "call" => self.call = Some(v),
            "args" => self.args = Some(v),
            "status" => self.status = Some(v),
            "token" => self.token = Some(v),
            _ => {}
        }
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set_u64(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match u64::try_from(value) {
            Ok(v) => self.set_u64(field.name(), v),
            Err(_) => self.set_str(field.name(), value.to_string()),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set_str(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set_str(field.name(), format!("{value:?}"));
    }
}

#[derive(Debug, Default)]
struct Log {
    events: Vec<TraceEvent>,
    dropped: u64,
    run: CallStats,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    // A panicking case must not make the trace unreadable: the log holds
    // plain data, so a poisoned lock is still consistent.
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `tracing_subscriber` layer capturing efisock's firmware events.
#[derive(Debug, Clone)]
pub struct TraceRecorder {
    log: Arc<Mutex<Log>>,
}

/// Reads, renders and clears what a [`TraceRecorder`] captured.
#[derive(Debug, Clone)]
pub struct TraceHandle {
    log: Arc<Mutex<Log>>,
}

impl TraceRecorder {
    /// A recorder and the handle to its log.
    pub fn new() -> (TraceRecorder, TraceHandle) {
        let log = Arc::new(Mutex::new(Log::default()));
        (TraceRecorder { log: log.clone() }, TraceHandle { log })
    }
}

impl<S: Subscriber> Layer<S> for TraceRecorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if target != TARGET_FW && target != TARGET_COMPLETION && target != TARGET_NOTIFY {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let ev = match target {
            TARGET_FW => TraceEvent::Call {
                instance: f.instance,
                call: f.call,
                args: f.args,
                status: f.status,
                t_ns: f.t_ns,
                elapsed_ns: f.elapsed_ns,
            },
            TARGET_COMPLETION => TraceEvent::Completion {
                instance: f.instance,
                token: f.token,
                status: f.status,
                t_ns: f.t_ns,
            },
            _ => TraceEvent::Notify {
                slot: f.slot,
                t_ns: f.t_ns,
            },
        };
        let mut log = lock(&self.log);
        if log.events.len() < MAX_EVENTS {
            log.events.push(ev);
        } else {
            log.dropped += 1;
        }
    }
}

impl TraceHandle {
    /// A copy of the captured events.
    pub fn events(&self) -> Vec<TraceEvent> {
        lock(&self.log).events.clone()
    }

    /// Events not kept because the log was full.
    pub fn dropped(&self) -> u64 {
        lock(&self.log).dropped
    }

    /// Drops everything captured.
    pub fn clear(&self) {
        let mut log = lock(&self.log);
        log.events.clear();
        log.dropped = 0;
    }

    /// Renders the log and summary table, adds the events to the run-wide
    /// statistics, then clears the log.
    pub fn take_rendered(&self) -> String {
        let mut log = lock(&self.log);
        let out = super::render::render_events(&log.events, log.dropped);
        let Log { events, run, .. } = &mut *log;
        run.add(events);
        log.events.clear();
        log.dropped = 0;
        out
    }

    /// The per-call table over every case rendered so far (events dropped
    /// at the [`MAX_EVENTS`] limit are not in it; each case's log says so).
    pub fn run_summary(&self) -> String {
        lock(&self.log).run.render()
    }
}

impl CaseTrace for TraceHandle {
    fn begin(&mut self) {
        self.clear();
    }

    fn end(&mut self) -> String {
        self.take_rendered()
    }
}
