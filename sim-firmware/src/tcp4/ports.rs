//! Station ports: in use by a configured child, ephemeral.

use smoltcp::socket::tcp::State;

use crate::world::Env;

use super::Edk2Tcp4;

impl Edk2Tcp4 {
    /// A port is in use while a configured child holds it, in any TCP
    /// state: EDK2's `TcpBind` refuses a port any instance on the run or
    /// listen queue has (TcpDispatcher.c l.243-249, TcpMisc.c
    /// `TcpFindTcbByPeer`), and only Configure(NULL) or DestroyChild take
    /// an instance off them (`TcpFlushPcb`). So a TIME_WAIT child holds its
    /// port until it is reset, and not a moment longer (measured:
    /// probe/time_wait_holds_port, ports/reuse_after_active_close). With
    /// `time_wait_holds_port` off, a child in TIME_WAIT holds nothing.
    pub(super) fn port_in_use(&self, cx: &mut Env, port: u16) -> bool {
        let time_wait_holds = cx.cfg.quirks.time_wait_holds_port;
        self.children.iter().any(|(&id, c)| {
            c.cfg.is_some_and(|cfg| cfg.port == port)
                && (c.listener.is_some() || c.sock.is_some() || !c.is_passive())
                && (time_wait_holds || self.state_of(id) != Some(State::TimeWait))
        })
    }

    /// The next free port at or after the rotating ephemeral cursor.
    pub(super) fn ephemeral_port(&mut self, cx: &mut Env) -> Option<u16> {
        for _ in 0..65536 {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p == u16::MAX { 1025 } else { p + 1 };
            if !self.port_in_use(cx, p) {
                return Some(p);
            }
        }
        None
    }
}
