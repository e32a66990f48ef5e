//! The close path: data arriving after the local Close, the FIN after
//! queued transmits, FIN_WAIT_2 and TIME_WAIT timers, and releasing a
//! child's sockets.

use std::ops::ControlFlow;

use efisock::firmware::Status;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, State};

use crate::world::Env;

use super::{Edk2Tcp4, SEC};

impl Edk2Tcp4 {
    /// Data after the local Close: EDK2 resets the connection (or, with
    /// the quirk off, discards the data).
    pub(super) fn discard_data_after_close(
        &mut self,
        cx: &mut Env,
        id: usize,
        h: SocketHandle,
        st: State,
    ) -> ControlFlow<()> {
        let c = self.children.get_mut(&id).expect("exists");
        let locally_closed = matches!(
            st,
            State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait | State::LastAck
        );
        if !(c.local_close.fin_queued && locally_closed) {
            return ControlFlow::Continue(());
        }
        let sock = self.sockets.get_mut::<tcp::Socket>(h);
        if sock.recv_queue() <= c.local_close.unread_at_fin {
            return ControlFlow::Continue(());
        }
        if cx.cfg.quirks.data_after_close_sends_rst {
            sock.abort();
            self.egress(cx);
            cx.trace(format!("child {id}: data after Close, RST"));
            self.release_closed(cx, id);
            return ControlFlow::Break(());
        }
        let n = sock.recv_queue();
        let mut sink = vec![0u8; n];
        let _ = sock.recv_slice(&mut sink);
        c.local_close.unread_at_fin = 0;
        ControlFlow::Continue(())
    }

    /// Close: the FIN goes out after the queued transmits; the Close token
    /// completes when the connection is CLOSED, or when the FIN_WAIT_2 /
    /// TIME_WAIT timer (FinTimeout / TimeWaitTimeout) expires.
    pub(super) fn progress_close(
        &mut self,
        cx: &mut Env,
        id: usize,
        h: SocketHandle,
        st: State,
        now: u64,
    ) {
        let c = self.children.get_mut(&id).expect("exists");
        if c.tokens.close.is_none() {
            return;
        }
        if !c.local_close.fin_queued && c.tokens.txs.is_empty() {
            c.local_close.fin_queued = true;
            let sock = self.sockets.get_mut::<tcp::Socket>(h);
            c.local_close.unread_at_fin = sock.recv_queue();
            sock.close();
        }
        let c = self.children.get_mut(&id).expect("exists");
        let cfg = c.cfg.expect("configured");
        match st {
            State::Closed => self.finish_graceful_close(cx, id),
            State::TimeWait | State::FinWait2 if c.local_close.linger_in != Some(st) => {
                let secs = if st == State::TimeWait {
                    cfg.opts.tw_timeout_s
                } else {
                    cfg.opts.fin_timeout_s
                };
                let until = now + u64::from(secs) * SEC;
                c.local_close.linger_until = Some(until);
                c.local_close.linger_in = Some(st);
            }
            State::FinWait2 | State::TimeWait
                if c.local_close.linger_until.is_some_and(|d| d <= now) =>
            {
                self.finish_graceful_close(cx, id);
            }
            _ => {}
        }
    }

    /// The graceful close is over: release the socket, abort what is still
    /// pending, complete the Close token.
    fn finish_graceful_close(&mut self, cx: &mut Env, id: usize) {
        self.children
            .get_mut(&id)
            .expect("exists")
            .local_close
            .graceful_done = true;
        self.release_closed(cx, id);
    }

    /// Release a child's socket (and a listener's idle listening sockets).
    /// The connection is gone: as EDK2's `SockConnClosed` (SockImpl.c), a
    /// pending Close completes SUCCESS first, then the other pending tokens
    /// end ABORTED.
    fn release_closed(&mut self, cx: &mut Env, id: usize) {
        self.drop_socket(id);
        if let Some(p) = self
            .children
            .get_mut(&id)
            .and_then(|c| c.tokens.close.take())
        {
            self.complete(cx, p, Status::SUCCESS);
        }
        self.flush_tokens(cx, id, Status::ABORTED, false);
    }

    pub(super) fn drop_socket(&mut self, id: usize) {
        let Some(c) = self.children.get_mut(&id) else {
            return;
        };
        if let Some(h) = c.sock.take() {
            self.forget_flow(h);
            self.sockets.remove(h);
        }
        let Some(c) = self.children.get_mut(&id) else {
            return;
        };
        c.sender = Default::default();
        c.syn_rexmit = None;
        if let Some(l) = c.listener.take() {
            for h in l.pool {
                let st = self.sockets.get::<tcp::Socket>(h).state();
                if st == State::Listen {
                    self.sockets.remove(h);
                }
                // Half-open children stay: EDK2 does not destroy them (code-read).
            }
        }
        c.local_close.linger_until = None;
        c.local_close.linger_in = None;
        c.stall = None;
    }
}
