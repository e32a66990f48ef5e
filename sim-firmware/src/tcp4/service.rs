//! Per-frame work for every child (what EDK2 does in its DPCs and timers
//! after a frame): the connection-level steps — connect completion, reset
//! detection, FIN noticed, the retransmission watchdog. Data movement is in
//! `transfer`, the close path in `closing`.
//!
//! Each step that may end the connection returns `ControlFlow::Break` when
//! the child's socket is gone, so the remaining steps do not run.

use std::ops::ControlFlow;

use efisock::firmware::Status;
use efisock::firmware::status::{CONNECTION_REFUSED, CONNECTION_RESET};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};

use crate::world::Env;

use super::child::Stall;
use super::{Edk2Tcp4, retransmit_budget_ns, synchronized};

impl Edk2Tcp4 {
    /// Progress every child, in id order.
    pub fn service_all(&mut self, cx: &mut Env) {
        let ids: Vec<usize> = self.children.keys().copied().collect();
        for id in ids {
            self.service(cx, id);
        }
    }

    /// Progress one child: a listener hands out connections; a connection
    /// runs its steps in EDK2's order against the socket state seen now.
    pub(super) fn service(&mut self, cx: &mut Env, id: usize) {
        if self.children.get(&id).is_some_and(|c| c.listener.is_some()) {
            self.service_listener(cx, id);
            return;
        }
        // Deadlines are judged against the time the step began, not the
        // time the copies below have advanced the clock to.
        let now = cx.now;
        let Some(c) = self.children.get_mut(&id) else {
            return;
        };
        let Some(h) = c.sock else {
            self.expire_socketless_connect(cx, id, now);
            return;
        };
        let st = self.sockets.get::<tcp::Socket>(h).state();
        let prev = c.observed.last_state.replace(st);
        let _ = self.service_connection(cx, id, h, st, prev, now);
    }

    /// The steps, in order; each that ends the connection stops the rest.
    fn service_connection(
        &mut self,
        cx: &mut Env,
        id: usize,
        h: SocketHandle,
        st: State,
        prev: Option<State>,
        now: u64,
    ) -> ControlFlow<()> {
        self.retransmit_syn(cx, id, st == State::SynSent);
        self.settle_connect(cx, id, st, now)?;
        self.detect_reset(cx, id, st, prev)?;
        self.note_peer_fin(id, st);
        // Before any Receive takes the data: EDK2 resets on data after the
        // local Close whether or not a Receive is pending (TcpInput.c
        // l.1459-1467; measured: probe/data_after_close_resets_armed).
        self.discard_data_after_close(cx, id, h, st)?;
        self.segment_transmits(cx, id, h);
        self.deliver_receives(cx, id, h);
        self.complete_receives_at_fin(cx, id, h);
        self.watch_retransmissions(cx, id, h, st, now)?;
        self.progress_close(cx, id, h, st, now);
        ControlFlow::Continue(())
    }

    /// A connect that can never send its SYN (the child closed gracefully
    /// before, see `connect`) times out at its deadline.
    fn expire_socketless_connect(&mut self, cx: &mut Env, id: usize, now: u64) {
        let c = self.children.get_mut(&id).expect("caller checked");
        if c.tokens.connect_deadline().is_some_and(|d| d <= now) {
            let p = c.tokens.take_connect().expect("checked");
            c.error = Some(Status::TIMEOUT);
            self.complete(cx, p, Status::TIMEOUT);
        }
    }

    /// Connect completes once the handshake is done; a SYN_SENT past the
    /// ConnectionTimeout ends the connection with TIMEOUT
    /// (TcpTimer.c `TcpConnectTimeout`).
    fn settle_connect(&mut self, cx: &mut Env, id: usize, st: State, now: u64) -> ControlFlow<()> {
        let c = self.children.get_mut(&id).expect("exists");
        if !c.tokens.connecting() {
            return ControlFlow::Continue(());
        }
        if synchronized(st) {
            let p = c.tokens.take_connect().expect("checked");
            self.complete(cx, p, Status::SUCCESS);
        } else if st == State::SynSent && c.tokens.connect_deadline().is_some_and(|d| d <= now) {
            c.error = Some(Status::TIMEOUT);
            self.drop_socket(id);
            self.flush_tokens(cx, id, Status::TIMEOUT, true);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// A socket that reached CLOSED without passing through LAST_ACK or
    /// TIME_WAIT was reset: store the error EDK2 would (refused while
    /// connecting, reset once synchronized, none in CLOSING) and flush
    /// every token with it (ABORTED when none is stored).
    fn detect_reset(
        &mut self,
        cx: &mut Env,
        id: usize,
        st: State,
        prev: Option<State>,
    ) -> ControlFlow<()> {
        let c = self.children.get_mut(&id).expect("exists");
        if st != State::Closed || c.observed.reset_reported {
            return ControlFlow::Continue(());
        }
        let was = prev.unwrap_or(State::Closed);
        if matches!(was, State::Closed | State::LastAck | State::TimeWait) {
            return ControlFlow::Continue(());
        }
        c.observed.reset_reported = true;
        let stored = reset_error(was, cx.cfg.quirks.connect_closed_port_reports_reset);
        let err = stored.unwrap_or(Status::ABORTED);
        if stored.is_some() {
            c.error = stored;
        }
        cx.trace(format!(
            "child {id}: reset in {was:?}, tokens {}",
            efisock::firmware::status::name(err)
        ));
        // SockConnClosed: the Close token (if any) gets SUCCESS, the
        // others the socket error (SockConnFlush).
        if let Some(p) = self
            .children
            .get_mut(&id)
            .and_then(|c| c.tokens.close.take())
        {
            self.complete(cx, p, Status::SUCCESS);
        }
        self.flush_tokens(cx, id, err, true);
        self.drop_socket(id);
        ControlFlow::Break(())
    }

    /// The peer's FIN is remembered: Receive reports it once the data
    /// before it has been read.
    fn note_peer_fin(&mut self, id: usize, st: State) {
        if matches!(
            st,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        ) {
            self.children
                .get_mut(&id)
                .expect("exists")
                .observed
                .peer_fin = true;
        }
    }

    /// Retransmission give-up (DataRetries): no ACK progress for the whole
    /// back-off schedule closes the connection with TIMEOUT. A peer that
    /// offers a zero window is probed without end instead.
    fn watch_retransmissions(
        &mut self,
        cx: &mut Env,
        id: usize,
        h: SocketHandle,
        st: State,
        now: u64,
    ) -> ControlFlow<()> {
        let sock = self.sockets.get::<tcp::Socket>(h);
        let fin_out = matches!(st, State::FinWait1 | State::Closing | State::LastAck);
        let outstanding = sock.send_queue() + usize::from(fin_out);
        let c = self.children.get_mut(&id).expect("exists");
        // A zero window is probed forever (TcpTimer.c `TcpProbeTimeout`
        // never gives up), so waiting on it is no stall.
        let persisting = c.sender.ready && c.sender.wnd == 0;
        c.stall = match c.stall {
            _ if outstanding == 0 || persisting || !synchronized(st) => None,
            Some(stall) if stall.outstanding == outstanding => Some(stall),
            _ => Some(Stall {
                outstanding,
                since: now,
            }),
        };
        let retries = c.cfg.expect("configured").opts.data_retries;
        if c.stall
            .is_some_and(|s| now >= s.since + retransmit_budget_ns(retries))
        {
            c.error = Some(Status::TIMEOUT);
            cx.trace(format!("child {id}: retransmissions exhausted"));
            self.drop_socket(id);
            self.flush_tokens(cx, id, Status::TIMEOUT, true);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The socket error a RST stores, by the state it ends (TcpInput.c
/// l.911-920, l.1050-1069): REFUSED in SYN_RCVD (and SYN_SENT unless the
/// profile reports a reset there), RESET in ESTABLISHED, FIN_WAIT_1/2 and
/// CLOSE_WAIT, none in CLOSING; pending tokens then get SockConnFlush's
/// default, ABORTED.
fn reset_error(was: State, closed_port_reports_reset: bool) -> Option<Status> {
    match was {
        State::SynSent if !closed_port_reports_reset => Some(CONNECTION_REFUSED),
        State::SynReceived => Some(CONNECTION_REFUSED),
        State::Closing => None,
        _ => Some(CONNECTION_RESET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_error_by_state() {
        let rows = [
            (State::SynSent, false, Some(CONNECTION_REFUSED)),
            (State::SynSent, true, Some(CONNECTION_RESET)),
            (State::SynReceived, true, Some(CONNECTION_REFUSED)),
            (State::Established, false, Some(CONNECTION_RESET)),
            (State::FinWait1, false, Some(CONNECTION_RESET)),
            (State::FinWait2, false, Some(CONNECTION_RESET)),
            (State::CloseWait, false, Some(CONNECTION_RESET)),
            (State::Closing, false, None),
        ];
        for (was, quirk, want) in rows {
            assert_eq!(reset_error(was, quirk), want, "{was:?} quirk={quirk}");
        }
    }
}
