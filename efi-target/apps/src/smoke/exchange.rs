//! The echo exchange: Connect, one Transmit, Receives until the echo and the
//! peer's FIN are in, graceful Close; every step measured.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use efisock::firmware::status::CONNECTION_FIN;
use efisock::firmware::{BootServices, Platform, Status};
use efisock::raw::{RawChild, RawToken, TokenKind, Waited, poll_until};

use super::{EXIT_MISMATCH, EXIT_OK, EXIT_TCP, Emit, SmokeConfig, fill_payload, st};
use crate::json::JsonObject;

/// The four tokens of the exchange (one each, each with its own plain event).
struct Tokens<'b, B: BootServices> {
    connect: RawToken<'b, B>,
    transmit: RawToken<'b, B>,
    receive: RawToken<'b, B>,
    close: RawToken<'b, B>,
}

impl<'b, B: BootServices> Tokens<'b, B> {
    fn new(boot: &'b B, cfg: &SmokeConfig) -> Result<Self, efisock::raw::RawError> {
        let mut payload = vec![0; 4 + cfg.payload_len as usize];
        fill_payload(&mut payload, cfg.payload_len);
        Ok(Self {
            connect: RawToken::new(boot, TokenKind::Connect)?,
            transmit: RawToken::new(boot, TokenKind::Transmit(payload))?,
            receive: RawToken::new(boot, TokenKind::Receive(cfg.rx_buffer as usize))?,
            close: RawToken::new(boot, TokenKind::Close { abort: false })?,
        })
    }

    fn all(&mut self) -> [&mut RawToken<'b, B>; 4] {
        [
            &mut self.connect,
            &mut self.transmit,
            &mut self.receive,
            &mut self.close,
        ]
    }
}

/// The TCP part of the run, with its measurements.
pub(super) struct Exchange<'p, P: Platform> {
    p: &'p P,
    cfg: &'p SmokeConfig,
    connect_polls: u64,
    tx_in_call: bool,
    rx_sizes: Vec<u64>,
    /// Polls each Receive needed (0: completed inside the call).
    rx_polls: Vec<u64>,
    /// Microseconds each Receive waited after its call returned.
    rx_wait_us: Vec<u64>,
    fin_seen_as: &'static str,
    echoed: u64,
}

fn destroy_step(s: Status) -> String {
    let mut j = JsonObject::new();
    j.str("step", "destroy_child")
        .str("status", st(s))
        .bool("ok", s == Status::SUCCESS);
    j.finish()
}

impl<'p, P: Platform + Clone> Exchange<'p, P> {
    pub(super) fn new(p: &'p P, cfg: &'p SmokeConfig) -> Self {
        Self {
            p,
            cfg,
            connect_polls: 0,
            tx_in_call: false,
            rx_sizes: Vec::new(),
            rx_polls: Vec::new(),
            rx_wait_us: Vec::new(),
            fin_seen_as: "none",
            echoed: 0,
        }
    }

    /// The measurements, into the run's summary.
    pub(super) fn summarise(&self, summary: &mut JsonObject) {
        summary
            .u64("connect_polls", self.connect_polls)
            .bool("transmit_done_in_call", self.tx_in_call)
            .u64_array("rx_segments", &self.rx_sizes)
            .u64_array("rx_polls", &self.rx_polls)
            .u64_array("rx_wait_us", &self.rx_wait_us)
            .str("fin_seen_as", self.fin_seen_as)
            .u64("echoed_bytes", self.echoed);
    }

    /// Child, tokens, exchange, reset, DestroyChild; returns the exit code.
    pub(super) fn run(&mut self, emit: Emit<'_>) -> u8 {
        let boot = self.p.boot();
        let mut step = JsonObject::new();
        step.str("step", "create_child");
        let child = match RawChild::create(self.p.clone()) {
            Ok(c) => c,
            Err(e) => {
                step.str("call", e.call)
                    .str("status", st(e.status))
                    .bool("ok", false);
                emit("STEP", &step.finish());
                return EXIT_TCP;
            }
        };
        step.str("status", "SUCCESS")
            .str("open_tcp4", "SUCCESS")
            .bool("ok", true);
        emit("STEP", &step.finish());
        let code = match Tokens::new(boot, self.cfg) {
            Ok(mut tokens) => {
                let code = match self.exchange(&child, &mut tokens, emit) {
                    Ok(()) => EXIT_OK,
                    Err(c) => c,
                };
                Self::reset(&child, &mut tokens, emit);
                code
            }
            Err(e) => {
                let mut j = JsonObject::new();
                j.str("step", "allocate")
                    .str("call", e.call)
                    .str("status", st(e.status))
                    .bool("ok", false);
                emit("STEP", &j.finish());
                EXIT_TCP
            }
        };
        emit("STEP", &destroy_step(child.destroy()));
        code
    }

    /// Configure(NULL) (EDK2 aborts every pending token inside the call),
    /// then confirm each token in flight was signalled; one that was not
    /// keeps its memory and event when dropped.
    fn reset(child: &RawChild<P>, tokens: &mut Tokens<'_, P::Boot>, emit: Emit<'_>) {
        let had = tokens.all().iter().filter(|t| t.in_flight()).count();
        let reset = child.reset();
        let left = tokens
            .all()
            .into_iter()
            .filter(|t| t.in_flight())
            .filter_map(|t| (!t.done()).then_some(()))
            .count();
        let mut j = JsonObject::new();
        j.str("step", "reset")
            .str("configure_null", st(reset))
            .u64("outstanding_before", had as u64)
            .u64("unsignalled_after", left as u64)
            .bool("ok", left == 0);
        emit("STEP", &j.finish());
    }

    /// Submits `token` and waits for it (bounded): the call's status, how
    /// long the call took, and the wait (None if the call failed).
    fn submit_and_wait(
        &self,
        child: &RawChild<P>,
        token: &mut RawToken<'_, P::Boot>,
    ) -> (Status, u64, Option<Waited>) {
        let boot = self.p.boot();
        let t = boot.monotonic_ns();
        let s = token.submit(child.tcp());
        let call_us = (boot.monotonic_ns() - t) / 1000;
        let w = (s == Status::SUCCESS)
            .then(|| poll_until(boot, child.tcp(), self.cfg.wait_limit(), || token.done()));
        (s, call_us, w)
    }

    fn exchange(
        &mut self,
        child: &RawChild<P>,
        tokens: &mut Tokens<'_, P::Boot>,
        emit: Emit<'_>,
    ) -> Result<(), u8> {
        let boot = self.p.boot();
        let t = boot.monotonic_ns();
        let s = child.configure_active(self.cfg.peer());
        let mut j = JsonObject::new();
        j.str("step", "configure")
            .str("status", st(s))
            .u64("us", (boot.monotonic_ns() - t) / 1000)
            .bool("ok", s == Status::SUCCESS);
        emit("STEP", &j.finish());
        if s != Status::SUCCESS {
            return Err(EXIT_TCP);
        }

        let (s, call_us, w) = self.submit_and_wait(child, &mut tokens.connect);
        let mut j = JsonObject::new();
        j.str("step", "connect")
            .str("call", st(s))
            .u64("call_us", call_us);
        let ok = token_result(&mut j, w.as_ref(), &tokens.connect);
        if let Some(w) = &w {
            self.connect_polls = w.polls;
        }
        emit("STEP", &j.finish());
        if !ok {
            return Err(EXIT_TCP);
        }

        // The whole message in one token, one fragment.
        let total = 4 + self.cfg.payload_len as usize;
        let (s, call_us, w) = self.submit_and_wait(child, &mut tokens.transmit);
        let mut j = JsonObject::new();
        j.str("step", "transmit")
            .u64("bytes", total as u64)
            .str("call", st(s))
            .u64("call_us", call_us);
        let ok = token_result(&mut j, w.as_ref(), &tokens.transmit);
        self.tx_in_call = w.as_ref().is_some_and(|w| w.done && w.polls == 0);
        emit("STEP", &j.finish());
        if !ok {
            return Err(EXIT_TCP);
        }

        self.receive_echo(child, &mut tokens.receive, total, emit)?;

        // Graceful close (the peer already sent its FIN: passive close).
        let (s, call_us, w) = self.submit_and_wait(child, &mut tokens.close);
        let mut j = JsonObject::new();
        j.str("step", "close")
            .str("call", st(s))
            .u64("call_us", call_us);
        let ok = token_result(&mut j, w.as_ref(), &tokens.close);
        emit("STEP", &j.finish());
        if ok { Ok(()) } else { Err(EXIT_TCP) }
    }

    /// Receives until every byte came back, then once more for the FIN, at
    /// most `total / 64 + 16` Receives.
    fn receive_echo(
        &mut self,
        child: &RawChild<P>,
        rx: &mut RawToken<'_, P::Boot>,
        total: usize,
        emit: Emit<'_>,
    ) -> Result<(), u8> {
        let boot = self.p.boot();
        let mut echoed: Vec<u8> = Vec::with_capacity(total);
        let mut mismatch = false;
        let mut fin = false;
        let cap = self.cfg.rx_buffer as usize;
        let fail = |j: &mut JsonObject, emit: Emit<'_>| {
            j.bool("ok", false);
            emit("STEP", &j.finish());
            Err(EXIT_TCP)
        };
        for _ in 0..total / 64 + 16 {
            if rx.rearm_receive(cap).is_err() {
                let mut j = JsonObject::new();
                j.str("step", "receive")
                    .str("error", "token still in flight");
                return fail(&mut j, emit);
            }
            let s = rx.submit(child.tcp());
            if s == CONNECTION_FIN {
                self.fin_seen_as = "receive_return";
                fin = true;
                break;
            }
            if s != Status::SUCCESS {
                let mut j = JsonObject::new();
                j.str("step", "receive").str("call", st(s));
                return fail(&mut j, emit);
            }
            let w = poll_until(boot, child.tcp(), self.cfg.wait_limit(), || rx.done());
            if !w.done {
                let mut j = JsonObject::new();
                j.str("step", "receive")
                    .str("error", "timeout")
                    .u64("polls", w.polls)
                    .u64("received", echoed.len() as u64);
                return fail(&mut j, emit);
            }
            let status = rx.status();
            if status == CONNECTION_FIN {
                self.fin_seen_as = "token_status";
                fin = true;
                break;
            }
            let got = rx.received();
            if status != Status::SUCCESS {
                let mut j = JsonObject::new();
                j.str("step", "receive")
                    .str("token", st(status))
                    .u64("data_length", got.len() as u64);
                return fail(&mut j, emit);
            }
            self.rx_sizes.push(got.len() as u64);
            self.rx_polls.push(w.polls);
            self.rx_wait_us.push(w.ns / 1000);
            echoed.extend_from_slice(got);
            if echoed.len() > total {
                mismatch = true;
            }
        }
        self.echoed = echoed.len() as u64;
        let mut sent = vec![0; total];
        fill_payload(&mut sent, self.cfg.payload_len);
        mismatch |= echoed != sent;
        let mut j = JsonObject::new();
        j.str("step", "receive")
            .u64("receives", self.rx_sizes.len() as u64)
            .u64("bytes", echoed.len() as u64)
            .u64(
                "max_segment",
                self.rx_sizes.iter().copied().max().unwrap_or(0),
            )
            .str("fin_seen_as", self.fin_seen_as)
            .bool("match", !mismatch)
            .bool("ok", fin && !mismatch);
        emit("STEP", &j.finish());
        if mismatch {
            return Err(EXIT_MISMATCH);
        }
        if !fin {
            return Err(EXIT_TCP);
        }
        Ok(())
    }
}

/// Adds a token's wait figures and status; true if it completed SUCCESS.
fn token_result<B: BootServices>(
    j: &mut JsonObject,
    w: Option<&Waited>,
    token: &RawToken<'_, B>,
) -> bool {
    let Some(w) = w else {
        j.bool("ok", false);
        return false;
    };
    j.u64("polls", w.polls).u64("wait_us", w.ns / 1000);
    if !w.done {
        j.str("error", "timeout").bool("ok", false);
        return false;
    }
    let s = token.status();
    j.str("token", st(s)).bool("ok", s == Status::SUCCESS);
    s == Status::SUCCESS
}
