//! Moving data between the caller's tokens and the connection: Transmit
//! copies into the send buffer (EDK2 segments then), Receive completes per
//! segment with min(available, DataLength), and the FIN ends pending
//! Receives once the data before it is read.

use efisock::firmware::status::CONNECTION_FIN;
use efisock::firmware::{Status, Tcp4ReceiveData};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use crate::breach::BreachKind;
use crate::tokens;
use crate::world::Env;

use super::Edk2Tcp4;
use super::pending::{Kind, Pending};

impl Edk2Tcp4 {
    /// Copy pending transmits into the send buffer, in order, as far as it
    /// has room; a transmit completes when its last byte is in.
    pub(super) fn segment_transmits(&mut self, cx: &mut Env, id: usize, h: SocketHandle) {
        while let Some(front) = self
            .children
            .get(&id)
            .and_then(|c| c.tokens.txs.front().cloned())
        {
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
            let f = c.tokens.txs.front_mut().expect("front");
            f.offset += n;
            if f.offset >= f.len {
                let p = c.tokens.txs.pop_front().expect("front");
                self.complete(cx, p, Status::SUCCESS);
            } else if n < k || n == 0 {
                break;
            }
        }
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
