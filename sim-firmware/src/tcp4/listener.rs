//! Listening children: the backlog as a pool of listening sockets.
//!
//! A half-open connection (SYN_RCVD) lives ConnectionTimeout seconds (75 by
//! default) from its SYN: EDK2 arms the CONNECT timer on the clone
//! (`TcpSetTimer (Tcb, TCP_TIMER_CONNECT, Tcb->ConnectTimeout)`, TcpInput.c
//! l.879) and, when it expires in SYN_RCVD, `TcpConnectTimeout` resets the
//! connection (RST through `TcpResetConnection`, TcpTimer.c l.143-170) and
//! closes it; `SockConnClosed` destroys the never-accepted child (SockImpl.c
//! l.1023-1025), which frees its backlog slot. Neither a duplicate SYN
//! (discarded, see `crate::demux`) nor a retransmitted one restarts it.
//! [code-read, edk2-stable202211; not measured: slirp completes handshakes
//! itself, so OVMF cannot be given a half-open connection]
//! smoltcp's socket timeout gives exactly that here: it counts from the
//! last segment the socket accepted (the SYN; a SYN_RCVD socket accepts no
//! other segment without leaving SYN_RCVD), then closes with an RST. It is
//! set on each pool socket and cleared when the connection is established.

use efisock::firmware::{Status, Tcp4ListenToken};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use crate::demux::syn_owner_state;
use crate::world::Env;

use super::Edk2Tcp4;
use super::child::{Child, ChildCfg, ListenerState, Origin};

impl Edk2Tcp4 {
    /// A listener's per-frame work: established connections become backlog
    /// children, backlog children that closed are destroyed, Accepts get
    /// children FIFO, and one listening socket is kept while the backlog
    /// has room.
    pub(super) fn service_listener(&mut self, cx: &mut Env, id: usize) {
        let cfg = self.children[&id].cfg.expect("listener configured");
        let (keep, established) = self.sort_listen_pool(cx, id);
        for h in established {
            self.adopt_connection(cx, id, &cfg, h);
        }
        self.destroy_closed_backlog(cx, id);
        self.hand_out_to_accepts(cx, id);
        self.keep_listening(id, &cfg, keep);
    }

    /// A bare SYN whose address pair already has a connection (half-open
    /// in a listener's pool, or any child past SYN_SENT) belongs to it and
    /// is discarded before smoltcp could hand it to a listening socket
    /// (EDK2's exact-match lookup; see `crate::demux`).
    pub(super) fn syn_of_existing_connection(&self, cx: &mut Env, frame: &[u8]) -> bool {
        let Some(st) = syn_owner_state(&self.sockets, frame) else {
            return false;
        };
        cx.trace(format!("SYN for a connection in {st}: discarded"));
        true
    }

    fn listener_state(&mut self, id: usize) -> &mut ListenerState {
        self.children
            .get_mut(&id)
            .expect("listener")
            .listener
            .as_mut()
            .expect("listener")
    }

    /// Split the listener's pool: sockets still listening or half-open
    /// stay, closed ones are released, established ones are returned to
    /// become children.
    fn sort_listen_pool(
        &mut self,
        cx: &mut Env,
        id: usize,
    ) -> (Vec<SocketHandle>, Vec<SocketHandle>) {
        let pool = self.listener_state(id).pool.clone();
        let mut keep = Vec::new();
        let mut established = Vec::new();
        for h in pool {
            match self.sockets.get::<tcp::Socket>(h).state() {
                State::Listen | State::SynReceived => keep.push(h),
                // Only a half-open connection closes in the pool (an RST,
                // or the connection timer): a listening socket never does.
                State::Closed => {
                    self.sockets.remove(h);
                    cx.trace(format!("listener {id}: half-open connection closed"));
                }
                _ => established.push(h),
            }
        }
        (keep, established)
    }

    /// An established connection becomes a backlog child of listener `id`.
    fn adopt_connection(&mut self, cx: &mut Env, id: usize, cfg: &ChildCfg, h: SocketHandle) {
        let cid = self.next_child;
        self.next_child += 1;
        let sock = self.sockets.get_mut::<tcp::Socket>(h);
        // The connection timer ends with the handshake (TcpInput.c l.1123-1133:
        // SYN_RCVD to ESTABLISHED clears the CONNECT timer).
        sock.set_timeout(None);
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
        let mut child = Child::new(Origin::Backlog);
        child.cfg = Some(ChildCfg {
            active: false,
            station,
            remote,
            remote_port,
            ..*cfg
        });
        child.sock = Some(h);
        child.observed.last_state = Some(st);
        self.children.insert(cid, child);
        cx.trace(format!("listener {id}: child {cid} established"));
        self.listener_state(id).ready.push_back(cid);
    }

    /// A never-accepted child that closed dies (SockConnClosed →
    /// SockDestroyChild while Parent is set).
    fn destroy_closed_backlog(&mut self, cx: &mut Env, id: usize) {
        let ready: Vec<usize> = self.listener_state(id).ready.iter().copied().collect();
        for cid in ready {
            let dead = match self.children.get(&cid).and_then(|c| c.sock) {
                None => true,
                Some(h) => self.sockets.get::<tcp::Socket>(h).state() == State::Closed,
            };
            if dead {
                if let Some(c) = self.children.remove(&cid) {
                    if let Some(h) = c.sock {
                        self.sockets.remove(h);
                    }
                }
                self.listener_state(id).ready.retain(|&r| r != cid);
                cx.trace(format!(
                    "listener {id}: unaccepted child {cid} closed and destroyed"
                ));
            }
        }
    }

    /// Hand established children to Accept tokens, FIFO.
    fn hand_out_to_accepts(&mut self, cx: &mut Env, id: usize) {
        loop {
            let c = self.children.get_mut(&id).expect("listener");
            let l = c.listener.as_mut().expect("listener");
            if c.tokens.accepts.is_empty() || l.ready.is_empty() {
                break;
            }
            let cid = l.ready.pop_front().expect("ready");
            let p = c.tokens.accepts.pop_front().expect("accept");
            let handle = Self::child_handle(cid);
            // SAFETY: pending listen token is writable (trait contract).
            unsafe { (*(p.token as *mut Tcp4ListenToken)).new_child_handle = handle as _ };
            self.children.get_mut(&cid).expect("child").hand_out();
            self.complete(cx, p, Status::SUCCESS);
        }
    }

    /// The new pool: `keep`, plus a fresh listening socket when none is
    /// listening and the backlog (half-open plus unaccepted) has room.
    fn keep_listening(&mut self, id: usize, cfg: &ChildCfg, mut keep: Vec<SocketHandle>) {
        let ready = self.listener_state(id).ready.len();
        let has_listen = keep
            .iter()
            .any(|&h| self.sockets.get::<tcp::Socket>(h).state() == State::Listen);
        let used = keep.len() + ready - usize::from(has_listen);
        if !has_listen && used < cfg.opts.backlog {
            let h = Self::new_listen_socket(&mut self.sockets, cfg);
            keep.push(h);
        }
        self.listener_state(id).pool = keep;
    }

    /// A socket with the child's receive buffer size. Nagle, congestion
    /// control and the send buffer bound are EDK2's, in `sender`: smoltcp
    /// sends at once what it is handed, and its send buffer only has to
    /// hold the bytes in flight (EDK2 keeps those in its own send queue,
    /// outside SendBufferSize).
    pub(super) fn new_socket(cfg: &ChildCfg) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; cfg.opts.rcv_buf as usize]),
            tcp::SocketBuffer::new(vec![0; super::sender::IN_FLIGHT_MAX]),
        );
        s.set_nagle_enabled(false);
        s.set_congestion_control(tcp::CongestionControl::None);
        s.set_hop_limit(Some(255));
        s
    }

    /// A listening socket on the child's station address and port.
    pub(super) fn new_listen_socket(set: &mut SocketSet<'static>, cfg: &ChildCfg) -> SocketHandle {
        let mut s = Self::new_socket(cfg);
        let addr = (!cfg.station.is_unspecified()).then_some(IpAddress::Ipv4(cfg.station));
        // Port is non-zero (bound at Configure), so listen cannot fail.
        let _ = s.listen(IpListenEndpoint {
            addr,
            port: cfg.port,
        });
        s.set_timeout(Some(Duration::from_secs(u64::from(
            cfg.opts.conn_timeout_s,
        ))));
        set.add(s)
    }
}
