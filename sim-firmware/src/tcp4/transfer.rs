//! Moving data between the caller's tokens and the connection: Transmit
//! bytes are cut into segments as EDK2's sender allows (`sender`), Receive completes per
//! segment with min(available, DataLength), and the FIN ends pending
//! Receives once the data before it is read.

use efisock::firmware::status::CONNECTION_FIN;
use efisock::firmware::{Status, Tcp4ReceiveData};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use crate::breach::BreachKind;
use crate::tokens;
use crate::world::Env;

use super::peer_view::{PeerView, SynOptions, flow_of};
use super::pending::{Kind, Pending};
use super::sender::{Cut, LOW_WATER, Sender, data_to_send};
use super::{Edk2Tcp4, synchronized};

impl Edk2Tcp4 {
    /// Cut pending Transmit bytes into segments as EDK2's `TcpToSendData`
    /// would (see `sender`): each cut is handed to smoltcp, which sends it
    /// at once; a Transmit completes when its last byte is cut
    /// (`SockDataSent`). Several segments leave only while each is a full
    /// MSS (TcpOutput.c l.948).
    pub(super) fn segment_transmits(&mut self, cx: &mut Env, id: usize, h: SocketHandle) {
        let now = cx.now;
        if !synchronized(self.sockets.get::<tcp::Socket>(h).state()) {
            return;
        }
        self.sync_sender(id, h, now);
        self.admit_waiting_transmits(id);
        loop {
            if !self.sockets.get::<tcp::Socket>(h).may_send() {
                return;
            }
            let c = self.children.get_mut(&id).expect("exists");
            let unsent = c.tokens.unsegmented() as u64;
            let nagle = c.cfg.expect("configured").opts.nagle;
            let force = c.sender.persist_due(now);
            let cut = data_to_send(&c.sender.inputs(unsent, nagle, force));
            match cut {
                Cut::Send(n) => {
                    c.sender.stop_persist();
                    self.stop_zero_window_probes(id, h);
                    let handed = self.hand_to_smoltcp(cx, id, h, n as usize);
                    self.egress(cx);
                    let c = self.children.get_mut(&id).expect("exists");
                    if handed as u64 != c.sender.smss || handed < n as usize {
                        return;
                    }
                }
                Cut::Idle => {
                    c.sender.stop_persist();
                    self.stop_zero_window_probes(id, h);
                    return;
                }
                Cut::Persist => {
                    let s = &mut c.sender;
                    if s.flight() > 0 {
                        // The retransmission timer runs; the next ACK decides.
                        s.stop_persist();
                        return;
                    }
                    let probe = force && s.wnd == 0;
                    s.arm_persist(now);
                    if probe {
                        self.probe_zero_window(cx, id, h);
                    }
                    return;
                }
            }
        }
    }

    /// The persist timer expired against a zero window. EDK2 sends an ACK
    /// without data at SND.NXT - 1 (TcpOutput.c `TcpSendZeroProbe`) and
    /// re-arms the timer, doubling up to 60 s, without end. smoltcp's
    /// keep-alive segment (SND.NXT - 1 with one byte the peer already has)
    /// draws the same ACK with the peer's window and cuts nothing of the
    /// stream: its interval follows the persist period, and setting it
    /// while smoltcp's keep-alive timer is unset sends the first at once.
    fn probe_zero_window(&mut self, cx: &mut Env, id: usize, h: SocketHandle) {
        let c = self.children.get_mut(&id).expect("exists");
        c.sender.probing = true;
        let period = smoltcp::time::Duration::from_micros(c.sender.probe_ns / 1000);
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .set_keep_alive(Some(period));
        cx.trace(format!("child {id}: zero-window probe"));
        self.egress(cx);
    }

    /// The window opened or nothing waits: no more probes.
    fn stop_zero_window_probes(&mut self, id: usize, h: SocketHandle) {
        let c = self.children.get_mut(&id).expect("exists");
        if std::mem::take(&mut c.sender.probing) {
            self.sockets.get_mut::<tcp::Socket>(h).set_keep_alive(None);
        }
    }

    /// Bring child `id`'s sender up to date: set it up from the peer's SYN
    /// on the first look at a connection, then take the window and ACK
    /// progress of the frames since, and run the retransmission timer.
    fn sync_sender(&mut self, id: usize, h: SocketHandle, now: u64) {
        let sock = self.sockets.get::<tcp::Socket>(h);
        let flow = flow_of(sock);
        let local_ts = sock.timestamp_enabled();
        let queued = sock.send_queue() as u64;
        let c = self.children.get_mut(&id).expect("exists");
        if c.sender.socket != Some(h) {
            c.sender = Sender {
                socket: Some(h),
                ..Sender::default()
            };
        }
        let mut fallback = PeerView {
            syn: Some(SynOptions::default()),
            wnd: u64::from(u16::MAX),
            ..PeerView::default()
        };
        let view = match flow.and_then(|f| self.peers.get_mut(&f)) {
            Some(v) if v.syn.is_some() => v,
            // No SYN seen (not reachable through `one_frame`): the
            // defaults of an option-less SYN keep the connection moving.
            _ => &mut fallback,
        };
        let s = &mut c.sender;
        if !s.ready {
            s.init_from_syn(view.syn.expect("checked"), local_ts, view.wnd, now);
        }
        let una = s.nxt.saturating_sub(queued);
        s.on_peer(view, una, now);
        s.check_rto(now);
    }

    /// Waiting Transmits join the send buffer, in order, while at least
    /// `LOW_WATER` of it is free (SockImpl.c `SockProcessSndToken`); a
    /// token joins whole, so unsent bytes may exceed the buffer by one token.
    fn admit_waiting_transmits(&mut self, id: usize) {
        let c = self.children.get_mut(&id).expect("exists");
        let size = c.cfg.expect("configured").opts.snd_buf as usize;
        let mut unsent = c.tokens.unsegmented();
        for p in c.tokens.txs.iter_mut().filter(|p| !p.admitted) {
            if size.saturating_sub(unsent) < LOW_WATER {
                break;
            }
            p.admitted = true;
            unsent += p.len - p.offset;
        }
    }

    /// Hand the next `n` unsent bytes of child `id`'s admitted Transmits to
    /// smoltcp; each Transmit whose last byte goes completes. Returns the
    /// bytes handed.
    fn hand_to_smoltcp(&mut self, cx: &mut Env, id: usize, h: SocketHandle, n: usize) -> usize {
        let mut handed = 0;
        while handed < n {
            let Some(front) = self
                .children
                .get(&id)
                .and_then(|c| c.tokens.txs.front().filter(|p| p.admitted).cloned())
            else {
                break;
            };
            let k = (n - handed).min(front.len - front.offset);
            // The firmware reads the caller's data now: it must be unchanged.
            self.verify(cx, &front, "before segmentation");
            // SAFETY: pending transmit buffers are readable (trait contract).
            let bytes = unsafe { tokens::gather(&front.frags, front.offset, k) };
            let m = self
                .sockets
                .get_mut::<tcp::Socket>(h)
                .send_slice(&bytes)
                .unwrap_or(0);
            cx.now += (m as u64 * cx.cfg.cost.per_byte_copy_ps) / 1000;
            handed += m;
            let c = self.children.get_mut(&id).expect("exists");
            c.sender.nxt += m as u64;
            let f = c.tokens.txs.front_mut().expect("front");
            f.offset += m;
            if f.offset >= f.len {
                let p = c.tokens.txs.pop_front().expect("front");
                self.complete(cx, p, Status::SUCCESS);
            }
            if m < k {
                break;
            }
        }
        handed
    }

    /// Complete pending receives from the received data, one token per
    /// pass with min(available, DataLength) bytes.
    pub(super) fn deliver_receives(&mut self, cx: &mut Env, id: usize, h: SocketHandle) {
        while let Some(front) = self
            .children
            .get(&id)
            .and_then(|c| c.tokens.rxs.front().cloned())
        {
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
            let p = c.tokens.rxs.pop_front().expect("front");
            self.verify(cx, &p, "before delivery");
            // SAFETY: pending receive data, table and buffers are writable.
            unsafe { tokens::scatter(p.data as *mut Tcp4ReceiveData, &p.frags, &buf) };
            // The scatter rewrote lengths; the caller's view is now final.
            let mut p = p;
            p.kind = Kind::Receive;
            self.finish_rx(cx, p);
        }
    }

    /// After the peer's FIN and the last byte before it, every pending
    /// Receive completes with CONNECTION_FIN.
    pub(super) fn complete_receives_at_fin(&mut self, cx: &mut Env, id: usize, h: SocketHandle) {
        let c = self.children.get_mut(&id).expect("exists");
        let queued = self.sockets.get::<tcp::Socket>(h).recv_queue();
        if c.observed.peer_fin && queued == 0 && !c.tokens.rxs.is_empty() {
            let ps: Vec<Pending> = c.tokens.rxs.drain(..).collect();
            for p in ps {
                self.complete(cx, p, CONNECTION_FIN);
            }
        }
    }
}
