//! EDK2's TCP4 driver on top of smoltcp: per-child state, token queues,
//! status codes and completion timing, with the contract checker's hooks.
//!
//! smoltcp provides the wire protocol; this module provides what EDK2 adds
//! above it: tokens identified by their event, completions per frame (one
//! frame per 10 ms MNP tick or per Poll), the backlog emulated with a pool of
//! listening sockets, CONNECTION_FIN as a function result, RST on Close with
//! unread data, ports held through TIME_WAIT. Quirks switch each of these.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;

use efisock::firmware::status::{CONNECTION_FIN, CONNECTION_REFUSED, CONNECTION_RESET};
use efisock::firmware::{
    Status, Tcp4CloseToken, Tcp4CompletionToken, Tcp4ConfigData, Tcp4ConnectionState,
    Tcp4ConnectionToken, Tcp4IoToken, Tcp4ListenToken, Tcp4ReceiveData, Tcp4TransmitData,
};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::breach::BreachKind;
use crate::decide::DecisionKind;
use crate::device::{QueueDevice, tcp_summary};
use crate::host::instant;
use crate::rng::Rng;
use crate::tokens;
use crate::world::{Env, MNP_TICK_NS};

/// Frames the SUT NIC queues before dropping (MNP receive queue).
pub const NIC_QUEUE_FRAMES: usize = 64;
pub(crate) const CHILD_BASE: usize = 0x2_0000;
const SEC: u64 = 1_000_000_000;

pub(crate) struct Edk2Tcp4 {
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
    pub nic: VecDeque<Vec<u8>>,
    pub children: BTreeMap<usize, Child>,
    next_child: usize,
    next_ephemeral: u16,
    port_holds: BTreeMap<u16, u64>,
    next_mnp: u64,
    deferred: Vec<usize>,
    /// Inside a Tcp4 call's body: completions may be notified as it returns.
    pub in_call: bool,
}

impl Edk2Tcp4 {
    pub fn new(seed: u64) -> Edk2Tcp4 {
        let mut dev = QueueDevice::default();
        let mut cfg = Config::new(HardwareAddress::Ip);
        let mut rng = Rng::new(seed, 0x5057);
        cfg.random_seed = rng.next_u64();
        let iface = Interface::new(cfg, &mut dev, instant(0));
        Edk2Tcp4 {
            iface,
            dev,
            sockets: SocketSet::new(vec![]),
            nic: VecDeque::new(),
            children: BTreeMap::new(),
            next_child: 0,
            next_ephemeral: 1024 + rng.below(1024) as u16,
            port_holds: BTreeMap::new(),
            next_mnp: 0,
            deferred: Vec::new(),
            in_call: false,
        }
    }

    pub fn child_handle(id: usize) -> usize {
        CHILD_BASE + id * 16
    }
}

fn synchronized(st: State) -> bool {
    !matches!(st, State::Closed | State::Listen | State::SynSent)
}

fn edk2_state(st: State) -> Tcp4ConnectionState {
    match st {
        State::Closed => Tcp4ConnectionState::CLOSED,
        State::Listen => Tcp4ConnectionState::LISTEN,
        State::SynSent => Tcp4ConnectionState::SYN_SENT,
        State::SynReceived => Tcp4ConnectionState::SYN_RECEIVED,
        State::Established => Tcp4ConnectionState::ESTABLISHED,
        State::FinWait1 => Tcp4ConnectionState::FIN_WAIT1,
        State::FinWait2 => Tcp4ConnectionState::FIN_WAIT2,
        State::Closing => Tcp4ConnectionState::CLOSING,
        State::TimeWait => Tcp4ConnectionState::TIME_WAIT,
        State::CloseWait => Tcp4ConnectionState::CLOSE_WAIT,
        State::LastAck => Tcp4ConnectionState::LAST_ACK,
    }
}

/// How long EDK2 retransmits before giving up: RTO doubling from 3 s,
/// capped at 60 s, `retries` times (TcpTimer.c; 12 retries = 513 s).
pub(crate) fn retransmit_budget_ns(retries: u32) -> u64 {
    (0..retries)
        .map(|i| (3u64 << i.min(10)).min(60))
        .sum::<u64>()
        * SEC
}

mod api;
mod calls;
mod child;
mod closing;
mod completion;
mod configure;
mod contract;
mod io;
mod listener;
mod mnp;
mod pending;
mod ports;
mod service;
mod transfer;
pub use api::SimTcp4;
pub(crate) use child::Child;
use child::{ChildCfg, ListenerState, Origin, Stall, read_opts};
use pending::{Kind, Pending};
