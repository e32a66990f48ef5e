//! The DXE event table: events, SignalEvent, and which notify runs next.

use efisock::firmware::{EventNotifyFn, EventType, Status};

use super::{EVENT_BASE, Env};

/// One event: its type, TPL, notify function and state.
pub(crate) struct EventRec {
    /// `EventType` bits.
    pub ty: u32,
    pub tpl: usize,
    pub func: Option<EventNotifyFn>,
    pub ctx: usize,
    pub signaled: bool,
    /// Its notify is in the notify queue.
    pub queued: bool,
    /// Delivery points at which its queued notify was deferred.
    pub deferrals: u32,
    /// A set timer: (due time, period; 0 for a one-shot timer).
    pub timer: Option<(u64, u64)>,
}

/// A notify ready to call (copied out so no borrow is held while calling).
pub(crate) struct NotifyCall {
    pub event: usize,
    pub func: EventNotifyFn,
    pub ctx: usize,
    pub tpl: usize,
}

impl Env {
    /// CreateEvent: a new event handle.
    pub fn create_event(
        &mut self,
        ty: u32,
        tpl: usize,
        func: Option<EventNotifyFn>,
        ctx: usize,
    ) -> usize {
        let id = EVENT_BASE + self.next_event * 16;
        self.next_event += 1;
        self.events.insert(
            id,
            EventRec {
                ty,
                tpl,
                func,
                ctx,
                signaled: false,
                queued: false,
                deferrals: 0,
                timer: None,
            },
        );
        id
    }

    /// SignalEvent: mark signalled, queue the notify of a NOTIFY_SIGNAL event
    /// unless it is already queued.
    pub fn signal(&mut self, id: usize) -> Status {
        let Some(e) = self.events.get_mut(&id) else {
            return Status::INVALID_PARAMETER;
        };
        e.signaled = true;
        if e.ty & EventType::NOTIFY_SIGNAL.bits() != 0 && e.func.is_some() && !e.queued {
            e.queued = true;
            e.deferrals = 0;
            self.notify_q.push_back(id);
            self.decider.note_queued(id);
        }
        Status::SUCCESS
    }

    /// Pop the next notify allowed at the current TPL. The candidates are
    /// the queued notifies of the highest pending TPL, in FIFO order; a
    /// `NotifyDefer` decision may defer them all to a later delivery point
    /// (each candidate at most `MAX_DEFERRALS` times, so none waits
    /// forever), and a `NotifyPick` decision picks one (0 = FIFO head, the
    /// DXE core's order). Under `Scheduler::Fifo` neither is a decision.
    pub fn next_notify(&mut self) -> Option<NotifyCall> {
        let events = &self.events;
        self.notify_q.retain(|id| events.contains_key(id));
        let best_tpl = self
            .notify_q
            .iter()
            .filter_map(|id| self.events.get(id).map(|e| e.tpl))
            .filter(|&t| t > self.tpl)
            .max()?;
        let cands: Vec<usize> = self
            .notify_q
            .iter()
            .copied()
            .filter(|id| self.events[id].tpl == best_tpl)
            .collect();
        let most = cands
            .iter()
            .map(|id| self.events[id].deferrals)
            .max()
            .unwrap_or(0);
        let p_defer = self.p_defer();
        if self.decider.defer_notify(most, p_defer) {
            for id in &cands {
                if let Some(e) = self.events.get_mut(id) {
                    e.deferrals += 1;
                }
            }
            return None;
        }
        let id = cands[self.decider.pick_notify(&cands)];
        let pos = self
            .notify_q
            .iter()
            .position(|&q| q == id)
            .expect("candidate is queued");
        self.notify_q.remove(pos);
        let e = self.events.get_mut(&id).expect("checked above");
        e.queued = false;
        if e.ty & EventType::NOTIFY_SIGNAL.bits() != 0 {
            // DXE core clears SignalCount of NOTIFY_SIGNAL events on dispatch.
            e.signaled = false;
        }
        let func = e.func?;
        self.stats.notifies_delivered += 1;
        Some(NotifyCall {
            event: id,
            func,
            ctx: e.ctx,
            tpl: e.tpl,
        })
    }
}
