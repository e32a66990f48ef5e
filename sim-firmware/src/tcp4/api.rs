//! `SimTcp4` (one child's EFI_TCP4_PROTOCOL) and the service binding: the
//! call envelope (cost, TPL check, argument checks, per-instance lock,
//! completions delivered as the call returns) around `tcp4`'s logic.

use core::ffi::c_void;

use efisock::firmware::status::name;
use efisock::firmware::{
    Handle, Ip4ModeData, Ipv4Address, NetworkMode, Status, Tcp4, Tcp4CloseToken,
    Tcp4CompletionToken, Tcp4ConfigData, Tcp4ConnectionState, Tcp4ConnectionToken, Tcp4IoToken,
    Tcp4ListenToken, Tcp4ServiceBinding, Tpl,
};

use super::{CHILD_BASE, Edk2Tcp4};
use crate::breach::BreachKind;
use crate::decide::DecisionKind;
use crate::sim::{Sim, SimTcp4Service};
use crate::world::Env;

/// One TCP4 child's protocol instance.
#[derive(Clone)]
pub struct SimTcp4 {
    sim: Sim,
    id: usize,
}

impl SimTcp4 {
    /// The child handle this instance is installed on.
    pub fn handle(&self) -> Handle {
        Edk2Tcp4::child_handle(self.id) as Handle
    }

    /// The envelope of every Tcp4 call but Poll: cost, the TPL check, the
    /// per-instance lock (when `lock`), then `f` on the driver, an injected
    /// completion, the trace line, and the notifies of what completed.
    fn call(
        &self,
        call: &'static str,
        lock: bool,
        f: impl FnOnce(&mut Edk2Tcp4, &mut Env, usize) -> Status,
    ) -> Status {
        self.sim.enter(0);
        let (st, locked) = {
            let mut w = self.sim.w.borrow_mut();
            let w = &mut *w;
            if w.env.tpl > Tpl::CALLBACK.0 {
                let t = w.env.tpl;
                w.env.breach(
                    BreachKind::WrongTpl,
                    format!("Tcp4.{call} called at TPL {t} (above TPL_CALLBACK)"),
                );
                (Status::UNSUPPORTED, false)
            } else {
                match w.tcp4.children.get_mut(&self.id) {
                    None => (Status::INVALID_PARAMETER, false),
                    Some(c) if lock && c.busy => (Status::ACCESS_DENIED, false),
                    Some(c) => {
                        if lock {
                            c.busy = true;
                        }
                        w.tcp4.in_call = true;
                        let st = f(&mut w.tcp4, &mut w.env, self.id);
                        // An injected completion of this instance's pending
                        // token, as if a DPC ran during the call.
                        w.tcp4.inject_completion(&mut w.env, Some(self.id), None);
                        w.tcp4.in_call = false;
                        (st, lock)
                    }
                }
            }
        };
        {
            let mut w = self.sim.w.borrow_mut();
            let now = w.env.now;
            tracing::trace!(target: "efisock::sim", instance = self.id as u64, call, status = name(st), t_ns = now);
            w.env
                .trace(format!("child {} {call} -> {}", self.id, name(st)));
        }
        // Notify functions of completions run now, with the lock still held:
        // a notify re-entering this instance gets ACCESS_DENIED.
        self.sim.exit();
        if locked {
            if let Some(c) = self.sim.w.borrow_mut().tcp4.children.get_mut(&self.id) {
                c.busy = false;
            }
        }
        st
    }
}

// SAFETY: tokens get their status written before their event is signalled
// (`Edk2Tcp4::complete`), each exactly once (removed from the pending queues
// before completion), and are never touched afterwards.
unsafe impl Tcp4 for SimTcp4 {
    unsafe fn get_mode_data(
        &self,
        connection_state: *mut Tcp4ConnectionState,
        config_data: *mut Tcp4ConfigData,
        ip4_mode_data: *mut Ip4ModeData,
        managed_network_config_data: *mut c_void,
        simple_network_mode: *mut NetworkMode,
    ) -> Status {
        let _ = (managed_network_config_data, simple_network_mode);
        // SAFETY: pointers forwarded under the caller's contract.
        self.call("GetModeData", false, |tcp4, _, id| unsafe {
            tcp4.get_mode_data(id, connection_state, config_data, ip4_mode_data)
        })
    }

    unsafe fn configure(&self, config_data: *mut Tcp4ConfigData) -> Status {
        // SAFETY: pointer forwarded under the caller's contract.
        self.call("Configure", true, |tcp4, cx, id| unsafe {
            tcp4.configure(cx, id, config_data)
        })
    }

    unsafe fn routes(
        &self,
        delete_route: bool,
        subnet_address: *const Ipv4Address,
        subnet_mask: *const Ipv4Address,
        gateway_address: *const Ipv4Address,
    ) -> Status {
        let _ = delete_route;
        if subnet_address.is_null() || subnet_mask.is_null() || gateway_address.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // The simulated network routes every address directly, so routes
        // change nothing; the status mirrors EDK2 for a configured instance.
        self.call("Routes", true, |tcp4, _, id| match tcp4.children.get(&id) {
            Some(c) if c.is_configured() => Status::SUCCESS,
            Some(c) => super::addressing::unconfigured_status(c.no_mapping),
            None => Status::NOT_STARTED,
        })
    }

    unsafe fn connect(&self, token: *mut Tcp4ConnectionToken) -> Status {
        // SAFETY: null-checked; valid by the caller's contract.
        if token.is_null() || unsafe { (*token).completion_token.event.is_null() } {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: as above.
        self.call("Connect", true, |tcp4, cx, id| unsafe {
            tcp4.connect(cx, id, token)
        })
    }

    unsafe fn accept(&self, token: *mut Tcp4ListenToken) -> Status {
        // SAFETY: null-checked; valid by the caller's contract.
        if token.is_null() || unsafe { (*token).completion_token.event.is_null() } {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: as above.
        self.call("Accept", true, |tcp4, cx, id| unsafe {
            tcp4.accept(cx, id, token)
        })
    }

    unsafe fn transmit(&self, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: null-checked; valid by the caller's contract.
        if token.is_null() || unsafe { (*token).completion_token.event.is_null() } {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: as above.
        self.call("Transmit", true, |tcp4, cx, id| unsafe {
            tcp4.transmit(cx, id, token)
        })
    }

    unsafe fn receive(&self, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: null-checked; valid by the caller's contract.
        if token.is_null() || unsafe { (*token).completion_token.event.is_null() } {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: as above.
        self.call("Receive", true, |tcp4, cx, id| unsafe {
            tcp4.receive(cx, id, token)
        })
    }

    unsafe fn close(&self, token: *mut Tcp4CloseToken) -> Status {
        // SAFETY: null-checked; valid by the caller's contract.
        if token.is_null() || unsafe { (*token).completion_token.event.is_null() } {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: as above.
        self.call("Close", true, |tcp4, cx, id| unsafe {
            tcp4.close(cx, id, token)
        })
    }

    unsafe fn cancel(&self, token: *mut Tcp4CompletionToken) -> Status {
        // SAFETY: forwarded; only compared by address and written if pending.
        self.call("Cancel", true, |tcp4, cx, id| unsafe {
            tcp4.cancel(cx, id, token)
        })
    }

    fn poll(&self) -> Status {
        let extra = self.sim.w.borrow().env.cfg.cost.poll_ns;
        self.sim.w.borrow_mut().env.stats.polls += 1;
        self.sim.enter(extra);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let w = &mut *w;
            // EDK2's Tcp4.Poll always returns SUCCESS: SOCK_POLL in
            // TcpDispatcher.c (l.777-784) calls the IP4 Poll and discards
            // its result. The UEFI specification allows NOT_READY, TIMEOUT
            // and DEVICE_ERROR, which other firmware may return; the
            // non-EDK2 fault `non_edk2_poll` injects them (no frame is
            // processed by such a Poll).
            match inject_non_edk2_poll(&mut w.env) {
                Some(st) => st,
                None => {
                    w.tcp4.one_frame(&mut w.env);
                    w.tcp4.inject_completion(&mut w.env, Some(self.id), None);
                    Status::SUCCESS
                }
            }
        };
        self.sim.exit();
        st
    }
}

impl Tcp4ServiceBinding for SimTcp4Service {
    type Tcp4 = SimTcp4;

    fn create_child(&self) -> Result<Handle, Status> {
        self.sim.enter(0);
        let h = self.sim.w.borrow_mut().tcp4.create_child();
        self.sim.exit();
        Ok(h as Handle)
    }

    fn destroy_child(&self, child: Handle) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let w = &mut *w;
            match child_id(child) {
                Some(id) if w.tcp4.children.contains_key(&id) => {
                    w.tcp4.destroy_child(&mut w.env, id)
                }
                _ => Status::INVALID_PARAMETER,
            }
        };
        self.sim.exit();
        st
    }

    fn open_tcp4(&self, child: Handle) -> Result<SimTcp4, Status> {
        let w = self.sim.w.borrow();
        match child_id(child) {
            Some(id) if w.tcp4.children.get(&id).is_some_and(|c| c.is_visible()) => Ok(SimTcp4 {
                sim: self.sim.clone(),
                id,
            }),
            _ => Err(Status::UNSUPPORTED),
        }
    }
}

fn child_id(h: Handle) -> Option<usize> {
    let v = h as usize;
    (v >= CHILD_BASE && (v - CHILD_BASE) % 16 == 0).then(|| (v - CHILD_BASE) / 16)
}

/// The non-EDK2 Poll fault ([`Faults::non_edk2_poll`](crate::Faults)):
/// NOT_READY, TIMEOUT or DEVICE_ERROR from Tcp4.Poll, with that knob's
/// probability (a `StatusInjection` decision).
fn inject_non_edk2_poll(cx: &mut Env) -> Option<Status> {
    let p = cx.cfg.faults.non_edk2_poll;
    if p <= 0.0 {
        return None;
    }
    let options = [Status::NOT_READY, Status::TIMEOUT, Status::DEVICE_ERROR];
    let v = cx
        .decider
        .choose_weighted(DecisionKind::StatusInjection, &[p / 3.0; 3]);
    let status = *options.get(v.checked_sub(1)?)?;
    cx.log_injection("Poll", status);
    Some(status)
}
