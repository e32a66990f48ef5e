//! Station ports: in use, held through TIME_WAIT, ephemeral.

use super::*;

impl World {
    pub(super) fn port_in_use(&self, port: u16) -> bool {
        if self
            .sut
            .port_holds
            .get(&port)
            .is_some_and(|&t| t > self.now)
        {
            return true;
        }
        self.sut.children.values().any(|c| {
            c.cfg.is_some_and(|cfg| cfg.port == port)
                && (c.listener.is_some() || c.sock.is_some() || !c.passive)
        })
    }

    pub(super) fn ephemeral_port(&mut self) -> Option<u16> {
        for _ in 0..65536 {
            let p = self.sut.next_ephemeral;
            self.sut.next_ephemeral = if p == u16::MAX { 1025 } else { p + 1 };
            if !self.port_in_use(p) {
                return Some(p);
            }
        }
        None
    }
}
