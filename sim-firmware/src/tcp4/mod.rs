//! EDK2's TCP4 driver on top of smoltcp: [`Edk2Tcp4`], its children, and
//! the protocol shims that put it behind `EFI_TCP4_PROTOCOL`.
//!
//! smoltcp provides the wire protocol; this module provides what EDK2 adds
//! above it: tokens identified by their event, completions per frame (one
//! frame per 10 ms MNP tick or per Poll), the backlog emulated with a pool of
//! listening sockets, CONNECTION_FIN as a function result, RST on Close with
//! unread data, ports held through TIME_WAIT. Quirks switch each of these.
//!
//! The driver owns only TCP state; every call borrows the rest of the
//! machine ([`Env`](crate::world::Env): clock, events, decisions, pool, network) as its
//! context, the way smoltcp hands its sockets a `Context`.
//!
//! Layout, by concern:
//! - `api`: `SimTcp4` and the service binding (the call envelope: cost,
//!   TPL check, per-instance lock, completions delivered as a call returns);
//! - `calls`, `configure`, `io`: the Tcp4 functions;
//! - `mnp`: frames in and out, the MNP tick, when the driver is next due;
//! - `service`, `transfer`, `closing`, `listener`: the per-frame work;
//! - `sender`, `peer_view`, `syn_schedule`: EDK2's sender (when Transmit
//!   bytes are cut), what the peer's frames say, delayed ACKs, the SYN
//!   retransmission schedule;
//! - `completion`, `contract`: completing tokens, the ownership checks;
//! - `child`, `pending`, `ports`: per-child state, token queues, ports.

mod addressing;
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
mod peer_view;
mod pending;
mod ports;
mod sender;
mod service;
mod syn_schedule;
mod transfer;
mod wire;

use std::collections::{BTreeMap, VecDeque};

use efisock::firmware::Tcp4ConnectionState;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::socket::tcp::State;
use smoltcp::wire::HardwareAddress;

use crate::device::QueueDevice;
use crate::host::instant;
use crate::rng::Rng;

pub use api::SimTcp4;
pub(crate) use child::Child;
use wire::WireBoundary;
pub use wire::{IsnScheme, TCP_TICK_NS, WireDirection, WireFrame, write_pcap};

/// Frames waiting for the SUT before the NIC drops one: OVMF's
/// virtio-net receive ring (256 descriptors) plus QEMU's per-NIC packet
/// queue, which holds what the ring cannot take (`nq_maxlen`, 10000, in
/// QEMU's net/queue.c; code-read). A queue of 64 dropped the bursts of a
/// bulk receive and stalled it for 1 s retransmission timeouts that OVMF
/// never shows (bench-report: 17 MB/s in OVMF without stalls).
pub const NIC_QUEUE_FRAMES: usize = 256 + 10_000;
/// Child handles are `CHILD_BASE + 16 * id` (never null, 16-aligned so
/// that a stray pointer is unlikely to name one).
pub(crate) const CHILD_BASE: usize = 0x2_0000;
const SEC: u64 = 1_000_000_000;

/// The SUT's TCP4 driver: one smoltcp interface with every child's socket,
/// the NIC receive queue, and the children by id.
pub(crate) struct Edk2Tcp4 {
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
    /// Frames received and not yet processed (the MNP receive queue).
    pub nic: VecDeque<Vec<u8>>,
    pub children: BTreeMap<usize, Child>,
    next_child: usize,
    next_ephemeral: u16,
    /// When the next MNP tick processes a frame.
    next_mnp: u64,
    /// Completion events to signal at the next tick or Poll.
    deferred: Vec<usize>,
    /// Inside a Tcp4 call's body: completions may be notified as it returns.
    pub in_call: bool,
    /// What the driver puts on the link (ISN, IP header, options).
    wire: WireBoundary,
    /// What each peer's frames said (window, SYN options), per flow.
    peers: peer_view::PeerBook,
}

impl Edk2Tcp4 {
    /// A driver with no children; `seed` fixes smoltcp's ISNs and the first
    /// ephemeral port.
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
            next_mnp: 0,
            deferred: Vec::new(),
            in_call: false,
            wire: WireBoundary::new(seed),
            peers: peer_view::PeerBook::default(),
        }
    }

    /// The handle child `id` is installed on.
    pub fn child_handle(id: usize) -> usize {
        CHILD_BASE + id * 16
    }
}

/// The handshake is done (RFC 793's synchronized states).
fn synchronized(st: State) -> bool {
    !matches!(st, State::Closed | State::Listen | State::SynSent)
}

/// The EDK2 name of a smoltcp state, as GetModeData reports it.
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

/// How long EDK2 retransmits before giving up: the connection closes on
/// the expiry after the `retries`-th retransmission (TcpTimer.c
/// `TcpRexmitTimeout` l.202-216). The handshake gave an RTT sample, so the
/// RTO starts at `TCP_RTO_MIN`, 1 s (TcpInput.c `TcpComputeRtt`), and
/// doubles up to 60 s: 483 s for the default 12 retries. smoltcp's RTO
/// follows the same schedule after its own handshake sample.
pub(crate) fn retransmit_budget_ns(retries: u32) -> u64 {
    (0..=retries)
        .map(|i| (1u64 << i.min(10)).min(60))
        .sum::<u64>()
        * SEC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_budget_is_edk2s_backoff_from_one_second() {
        assert_eq!(retransmit_budget_ns(12), 483 * SEC);
        assert_eq!(retransmit_budget_ns(6), 123 * SEC);
    }
}
