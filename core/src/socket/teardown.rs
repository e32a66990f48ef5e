//! `close`, `shutdown`, the graveyard and `Net::shutdown`.
//!
//! Why a graveyard: a closed socket may still have tokens the firmware owns
//! (a graceful Close in progress, a Receive, Transmits). Their memory must
//! not be freed until signalled, and a nonblocking close must not wait. So a
//! closed socket becomes a [`Corpse`] that advances at every safe point:
//!
//! 1. `Closing`: a Close was submitted (abortive if unread data remains,
//!    like Linux sending RST). Wait until it completes, the connection has
//!    reached TIME_WAIT/FIN_WAIT_2/CLOSED (everything we sent was acked), or
//!    `close_timeout` passes.
//! 2. Then, if any token is still pending: `Configure(NULL)`, which
//!    completes every pending token ABORTED inside the call (`Aborting`).
//! 3. When nothing is pending: free the slots (events, pool) and
//!    `DestroyChild`.
//!
//! What EFI cannot express (documented for `shutdown`): Close is a full
//! close, there is no receive-only half close. `shutdown(Read)` is local:
//! queued and later data is discarded and recv returns EOF.
//! `shutdown(Write)` waits for the pending Transmits, then sends FIN with a
//! graceful Close; data already received stays readable, but data the peer
//! sends afterwards is answered with RST by the firmware, and recv returns
//! EOF once the queue is empty.

use alloc::vec::Vec;
use core::time::Duration;

use crate::calls::Ctx;
use crate::error::{Errno, Error, FirmwareCall, Result};
use crate::firmware::{Handle, Platform, Status, Tcp4, Tcp4ConnectionState};
use crate::slots::{SlotId, SlotState, SlotTable, TokenKind};
use crate::socket::{Sock, WriteSide};
use crate::time;

/// Upper bound on accepted-but-not-yet-`accept()`ed children per listener.
pub(crate) const MAX_ACCEPT_QUEUE: usize = 128;

/// Extra time a blocking close waits for ABORTED completions after the
/// Configure(NULL) fallback.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Where a corpse is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Graceful (or abortive) Close submitted, or nothing to close.
    Closing { deadline: u64 },
    /// Configure(NULL) issued; waiting for the ABORTED completions until
    /// `deadline`, after which DestroyChild is tried.
    Aborting { deadline: u64 },
}

/// The Close token's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseState {
    NotSubmitted,
    Pending,
    Done,
}

/// What to do with a corpse now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Wait,
    /// Configure(NULL).
    Abort,
    /// DestroyChild while tokens are still pending (firmware ignored the reset).
    ForceDestroy,
    /// Free the slots and DestroyChild.
    Bury,
}

/// Inputs of the corpse decision.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CorpseView {
    pub stage: Stage,
    pub now: u64,
    pub configured: bool,
    pub close: CloseState,
    /// Tokens other than the Close still firmware-owned.
    pub others_pending: bool,
    /// The connection reached a state where everything we sent was acked.
    pub peer_has_everything: bool,
    pub child_destroyed: bool,
}

/// The teardown state machine (pure).
pub(crate) fn decide(v: &CorpseView) -> Action {
    let any_pending = v.others_pending || v.close == CloseState::Pending;
    if !any_pending {
        return Action::Bury;
    }
    match v.stage {
        Stage::Aborting { deadline } => {
            if v.now >= deadline && !v.child_destroyed {
                Action::ForceDestroy
            } else {
                Action::Wait
            }
        }
        Stage::Closing { deadline } => {
            if !v.configured {
                // Nothing the reset could abort; the tokens will be signalled.
                return Action::Wait;
            }
            let close_over = v.close != CloseState::Pending;
            if close_over || v.now >= deadline || v.peer_has_everything {
                Action::Abort
            } else {
                Action::Wait
            }
        }
    }
}

/// A closed socket whose child is being torn down.
pub(crate) struct Corpse<T> {
    pub tcp: T,
    pub child: Handle,
    pub instance: u64,
    pub configured: bool,
    pub slots: Vec<SlotId>,
    pub close_slot: Option<SlotId>,
    pub stage: Stage,
    pub child_destroyed: bool,
}

/// Submits a Close on a live socket.
pub(crate) fn submit_close<P: Platform, T: Tcp4>(
    ctx: &Ctx<'_, P>,
    slots: &mut SlotTable,
    sock: &mut Sock<T>,
    abort: bool,
) -> Result<()> {
    let id = slots
        .alloc(ctx, TokenKind::Close, 0, sock.instance)
        .map_err(|_| Error::os(Errno::ENOBUFS, "close: no token slot"))?;
    let st = slots.submit_close(ctx, &sock.tcp, id, abort);
    if st != Status::SUCCESS {
        slots.free(ctx, id);
        return Err(Error::from_status(FirmwareCall::Close, st));
    }
    sock.write = WriteSide::Closing { slot: id };
    Ok(())
}

/// Turns a socket into a corpse: destroys never-accepted children, frees
/// idle slots, submits the Close.
pub(crate) fn bury<P: Platform, T: Tcp4>(
    ctx: &Ctx<'_, P>,
    slots: &mut SlotTable,
    corpses: &mut Vec<Corpse<T>>,
    mut sock: Sock<T>,
) {
    while let Some(child) = sock.accept_q.pop_front() {
        let _ = ctx.destroy_child(sock.instance, child);
    }
    if sock.configured && sock.write.close_slot().is_none() {
        // Unread data: abortive close (RST), as Linux does; SO_LINGER 0 asks
        // for it explicitly.
        let abort = !sock.rx.is_empty()
            || sock.reset
            || sock.phase.is_failed()
            || sock.linger == Some(core::time::Duration::ZERO);
        let _ = submit_close(ctx, slots, &mut sock, abort);
    }
    let close_slot = sock.write.close_slot();
    let mut kept = Vec::new();
    for id in sock.slots() {
        if Some(id) != close_slot && slots.state(id).freeable() {
            free_slot(ctx, slots, sock.instance, id);
        } else {
            kept.push(id);
        }
    }
    let linger = sock.linger.unwrap_or(ctx.cfg.close_timeout);
    let deadline = ctx.now().saturating_add(time::nanos(linger));
    corpses.push(Corpse {
        tcp: sock.tcp,
        child: sock.child,
        instance: sock.instance,
        configured: sock.configured,
        slots: kept,
        close_slot,
        stage: Stage::Closing { deadline },
        child_destroyed: false,
    });
}

/// Advances every corpse; removes the finished ones.
pub(crate) fn reap<P: Platform, T: Tcp4>(
    ctx: &Ctx<'_, P>,
    slots: &mut SlotTable,
    corpses: &mut Vec<Corpse<T>>,
) {
    let mut i = 0;
    while i < corpses.len() {
        if step_corpse(ctx, slots, &mut corpses[i]) {
            corpses.swap_remove(i);
        } else {
            i += 1;
        }
    }
}

/// One decision for one corpse; true when it is gone.
fn step_corpse<P: Platform, T: Tcp4>(
    ctx: &Ctx<'_, P>,
    slots: &mut SlotTable,
    c: &mut Corpse<T>,
) -> bool {
    for _ in 0..3 {
        let close = match c.close_slot.map(|id| slots.state(id)) {
            None => CloseState::NotSubmitted,
            Some(SlotState::Pending) => CloseState::Pending,
            Some(_) => CloseState::Done,
        };
        let others_pending = c
            .slots
            .iter()
            .any(|id| Some(*id) != c.close_slot && slots.state(*id) == SlotState::Pending);
        let now = ctx.now();
        let mut view = CorpseView {
            stage: c.stage,
            now,
            configured: c.configured,
            close,
            others_pending,
            peer_has_everything: false,
            child_destroyed: c.child_destroyed,
        };
        if matches!(c.stage, Stage::Closing { .. }) && close == CloseState::Pending && c.configured
        {
            let (st, state, _) = ctx.mode(&c.tcp, c.instance);
            view.peer_has_everything = st == Status::SUCCESS
                && matches!(
                    state,
                    Tcp4ConnectionState::TIME_WAIT
                        | Tcp4ConnectionState::FIN_WAIT2
                        | Tcp4ConnectionState::CLOSED
                );
        }
        match decide(&view) {
            Action::Wait => return false,
            Action::Abort => {
                let _ = ctx.configure(&c.tcp, c.instance, None);
                c.configured = false;
                c.stage = Stage::Aborting {
                    deadline: now.saturating_add(time::nanos(ABORT_GRACE)),
                };
                // Completions happened inside the call; mark them now.
                drain_into(ctx, slots);
            }
            Action::ForceDestroy => {
                if ctx.destroy_child(c.instance, c.child) == Status::SUCCESS {
                    c.child_destroyed = true;
                }
                drain_into(ctx, slots);
                return false;
            }
            Action::Bury => {
                for id in c.slots.drain(..) {
                    free_slot(ctx, slots, c.instance, id);
                }
                if !c.child_destroyed {
                    let _ = ctx.destroy_child(c.instance, c.child);
                    c.child_destroyed = true;
                }
                return true;
            }
        }
    }
    false
}

/// Frees a dead socket's slot `id`. An Accept in it that completed with a
/// child since the socket last collected one carries the only handle of
/// that child: destroy it, or it lives (and holds its port) for good.
fn free_slot<P: Platform>(ctx: &Ctx<'_, P>, slots: &mut SlotTable, instance: u64, id: SlotId) {
    let accepted = slots.get(id).is_some_and(|s| {
        s.kind == TokenKind::Accept && s.state == SlotState::Done(Status::SUCCESS)
    });
    if accepted {
        let child = slots.accepted_child(id);
        if !child.is_null() {
            let _ = ctx.destroy_child(instance, child);
        }
    }
    slots.free(ctx, id);
}

/// Marks the completions recorded so far (used right after a reset, so a
/// corpse can be buried in the same safe point).
fn drain_into<P: Platform>(ctx: &Ctx<'_, P>, slots: &mut SlotTable) {
    while let Some(rec) = ctx.queue.pop() {
        ctx.stats.notify();
        if let Some((kind, instance, status)) = slots.complete(rec.slot) {
            ctx.stats.completion();
            let bytes = slots.completed_bytes(rec.slot);
            SlotTable::trace_completion(
                kind,
                instance,
                rec.slot,
                status,
                bytes,
                (rec.t_ns, ctx.now()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(stage: Stage, close: CloseState) -> CorpseView {
        CorpseView {
            stage,
            now: 100,
            configured: true,
            close,
            others_pending: false,
            peer_has_everything: false,
            child_destroyed: false,
        }
    }

    const CLOSING: Stage = Stage::Closing { deadline: 200 };

    #[test]
    fn nothing_pending_is_buried() {
        assert_eq!(decide(&view(CLOSING, CloseState::Done)), Action::Bury);
        assert_eq!(
            decide(&view(CLOSING, CloseState::NotSubmitted)),
            Action::Bury
        );
        assert_eq!(
            decide(&view(Stage::Aborting { deadline: 0 }, CloseState::Done)),
            Action::Bury
        );
    }

    #[test]
    fn graceful_close_is_waited_for_until_deadline() {
        assert_eq!(decide(&view(CLOSING, CloseState::Pending)), Action::Wait);
        let mut v = view(CLOSING, CloseState::Pending);
        v.now = 200;
        assert_eq!(decide(&v), Action::Abort);
    }

    #[test]
    fn acked_fin_allows_early_reset() {
        let mut v = view(CLOSING, CloseState::Pending);
        v.peer_has_everything = true;
        assert_eq!(decide(&v), Action::Abort);
    }

    #[test]
    fn close_done_with_receive_pending_resets() {
        let mut v = view(CLOSING, CloseState::Done);
        v.others_pending = true;
        assert_eq!(decide(&v), Action::Abort);
    }

    #[test]
    fn unconfigured_instance_is_never_reset() {
        let mut v = view(CLOSING, CloseState::NotSubmitted);
        v.others_pending = true;
        v.configured = false;
        v.now = 1_000;
        assert_eq!(decide(&v), Action::Wait);
    }

    #[test]
    fn aborting_waits_then_forces_destroy_once() {
        let mut v = view(Stage::Aborting { deadline: 150 }, CloseState::Pending);
        assert_eq!(decide(&v), Action::Wait);
        v.now = 150;
        assert_eq!(decide(&v), Action::ForceDestroy);
        v.child_destroyed = true;
        assert_eq!(decide(&v), Action::Wait);
    }
}
