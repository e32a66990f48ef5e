//! The Tcp4 functions that manage a child and its connection:
//! CreateChild/DestroyChild, Connect, Accept, Close and Cancel. The
//! caller (`api`) has checked the arguments and holds the instance lock.

use efisock::firmware::{
    Status, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConnectionToken, Tcp4ListenToken,
};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use crate::breach::BreachKind;
use crate::tokens;
use crate::world::Env;

use super::addressing::unconfigured_status;
use super::child::{Child, Origin};
use super::pending::{Kind, Pending};
use super::{Edk2Tcp4, SEC, synchronized};

impl Edk2Tcp4 {
    /// CreateChild: an unconfigured child the application holds.
    pub fn create_child(&mut self) -> usize {
        let id = self.next_child;
        self.next_child += 1;
        self.children.insert(id, Child::new(Origin::Created));
        Self::child_handle(id)
    }

    /// DestroyChild: a synchronized connection is reset (RST), every
    /// pending token is aborted, and the child is gone.
    pub fn destroy_child(&mut self, cx: &mut Env, id: usize) -> Status {
        let Some(c) = self.children.get_mut(&id) else {
            return Status::INVALID_PARAMETER;
        };
        if c.busy {
            return Status::ACCESS_DENIED;
        }
        if let Some(h) = c.sock {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if synchronized(s.state()) {
                s.abort();
                self.egress(cx);
            }
        }
        self.flush_tokens(cx, id, Status::ABORTED, true);
        self.drop_socket(id);
        let ip = self.children.remove(&id).map(|c| c.ip);
        // An explicit station's interface goes with its last IP child.
        if matches!(ip, Some(super::addressing::IpChild::Explicit { .. })) {
            self.sync_addresses(cx.ip4.address);
        }
        Status::SUCCESS
    }

    /// The socket state of child `id`; None without a socket.
    pub fn state_of(&self, id: usize) -> Option<State> {
        let c = &self.children[&id];
        c.sock.map(|h| self.sockets.get::<tcp::Socket>(h).state())
    }

    /// Connect: take the token, then send the SYN inside the call (none after
    /// a graceful close, as EDK2).
    ///
    /// # Safety
    /// `token` non-null and valid for reads/writes.
    pub unsafe fn connect(
        &mut self,
        cx: &mut Env,
        id: usize,
        token: *mut Tcp4ConnectionToken,
    ) -> Status {
        let c = &self.children[&id];
        let Some(cfg) = c.cfg else {
            return unconfigured_status(c.no_mapping);
        };
        if !cfg.active || c.is_passive() || c.sock.is_some() || c.tokens.connecting() {
            return Status::ACCESS_DENIED;
        }
        let graceful_done = c.local_close.graceful_done;
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        let p = Pending::token_only(
            Kind::Connect,
            token as usize,
            event,
            size_of::<Tcp4ConnectionToken>(),
        );
        self.check_pool(cx, &p);
        let deadline = cx.now + u64::from(cfg.opts.conn_timeout_s) * SEC;
        let c = self.children.get_mut(&id).expect("exists");
        c.tokens.start_connect(p, deadline);
        c.observed.reset_reported = false;
        c.observed.peer_fin = false;
        if !cx.cfg.quirks.stored_error_leaks_into_next_connection {
            c.error = None;
        }
        if graceful_done {
            // EDK2 never clears the FIN control flags: no SYN goes out (code-read).
            cx.trace(format!(
                "child {id}: connect after graceful close sends no SYN"
            ));
            return Status::SUCCESS;
        }
        let mut s = Self::new_socket(&cfg);
        let ep = IpEndpoint::new(IpAddress::Ipv4(cfg.remote), cfg.remote_port);
        let local = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(cfg.station)),
            port: cfg.port,
        };
        if s.connect(self.iface.context(), ep, local).is_err() {
            let c = self.children.get_mut(&id).expect("exists");
            c.tokens.take_connect();
            return Status::INVALID_PARAMETER;
        }
        let h = self.sockets.add(s);
        let c = self.children.get_mut(&id).expect("exists");
        c.sock = Some(h);
        c.observed.last_state = Some(State::SynSent);
        self.egress(cx); // SYN inside the call
        Status::SUCCESS
    }

    /// Accept: queue the token; an established child completes it at once.
    ///
    /// # Safety
    /// `token` non-null and valid.
    pub unsafe fn accept(
        &mut self,
        cx: &mut Env,
        id: usize,
        token: *mut Tcp4ListenToken,
    ) -> Status {
        let c = &self.children[&id];
        if c.cfg.is_none() {
            return unconfigured_status(c.no_mapping);
        }
        if c.listener.is_none() {
            return Status::ACCESS_DENIED;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        // Injected: no established child to hand over, so EDK2 buffers the
        // token and that allocation fails (SockInterface.c `SockAccept`:
        // `SockBufferToken` == NULL → EFI_OUT_OF_RESOURCES, nothing else).
        if self.children[&id]
            .listener
            .as_ref()
            .is_some_and(|l| l.ready.is_empty())
        {
            if let Some(st) = cx.inject("Accept", &[Status::OUT_OF_RESOURCES]) {
                return st;
            }
        }
        let p = Pending::token_only(
            Kind::Accept,
            token as usize,
            event,
            size_of::<Tcp4ListenToken>(),
        );
        self.check_pool(cx, &p);
        self.children
            .get_mut(&id)
            .expect("exists")
            .tokens
            .accepts
            .push_back(p);
        self.service_listener(cx, id);
        Status::SUCCESS
    }

    /// Close: abortive (RST or nothing to close) completes inside the call;
    /// graceful sends the FIN after queued transmits and completes later.
    ///
    /// # Safety
    /// `token` non-null and valid.
    pub unsafe fn close(&mut self, cx: &mut Env, id: usize, token: *mut Tcp4CloseToken) -> Status {
        let c = &self.children[&id];
        if c.cfg.is_none() {
            return unconfigured_status(c.no_mapping);
        }
        if c.tokens.close.is_some() {
            return Status::ACCESS_DENIED;
        }
        let sock = c.sock;
        // SAFETY: caller-vouched token.
        let (event, abort) = unsafe {
            (
                tokens::event_of(token as *const Tcp4CompletionToken),
                bool::from((*token).abort_on_close),
            )
        };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        let p = Pending::token_only(
            Kind::Close,
            token as usize,
            event,
            size_of::<Tcp4CloseToken>(),
        );
        self.check_pool(cx, &p);
        let st = self.state_of(id);
        let is_listener = self.children[&id].listener.is_some();
        let unread = sock.is_some_and(|h| self.sockets.get::<tcp::Socket>(h).recv_queue() > 0);
        let rst = abort || (unread && cx.cfg.quirks.close_with_unread_data_sends_rst);
        if is_listener || matches!(st, None | Some(State::Closed | State::SynSent)) || rst {
            if rst && st.is_some_and(synchronized) {
                let h = self.children[&id].sock.expect("state implies socket");
                self.sockets.get_mut::<tcp::Socket>(h).abort();
                self.egress(cx); // RST inside the call
                cx.trace(format!("child {id}: close sends RST"));
            }
            // TcpClose -> SockConnClosed: the Close token first, then
            // SockConnFlush aborts the rest (SockImpl.c); OVMF's recordings
            // show the Close token before the flushed Accept or Receive.
            self.complete(cx, p, Status::SUCCESS);
            self.flush_tokens(cx, id, Status::ABORTED, false);
            self.drop_socket(id);
            return Status::SUCCESS;
        }
        self.children.get_mut(&id).expect("exists").tokens.close = Some(p);
        self.service(cx, id);
        self.egress(cx);
        Status::SUCCESS
    }

    /// Cancel: abort the matching pending tokens (all for a null token).
    ///
    /// # Safety
    /// `token` null or a token pointer.
    pub unsafe fn cancel(
        &mut self,
        cx: &mut Env,
        id: usize,
        token: *mut Tcp4CompletionToken,
    ) -> Status {
        if cx.cfg.quirks.cancel_unsupported {
            return Status::UNSUPPORTED;
        }
        let c = self.children.get_mut(&id).expect("caller checked");
        // SockCancel refuses only an unconfigured socket; one left in
        // SO_NO_MAPPING searches its (empty) queues (SockInterface.c
        // l.959-1010).
        if c.cfg.is_none() && !c.no_mapping {
            return Status::NOT_STARTED;
        }
        let t = token as usize;
        let mut found: Vec<Pending> = Vec::new();
        if c.tokens
            .connect()
            .is_some_and(|p| token.is_null() || p.token == t)
        {
            found.extend(c.tokens.take_connect());
        }
        for q in [&mut c.tokens.accepts, &mut c.tokens.txs, &mut c.tokens.rxs] {
            let (hit, keep): (Vec<Pending>, Vec<Pending>) =
                q.drain(..).partition(|p| token.is_null() || p.token == t);
            q.extend(keep);
            found.extend(hit);
        }
        if found.is_empty() {
            return if token.is_null() {
                Status::SUCCESS
            } else {
                Status::NOT_FOUND
            };
        }
        for p in found {
            if p.kind == Kind::Connect {
                cx.breach(BreachKind::FirmwareWouldCrash, format!("Cancel of connect token {:#x}: EDK2 keeps the handshake running and later dereferences the freed token (code-read)", p.token));
            }
            if p.kind == Kind::Transmit && p.admitted {
                cx.breach(BreachKind::FirmwareWouldCrash, format!("Cancel of transmit token {:#x} whose data joined the send buffer: EDK2 ASSERTs when those bytes are later sent (SockImpl.c SockDataSent; edk2 issue #9837)", p.token));
            }
            self.complete(cx, p, Status::ABORTED);
        }
        Status::SUCCESS
    }
}
