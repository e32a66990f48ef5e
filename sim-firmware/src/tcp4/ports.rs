//! Station ports: in use, held through TIME_WAIT, ephemeral.

use crate::world::Env;

use super::Edk2Tcp4;

impl Edk2Tcp4 {
    /// A port is in use while a child holds it or TIME_WAIT keeps it.
    pub(super) fn port_in_use(&self, cx: &mut Env, port: u16) -> bool {
        if self.port_holds.get(&port).is_some_and(|&t| t > cx.now) {
            return true;
        }
        self.children.values().any(|c| {
            c.cfg.is_some_and(|cfg| cfg.port == port)
                && (c.listener.is_some() || c.sock.is_some() || !c.is_passive())
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
