//! The Tcp4 functions (argument checks and lock done by the caller).

use super::*;

impl Edk2Tcp4 {
    // ---- the Tcp4 functions (argument checks and lock done by the caller) --

    pub fn create_child(&mut self) -> usize {
        let id = self.next_child;
        self.next_child += 1;
        self.children.insert(id, Child::new(Origin::Created));
        Self::child_handle(id)
    }

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
        self.children.remove(&id);
        Status::SUCCESS
    }

    /// # Safety
    /// `cfg` is null or valid for reads including its control option.
    pub unsafe fn configure(
        &mut self,
        cx: &mut Env,
        id: usize,
        cfg: *const Tcp4ConfigData,
    ) -> Status {
        if cfg.is_null() {
            let c = self.children.get_mut(&id).expect("caller checked");
            if c.cfg.is_none() {
                return Status::ACCESS_DENIED;
            }
            // The brutal reset: abort everything inside the call, no FIN/RST.
            self.flush_tokens(cx, id, Status::ABORTED, true);
            self.drop_socket(id);
            let c = self.children.get_mut(&id).expect("exists");
            *c = Child {
                busy: c.busy,
                ..Child::new(c.origin)
            };
            return Status::SUCCESS;
        }
        // SAFETY: non-null config is valid for reads (trait contract).
        let d = unsafe { &*cfg };
        let o = d.control_option;
        if !o.is_null() {
            // SAFETY: non-null option pointer is valid for reads.
            let ov = unsafe { &*o };
            if bool::from(ov.enable_selective_ack) || bool::from(ov.enable_path_mtu_discovery) {
                return Status::UNSUPPORTED;
            }
        }
        let ap = &d.access_point;
        let (station, mask, remote) = (
            ip(ap.station_address),
            ip(ap.subnet_mask),
            ip(ap.remote_address),
        );
        let active = bool::from(ap.active_flag);
        let use_default = bool::from(ap.use_default_address);
        if remote.is_broadcast()
            || (active && (ap.remote_port == 0 || remote.is_unspecified()))
            || (!use_default && (station.is_broadcast() || !mask_ok(mask)))
        {
            return Status::INVALID_PARAMETER;
        }
        if self.children[&id].cfg.is_some() {
            return Status::ACCESS_DENIED;
        }
        let q = cx.cfg.quirks;
        let (station, mask) = if use_default {
            if q.use_default_address_already_started {
                return Status::ALREADY_STARTED;
            }
            match cx.ip4.address {
                Some(a) => a,
                None => return Status::NO_MAPPING,
            }
        } else {
            if station.is_unspecified() && !active && q.listen_any_unsupported {
                return Status::INVALID_PARAMETER;
            }
            match cx.ip4.address {
                None => return Status::NO_MAPPING,
                Some((a, _)) if !station.is_unspecified() && a != station => {
                    return Status::INVALID_PARAMETER;
                }
                Some(_) => (station, mask),
            }
        };
        // Injected: while the DHCP client runs, the IP4 child below may be
        // unmapped (lease being renewed); TcpDispatcher.c `TcpConfigurePcb`
        // passes on IP4's EFI_NO_MAPPING (Ip4Dxe/Ip4Impl.c `EfiIp4Configure`)
        // and the instance stays unconfigured, to be configured again later.
        if cx.ip4.dhcp_policy {
            if let Some(st) = cx.inject("Configure", &[Status::NO_MAPPING]) {
                return st;
            }
        }
        let port = if ap.station_port != 0 {
            if self.port_in_use(cx, ap.station_port) {
                return Status::INVALID_PARAMETER;
            }
            ap.station_port
        } else {
            match self.ephemeral_port(cx) {
                Some(p) => p,
                None => return Status::OUT_OF_RESOURCES,
            }
        };
        // SAFETY: option pointer is null or valid (trait contract).
        let opts = unsafe { read_opts(o) };
        let ccfg = ChildCfg {
            station,
            mask,
            port,
            remote,
            remote_port: ap.remote_port,
            active,
            use_default,
            tos: d.type_of_service,
            ttl: d.time_to_live,
            opts,
        };
        let c = self.children.get_mut(&id).expect("exists");
        c.cfg = Some(ccfg);
        if !active {
            let h = Self::new_listen_socket(&mut self.sockets, &ccfg);
            let c = self.children.get_mut(&id).expect("exists");
            c.listener = Some(ListenerState {
                pool: vec![h],
                ready: VecDeque::new(),
            });
        }
        cx.trace(format!(
            "child {id}: configured {station}:{port} active={active}"
        ));
        Status::SUCCESS
    }

    pub fn state_of(&self, id: usize) -> Option<State> {
        let c = &self.children[&id];
        c.sock.map(|h| self.sockets.get::<tcp::Socket>(h).state())
    }

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
            return Status::NOT_STARTED;
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
            return Status::NOT_STARTED;
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

    pub(super) fn io_state_ok(&self, id: usize, for_rx: bool) -> Result<(), Status> {
        let c = &self.children[&id];
        if c.cfg.is_none() {
            return Err(Status::NOT_STARTED);
        }
        if c.listener.is_some() || c.tokens.close.is_some() || c.local_close.fin_queued {
            return Err(Status::ACCESS_DENIED);
        }
        match self.state_of(id) {
            // SockRcv/SockSend: a closed socket (also after RST) is ACCESS_DENIED.
            None | Some(State::Closed) => Err(Status::ACCESS_DENIED),
            Some(State::SynSent | State::SynReceived | State::Established | State::CloseWait) => {
                Ok(())
            }
            Some(State::LastAck | State::Closing | State::TimeWait) if for_rx => Ok(()),
            Some(_) => Err(Status::ACCESS_DENIED),
        }
    }

    /// # Safety
    /// `token` non-null and valid, with valid transmit data.
    pub unsafe fn transmit(&mut self, cx: &mut Env, id: usize, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: caller-vouched token with a packet pointer.
        let tx = unsafe { (*token).packet.tx_data };
        if tx.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: non-null transmit data, valid by contract.
        let (len, frags) = unsafe { tokens::tx_frags(tx) };
        if !fragments_valid(len, &frags) {
            return Status::INVALID_PARAMETER;
        }
        if let Err(s) = self.io_state_ok(id, false) {
            return s;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        // Injected: SockInterface.c `SockSend` buffers every token (either
        // list); `SockBufferToken` == NULL → EFI_OUT_OF_RESOURCES, nothing sent.
        if let Some(st) = cx.inject("Transmit", &[Status::OUT_OF_RESOURCES]) {
            return st;
        }
        let mut ranges = vec![(token as usize, size_of::<Tcp4IoToken>())];
        ranges.push((
            tx as usize,
            tokens::block_size(size_of::<Tcp4TransmitData>(), frags.len()),
        ));
        ranges.extend(frags.iter().copied().filter(|f| f.1 > 0));
        // SAFETY: the fragments are readable (contract).
        let check = unsafe { tokens::tx_hash(len, &frags) };
        let p = Pending {
            token: token as usize,
            event,
            kind: Kind::Transmit,
            check,
            ranges,
            frags,
            data: tx as usize,
            len: len as usize,
            offset: 0,
        };
        self.check_pool(cx, &p);
        self.children
            .get_mut(&id)
            .expect("exists")
            .tokens
            .txs
            .push_back(p);
        self.service(cx, id);
        self.egress(cx);
        Status::SUCCESS
    }

    /// # Safety
    /// `token` non-null and valid, with valid receive data.
    pub unsafe fn receive(&mut self, cx: &mut Env, id: usize, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: caller-vouched token.
        let rx = unsafe { (*token).packet.rx_data };
        if rx.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: non-null receive data, valid by contract.
        let (len, frags) = unsafe { tokens::rx_frags(rx) };
        if !fragments_valid(len, &frags) {
            return Status::INVALID_PARAMETER;
        }
        if let Err(s) = self.io_state_ok(id, true) {
            return s;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        // SockRcv: a stored socket error is delivered through this token,
        // inside the call, and then cleared.
        if let Some(err) = self.children.get_mut(&id).and_then(|c| c.error.take()) {
            let p = Pending::token_only(
                Kind::Receive,
                token as usize,
                event,
                size_of::<Tcp4IoToken>(),
            );
            self.complete(cx, p, err);
            return Status::SUCCESS;
        }
        let c = &self.children[&id];
        let buffered = c
            .sock
            .map_or(0, |h| self.sockets.get::<tcp::Socket>(h).recv_queue());
        let fin = c.observed.peer_fin
            || self.state_of(id).is_some_and(|s| {
                matches!(
                    s,
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                )
            });
        if fin
            && buffered == 0
            && c.tokens.rxs.is_empty()
            && cx.cfg.quirks.receive_fin_as_return_value
        {
            return CONNECTION_FIN;
        }
        // Injected: nothing buffered, so SockInterface.c `SockRcv` buffers
        // the token and that allocation fails (`SockBufferToken` == NULL →
        // EFI_OUT_OF_RESOURCES, nothing else happens).
        if buffered == 0 {
            if let Some(st) = cx.inject("Receive", &[Status::OUT_OF_RESOURCES]) {
                return st;
            }
        }
        let mut ranges = vec![(token as usize, size_of::<Tcp4IoToken>())];
        ranges.push((
            rx as usize,
            tokens::block_size(size_of::<Tcp4ReceiveData>(), frags.len()),
        ));
        ranges.extend(frags.iter().copied().filter(|f| f.1 > 0));
        // SAFETY: receive buffers are writable by contract.
        unsafe { tokens::fill_canary(&frags) };
        let check = tokens::rx_hash(len, &frags);
        let p = Pending {
            token: token as usize,
            event,
            kind: Kind::Receive,
            check,
            ranges,
            frags,
            data: rx as usize,
            len: len as usize,
            offset: 0,
        };
        self.check_pool(cx, &p);
        self.children
            .get_mut(&id)
            .expect("exists")
            .tokens
            .rxs
            .push_back(p);
        self.service(cx, id);
        Status::SUCCESS
    }

    /// # Safety
    /// `token` non-null and valid.
    pub unsafe fn close(&mut self, cx: &mut Env, id: usize, token: *mut Tcp4CloseToken) -> Status {
        let c = &self.children[&id];
        if c.cfg.is_none() {
            return Status::NOT_STARTED;
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
            self.flush_tokens(cx, id, Status::ABORTED, false);
            self.drop_socket(id);
            self.complete(cx, p, Status::SUCCESS);
            return Status::SUCCESS;
        }
        self.children.get_mut(&id).expect("exists").tokens.close = Some(p);
        self.service(cx, id);
        self.egress(cx);
        Status::SUCCESS
    }

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
        if c.cfg.is_none() {
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
            if p.kind == Kind::Transmit && p.offset > 0 {
                cx.breach(BreachKind::FirmwareWouldCrash, format!("Cancel of partly sent transmit token {:#x}: EDK2 ASSERTs (edk2 issue #9837)", p.token));
            }
            self.complete(cx, p, Status::ABORTED);
        }
        Status::SUCCESS
    }

    /// # Safety
    /// Non-null pointers valid for writes.
    pub unsafe fn get_mode_data(
        &mut self,
        id: usize,
        state: *mut Tcp4ConnectionState,
        config: *mut Tcp4ConfigData,
        ip4: *mut efisock::firmware::Ip4ModeData,
    ) -> Status {
        let c = &self.children[&id];
        let cfg = c.cfg;
        if cfg.is_none() && !config.is_null() {
            return Status::NOT_STARTED;
        }
        let st = if c.listener.is_some() {
            Tcp4ConnectionState::LISTEN
        } else {
            self.state_of(id)
                .map_or(Tcp4ConnectionState::CLOSED, edk2_state)
        };
        // SAFETY: non-null output pointers are writable (trait contract).
        unsafe {
            if !state.is_null() {
                *state = st;
            }
            if let (Some(cfg), false) = (cfg, config.is_null()) {
                let d = &mut *config;
                d.type_of_service = cfg.tos;
                d.time_to_live = cfg.ttl;
                let ap = &mut d.access_point;
                ap.use_default_address = cfg.use_default.into();
                ap.station_address = efisock::firmware::Ipv4Address(cfg.station.octets());
                ap.subnet_mask = efisock::firmware::Ipv4Address(cfg.mask.octets());
                ap.station_port = cfg.port;
                ap.remote_address = efisock::firmware::Ipv4Address(cfg.remote.octets());
                ap.remote_port = cfg.remote_port;
                ap.active_flag = (st != Tcp4ConnectionState::LISTEN).into();
                if !d.control_option.is_null() {
                    let o = &mut *d.control_option;
                    o.receive_buffer_size = cfg.opts.rcv_buf;
                    o.send_buffer_size = cfg.opts.snd_buf;
                    o.max_syn_back_log = cfg.opts.backlog as u32;
                    o.connection_timeout = cfg.opts.conn_timeout_s;
                    o.fin_timeout = cfg.opts.fin_timeout_s;
                    o.time_wait_timeout = cfg.opts.tw_timeout_s;
                    o.enable_nagle = cfg.opts.nagle.into();
                }
            }
            if !ip4.is_null() {
                // Zeroed: the simulator models no IP4 child state beyond TCP's.
                core::ptr::write_bytes(ip4, 0, 1);
            }
        }
        Status::SUCCESS
    }
}
