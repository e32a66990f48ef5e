//! The state of a socket's life and of its write side, as enums that carry
//! their tokens, with their transitions as pure functions.
//!
//! Why enums with data: a Connect token exists only while connecting (or
//! while our own abort of it has not been signalled), a backlog only while
//! listening, a Close token only once the write side is shut; as separate
//! fields and booleans every illegal combination was representable.

use crate::error::{Error, FirmwareCall};
use crate::firmware::Status;
use crate::slots::SlotId;

/// Where a socket is in its life, with the Connect token that belongs to
/// that stage.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Created (maybe bound), not connecting or listening.
    Fresh,
    /// The Connect token `slot` is pending.
    Connecting { slot: SlotId },
    /// Connection established (connect succeeded or accepted).
    Connected,
    /// Connect failed or was aborted; the child is unconfigured or dead.
    /// `abandoned_connect`: the Connect token of an attempt we aborted
    /// ourselves, until the firmware signals it (its ABORTED is ours, not
    /// an error to report).
    Failed { abandoned_connect: Option<SlotId> },
    /// Listening with an Accept kept armed while fewer than `backlog`
    /// accepted connections wait for `accept()` (see [`accept_wanted`]).
    Listening { backlog: u32 },
}

/// The write side of a connection and the Close token that ends it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum WriteSide {
    /// Sending.
    Open,
    /// `shutdown(Write)`: the graceful Close goes out once the Transmits
    /// drained.
    FinWanted,
    /// Our Close token `slot` was submitted (graceful, or abortive at close).
    Closing { slot: SlotId },
    /// Submitting the deferred Close failed; the error is reported once, to
    /// the `shutdown` that waits for the FIN.
    CloseFailed(Option<Error>),
}

impl WriteSide {
    /// The Close token, if submitted.
    pub(crate) const fn close_slot(&self) -> Option<SlotId> {
        match self {
            WriteSide::Closing { slot } => Some(*slot),
            _ => None,
        }
    }

    /// True once the write side is shut (send fails with EPIPE).
    pub(crate) const fn is_shut(&self) -> bool {
        !matches!(self, WriteSide::Open)
    }

    /// Whether the deferred graceful Close is due now (pure): wanted, and
    /// no Transmit in flight.
    pub(crate) const fn fin_due(&self, transmits_in_flight: bool) -> bool {
        matches!(self, WriteSide::FinWanted) && !transmits_in_flight
    }

    /// What `shutdown(Write)` waits for: Some once the FIN was submitted
    /// (Ok) or its submission failed (the error, once); None while pending.
    pub(crate) fn take_fin_outcome(&mut self) -> Option<Result<(), Error>> {
        match self {
            WriteSide::Closing { .. } => Some(Ok(())),
            WriteSide::CloseFailed(err) => err.take().map(Err),
            WriteSide::Open | WriteSide::FinWanted => None,
        }
    }
}

/// How the read side of a connection ended, as far as recv is concerned.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum ReadSide {
    /// Receiving (a Receive is kept armed).
    Open,
    /// The connection failed with this error; recv raises it once (after
    /// the data already queued), then reads EOF.
    Failed(Error),
    /// End of stream: the peer's FIN, our own teardown, or a raised error.
    Ended,
}

impl ReadSide {
    /// The peer's FIN or our own teardown (pure): Ended, unless an error is
    /// still to be raised (it comes first).
    pub(crate) fn ended(self) -> ReadSide {
        match self {
            ReadSide::Failed(e) => ReadSide::Failed(e),
            ReadSide::Open | ReadSide::Ended => ReadSide::Ended,
        }
    }

    /// The connection failed with `err` (pure): the first error is kept.
    pub(crate) fn failed(self, err: Error) -> ReadSide {
        match self {
            ReadSide::Failed(first) => ReadSide::Failed(first),
            ReadSide::Open | ReadSide::Ended => ReadSide::Failed(err),
        }
    }

    /// The error to raise now, once; the read side is Ended afterwards.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        match core::mem::replace(self, ReadSide::Ended) {
            ReadSide::Failed(e) => Some(e),
            other => {
                *self = other;
                None
            }
        }
    }

    /// True while receiving.
    pub(crate) const fn is_open(&self) -> bool {
        matches!(self, ReadSide::Open)
    }

    /// True at the end of stream.
    pub(crate) const fn is_ended(&self) -> bool {
        matches!(self, ReadSide::Ended)
    }

    /// True while an error waits to be raised.
    pub(crate) const fn has_error(&self) -> bool {
        matches!(self, ReadSide::Failed(_))
    }
}

/// What a signalled Connect token means for the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectDone {
    /// Connected: learn the addresses.
    Connected,
    /// Failed with this error (for SO_ERROR and the next call).
    Failed(Error),
    /// The attempt we aborted ended: stay Failed, report nothing.
    Abandoned,
}

impl Phase {
    /// The Connect token this phase owns, if any.
    pub(crate) const fn connect_slot(self) -> Option<SlotId> {
        match self {
            Phase::Connecting { slot } => Some(slot),
            Phase::Failed { abandoned_connect } => abandoned_connect,
            Phase::Fresh | Phase::Connected | Phase::Listening { .. } => None,
        }
    }

    /// True for `Connecting`.
    pub(crate) const fn is_connecting(self) -> bool {
        matches!(self, Phase::Connecting { .. })
    }

    /// True for `Failed`.
    pub(crate) const fn is_failed(self) -> bool {
        matches!(self, Phase::Failed { .. })
    }

    /// The Connect token completed with `status` (pure): the outcome and
    /// the next phase.
    pub(crate) fn connect_done(self, status: Status) -> (ConnectDone, Phase) {
        let failed = Phase::Failed {
            abandoned_connect: None,
        };
        match self {
            Phase::Failed { .. } => (ConnectDone::Abandoned, failed),
            _ if status == Status::SUCCESS => (ConnectDone::Connected, Phase::Connected),
            _ => (
                ConnectDone::Failed(Error::from_status(FirmwareCall::Connect, status)),
                failed,
            ),
        }
    }

    /// We abort the attempt (timeout): Failed, keeping the Connect token
    /// until the firmware signals it.
    pub(crate) const fn abandon_connect(self) -> Phase {
        Phase::Failed {
            abandoned_connect: self.connect_slot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Errno;
    use crate::firmware::status;

    /// (phase, status) -> (outcome errno, next phase): the Connect token's
    /// completion, including the attempt we abandoned ourselves.
    #[test]
    fn connect_done_table() {
        let failed = Phase::Failed {
            abandoned_connect: None,
        };
        let connecting = Phase::Connecting { slot: 3 };
        let abandoned = connecting.abandon_connect();
        assert_eq!(
            abandoned,
            Phase::Failed {
                abandoned_connect: Some(3)
            }
        );
        assert_eq!(abandoned.connect_slot(), Some(3));
        assert_eq!(connecting.connect_slot(), Some(3));
        assert_eq!(Phase::Connected.connect_slot(), None);
        assert_eq!(
            connecting.connect_done(Status::SUCCESS),
            (ConnectDone::Connected, Phase::Connected)
        );
        let (outcome, next) = connecting.connect_done(status::CONNECTION_REFUSED);
        assert_eq!(next, failed);
        match outcome {
            ConnectDone::Failed(e) => assert_eq!(e.errno(), Some(Errno::ECONNREFUSED)),
            o => panic!("{o:?}"),
        }
        for st in [Status::ABORTED, Status::SUCCESS] {
            assert_eq!(
                abandoned.connect_done(st),
                (ConnectDone::Abandoned, failed),
                "our own abort is not reported"
            );
        }
        assert!(connecting.is_connecting() && !connecting.is_failed());
        assert!(abandoned.is_failed() && !abandoned.is_connecting());
    }

    /// Every write side: (shut, close slot, FIN due with/without Transmits
    /// in flight, what shutdown(Write) sees).
    /// Every read side through every event: (start, after FIN, after an
    /// error, the error recv raises).
    #[test]
    fn read_side_table() {
        let first = Error::os(Errno::ECONNRESET, "first");
        let second = Error::os(Errno::ETIMEDOUT, "second");
        let failed = ReadSide::Failed(first.clone());
        let rows = [
            (
                ReadSide::Open,
                ReadSide::Ended,
                ReadSide::Failed(second.clone()),
                None,
            ),
            (
                failed.clone(),
                failed.clone(),
                failed.clone(),
                Some(first.clone()),
            ),
            (
                ReadSide::Ended,
                ReadSide::Ended,
                ReadSide::Failed(second.clone()),
                None,
            ),
        ];
        for (start, after_fin, after_error, raised) in rows {
            assert_eq!(start.clone().ended(), after_fin, "{start:?}");
            assert_eq!(
                start.clone().failed(second.clone()),
                after_error,
                "{start:?}"
            );
            let mut s = start.clone();
            assert_eq!(s.take_error(), raised, "{start:?}");
            let after_take = if raised.is_some() {
                ReadSide::Ended
            } else {
                start.clone()
            };
            assert_eq!(s, after_take, "raised once, then EOF");
        }
        assert!(ReadSide::Open.is_open() && !ReadSide::Open.is_ended());
        assert!(ReadSide::Ended.is_ended() && !ReadSide::Ended.has_error());
        assert!(failed.has_error() && !failed.is_open() && !failed.is_ended());
    }

    #[test]
    fn write_side_table() {
        let err = Error::os(Errno::ENOBUFS, "close: no token slot");
        let rows = [
            (WriteSide::Open, false, None, (false, false), None),
            (WriteSide::FinWanted, true, None, (false, true), None),
            (
                WriteSide::Closing { slot: 7 },
                true,
                Some(7),
                (false, false),
                Some(Ok(())),
            ),
            (
                WriteSide::CloseFailed(Some(err.clone())),
                true,
                None,
                (false, false),
                Some(Err(err.clone())),
            ),
            (
                WriteSide::CloseFailed(None),
                true,
                None,
                (false, false),
                None,
            ),
        ];
        for (mut w, shut, slot, (due_busy, due_idle), outcome) in rows {
            assert_eq!(w.is_shut(), shut, "{w:?}");
            assert_eq!(w.close_slot(), slot, "{w:?}");
            assert_eq!(w.fin_due(true), due_busy, "{w:?}");
            assert_eq!(w.fin_due(false), due_idle, "{w:?}");
            assert_eq!(w.take_fin_outcome(), outcome, "{w:?}");
        }
        let mut failed = WriteSide::CloseFailed(Some(err));
        assert!(failed.take_fin_outcome().is_some());
        assert_eq!(
            failed.take_fin_outcome(),
            None,
            "the error is reported once"
        );
    }
}
