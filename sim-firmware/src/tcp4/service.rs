//! Per-frame work for every child (the DPCs).

use super::*;

impl Edk2Tcp4 {
    pub(super) fn drop_socket(&mut self, id: usize) {
        let Some(c) = self.children.get_mut(&id) else {
            return;
        };
        if let Some(h) = c.sock.take() {
            self.sockets.remove(h);
        }
        if let Some(l) = c.listener.take() {
            for h in l.pool {
                let st = self.sockets.get::<tcp::Socket>(h).state();
                if st == State::Listen {
                    self.sockets.remove(h);
                }
                // Half-open children stay: EDK2 does not destroy them (code-read).
            }
        }
        c.linger_deadline = None;
        c.stall = None;
    }

    // ---- DPC: progress every child -----------------------------------

    pub fn service_all(&mut self, cx: &mut Env) {
        let ids: Vec<usize> = self.children.keys().copied().collect();
        for id in ids {
            self.service(cx, id);
        }
    }

    pub(super) fn service(&mut self, cx: &mut Env, id: usize) {
        if self.children.get(&id).is_some_and(|c| c.listener.is_some()) {
            self.service_listener(cx, id);
            return;
        }
        let now = cx.now;
        let Some(c) = self.children.get_mut(&id) else {
            return;
        };
        // A connect that can never send its SYN (graceful close earlier).
        if c.sock.is_none() {
            if c.connect.is_some() && c.connect_deadline.is_some_and(|d| d <= now) {
                c.connect_deadline = None;
                let p = c.connect.take().expect("checked");
                c.error = Some(Status::TIMEOUT);
                self.complete(cx, p, Status::TIMEOUT);
            }
            return;
        }
        let h = c.sock.expect("checked");
        let st = self.sockets.get::<tcp::Socket>(h).state();
        let prev = c.prev.replace(st);
        // Connect completion / timeout.
        if c.connect.is_some() {
            if synchronized(st) {
                c.connect_deadline = None;
                let p = c.connect.take().expect("checked");
                self.complete(cx, p, Status::SUCCESS);
            } else if st == State::SynSent && c.connect_deadline.is_some_and(|d| d <= now) {
                c.error = Some(Status::TIMEOUT);
                self.drop_socket(id);
                self.flush_tokens(cx, id, Status::TIMEOUT, true);
                return;
            }
        }
        let c = self.children.get_mut(&id).expect("exists");
        // Reset detection: Closed without passing through LAST_ACK/TIME_WAIT.
        if st == State::Closed && !c.reset_seen {
            let was = prev.unwrap_or(State::Closed);
            let reset = !matches!(was, State::Closed | State::LastAck | State::TimeWait);
            if reset {
                c.reset_seen = true;
                let err = match was {
                    State::SynSent if !cx.cfg.quirks.connect_closed_port_reports_reset => {
                        CONNECTION_REFUSED
                    }
                    State::SynReceived => CONNECTION_REFUSED,
                    _ => CONNECTION_RESET,
                };
                c.error = Some(err);
                cx.trace(format!("child {id}: reset in {was:?}"));
                // SockConnClosed: the Close token (if any) gets SUCCESS, the
                // others the socket error (SockConnFlush).
                if let Some(p) = self.children.get_mut(&id).and_then(|c| c.close.take()) {
                    self.complete(cx, p, Status::SUCCESS);
                }
                self.flush_tokens(cx, id, err, true);
                self.drop_socket(id);
                return;
            }
        }
        if matches!(
            st,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        ) {
            c.fin_in = true;
        }
        // Transmit: copy into the send buffer (segmentation), in order.
        while let Some(front) = self.children.get(&id).and_then(|c| c.txs.front().cloned()) {
            let sock = self.sockets.get::<tcp::Socket>(h);
            if !sock.may_send() {
                break;
            }
            let want = front.len - front.offset;
            let room = sock.send_capacity() - sock.send_queue();
            let k = want.min(room);
            if k == 0 {
                break;
            }
            // The firmware reads the caller's data now: it must be unchanged.
            self.verify(cx, &front, "before segmentation");
            // SAFETY: pending transmit buffers are readable (trait contract).
            let bytes = unsafe { tokens::gather(&front.frags, front.offset, k) };
            let sock = self.sockets.get_mut::<tcp::Socket>(h);
            let n = sock.send_slice(&bytes).unwrap_or(0);
            cx.now += (n as u64 * cx.cfg.cost.per_byte_copy_ps) / 1000;
            let c = self.children.get_mut(&id).expect("exists");
            let f = c.txs.front_mut().expect("front");
            f.offset += n;
            if f.offset >= f.len {
                let p = c.txs.pop_front().expect("front");
                self.complete(cx, p, Status::SUCCESS);
            } else if n < k || n == 0 {
                break;
            }
        }
        // Receive: per-segment completions with min(available, DataLength).
        while let Some(front) = self.children.get(&id).and_then(|c| c.rxs.front().cloned()) {
            let sock = self.sockets.get_mut::<tcp::Socket>(h);
            let avail = sock.recv_queue();
            if avail == 0 {
                break;
            }
            let k = avail.min(front.len);
            // SAFETY: pending receive buffers are readable.
            if !unsafe { tokens::canary_intact(&front.frags, k) } {
                cx.breach(
                    BreachKind::ModifiedWhileOwned,
                    format!("receive token {:#x}: caller wrote into its receive buffer while the firmware owned it", front.token),
                );
            }
            let mut buf = vec![0u8; k];
            let n = self
                .sockets
                .get_mut::<tcp::Socket>(h)
                .recv_slice(&mut buf)
                .unwrap_or(0);
            buf.truncate(n);
            cx.now += (n as u64 * cx.cfg.cost.per_byte_copy_ps) / 1000;
            let c = self.children.get_mut(&id).expect("exists");
            let p = c.rxs.pop_front().expect("front");
            self.verify(cx, &p, "before delivery");
            // SAFETY: pending receive data, table and buffers are writable.
            unsafe { tokens::scatter(p.data as *mut Tcp4ReceiveData, &p.frags, &buf) };
            // The scatter rewrote lengths; the caller's view is now final.
            let mut p = p;
            p.kind = Kind::Receive;
            self.finish_rx(cx, p);
        }
        let c = self.children.get_mut(&id).expect("exists");
        let queued = self.sockets.get::<tcp::Socket>(h).recv_queue();
        if c.fin_in && queued == 0 && !c.rxs.is_empty() {
            let ps: Vec<Pending> = c.rxs.drain(..).collect();
            for p in ps {
                self.complete(cx, p, CONNECTION_FIN);
            }
        }
        // Retransmission give-up (DataRetries): no ACK progress for the
        // whole back-off schedule closes the connection with TIMEOUT.
        let sock = self.sockets.get::<tcp::Socket>(h);
        let fin_out = matches!(st, State::FinWait1 | State::Closing | State::LastAck);
        let outstanding = sock.send_queue() + usize::from(fin_out);
        let c = self.children.get_mut(&id).expect("exists");
        c.stall = match c.stall {
            _ if outstanding == 0 || !synchronized(st) => None,
            Some((n, since)) if n == outstanding => Some((n, since)),
            _ => Some((outstanding, now)),
        };
        let retries = c.cfg.expect("configured").opts.data_retries;
        if c.stall
            .is_some_and(|(_, since)| now >= since + retransmit_budget_ns(retries))
        {
            c.error = Some(Status::TIMEOUT);
            cx.trace(format!("child {id}: retransmissions exhausted"));
            self.drop_socket(id);
            self.flush_tokens(cx, id, Status::TIMEOUT, true);
            return;
        }
        // Data after the local Close: EDK2 resets (or, quirk off, discards).
        let c = self.children.get_mut(&id).expect("exists");
        let locally_closed = matches!(
            st,
            State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait | State::LastAck
        );
        if c.close_issued && locally_closed {
            let sock = self.sockets.get_mut::<tcp::Socket>(h);
            if sock.recv_queue() > 0 {
                if cx.cfg.quirks.data_after_close_sends_rst {
                    sock.abort();
                    self.egress(cx);
                    cx.trace(format!("child {id}: data after Close, RST"));
                    self.drop_socket(id);
                    self.flush_tokens(cx, id, Status::ABORTED, false);
                    if let Some(p) = self.children.get_mut(&id).and_then(|c| c.close.take()) {
                        self.complete(cx, p, Status::SUCCESS);
                    }
                    return;
                }
                let n = sock.recv_queue();
                let mut sink = vec![0u8; n];
                let _ = sock.recv_slice(&mut sink);
            }
        }
        // Close: FIN after queued transmits, complete when CLOSED.
        let c = self.children.get_mut(&id).expect("exists");
        if c.close.is_some() {
            if !c.close_issued && c.txs.is_empty() {
                c.close_issued = true;
                self.sockets.get_mut::<tcp::Socket>(h).close();
            }
            let c = self.children.get_mut(&id).expect("exists");
            let cfg = c.cfg.expect("configured");
            match st {
                State::Closed => {
                    c.graceful_done = true;
                    self.drop_socket(id);
                    self.flush_tokens(cx, id, Status::ABORTED, false);
                    if let Some(p) = self.children.get_mut(&id).and_then(|c| c.close.take()) {
                        self.complete(cx, p, Status::SUCCESS);
                    }
                }
                State::TimeWait | State::FinWait2 if c.linger_deadline.is_none() => {
                    let secs = if st == State::TimeWait {
                        cfg.opts.tw_timeout_s
                    } else {
                        cfg.opts.fin_timeout_s
                    };
                    let until = now + u64::from(secs) * SEC;
                    c.linger_deadline = Some(until);
                    if st == State::TimeWait && cx.cfg.quirks.time_wait_holds_port {
                        self.port_holds.insert(cfg.port, until);
                    }
                }
                State::FinWait2 | State::TimeWait
                    if c.linger_deadline.is_some_and(|d| d <= now) =>
                {
                    c.graceful_done = true;
                    self.drop_socket(id);
                    self.flush_tokens(cx, id, Status::ABORTED, false);
                    if let Some(p) = self.children.get_mut(&id).and_then(|c| c.close.take()) {
                        self.complete(cx, p, Status::SUCCESS);
                    }
                }
                _ => {}
            }
        }
    }
}
