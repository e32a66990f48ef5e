//! Tokens the firmware owns: what was taken over from the caller (for the
//! contract checker) and the per-child queues they wait in.

use std::collections::VecDeque;

use efisock::firmware::Tcp4IoToken;

use crate::tokens::Frag;

/// Which Tcp4 function a token was submitted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Accept,
    Transmit,
    Receive,
    Close,
}

impl Kind {
    /// The name used in traces and breach messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Accept => "accept",
            Kind::Transmit => "transmit",
            Kind::Receive => "receive",
            Kind::Close => "close",
        }
    }
}

/// A token the firmware owns, from the SUCCESS return of its call until
/// its event is signalled.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub token: usize,
    pub event: usize,
    pub kind: Kind,
    /// Hash of the caller-owned data at submission, re-checked while owned.
    pub(super) check: u64,
    /// Memory the firmware owns for this token: (address, length).
    pub ranges: Vec<(usize, usize)>,
    /// The data fragments (Transmit: to read, Receive: to fill).
    pub(super) frags: Vec<Frag>,
    /// Address of the transmit/receive data block; 0 for tokens without one.
    pub(super) data: usize,
    /// DataLength of the transmit/receive data.
    pub(super) len: usize,
    /// Bytes of a transmit already cut into segments.
    pub(super) offset: usize,
    /// A transmit whose data joined the socket send buffer (EDK2's
    /// processing list); others wait for room (its waiting list).
    pub(super) admitted: bool,
}

impl Pending {
    /// A token whose only firmware-owned memory is the token itself.
    pub(super) fn token_only(kind: Kind, token: usize, event: usize, size: usize) -> Pending {
        Pending {
            token,
            event,
            kind,
            check: 0,
            ranges: vec![(token, size)],
            frags: vec![],
            data: 0,
            len: 0,
            offset: 0,
            admitted: false,
        }
    }
}

impl Pending {
    /// A Transmit or Receive token: the token, its data block
    /// (`data` = address and size) and every non-empty fragment become
    /// firmware-owned; `check` is the hash the contract checker re-verifies.
    pub(super) fn io(
        kind: Kind,
        token: usize,
        event: usize,
        data: (usize, usize),
        frags: Vec<Frag>,
        len: u32,
        check: u64,
    ) -> Pending {
        let mut ranges = vec![(token, size_of::<Tcp4IoToken>())];
        ranges.push(data);
        ranges.extend(frags.iter().copied().filter(|f| f.1 > 0));
        Pending {
            token,
            event,
            kind,
            check,
            ranges,
            frags,
            data: data.0,
            len: len as usize,
            offset: 0,
            admitted: false,
        }
    }
}

/// The pending Connect token and the ConnectionTimeout deadline that comes
/// with it (TcpTimer.c `TcpConnectTimeout`).
#[derive(Debug)]
pub(super) struct PendingConnect {
    pub(super) token: Pending,
    pub(super) deadline: u64,
}

/// A child's pending tokens, one queue per function, each FIFO as EDK2
/// completes them.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    connect: Option<PendingConnect>,
    pub(super) accepts: VecDeque<Pending>,
    pub(super) txs: VecDeque<Pending>,
    pub(super) rxs: VecDeque<Pending>,
    pub(super) close: Option<Pending>,
}

impl Tokens {
    /// A Connect is pending.
    pub(super) fn connecting(&self) -> bool {
        self.connect.is_some()
    }

    /// The pending Connect, if any.
    pub(super) fn connect(&self) -> Option<&Pending> {
        self.connect.as_ref().map(|c| &c.token)
    }

    /// When the pending Connect times out.
    pub(super) fn connect_deadline(&self) -> Option<u64> {
        self.connect.as_ref().map(|c| c.deadline)
    }

    /// Take over a Connect token; at most one is pending (Connect refuses a
    /// second with ACCESS_DENIED before it gets here).
    pub(super) fn start_connect(&mut self, token: Pending, deadline: u64) {
        debug_assert!(self.connect.is_none(), "a second Connect token");
        self.connect = Some(PendingConnect { token, deadline });
    }

    /// Remove the pending Connect (completed, timed out or cancelled).
    pub(super) fn take_connect(&mut self) -> Option<Pending> {
        self.connect.take().map(|c| c.token)
    }

    /// Every pending token, in the order they are flushed: Connect,
    /// Accepts, Transmits, Receives, Close.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.connect()
            .into_iter()
            .chain(&self.accepts)
            .chain(&self.txs)
            .chain(&self.rxs)
            .chain(&self.close)
    }

    /// Transmit bytes in the send buffer not yet cut into segments (what
    /// EDK2's SendBufferSize bounds).
    pub(super) fn unsegmented(&self) -> usize {
        self.txs
            .iter()
            .filter(|p| p.admitted)
            .map(|p| p.len - p.offset)
            .sum()
    }

    /// Remove every pending token (the Close token only if asked), in the
    /// order EDK2 signals them when it flushes a connection (SockImpl.c
    /// `SockConnFlush`): the Connect token, the Close token, then the listen,
    /// receive, waiting send and processing send lists. Their notifies run
    /// in that order once the TPL drops, and OVMF's recordings show it
    /// (a Close token before the armed Receive after Configure(NULL)).
    pub(super) fn take_all(&mut self, include_close: bool) -> Vec<Pending> {
        let mut all: Vec<Pending> = Vec::new();
        all.extend(self.take_connect());
        if include_close {
            all.extend(self.close.take());
        }
        all.extend(self.accepts.drain(..));
        all.extend(self.rxs.drain(..));
        let (processing, waiting): (Vec<Pending>, Vec<Pending>) =
            self.txs.drain(..).partition(|p| p.admitted);
        all.extend(waiting);
        all.extend(processing);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(kind: Kind, token: usize) -> Pending {
        Pending::token_only(kind, token, token + 1, 8)
    }

    #[test]
    fn iteration_and_flush_orders() {
        let mut t = Tokens {
            close: Some(tok(Kind::Close, 50)),
            ..Tokens::default()
        };
        t.rxs.push_back(tok(Kind::Receive, 40));
        t.txs.push_back(tok(Kind::Transmit, 30));
        t.accepts.push_back(tok(Kind::Accept, 20));
        t.start_connect(tok(Kind::Connect, 10), 99);
        assert_eq!(t.connect_deadline(), Some(99));
        let order: Vec<usize> = t.iter().map(|p| p.token).collect();
        assert_eq!(order, [10, 20, 30, 40, 50]);
        let flushed: Vec<usize> = t.take_all(false).iter().map(|p| p.token).collect();
        assert_eq!(flushed, [10, 20, 40, 30], "Close stays unless asked");
        assert!(!t.connecting() && t.connect_deadline().is_none());
        assert_eq!(t.iter().map(|p| p.token).collect::<Vec<_>>(), [50]);
        assert_eq!(t.take_all(true).len(), 1);
        assert_eq!(t.iter().count(), 0);
    }
}

#[cfg(test)]
mod flush_order {
    use super::*;

    fn tok(kind: Kind, token: usize, admitted: bool) -> Pending {
        let mut p = Pending::token_only(kind, token, token + 1, 8);
        p.admitted = admitted;
        p
    }

    #[test]
    fn a_flush_signals_connect_close_listen_receive_waiting_then_processing_sends() {
        let mut t = Tokens {
            close: Some(tok(Kind::Close, 50, false)),
            ..Tokens::default()
        };
        t.txs.push_back(tok(Kind::Transmit, 30, true));
        t.txs.push_back(tok(Kind::Transmit, 31, false));
        t.rxs.push_back(tok(Kind::Receive, 40, false));
        t.accepts.push_back(tok(Kind::Accept, 20, false));
        t.start_connect(tok(Kind::Connect, 10, false), 99);
        let flushed: Vec<usize> = t.take_all(true).iter().map(|p| p.token).collect();
        assert_eq!(flushed, [10, 50, 20, 40, 31, 30]);
    }
}
