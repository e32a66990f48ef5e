//! Completing tokens: status, trace, and when the event is signalled;
//! injected completions.

use efisock::firmware::status::CONNECTION_RESET;
use efisock::firmware::{Status, Tcp4CompletionToken};
use smoltcp::socket::tcp::{self, State};

use crate::decide::DecisionKind;
use crate::tokens;
use crate::world::Env;

use super::Edk2Tcp4;
use super::pending::Pending;

impl Edk2Tcp4 {
    /// Complete a token: re-check what the caller must not have touched,
    /// write its status, then signal its event (now or at the next tick).
    pub(super) fn complete(&mut self, cx: &mut Env, p: Pending, st: Status) {
        self.verify(cx, &p, "at completion");
        // SAFETY: `p.token` is a pending token of this kind (trait contract);
        // every token type starts with its completion token.
        unsafe { tokens::set_status(p.token as *mut Tcp4CompletionToken, st) };
        cx.trace(format!(
            "complete {} event {:#x} {}",
            p.kind.name(),
            p.event,
            efisock::firmware::status::name(st)
        ));
        tracing::debug!(target: "efisock::sim", token = p.kind.name(), status = efisock::firmware::status::name(st), t_ns = cx.now);
        self.signal_completion(cx, p.event);
    }

    /// Signal a completion's event now, or at the next MNP tick / Poll: a
    /// completion produced inside a Tcp4 call is notified as the call
    /// returns when the profile says so, unless a `CompletionInCall`
    /// decision makes it late (the DPC ran after the call).
    pub(super) fn signal_completion(&mut self, cx: &mut Env, event: usize) {
        let late = self.in_call
            && (!cx.cfg.quirks.completions_inside_call || {
                let p = cx.p_late_completion();
                cx.decider
                    .choose_weighted(DecisionKind::CompletionInCall, &[p])
                    == 1
            });
        if late {
            self.defer_signal(cx, event);
        } else {
            let _ = cx.signal(event);
        }
    }

    /// An injected completion (`StatusInjection`) for a pending token of
    /// child `only_child` / with event `only_event` (None: any). Legal ones:
    /// - CONNECTION_RESET for a pending Receive/Transmit of a synchronized
    ///   connection: what a peer RST does (TcpInput.c `TcpInput` → RST in a
    ///   synchronized state sets `SOCK_ERROR(EFI_CONNECTION_RESET)` and
    ///   closes; SockImpl.c `SockConnFlush` completes pending tokens with
    ///   `SockError`). The sim makes it real: it aborts its socket, which
    ///   sends an RST to the peer, and the reset path then runs as for a
    ///   received RST (CLOSED, stored error, tokens flushed).
    /// - TIMEOUT for a pending Connect still in SYN_SENT: what the connect
    ///   timer does (TcpTimer.c `TcpConnectTimeout`: `SOCK_ERROR(EFI_TIMEOUT)`
    ///   then `TcpClose`), via the sim's own connect-timeout path.
    pub fn inject_completion(
        &mut self,
        cx: &mut Env,
        only_child: Option<usize>,
        only_event: Option<usize>,
    ) {
        let p = cx.cfg.faults.inject;
        if p <= 0.0 {
            return;
        }
        let mut cands: Vec<(usize, &'static str, Status)> = Vec::new();
        for (&id, c) in &self.children {
            if only_child.is_some_and(|o| o != id) {
                continue;
            }
            let Some(h) = c.sock else { continue };
            let st = self.sockets.get::<tcp::Socket>(h).state();
            let ev_ok = |e: usize| only_event.is_none_or(|o| o == e);
            if st == State::SynSent && c.tokens.connect().is_some_and(|t| ev_ok(t.event)) {
                cands.push((id, "Connect", Status::TIMEOUT));
            }
            let live = matches!(
                st,
                State::Established | State::CloseWait | State::FinWait1 | State::FinWait2
            );
            if live && !c.local_close.fin_queued {
                if c.tokens.rxs.iter().any(|t| ev_ok(t.event)) {
                    cands.push((id, "Receive", CONNECTION_RESET));
                } else if c.tokens.txs.iter().any(|t| ev_ok(t.event)) {
                    cands.push((id, "Transmit", CONNECTION_RESET));
                }
            }
        }
        if cands.is_empty() {
            return;
        }
        let each = p / cands.len() as f64;
        let probs: Vec<f64> = cands.iter().map(|_| each).collect();
        let v = cx
            .decider
            .choose_weighted(DecisionKind::StatusInjection, &probs);
        if v == 0 {
            return;
        }
        let (id, call, st) = cands[v - 1];
        cx.log_injection(call, st);
        if st == Status::TIMEOUT {
            cx.trace(format!("child {id}: injected connect timeout"));
            let c = self.children.get_mut(&id).expect("candidate");
            c.error = Some(Status::TIMEOUT);
            self.drop_socket(id);
            self.flush_tokens(cx, id, Status::TIMEOUT, true);
        } else {
            // The reset path below classifies by the state it interrupts:
            // record the current (synchronized) one, so the error is
            // CONNECTION_RESET as for a peer RST in that state.
            let c = self.children.get_mut(&id).expect("candidate");
            let h = c.sock.expect("candidate has a socket");
            c.observed.last_state = Some(self.sockets.get::<tcp::Socket>(h).state());
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.egress(cx); // the RST leaves now
            cx.trace(format!("child {id}: injected reset, RST sent"));
            self.service(cx, id);
        }
    }

    /// Complete every pending token of child `id` with `st` (SockConnFlush);
    /// the Close token too if `include_close`.
    pub(super) fn flush_tokens(
        &mut self,
        cx: &mut Env,
        id: usize,
        st: Status,
        include_close: bool,
    ) {
        let Some(c) = self.children.get_mut(&id) else {
            return;
        };
        let all = c.tokens.take_all(include_close);
        for p in all {
            self.complete(cx, p, st);
        }
    }

    /// Complete a Receive whose data was just written.
    pub(super) fn finish_rx(&mut self, cx: &mut Env, p: Pending) {
        // Lengths were legitimately rewritten by the firmware: no re-verify.
        // SAFETY: pending token, see `complete`.
        unsafe { tokens::set_status(p.token as *mut Tcp4CompletionToken, Status::SUCCESS) };
        cx.trace(format!("complete receive event {:#x} SUCCESS", p.event));
        self.signal_completion(cx, p.event);
    }
}
