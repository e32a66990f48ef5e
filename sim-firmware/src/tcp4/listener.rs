//! Listening children: the backlog as a pool of listening sockets.

use super::*;

impl World {
    pub(super) fn service_listener(&mut self, id: usize) {
        let cfg = self.sut.children[&id].cfg.expect("listener configured");
        let pool: Vec<SocketHandle> = self.sut.children[&id]
            .listener
            .as_ref()
            .expect("listener")
            .pool
            .clone();
        let mut keep = Vec::new();
        let mut newly = Vec::new();
        for h in pool {
            match self.sut.sockets.get::<tcp::Socket>(h).state() {
                State::Listen | State::SynReceived => keep.push(h),
                State::Closed => {
                    self.sut.sockets.remove(h);
                }
                _ => newly.push(h),
            }
        }
        for h in newly {
            let cid = self.sut.next_child;
            self.sut.next_child += 1;
            let sock = self.sut.sockets.get::<tcp::Socket>(h);
            let st = sock.state();
            // EDK2 clones the listener's TCB and then records both endpoints
            // of the new connection, which GetModeData reports.
            let (mut station, mut remote, mut remote_port) = (cfg.station, cfg.remote, 0);
            if let Some(IpEndpoint {
                addr: IpAddress::Ipv4(a),
                port,
            }) = sock.remote_endpoint()
            {
                remote = a;
                remote_port = port;
            }
            if let Some(IpEndpoint {
                addr: IpAddress::Ipv4(a),
                ..
            }) = sock.local_endpoint()
            {
                station = a;
            }
            let child = Child {
                cfg: Some(ChildCfg {
                    active: false,
                    station,
                    remote,
                    remote_port,
                    ..cfg
                }),
                sock: Some(h),
                passive: true,
                prev: Some(st),
                ..Child::default()
            };
            self.sut.children.insert(cid, child);
            self.trace(format!("listener {id}: child {cid} established"));
            self.sut
                .children
                .get_mut(&id)
                .expect("listener")
                .listener
                .as_mut()
                .expect("l")
                .ready
                .push_back(cid);
        }
        // A never-accepted child that closed dies (SockConnClosed →
        // SockDestroyChild while Parent is set).
        let ready: Vec<usize> = self.sut.children[&id]
            .listener
            .as_ref()
            .expect("l")
            .ready
            .iter()
            .copied()
            .collect();
        for cid in ready {
            let dead = match self.sut.children.get(&cid).and_then(|c| c.sock) {
                None => true,
                Some(h) => self.sut.sockets.get::<tcp::Socket>(h).state() == State::Closed,
            };
            if dead {
                if let Some(c) = self.sut.children.remove(&cid) {
                    if let Some(h) = c.sock {
                        self.sut.sockets.remove(h);
                    }
                }
                let l = self
                    .sut
                    .children
                    .get_mut(&id)
                    .expect("l")
                    .listener
                    .as_mut()
                    .expect("l");
                l.ready.retain(|&r| r != cid);
                self.trace(format!(
                    "listener {id}: unaccepted child {cid} closed and destroyed"
                ));
            }
        }
        // Hand established children to Accept tokens, FIFO.
        loop {
            let c = self.sut.children.get_mut(&id).expect("listener");
            let l = c.listener.as_mut().expect("listener");
            if c.accepts.is_empty() || l.ready.is_empty() {
                break;
            }
            let cid = l.ready.pop_front().expect("ready");
            let p = c.accepts.pop_front().expect("accept");
            let handle = Sut::child_handle(cid);
            // SAFETY: pending listen token is writable (trait contract).
            unsafe { (*(p.token as *mut Tcp4ListenToken)).new_child_handle = handle as _ };
            self.sut.children.get_mut(&cid).expect("child").visible = true;
            self.complete(p, Status::SUCCESS);
        }
        // Keep one listening socket while the backlog has room.
        let c = self.sut.children.get_mut(&id).expect("listener");
        let l = c.listener.as_mut().expect("listener");
        let has_listen = keep
            .iter()
            .any(|&h| self.sut.sockets.get::<tcp::Socket>(h).state() == State::Listen);
        let used = keep.len() + l.ready.len() - usize::from(has_listen);
        if !has_listen && used < cfg.opts.backlog {
            let h = Self::new_listen_socket(&mut self.sut.sockets, &cfg);
            keep.push(h);
        }
        self.sut
            .children
            .get_mut(&id)
            .expect("l")
            .listener
            .as_mut()
            .expect("l")
            .pool = keep;
    }

    pub(super) fn new_socket(cfg: &ChildCfg) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; cfg.opts.rcv_buf as usize]),
            tcp::SocketBuffer::new(vec![0; cfg.opts.snd_buf as usize]),
        );
        s.set_nagle_enabled(cfg.opts.nagle);
        // EDK2 implements slow start / congestion avoidance (TcpOutput.c).
        s.set_congestion_control(tcp::CongestionControl::Reno);
        s.set_hop_limit(Some(255));
        s
    }

    pub(super) fn new_listen_socket(set: &mut SocketSet<'static>, cfg: &ChildCfg) -> SocketHandle {
        let mut s = Self::new_socket(cfg);
        let addr = (!cfg.station.is_unspecified()).then_some(IpAddress::Ipv4(cfg.station));
        // Port is non-zero (bound at Configure), so listen cannot fail.
        let _ = s.listen(IpListenEndpoint {
            addr,
            port: cfg.port,
        });
        set.add(s)
    }
}
