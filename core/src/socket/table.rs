//! [`State`]: every socket, every token slot and the graveyard of one `Net`.
//!
//! Why one table: completions arrive for tokens, not sockets; select and
//! teardown need to see every socket, every slot and the graveyard at each
//! safe point. `Net` keeps it behind a `RefCell`; the socket layer only ever
//! borrows it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::firmware::{Event, Platform, Tcp4Of};
use crate::slots::SlotTable;
use crate::socket::teardown::Corpse;
use crate::socket::{Sock, SocketId};

/// All mutable state of a `Net`.
pub(crate) struct State<P: Platform> {
    pub slots: SlotTable,
    pub socks: BTreeMap<SocketId, Sock<Tcp4Of<P>>>,
    pub corpses: Vec<Corpse<Tcp4Of<P>>>,
    pub next_id: u32,
    pub next_instance: u64,
    pub timer: Option<Event>,
    pub down: bool,
}

impl<P: Platform> State<P> {
    /// A fresh instance number (for traces; 0 is "no instance").
    pub fn instance(&mut self) -> u64 {
        self.next_instance += 1;
        self.next_instance
    }
}
