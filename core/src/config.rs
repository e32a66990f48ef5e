//! [`NetConfig`]: the tunables of a `Net`, and the per-socket token limits
//! derived from them.
//!
//! Why its own module: the traced calls, the token slots and the socket
//! state machine all read the configuration, and all sit below `Net`.

use core::time::Duration;

/// Token slots one socket may use besides Transmits (Connect, Accept,
/// Receive, Close).
pub(crate) const FIXED_SLOTS_PER_SOCKET: usize = 4;
/// Transmit tokens one socket may have in flight.
pub(crate) const MAX_TX_SLOTS: usize = 16;

/// Tunables of a [`Net`](crate::Net).
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// use efisock::{Net, NetConfig};
/// use std::time::Duration;
///
/// let net = Net::with_config(
///     platform,
///     NetConfig {
///         send_budget: 64 * 1024,
///         connect_timeout: Some(Duration::from_secs(5)),
///         ..NetConfig::default()
///     },
/// );
/// assert_eq!(net.config().max_sockets, 64);
/// ```
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Buffer of the one Receive kept armed per connected socket (default 64 KiB).
    pub recv_buffer_size: usize,
    /// Bytes a socket may have queued in pending Transmits (default 256 KiB).
    pub send_budget: usize,
    /// Live sockets (listening, connected or fresh) at most (default 64);
    /// beyond it `socket()`/`accept()` fail with ENOBUFS.
    pub max_sockets: usize,
    /// How long a blocking close waits for the graceful Close before the
    /// Configure(NULL) fallback (default 10 s).
    pub close_timeout: Duration,
    /// Bound on a blocking connect on a socket without timeout (default
    /// None: the firmware's own connect timer, 75 s on EDK2).
    pub connect_timeout: Option<Duration>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            recv_buffer_size: 64 * 1024,
            send_budget: 256 * 1024,
            max_sockets: 64,
            close_timeout: Duration::from_secs(10),
            connect_timeout: None,
        }
    }
}

impl NetConfig {
    /// Size of one Transmit buffer.
    pub(crate) fn tx_chunk(&self) -> usize {
        self.send_budget.clamp(1, 64 * 1024)
    }
    /// Slot table size (and completion queue bound). The graveyard shares
    /// it: a socket whose slots are still pending in the graveyard keeps its
    /// share until they are signalled.
    pub(crate) fn slot_limit(&self) -> usize {
        self.max_sockets.max(1) * 2 * (FIXED_SLOTS_PER_SOCKET + MAX_TX_SLOTS)
    }
}
