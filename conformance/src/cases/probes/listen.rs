//! Probes of passive instances: the wildcard station address and the
//! backlog.

use core::ptr;

use efisock::firmware::{Boolean, Ipv4Address, Platform, Status, Tcp4Option};
use efisock::raw::{RawChild, RawToken, TokenKind, passive_config};

use super::{connected, fail, new_child, transmit, wait_for};
use crate::peers::{ports, protocol};
use crate::runner::CaseResult;
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// A passive instance on station 0.0.0.0 with UseDefaultAddress FALSE.
/// edk2-stable202211 accepts it: `Tcp4Configure` (TcpMain.c l.156-163)
/// checks the station address only when the mask is non-zero, and the
/// instance's IP child gets an interface of its own (Ip4Impl.c
/// `Ip4ConfigProtocol`). Pre-2016 firmware refuses it with
/// INVALID_PARAMETER.
pub(super) fn listen_on_any_address<T: SocketTarget>(t: &mut T) -> CaseResult {
    let child = RawChild::create(t.platform()).map_err(fail)?;
    let mut config = passive_config(44061);
    config.access_point.use_default_address = Boolean::FALSE;
    config.access_point.station_address = Ipv4Address([0; 4]);
    config.access_point.subnet_mask = Ipv4Address([0; 4]);
    // SAFETY: no control option.
    let status = unsafe { child.configure_with(config) };
    let expected = if t.expect().listen_any_unsupported {
        Status::INVALID_PARAMETER
    } else {
        Status::SUCCESS
    };
    ensure_eq!(
        status,
        expected,
        "Configure(passive, 0.0.0.0, UseDefaultAddress FALSE)"
    );
    Ok(())
}

/// The guest port the backlog probe listens on (forwarded by the QEMU
/// harness, see `qemu::ports`).
const BACKLOG_PORT: u16 = 44060;
/// How long one Accept may wait for the peer's retransmitted SYN.
const ACCEPT_WAIT_NS: u64 = 30_000_000_000;
/// The smallest backlog EDK2 takes (TcpProto.h `TCP_BACKLOG_MIN`).
const BACKLOG: u32 = 5;

/// With no Accept pending, a listener holds at most MaxSynBackLog children
/// (SockImpl.c `SockCreate` l.657: `ConnCnt == BackLog` refuses the clone);
/// the SYN of one more is dropped without an answer (TcpInput.c l.850-858:
/// `TcpCloneTcb` fails, `goto DISCARD`). The peer retransmits it, and once
/// Accepts have made room the connection is made. So BACKLOG + 1 peers
/// that connect while nobody accepts are all accepted in the end; had the
/// extra SYN been answered with RST, the last Accept would never complete.
pub(super) fn backlog_full_drops_syn<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let listener = new_child(t)?;
    let mut opt = Tcp4Option {
        receive_buffer_size: 0,
        send_buffer_size: 0,
        max_syn_back_log: BACKLOG,
        connection_timeout: 0,
        data_retries: 0,
        fin_timeout: 0,
        time_wait_timeout: 0,
        keep_alive_probes: 0,
        keep_alive_time: 0,
        keep_alive_interval: 0,
        enable_nagle: Boolean::TRUE,
        enable_time_stamp: Boolean::TRUE,
        enable_window_scaling: Boolean::TRUE,
        enable_selective_ack: Boolean::FALSE,
        enable_path_mtu_discovery: Boolean::FALSE,
    };
    let mut config = passive_config(BACKLOG_PORT);
    config.control_option = ptr::from_mut(&mut opt);
    // SAFETY: the option lives on this stack frame across the call.
    let status = unsafe { listener.configure_with(config) };
    ensure_eq!(status, Status::SUCCESS, "Configure(passive, backlog 5)");
    let wanted = BACKLOG as usize + 1;
    let mut requests = Vec::new();
    for _ in 0..wanted {
        let c = connected(t, ports::CONNECT_BACK)?;
        transmit(&p, &c, &protocol::connect_back_request(BACKLOG_PORT, 0))?;
        requests.push(c);
    }
    // Time for every connect-back SYN to arrive while nobody accepts.
    let _ = wait_for(&listener, 1_000_000_000, |_| false);
    let mut accepted = Vec::new();
    for n in 0..wanted {
        let mut accept = RawToken::new(p.boot(), TokenKind::Accept).map_err(fail)?;
        ensure_eq!(accept.submit(listener.tcp()), Status::SUCCESS, "Accept {n}");
        // The dropped SYN comes back with the peer's retransmission: slirp
        // (BSD TCP) retries a SYN after about 6 s, Linux and the simulated
        // peers after 1 s.
        ensure!(
            wait_for(&listener, ACCEPT_WAIT_NS, |_| accept.done()),
            "Accept {n} of {wanted} never completed: the connection beyond the \
             backlog of {BACKLOG} was refused rather than its SYN dropped and retried"
        );
        ensure_eq!(accept.status(), Status::SUCCESS, "Accept {n} status");
        let handle = accept
            .accepted()
            .ok_or_else(|| fail(format!("Accept {n} gave no child handle")))?;
        accepted.push(RawChild::adopt(p.clone(), handle).map_err(fail)?);
    }
    drop(accepted);
    drop(requests);
    Ok(())
}
