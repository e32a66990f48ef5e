//! What may legitimately differ between two runs of the same case on two
//! firmware implementations, removed before the diff. Each rule is in
//! [`RULES`] with its reason; `docs/fidelity.md` prints the list.

use std::collections::{BTreeMap, VecDeque};

use super::step::RawStep;

/// Every normalisation rule, with the reason it is legitimate.
pub const RULES: &[(&str, &str)] = &[
    (
        "The recording starts once the target is built.",
        "the calls the harness makes to set a target up (a static address in the simulated \
         world, a check of the DHCP lease obtained once per OVMF run) are the harness's, not \
         the case's.",
    ),
    (
        "Successful waiting calls (Tcp4.Poll, Stall, SetTimer, WaitForEvent) are not steps; \
         their number is kept only as the detail of a completion (a failing one is a step).",
        "how many times the core polls before something happens depends on how fast the \
         machine runs (TCG vs virtual time) and on the Poll strategy's timing, not on what the \
         firmware does.",
    ),
    (
        "Connect, Transmit and Close completions keep one bit of their timing: signalled inside \
         the submitting call (the notify ran before the call returned, and no waiting call came \
         between the call and the completion) or later.",
        "whether a token completes inside its call is firmware behaviour (EDK2 signals a \
         Transmit once its bytes are segmented, which the windows limit; a Connect or a \
         graceful Close needs a round trip): a simulator that completes such a token inside the \
         call while EDK2 leaves it pending must show.",
    ),
    (
        "Receive and Accept completions keep no timing.",
        "whether the peer's data or connection had already arrived when the token was \
         submitted is a race between the peer (real host sockets behind slirp in OVMF, \
         simulated hosts in the simulator) and the case, not firmware behaviour.",
    ),
    (
        "A Tcp4.Receive call returning CONNECTION_FIN and a Receive token completing with \
         CONNECTION_FIN are the same step, `receive: end of stream`.",
        "which of the two EDK2 does depends only on whether the peer's FIN had arrived when \
         the Receive was submitted (`SockRcv` in NetworkPkg/TcpDxe/SockInterface.c returns it at once, otherwise the token \
         completes with it), a race with the peer like the data's arrival.",
    ),
    (
        "A run of successful Tcp4.Receive calls and successful Receive completions on one \
         instance, with nothing else between them but waiting calls, becomes one step \
         `receive stream: N bytes`; the number of completions is kept as detail, the byte \
         total is compared.",
        "how a byte stream is cut into Receive completions depends on when its segments \
         arrive, which is timing (TCP guarantees the bytes and their order, not the cut).",
    ),
    (
        "Instance numbers, IPv4 addresses (other than 0.0.0.0), ports (other than 0) and child \
         handles are renamed to symbols in order of first appearance (i1, A1, P1, H1); a \
         handle's symbol is free again once DestroyChild succeeded on it, and the next new \
         handle takes the lowest free one.",
        "ephemeral ports, the DHCP lease, the peers' forwarded ports and pool addresses differ \
         between the runs without meaning anything; the first-seen renaming still shows when \
         a case uses the same value twice or a new one. A handle is a pool address in EDK2, \
         and the pool often gives a new child the memory of one just destroyed; the \
         simulator never reuses a handle (a stale one is always caught), so handles are named \
         by live child.",
    ),
    (
        "The slot number in Tcp4.Connect and Tcp4.Accept arguments is dropped.",
        "it is the core's own token-table index, not something passed to the firmware.",
    ),
    (
        "Identical state queries in a row (Tcp4.GetModeData, Ip4Config2.GetData with the same \
         status and result), with only waiting calls between, are one step; the number of \
         repeats is detail.",
        "a wait loop re-reads the state at a rate set by the machine's speed; a changed \
         state or status is a new step and is compared.",
    ),
    (
        "Successful AllocatePool, FreePool, CreateEvent and CloseEvent calls are not recorded \
         (failing ones are).",
        "the core makes them around every token it submits; the token calls already show the \
         path, and a failure is still a step.",
    ),
];

/// How a token completion relates to its submitting call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTiming {
    /// The submitting call, e.g. `Tcp4.Transmit`.
    pub call: String,
    /// The completion status.
    pub status: String,
    /// Whether no waiting call came between the call and the completion.
    pub inside: bool,
    /// Tcp4.Poll calls in between.
    pub polls: u64,
    /// Other waiting calls in between (Stall, SetTimer, WaitForEvent).
    pub other_waits: u64,
}

impl TokenTiming {
    /// `SUCCESS inside the call` / `pending until Poll 3 (SUCCESS)` /
    /// `signalled after the call returned, before any wait (SUCCESS)` /
    /// `pending through 2 Stall/timer waits (SUCCESS)`.
    pub fn describe(&self) -> String {
        if self.inside {
            format!("{} inside the call", self.status)
        } else if self.polls > 0 {
            format!("pending until Poll {} ({})", self.polls, self.status)
        } else if self.other_waits == 0 {
            format!(
                "signalled after the call returned, before any wait ({})",
                self.status
            )
        } else {
            format!(
                "pending through {} Stall/timer waits ({})",
                self.other_waits, self.status
            )
        }
    }
}

/// One normalised step: `key` is compared, `detail` only shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormStep {
    /// What must be equal on both firmware.
    pub key: String,
    /// What may differ (counts of Polls, of completions), for the reader.
    pub detail: String,
    /// For completions: the timing relative to the submitting call.
    pub timing: Option<TokenTiming>,
}

#[derive(Default)]
struct Symbols {
    instances: BTreeMap<u64, String>,
    values: BTreeMap<(char, String), String>,
    counts: BTreeMap<char, usize>,
    /// Handle symbols freed by a DestroyChild, for the next new handles.
    free_handles: std::collections::BTreeSet<usize>,
}

impl Symbols {
    fn instance(&mut self, i: u64) -> String {
        if i == 0 {
            return "fw".to_string();
        }
        let n = self.instances.len() + 1;
        self.instances
            .entry(i)
            .or_insert_with(|| format!("i{n}"))
            .clone()
    }

    fn value(&mut self, class: char, v: &str) -> String {
        if let Some(s) = self.values.get(&(class, v.to_string())) {
            return s.clone();
        }
        let reused = if class == 'H' {
            self.free_handles.pop_first()
        } else {
            None
        };
        let n = reused.unwrap_or_else(|| {
            let n = self.counts.entry(class).or_insert(0);
            *n += 1;
            *n
        });
        let s = format!("{class}{n}");
        self.values.insert((class, v.to_string()), s.clone());
        s
    }

    /// A destroyed child's handle: its symbol goes to the next new handle,
    /// so handles are named by live child rather than by value (EDK2's
    /// pool often gives a new child the destroyed one's memory, the
    /// simulator never reuses a handle).
    fn release_handles(&mut self, args: &str) {
        for w in args.split(|c: char| c.is_whitespace() || c == ',' || c == '=') {
            if let Some(sym) = self.values.remove(&('H', w.to_string())) {
                if let Ok(n) = sym[1..].parse::<usize>() {
                    self.free_handles.insert(n);
                }
            }
        }
    }

    fn ipv4(s: &str) -> bool {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 4 && parts.iter().all(|p| p.parse::<u8>().is_ok())
    }

    /// One word of an argument list: `addr`, `addr:port`, `0xHANDLE`, else
    /// unchanged.
    fn word(&mut self, w: &str) -> String {
        if let Some(hex) = w.strip_prefix("0x") {
            if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return self.value('H', w);
            }
        }
        let (addr, port) = match w.rsplit_once(':') {
            Some((a, p)) if p.parse::<u16>().is_ok() => (a, Some(p)),
            _ => (w, None),
        };
        if !Self::ipv4(addr) {
            return w.to_string();
        }
        let a = if addr == "0.0.0.0" {
            addr.to_string()
        } else {
            self.value('A', addr)
        };
        match port {
            None => a,
            Some("0") => format!("{a}:0"),
            Some(p) => format!("{a}:{}", self.value('P', p)),
        }
    }

    /// The arguments with every value renamed (`key=value` words keep the key).
    fn args(&mut self, args: &str) -> String {
        let mut out = String::new();
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String, me: &mut Symbols| {
            if word.is_empty() {
                return;
            }
            match word.split_once('=') {
                Some((k, v)) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(&me.word(v));
                }
                None => out.push_str(&me.word(word)),
            }
            word.clear();
        };
        for c in args.chars() {
            if c.is_whitespace() || c == ',' || c == '(' || c == ')' {
                flush(&mut word, &mut out, self);
                out.push(c);
            } else {
                word.push(c);
            }
        }
        flush(&mut word, &mut out, self);
        out
    }
}

/// The token kind a successful call submits.
fn submits(name: &str) -> Option<&'static str> {
    match name {
        "Tcp4.Connect" => Some("connect"),
        "Tcp4.Accept" => Some("accept"),
        "Tcp4.Transmit" => Some("transmit"),
        "Tcp4.Receive" => Some("receive"),
        "Tcp4.Close" => Some("close"),
        _ => None,
    }
}

fn call_of(token: &str) -> String {
    let mut c = token.chars();
    match c.next() {
        Some(f) => format!("Tcp4.{}{}", f.to_ascii_uppercase(), c.as_str()),
        None => "Tcp4.?".to_string(),
    }
}

/// Whether a completion's timing is compared (see [`RULES`]).
fn timing_compared(token: &str) -> bool {
    matches!(token, "connect" | "transmit" | "close")
}

#[derive(Clone, Copy, Default)]
struct Counters {
    polls: u64,
    other: u64,
}

/// Step before the receive-stream collapse.
enum Pre {
    Step(NormStep),
    ReceiveCall(String),
    ReceiveData(String, u64),
}

/// The raw argument text of a call step.
fn args_raw(step: &RawStep) -> &str {
    match step {
        RawStep::Call { args, .. } => args,
        _ => "",
    }
}

/// Applies every rule of [`RULES`] to a raw recording.
pub fn normalise(steps: &[RawStep]) -> Vec<NormStep> {
    let mut sym = Symbols::default();
    let mut now = Counters::default();
    let mut pending: BTreeMap<(u64, &'static str), VecDeque<Counters>> = BTreeMap::new();
    let mut pre = Vec::new();
    for s in steps {
        match s {
            RawStep::Wait { polls, other } => {
                now.polls += polls;
                now.other += other;
            }
            RawStep::Call {
                instance,
                name,
                status,
                args,
                repeat,
            } => {
                let inst = sym.instance(*instance);
                if status == "SUCCESS" {
                    if let Some(kind) = submits(name) {
                        pending.entry((*instance, kind)).or_default().push_back(now);
                    }
                }
                if name == "Tcp4.Receive" && status == "SUCCESS" {
                    pre.push(Pre::ReceiveCall(inst));
                    continue;
                }
                if name == "Tcp4.Receive" && status == "CONNECTION_FIN" {
                    pre.push(Pre::Step(end_of_stream(&inst, "returned by Tcp4.Receive")));
                    continue;
                }
                let args = if matches!(name.as_str(), "Tcp4.Connect" | "Tcp4.Accept") {
                    String::new()
                } else {
                    sym.args(args)
                };
                if name.ends_with(".DestroyChild") && status == "SUCCESS" {
                    sym.release_handles(args_raw(s));
                }
                pre.push(Pre::Step(NormStep {
                    key: format!("{inst} {name}({args}) = {status}"),
                    detail: if *repeat > 1 {
                        format!("{repeat} times")
                    } else {
                        String::new()
                    },
                    timing: None,
                }));
            }
            RawStep::Done {
                instance,
                token,
                status,
                bytes,
                in_call,
            } => {
                let inst = sym.instance(*instance);
                let kind = submits(&call_of(token)).unwrap_or("other");
                let at = pending
                    .get_mut(&(*instance, kind))
                    .and_then(VecDeque::pop_front);
                if token == "receive" && status == "SUCCESS" {
                    pre.push(Pre::ReceiveData(inst, *bytes));
                    continue;
                }
                if token == "receive" && status == "CONNECTION_FIN" {
                    pre.push(Pre::Step(end_of_stream(
                        &inst,
                        "the Receive token completed",
                    )));
                    continue;
                }
                let timing = at.map(|at| {
                    let polls = now.polls - at.polls;
                    let other_waits = now.other - at.other;
                    TokenTiming {
                        call: call_of(token),
                        status: status.clone(),
                        inside: *in_call && polls == 0 && other_waits == 0,
                        polls,
                        other_waits,
                    }
                });
                let when = match &timing {
                    Some(t) if timing_compared(token) => {
                        if t.inside {
                            ", inside the call"
                        } else {
                            ", after waiting"
                        }
                    }
                    _ => "",
                };
                let bytes = if matches!(token.as_str(), "transmit" | "receive") {
                    format!(", {bytes} bytes")
                } else {
                    String::new()
                };
                let detail = timing
                    .as_ref()
                    .map(TokenTiming::describe)
                    .unwrap_or_default();
                pre.push(Pre::Step(NormStep {
                    key: format!("{inst} {} token: {status}{bytes}{when}", call_of(token)),
                    detail,
                    timing,
                }));
            }
        }
    }
    collapse_receives(pre)
}

/// The end-of-stream rule of [`RULES`].
fn end_of_stream(inst: &str, how: &str) -> NormStep {
    NormStep {
        key: format!("{inst} receive: end of stream"),
        detail: how.to_string(),
        timing: None,
    }
}

/// The receive-stream rule of [`RULES`].
fn collapse_receives(pre: Vec<Pre>) -> Vec<NormStep> {
    let mut out = Vec::new();
    let mut run: Option<(String, u64, u64, u64)> = None; // inst, bytes, completions, calls
    let close = |run: &mut Option<(String, u64, u64, u64)>, out: &mut Vec<NormStep>| {
        if let Some((inst, bytes, done, calls)) = run.take() {
            let key = if done == 0 {
                format!("{inst} Tcp4.Receive() = SUCCESS x{calls}")
            } else {
                format!("{inst} receive stream: {bytes} bytes")
            };
            out.push(NormStep {
                key,
                detail: format!("{calls} Receive calls, {done} completions"),
                timing: None,
            });
        }
    };
    for p in pre {
        match p {
            Pre::ReceiveCall(inst) => match &mut run {
                Some((i, _, _, calls)) if *i == inst => *calls += 1,
                _ => {
                    close(&mut run, &mut out);
                    run = Some((inst, 0, 0, 1));
                }
            },
            Pre::ReceiveData(inst, n) => match &mut run {
                Some((i, bytes, done, _)) if *i == inst => {
                    *bytes += n;
                    *done += 1;
                }
                _ => {
                    close(&mut run, &mut out);
                    run = Some((inst, n, 1, 0));
                }
            },
            Pre::Step(s) => {
                close(&mut run, &mut out);
                out.push(s);
            }
        }
    }
    close(&mut run, &mut out);
    out
}
