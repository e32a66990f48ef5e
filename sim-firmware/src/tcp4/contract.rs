//! The ownership contract: what the firmware owns, and the checks a
//! firmware ASSERT would make.

use efisock::firmware::{Status, Tcp4ReceiveData, Tcp4TransmitData};

use crate::breach::BreachKind;
use crate::tokens;
use crate::world::Env;

use super::Edk2Tcp4;
use super::pending::{Kind, Pending};

impl Edk2Tcp4 {
    /// Re-check caller-owned parts of a pending token.
    pub(super) fn verify(&mut self, cx: &mut Env, p: &Pending, when: &str) {
        if p.data == 0 {
            return; // completed at submission; no data block was taken over
        }
        let now_hash = match p.kind {
            // SAFETY: pending transmit data and buffers are readable.
            Kind::Transmit => unsafe {
                let (len, frags) = tokens::tx_frags(p.data as *const Tcp4TransmitData);
                if frags.len() != p.frags.len() {
                    0
                } else {
                    tokens::tx_hash(len, &frags)
                }
            },
            Kind::Receive => {
                // SAFETY: pending receive data is readable.
                let (len, frags) = unsafe { tokens::rx_frags(p.data as *const Tcp4ReceiveData) };
                tokens::rx_hash(len, &frags)
            }
            _ => return,
        };
        if now_hash != p.check {
            cx.breach(
                BreachKind::ModifiedWhileOwned,
                format!(
                    "{} token {:#x}: caller modified its data {when} while the firmware owned it",
                    p.kind.name(),
                    p.token
                ),
            );
        }
    }

    /// Every memory range the firmware owns now: (address, length, token).
    pub fn owned_ranges(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for c in self.children.values() {
            let ps = c.tokens.iter();
            for p in ps {
                for &(a, l) in &p.ranges {
                    out.push((a, l, p.token));
                }
            }
        }
        out
    }

    /// The event of every pending token: (event, token).
    pub fn pending_events(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for c in self.children.values() {
            let ps = c.tokens.iter();
            out.extend(ps.map(|p| (p.event, p.token)));
        }
        out
    }

    /// Common token admission: the event must not belong to a pending token
    /// of this instance; the same token pointer pending anywhere is a breach.
    pub(super) fn admit_token(
        &mut self,
        cx: &mut Env,
        id: usize,
        token: usize,
        event: usize,
    ) -> Result<(), Status> {
        if self.pending_events().iter().any(|&(_, t)| t == token) {
            cx.breach(
                BreachKind::TokenReusedWhilePending,
                format!("token {token:#x} submitted again while still pending"),
            );
            return Err(Status::ACCESS_DENIED);
        }
        let c = &self.children[&id];
        let dup = c.tokens.iter().any(|p| p.event == event);
        if dup {
            cx.breach(
                BreachKind::EventReusedWhilePending,
                format!("token {token:#x} uses event {event:#x}, which belongs to a pending token of this instance"),
            );
            return Err(Status::ACCESS_DENIED);
        }
        if !cx.events.contains_key(&event) {
            return Err(Status::INVALID_PARAMETER);
        }
        Ok(())
    }

    /// The contract: firmware-referenced memory comes from the pool.
    pub(super) fn check_pool(&mut self, cx: &mut Env, p: &Pending) {
        if let Some(&(a, l)) = p.ranges.iter().find(|&&(a, l)| !cx.pool.contains(a, l)) {
            cx.breach(
                BreachKind::NotPoolMemory,
                format!(
                    "{} token {:#x}: {l} bytes at {a:#x} handed to the firmware are not pool memory",
                    p.kind.name(),
                    p.token
                ),
            );
        }
    }
}
