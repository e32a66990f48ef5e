//! Boot services: the DXE core's event system (notify queues per TPL,
//! CheckEvent/WaitForEvent/SetTimer semantics), TPL, Stall, and guarded pool
//! memory with the ownership checks of the contract.

use efisock::firmware::{BootServices, Event, EventNotifyFn, EventType, Status, TimerDelay, Tpl};

use crate::breach::BreachKind;
use crate::pool::FreeOutcome;
use crate::sim::{MAX_WAIT_NS, SimBoot};
use crate::world::{TIMER_TICK_NS, ev_id, timer_due};

/// Status WaitForEvent returns when the wait could never end.
pub const HANG_STATUS: Status = Status::DEVICE_ERROR;

const VALID_TPLS: [usize; 4] = [4, 8, 16, 31];

// SAFETY: notify functions are only called by `Sim::deliver_notifies`, at
// their event's TPL and only when the current TPL is below it.
unsafe impl BootServices for SimBoot {
    unsafe fn create_event(
        &self,
        event_type: EventType,
        notify_tpl: Tpl,
        notify_function: Option<EventNotifyFn>,
        notify_context: *mut core::ffi::c_void,
    ) -> Result<Event, Status> {
        self.sim.enter(0);
        // Injected: CoreCreateEventInternal's AllocateZeroPool failed
        // (MdeModulePkg/Core/Dxe/Event/Event.c: EFI_OUT_OF_RESOURCES, no
        // event created).
        // (Bound first: the world's borrow must end before `exit` runs notifies.)
        let injected = self
            .sim
            .w
            .borrow_mut()
            .env
            .inject("CreateEvent", &[Status::OUT_OF_RESOURCES]);
        if let Some(st) = injected {
            self.sim.exit();
            return Err(st);
        }
        let ty = event_type.bits();
        let notify_bits = ty & (EventType::NOTIFY_SIGNAL.bits() | EventType::NOTIFY_WAIT.bits());
        let r = if notify_bits == (EventType::NOTIFY_SIGNAL.bits() | EventType::NOTIFY_WAIT.bits())
            || (notify_bits != 0
                && (notify_function.is_none() || !VALID_TPLS.contains(&notify_tpl.0)))
        {
            Err(Status::INVALID_PARAMETER)
        } else {
            let id = self.sim.w.borrow_mut().env.create_event(
                ty,
                notify_tpl.0,
                if notify_bits != 0 {
                    notify_function
                } else {
                    None
                },
                notify_context as usize,
            );
            Ok(id as Event)
        };
        self.sim.exit();
        r
    }

    fn close_event(&self, event: Event) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let id = ev_id(event);
            if w.env.events.remove(&id).is_none() {
                Status::INVALID_PARAMETER
            } else {
                if let Some(&(_, tok)) = w.tcp4.pending_events().iter().find(|(e, _)| *e == id) {
                    w.env.breach(
                        BreachKind::EventClosedWhileReferenced,
                        format!("event {id:#x} closed while pending token {tok:#x} references it"),
                    );
                }
                w.env.notify_q.retain(|&e| e != id);
                w.env.decider.forget(id);
                for v in w.env.ip4.notify.values_mut() {
                    v.retain(|&e| e != id);
                }
                Status::SUCCESS
            }
        };
        self.sim.exit();
        st
    }

    fn signal_event(&self, event: Event) -> Status {
        self.sim.enter(0);
        let st = self.sim.w.borrow_mut().env.signal(ev_id(event));
        self.sim.exit();
        st
    }

    fn check_event(&self, event: Event) -> Status {
        self.sim.enter(0);
        let id = ev_id(event);
        // Waiting on a token's event is where an injected completion
        // (CONNECTION_RESET / TIMEOUT) of that token may happen.
        {
            let mut w = self.sim.w.borrow_mut();
            let w = &mut *w;
            w.tcp4.inject_completion(&mut w.env, None, Some(id));
        }
        let first = {
            let mut w = self.sim.w.borrow_mut();
            match w.env.events.get_mut(&id) {
                None => Some(Status::INVALID_PARAMETER),
                Some(e) if e.ty & EventType::NOTIFY_SIGNAL.bits() != 0 => {
                    Some(Status::INVALID_PARAMETER)
                }
                Some(e) if e.signaled => {
                    e.signaled = false;
                    Some(Status::SUCCESS)
                }
                Some(e) => {
                    // NOTIFY_WAIT: queue the notify; it runs as the event lock
                    // is released, and may signal the event (DXE CoreCheckEvent).
                    if e.ty & EventType::NOTIFY_WAIT.bits() != 0 && !e.queued {
                        e.queued = true;
                        w.env.notify_q.push_back(id);
                    }
                    None
                }
            }
        };
        let st = match first {
            Some(st) => st,
            None => {
                self.sim.deliver_notifies();
                let mut w = self.sim.w.borrow_mut();
                match w.env.events.get_mut(&id) {
                    Some(e) if e.signaled => {
                        e.signaled = false;
                        Status::SUCCESS
                    }
                    _ => Status::NOT_READY,
                }
            }
        };
        self.sim.exit();
        st
    }

    fn wait_for_event(&self, events: &[Event]) -> Result<usize, Status> {
        self.sim.enter(0);
        {
            let mut w = self.sim.w.borrow_mut();
            if w.env.tpl != Tpl::APPLICATION.0 {
                let t = w.env.tpl;
                w.env.breach(
                    BreachKind::WrongTpl,
                    format!("WaitForEvent called at TPL {t} (only TPL_APPLICATION allowed)"),
                );
                drop(w);
                self.sim.exit();
                return Err(Status::UNSUPPORTED);
            }
            if events.is_empty() {
                drop(w);
                self.sim.exit();
                return Err(Status::INVALID_PARAMETER);
            }
            for &e in events {
                match w.env.events.get(&ev_id(e)) {
                    None => {
                        drop(w);
                        self.sim.exit();
                        return Err(Status::INVALID_PARAMETER);
                    }
                    Some(r) if r.ty & EventType::NOTIFY_SIGNAL.bits() != 0 => {
                        drop(w);
                        self.sim.exit();
                        return Err(Status::INVALID_PARAMETER);
                    }
                    _ => {}
                }
            }
        }
        let ids: Vec<usize> = events.iter().map(|&e| ev_id(e)).collect();
        let mut found = None;
        let start = self.sim.now_ns();
        let ok = self
            .sim
            .run_until(start.saturating_add(MAX_WAIT_NS), true, |w| {
                for (i, id) in ids.iter().enumerate() {
                    if let Some(e) = w.env.events.get_mut(id) {
                        if e.signaled {
                            e.signaled = false;
                            found = Some(i);
                            return true;
                        }
                        if e.ty & EventType::NOTIFY_WAIT.bits() != 0 && !e.queued {
                            e.queued = true;
                            w.env.notify_q.push_back(*id);
                        }
                    }
                }
                false
            });
        let r = match (ok, found) {
            (true, Some(i)) => Ok(i),
            _ => {
                let mut w = self.sim.w.borrow_mut();
                w.env.breach(
                    BreachKind::WouldHangForever,
                    format!("WaitForEvent on {} event(s) can never return: nothing pending can signal them", ids.len()),
                );
                Err(HANG_STATUS)
            }
        };
        self.sim.exit();
        r
    }

    fn set_timer(&self, event: Event, delay: TimerDelay, trigger_time: u64) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let now = w.env.now;
            // Drawn only for a valid arming, so invalid calls take no decision.
            let arming = matches!(delay, TimerDelay::RELATIVE | TimerDelay::PERIODIC)
                && w.env
                    .events
                    .get(&ev_id(event))
                    .is_some_and(|e| e.ty & EventType::TIMER.bits() != 0);
            let jitter = if arming { w.env.timer_jitter_ns() } else { 0 };
            match w.env.events.get_mut(&ev_id(event)) {
                None => Status::INVALID_PARAMETER,
                Some(e) if e.ty & EventType::TIMER.bits() == 0 => Status::INVALID_PARAMETER,
                Some(e) => {
                    let ns = trigger_time.saturating_mul(100);
                    match delay {
                        TimerDelay::CANCEL => {
                            e.timer = None;
                            Status::SUCCESS
                        }
                        TimerDelay::RELATIVE => {
                            e.timer = Some((timer_due(now, ns) + jitter, 0));
                            Status::SUCCESS
                        }
                        TimerDelay::PERIODIC => {
                            // Period 0 means every timer tick (10 ms on OVMF).
                            let p = if ns == 0 { TIMER_TICK_NS } else { ns };
                            e.timer = Some((timer_due(now, p) + jitter, p));
                            Status::SUCCESS
                        }
                        _ => Status::INVALID_PARAMETER,
                    }
                }
            }
        };
        self.sim.exit();
        st
    }

    fn raise_tpl(&self, new_tpl: Tpl) -> Tpl {
        let mut w = self.sim.w.borrow_mut();
        let old = w.env.tpl;
        if new_tpl.0 < old {
            w.env.breach(
                BreachKind::WrongTpl,
                format!("RaiseTPL({}) below the current TPL {old}", new_tpl.0),
            );
        } else {
            w.env.tpl = new_tpl.0;
        }
        Tpl(old)
    }

    fn restore_tpl(&self, old_tpl: Tpl) {
        {
            let mut w = self.sim.w.borrow_mut();
            if old_tpl.0 > w.env.tpl {
                let cur = w.env.tpl;
                w.env.breach(
                    BreachKind::WrongTpl,
                    format!("RestoreTPL({}) above the current TPL {cur}", old_tpl.0),
                );
                return;
            }
            w.env.tpl = old_tpl.0;
        }
        self.sim.deliver_notifies();
    }

    fn stall(&self, microseconds: usize) -> Status {
        self.sim.enter(0);
        let target = self.sim.now_ns().saturating_add(microseconds as u64 * 1000);
        self.sim.run_until(target, false, |_| false);
        self.sim.exit();
        Status::SUCCESS
    }

    fn allocate_pool(&self, size: usize) -> Result<*mut u8, Status> {
        self.sim.enter(0);
        let r = {
            let mut w = self.sim.w.borrow_mut();
            // Injected: CoreAllocatePool found no free pages
            // (MdeModulePkg/Core/Dxe/Mem/Pool.c: EFI_OUT_OF_RESOURCES).
            match w.env.inject("AllocatePool", &[Status::OUT_OF_RESOURCES]) {
                Some(st) => Err(st),
                None => w.env.pool.allocate(size).ok_or(Status::OUT_OF_RESOURCES),
            }
        };
        self.sim.exit();
        r
    }

    unsafe fn free_pool(&self, buffer: *mut u8) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let p = buffer as usize;
            match w.env.pool.size_of(p) {
                None => Status::INVALID_PARAMETER,
                Some(size) => {
                    let owned = w
                        .tcp4
                        .owned_ranges()
                        .into_iter()
                        .find(|&(a, l, _)| a < p + size.max(1) && p < a + l);
                    if let Some((a, _, tok)) = owned {
                        w.env.breach(
                            BreachKind::FreedWhileOwned,
                            format!("free_pool({p:#x}) while the firmware owns {a:#x} (pending token {tok:#x}); block quarantined"),
                        );
                        w.env.pool.quarantine(p);
                        Status::SUCCESS
                    } else {
                        match w.env.pool.free(p) {
                            FreeOutcome::Freed => Status::SUCCESS,
                            FreeOutcome::GuardOverwritten => {
                                w.env.breach(
                                    BreachKind::ModifiedWhileOwned,
                                    format!("pool block {p:#x} ({size} bytes): guard bytes overwritten (buffer overrun)"),
                                );
                                Status::SUCCESS
                            }
                            FreeOutcome::Unknown => Status::INVALID_PARAMETER,
                        }
                    }
                }
            }
        };
        self.sim.exit();
        st
    }

    fn monotonic_ns(&self) -> u64 {
        // Reading the counter takes time too, so a spin loop makes progress.
        self.sim.enter(0);
        let t = self.sim.now_ns();
        self.sim.exit();
        t
    }
}
