//! What a case needs from the platform under test.
//!
//! The same case list runs on the simulator and inside OVMF. A case talks to
//! the socket layer ([`efisock::Net`]) and to the peer services at fixed ports
//! on the peer host (10.0.2.2 on both targets). A few cases also need to steer
//! the network itself (a slow link, an address nobody answers); they ask the
//! target whether it can, and state plainly when it cannot.

use std::net::{Ipv4Addr, SocketAddrV4};

use efisock::Net;
use efisock::firmware::Platform;

use crate::runner::Target;

/// The firmware behaviour a target is expected to show, as booleans named
/// after the simulator's quirk switches. Quirk probes compare what they
/// observe with these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectations {
    /// `Cancel` returns UNSUPPORTED (pre-2016 firmware).
    pub cancel_unsupported: bool,
    /// `Receive` returns CONNECTION_FIN as its function result once FIN is in.
    pub receive_fin_as_return_value: bool,
    /// Connect to a closed port completes with CONNECTION_RESET (not REFUSED).
    pub connect_closed_port_reports_reset: bool,
    /// Close with unread received data sends RST.
    pub close_with_unread_data_sends_rst: bool,
    /// A port in TIME_WAIT cannot be configured again.
    pub time_wait_holds_port: bool,
    /// A passive instance on station address 0.0.0.0 (UseDefaultAddress
    /// FALSE) is refused with INVALID_PARAMETER (pre-2016 firmware).
    pub listen_any_unsupported: bool,
    /// Configure with UseDefaultAddress TRUE is refused with ALREADY_STARTED
    /// on a fresh child (old vendor firmware; BITS passes the DHCP address
    /// explicitly). On EDK2 202211 ALREADY_STARTED only follows an earlier
    /// Configure of the same child in the other addressing mode.
    pub use_default_address_already_started: bool,
}

/// A platform the socket cases run on.
pub trait SocketTarget: Target {
    /// The firmware platform.
    type P: Platform + Clone + 'static;
    /// The socket layer, with an IPv4 address configured.
    fn net(&self) -> &Net<Self::P>;
    /// The raw firmware, for quirk probes.
    fn platform(&self) -> Self::P;
    /// The peer host's address for `port`.
    fn peer(&self, port: u16) -> SocketAddrV4;
    /// This host's own address.
    fn local_ip(&self) -> Ipv4Addr;
    /// What the firmware is expected to do.
    fn expect(&self) -> Expectations;
    /// Whether addresses on the test network may be left unanswered (no
    /// host behind them), so a SYN to them is silently lost. The network
    /// rules forbid addressing anything but 10.0.2.2 inside QEMU.
    fn has_silent_addresses(&self) -> bool;
    /// Slows every link down (bandwidth, one-way latency), if the target
    /// controls its network; returns whether it did.
    fn slow_down_links(&self, bandwidth_bps: u64, latency_ns: u64) -> bool;
    /// Replaces the network with one whose interface has no address yet
    /// (the state OVMF boots in), for the IP-configuration cases.
    fn unconfigure(&mut self) -> Result<(), crate::error::TargetError>;
}
