//! One TCP4 child: its configuration, socket, pending tokens and what the
//! driver remembers about its connection between frames.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use efisock::firmware::{Status, Tcp4Option};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;

use super::addressing::IpChild;
use super::pending::Tokens;
use super::sender::Sender;
use super::syn_schedule::SynRetransmit;

/// Largest and smallest buffer sizes EDK2 accepts (TcpProto.h).
const MAX_BUF: u32 = 2 * 1024 * 1024;
const MIN_BUF: u32 = 8 * 1024;

/// How a child came to be, which decides whether the application holds
/// its handle and whether it may Connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// CreateChild: the application holds the handle from the start.
    Created,
    /// Established by a listener and waiting in its backlog; the
    /// application has no handle yet.
    Backlog,
    /// Handed to the application by an Accept.
    Accepted,
}

/// The TCP4 options in force, out-of-range values already replaced.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opts {
    pub(super) rcv_buf: u32,
    pub(super) snd_buf: u32,
    pub(super) backlog: usize,
    pub(super) conn_timeout_s: u32,
    pub(super) fin_timeout_s: u32,
    pub(super) tw_timeout_s: u32,
    pub(super) nagle: bool,
    pub(super) data_retries: u32,
}

/// A configured child's access point and options (what GetModeData
/// reports back).
#[derive(Debug, Clone, Copy)]
pub(super) struct ChildCfg {
    pub(super) station: Ipv4Addr,
    pub(super) mask: Ipv4Addr,
    pub(super) port: u16,
    pub(super) remote: Ipv4Addr,
    pub(super) remote_port: u16,
    pub(super) active: bool,
    pub(super) use_default: bool,
    pub(super) tos: u8,
    pub(super) ttl: u8,
    pub(super) opts: Opts,
}

/// A listening child's sockets: listening ones (the backlog emulation) and
/// established children not yet accepted, oldest first.
#[derive(Debug, Default)]
pub(super) struct ListenerState {
    pub(super) pool: Vec<SocketHandle>,
    pub(super) ready: VecDeque<usize>,
}

/// What the driver has seen of the connection, compared on every frame.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Observed {
    /// The socket state at the last service, to classify a reset by the
    /// state it interrupted.
    pub(super) last_state: Option<State>,
    /// The peer's FIN arrived (Receive reports it after the data before it).
    pub(super) peer_fin: bool,
    /// A reset was already turned into the stored error.
    pub(super) reset_reported: bool,
}

/// The local Close's progress.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LocalClose {
    /// The FIN was queued (after the transmits pending at Close).
    pub(super) fin_queued: bool,
    /// A graceful close finished. EDK2 never clears the FIN control flags
    /// afterwards, so a later Connect sends no SYN (code-read).
    pub(super) graceful_done: bool,
    /// When the FIN_WAIT_2 or TIME_WAIT timer expires.
    pub(super) linger_until: Option<u64>,
    /// The state `linger_until` was armed in: entering TIME_WAIT from
    /// FIN_WAIT_2 clears the FIN_WAIT_2 timer and arms TimeWaitTimeout
    /// (TcpInput.c l.463-471, `TcpClearAllTimer` then `TCP_TIMER_2MSL`).
    pub(super) linger_in: Option<State>,
    /// Received bytes still unread when the FIN was queued: only data
    /// beyond them arrived after the Close (with
    /// `close_with_unread_data_sends_rst` on there are none, the Close
    /// reset the connection instead).
    pub(super) unread_at_fin: usize,
}

/// Retransmission watchdog: bytes (and FIN) outstanding, unchanged since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stall {
    pub(super) outstanding: usize,
    pub(super) since: u64,
}

/// One TCP4 child (an EDK2 TCP4 instance).
#[derive(Debug)]
pub(crate) struct Child {
    pub(super) origin: Origin,
    /// The per-instance lock, held for the duration of a call.
    pub(crate) busy: bool,
    pub(super) cfg: Option<ChildCfg>,
    /// A Configure returned NO_MAPPING and none succeeded since (EDK2's
    /// `SO_NO_MAPPING`): calls report NO_MAPPING instead of NOT_STARTED.
    pub(super) no_mapping: bool,
    /// The IP4 child beneath, which outlives a failed Configure.
    pub(super) ip: IpChild,
    pub(super) sock: Option<SocketHandle>,
    pub(super) listener: Option<ListenerState>,
    pub(super) tokens: Tokens,
    /// The socket error (SockError) the next Receive reports.
    pub(super) error: Option<Status>,
    pub(super) observed: Observed,
    pub(super) local_close: LocalClose,
    pub(super) stall: Option<Stall>,
    /// EDK2's sender variables for the current connection.
    pub(super) sender: Sender,
    /// The SYN and EDK2's retransmission timer while in SYN_SENT.
    pub(super) syn_rexmit: Option<SynRetransmit>,
}

impl Child {
    /// An unconfigured child.
    pub(super) fn new(origin: Origin) -> Child {
        Child {
            origin,
            busy: false,
            cfg: None,
            no_mapping: false,
            ip: IpChild::Unconfigured,
            sock: None,
            listener: None,
            tokens: Tokens::default(),
            error: None,
            observed: Observed::default(),
            local_close: LocalClose::default(),
            stall: None,
            sender: Sender::default(),
            syn_rexmit: None,
        }
    }

    /// Configured (Configure succeeded and no reset since).
    pub fn is_configured(&self) -> bool {
        self.cfg.is_some()
    }

    /// The application holds this child's handle (it may open the
    /// protocol on it and must destroy it).
    pub fn is_visible(&self) -> bool {
        self.origin != Origin::Backlog
    }

    /// When one of the driver's own timers (persist, SYN retransmission)
    /// next expires.
    pub(super) fn next_timer(&self) -> Option<u64> {
        let syn = self.syn_rexmit.as_ref().map(|s| s.next);
        match (self.sender.persist_at, syn) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Created by a listener rather than by CreateChild.
    pub(super) fn is_passive(&self) -> bool {
        self.origin != Origin::Created
    }

    /// An Accept hands this backlog child to the application.
    pub(super) fn hand_out(&mut self) {
        debug_assert_eq!(
            self.origin,
            Origin::Backlog,
            "only backlog children are accepted"
        );
        self.origin = Origin::Accepted;
    }
}

/// Read the options, replacing out-of-range values by defaults (TcpProto.h).
///
/// # Safety
/// `o` is null or valid for reads.
pub(super) unsafe fn read_opts(o: *const Tcp4Option) -> Opts {
    let mut opts = Opts {
        rcv_buf: MAX_BUF,
        snd_buf: MAX_BUF,
        backlog: 10,
        conn_timeout_s: 75,
        fin_timeout_s: 2,
        tw_timeout_s: 2,
        nagle: true,
        data_retries: 12,
    };
    if o.is_null() {
        return opts;
    }
    // SAFETY: non-null option pointer is valid for reads (trait contract).
    let o = unsafe { &*o };
    // TCP_COMP_VAL (TcpDispatcher.c `TcpConfigurePcb`): out of range means
    // the default, not the nearest bound. Ranges from TcpProto.h.
    let inr = |v: u32, lo: u32, hi: u32, d: u32| if (lo..=hi).contains(&v) { v } else { d };
    opts.rcv_buf = inr(o.receive_buffer_size, MIN_BUF, MAX_BUF, MAX_BUF);
    opts.snd_buf = inr(o.send_buffer_size, MIN_BUF, MAX_BUF, MAX_BUF);
    opts.backlog = inr(o.max_syn_back_log, 5, 10, 10) as usize;
    opts.conn_timeout_s = inr(o.connection_timeout, 60, 75, 75);
    opts.fin_timeout_s = inr(o.fin_timeout, 2, 4, 2);
    // TimeWaitTimeout 0 disables TIME_WAIT (the connection closes at once).
    opts.tw_timeout_s = match o.time_wait_timeout {
        0 => 0,
        v => inr(v, 2, 60, 2),
    };
    opts.nagle = bool::from(o.enable_nagle);
    opts.data_retries = inr(o.data_retries, 6, 12, 12);
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_decides_visibility_and_passivity() {
        let created = Child::new(Origin::Created);
        assert!(created.is_visible() && !created.is_passive());
        let mut backlog = Child::new(Origin::Backlog);
        assert!(!backlog.is_visible() && backlog.is_passive());
        backlog.hand_out();
        assert!(backlog.is_visible() && backlog.is_passive());
        assert_eq!(backlog.origin, Origin::Accepted);
    }
}
