//! The capturing layer: the core's trace events as [`RawStep`]s, compacted.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::step::{BOOKKEEPING_CALLS, QUERY_CALLS, RawStep, WAIT_CALLS};
use crate::runner::CaseTrace;
use crate::trace::{TARGET_COMPLETION, TARGET_FW, TARGET_NOTIFY};

/// At most this many steps are kept per case; more are counted as dropped
/// (and a truncated recording is never reported as identical).
pub const MAX_STEPS: usize = 100_000;

#[derive(Default)]
struct Fields {
    instance: u64,
    bytes: u64,
    t_ns: u64,
    call: String,
    args: String,
    status: String,
    token: String,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "instance" => self.instance = value,
            "bytes" => self.bytes = value,
            "t_ns" => self.t_ns = value,
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "call" => self.call = value.to_string(),
            "args" => self.args = value.to_string(),
            "status" => self.status = value.to_string(),
            "token" => self.token = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "call" | "args" | "status" | "token" => {
                self.record_str(field, &format!("{value:?}"));
            }
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
struct Log {
    steps: Vec<RawStep>,
    dropped: u64,
    finished: Vec<(Vec<RawStep>, u64)>,
    /// Return times of successful token submissions not yet completed, by
    /// (instance, token kind), oldest first.
    submitted: BTreeMap<(u64, &'static str), VecDeque<u64>>,
    /// Time of the last notify seen (it comes right before its completion).
    last_notify_ns: Option<u64>,
}

/// The token kind a call submits, for the calls that take a token.
pub(crate) fn token_of(call: &str) -> Option<&'static str> {
    match call {
        "Tcp4.Connect" => Some("connect"),
        "Tcp4.Accept" => Some("accept"),
        "Tcp4.Transmit" => Some("transmit"),
        "Tcp4.Receive" => Some("receive"),
        "Tcp4.Close" => Some("close"),
        _ => None,
    }
}

impl Log {
    /// Records what the timing of a later completion is judged by.
    fn observe(&mut self, target: &str, f: &Fields) {
        match target {
            TARGET_FW if f.status == "SUCCESS" => {
                if let Some(kind) = token_of(&f.call) {
                    self.submitted
                        .entry((f.instance, kind))
                        .or_default()
                        .push_back(f.t_ns);
                }
            }
            TARGET_NOTIFY => self.last_notify_ns = Some(f.t_ns),
            _ => {}
        }
    }

    /// Whether the completion of `token` on `instance` was signalled while
    /// its submitting call ran.
    fn signalled_in_call(&mut self, instance: u64, token: &str) -> bool {
        let kind = ["connect", "accept", "transmit", "receive", "close"]
            .into_iter()
            .find(|k| *k == token);
        let returned = kind.and_then(|k| {
            self.submitted
                .get_mut(&(instance, k))
                .and_then(VecDeque::pop_front)
        });
        let notified = self.last_notify_ns.take();
        matches!((returned, notified), (Some(r), Some(n)) if n <= r)
    }

    /// Counts `step` into the previous step if it repeats the same state
    /// query with only waiting calls between (see [`QUERY_CALLS`]).
    fn repeats_query(&mut self, step: &RawStep) -> bool {
        let RawStep::Call { name, .. } = step else {
            return false;
        };
        if !QUERY_CALLS.contains(&name.as_str()) {
            return false;
        }
        let n = self.steps.len();
        let at = match self.steps.last() {
            Some(RawStep::Wait { .. }) if n >= 2 => n - 2,
            Some(_) => n - 1,
            None => return false,
        };
        match self.steps.get_mut(at) {
            Some(prev) if same_call(prev, step) => {
                if let RawStep::Call { repeat, .. } = prev {
                    *repeat += 1;
                }
                true
            }
            _ => false,
        }
    }

    fn push(&mut self, step: RawStep) {
        if let (
            Some(RawStep::Wait { polls, other }),
            RawStep::Wait {
                polls: p2,
                other: o2,
            },
        ) = (self.steps.last_mut(), &step)
        {
            *polls += p2;
            *other += o2;
            return;
        }
        if self.repeats_query(&step) {
            return;
        }
        if self.steps.len() < MAX_STEPS {
            self.steps.push(step);
        } else {
            self.dropped += 1;
        }
    }
}

/// Whether `a` and `b` are the same call with the same status and arguments.
fn same_call(a: &RawStep, b: &RawStep) -> bool {
    match (a, b) {
        (
            RawStep::Call {
                instance,
                name,
                status,
                args,
                ..
            },
            RawStep::Call {
                instance: i2,
                name: n2,
                status: s2,
                args: a2,
                ..
            },
        ) => instance == i2 && name == n2 && status == s2 && args == a2,
        _ => false,
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    // The log holds plain data: a case that panicked mid-push leaves it
    // consistent, so a poisoned lock is still readable.
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `tracing_subscriber` layer recording a case's calls and completions.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    log: Arc<Mutex<Log>>,
}

/// Takes what a [`CallRecorder`] captured.
#[derive(Debug, Clone)]
pub struct CallLogHandle {
    log: Arc<Mutex<Log>>,
}

impl CallRecorder {
    /// A recorder and the handle to its log.
    pub fn new() -> (CallRecorder, CallLogHandle) {
        let log = Arc::new(Mutex::new(Log::default()));
        (CallRecorder { log: log.clone() }, CallLogHandle { log })
    }
}

/// The step a trace event stands for, or `None` for events the recording
/// leaves out (successful bookkeeping calls, notifies, other targets).
fn step_of(target: &str, f: Fields) -> Option<RawStep> {
    match target {
        TARGET_FW if WAIT_CALLS.contains(&f.call.as_str()) && f.status == "SUCCESS" => {
            let poll = f.call == "Tcp4.Poll";
            Some(RawStep::Wait {
                polls: u64::from(poll),
                other: u64::from(!poll),
            })
        }
        TARGET_FW if BOOKKEEPING_CALLS.contains(&f.call.as_str()) && f.status == "SUCCESS" => None,
        TARGET_FW => Some(RawStep::Call {
            instance: f.instance,
            name: f.call,
            status: f.status,
            args: f.args,
            repeat: 1,
        }),
        TARGET_COMPLETION if !f.token.is_empty() => Some(RawStep::Done {
            instance: f.instance,
            token: f.token,
            status: f.status,
            bytes: f.bytes,
            in_call: false,
        }),
        _ => None,
    }
}

impl<S: Subscriber> Layer<S> for CallRecorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if target != TARGET_FW && target != TARGET_COMPLETION && target != TARGET_NOTIFY {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let mut log = lock(&self.log);
        log.observe(target, &f);
        if let Some(mut step) = step_of(target, f) {
            if let RawStep::Done {
                instance,
                token,
                in_call,
                ..
            } = &mut step
            {
                *in_call = log.signalled_in_call(*instance, token);
            }
            log.push(step);
        }
    }
}

impl CallLogHandle {
    /// Takes the steps captured so far and how many were dropped at
    /// [`MAX_STEPS`], leaving the log empty.
    pub fn take(&self) -> (Vec<RawStep>, u64) {
        let mut log = lock(&self.log);
        log.submitted.clear();
        log.last_notify_ns = None;
        let dropped = std::mem::take(&mut log.dropped);
        (std::mem::take(&mut log.steps), dropped)
    }

    /// The recordings of the cases finished through [`CaseTrace`], in run
    /// order, leaving none behind.
    pub fn take_finished(&self) -> Vec<(Vec<RawStep>, u64)> {
        std::mem::take(&mut lock(&self.log).finished)
    }
}

impl CaseTrace for CallLogHandle {
    fn begin(&mut self) {
        let _ = self.take();
    }

    /// Keeps the case's recording for [`CallLogHandle::take_finished`];
    /// prints nothing.
    fn end(&mut self) -> String {
        let case = self.take();
        lock(&self.log).finished.push(case);
        String::new()
    }
}
