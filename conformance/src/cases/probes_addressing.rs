//! Addressing probes: how Tcp4.Configure treats UseDefaultAddress and
//! explicit station addresses before and after a lease, asked of the
//! firmware below the socket layer. EDK2 edk2-stable202211 behaviour,
//! code-read (Ip4Dxe/Ip4Impl.c `EfiIp4Configure`, `Ip4ConfigProtocol`;
//! TcpDxe/TcpMain.c `Tcp4Configure`; SockInterface.c) and measured on OVMF
//! by efisock-smoke (`efi-target/OBSERVED.md`, steps
//! `addressing_before_lease` and `addressing_after_lease`).
//!
//! Firmware that refuses UseDefaultAddress outright with ALREADY_STARTED
//! (the simulator's `legacy` profile, as BITS met old Tcp4Dxe) cannot reach
//! the states these probes ask about; there each probe checks that an
//! explicit station address works instead.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::peers::ports;
use crate::runner::{Case, CaseError, CaseResult};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};
use efisock::firmware::{
    Boolean, Ip4Config2, Ip4Config2DataType, Ip4Config2Policy, Ipv4Address, Platform, Status, Tcp4,
    Tcp4ConfigData,
};
use efisock::raw::{RawChild, RawToken, TokenKind, active_config, passive_config};

/// The passive port the refused-Configure probe holds, and the one beside it.
const HELD_PORT: u16 = 7390;

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "probe",
            name: "addressing_no_mapping_sticks",
            about: "UseDefaultAddress before a lease: NO_MAPPING, DHCP turned on, and every later call NO_MAPPING",
            run: no_mapping_sticks::<T>,
        },
        Case {
            group: "probe",
            name: "addressing_unmapped_after_policy_change",
            about: "a child left unmapped before a repeated SetData(DHCP) stays unmapped after the lease; a fresh child maps",
            run: unmapped_after_policy_change::<T>,
        },
        Case {
            group: "probe",
            name: "addressing_explicit_before_lease",
            about: "an explicit station address works without a lease and leaves the policy STATIC",
            run: explicit_before_lease::<T>,
        },
        Case {
            group: "probe",
            name: "addressing_already_started",
            about: "a Configure refused after the IP child was configured keeps its addressing mode (ALREADY_STARTED for the other)",
            run: already_started::<T>,
        },
    ]
}

fn fail(what: impl ToString) -> CaseError {
    CaseError::new(what.to_string())
}

/// `cfg` with `station`/24 as an explicit station address.
fn explicit(mut cfg: Tcp4ConfigData, station: Ipv4Addr) -> Tcp4ConfigData {
    cfg.access_point.use_default_address = Boolean::FALSE;
    cfg.access_point.station_address = Ipv4Address(station.octets());
    cfg.access_point.subnet_mask = Ipv4Address([255, 255, 255, 0]);
    cfg
}

/// `Configure(cfg)` on `child`.
fn configure<P: Platform>(child: &RawChild<P>, mut cfg: Tcp4ConfigData) -> Status {
    // SAFETY: `cfg` is a live, exclusively borrowed local with a null
    // control option; the firmware may write its access point back during
    // the call and keeps no pointer into it.
    unsafe { child.tcp().configure(&mut cfg) }
}

/// `GetData(Policy)`.
fn policy<P: Platform>(p: &P) -> Result<Ip4Config2Policy, CaseError> {
    let mut policy = Ip4Config2Policy(-1);
    let mut size = size_of::<Ip4Config2Policy>();
    // SAFETY: `size` and `policy` are live locals and `size` is its size.
    let st = unsafe {
        p.ip4_config2().get_data(
            Ip4Config2DataType::POLICY,
            &mut size,
            ptr::from_mut(&mut policy).cast::<c_void>(),
        )
    };
    ensure_eq!(st, Status::SUCCESS, "GetData(Policy)");
    Ok(policy)
}

/// The status of submitting one token of `kind` (not expected to be taken).
fn refused<P: Platform>(p: &P, child: &RawChild<P>, kind: TokenKind) -> Result<Status, CaseError> {
    let mut token = RawToken::new(p.boot(), kind).map_err(fail)?;
    let st = token.submit(child.tcp());
    if st == Status::SUCCESS {
        // Taken after all: give it back before the token goes.
        let _ = child.reset();
        ensure!(
            token.done(),
            "a token taken by an unmapped child was not returned"
        );
    }
    Ok(st)
}

/// Connect `child` (configured) and echo a few bytes through it.
fn echo_through<P: Platform>(p: &P, child: &RawChild<P>) -> CaseResult {
    let mut connect = RawToken::new(p.boot(), TokenKind::Connect).map_err(fail)?;
    ensure_eq!(connect.submit(child.tcp()), Status::SUCCESS, "Connect");
    ensure!(
        child.poll_until(|_| connect.done()),
        "Connect did not complete"
    );
    ensure_eq!(connect.status(), Status::SUCCESS, "Connect token status");
    let mut tx = RawToken::new(p.boot(), TokenKind::Transmit(b"addr".to_vec())).map_err(fail)?;
    ensure_eq!(tx.submit(child.tcp()), Status::SUCCESS, "Transmit");
    ensure!(child.poll_until(|_| tx.done()), "Transmit did not complete");
    let mut rx = RawToken::new(p.boot(), TokenKind::Receive(64)).map_err(fail)?;
    ensure_eq!(rx.submit(child.tcp()), Status::SUCCESS, "Receive");
    ensure!(child.poll_until(|_| rx.done()), "no echo came back");
    ensure_eq!(rx.status(), Status::SUCCESS, "Receive status");
    ensure_eq!(rx.received(), b"addr", "echoed bytes");
    Ok(())
}

/// Old firmware's answer to UseDefaultAddress on a fresh child: the probes
/// then check that an explicit station towards `echo` works instead.
fn legacy_refusal<P: Platform>(
    p: &P,
    child: &RawChild<P>,
    echo: SocketAddrV4,
    station: Ipv4Addr,
) -> CaseResult {
    ensure_eq!(
        configure(child, explicit(active_config(echo, 0), station)),
        Status::SUCCESS,
        "explicit station after ALREADY_STARTED"
    );
    echo_through(p, child)
}

fn no_mapping_sticks<T: SocketTarget>(t: &mut T) -> CaseResult {
    t.unconfigure().map_err(|e| fail(e.to_string()))?;
    let p = t.platform();
    let echo = t.peer(ports::ECHO);
    ensure_eq!(
        policy(&p)?,
        Ip4Config2Policy::STATIC,
        "policy after unconfigure"
    );
    let child = RawChild::create(p.clone()).map_err(fail)?;
    let first = configure(&child, active_config(echo, 0));
    if first == Status::ALREADY_STARTED {
        return legacy_refusal(&p, &child, echo, t.local_ip());
    }
    // Ip4Impl.c `Ip4ConfigProtocol` l.676-695, 734-739.
    ensure_eq!(
        first,
        Status::NO_MAPPING,
        "Configure(UseDefaultAddress) before a lease"
    );
    ensure_eq!(
        policy(&p)?,
        Ip4Config2Policy::DHCP,
        "policy after that Configure"
    );
    // TcpMain.c `Tcp4Configure` l.179-181: SO_NO_MAPPING, checked first by
    // SockConnect, SockRcv, SockSend and SockClose.
    for (kind, what) in [
        (TokenKind::Connect, "Connect"),
        (TokenKind::Receive(64), "Receive"),
        (TokenKind::Transmit(b"x".to_vec()), "Transmit"),
        (TokenKind::Close { abort: false }, "Close"),
    ] {
        ensure_eq!(
            refused(&p, &child, kind)?,
            Status::NO_MAPPING,
            "{what} when unmapped"
        );
    }
    // SAFETY: a null token asks to cancel everything pending.
    let cancel = unsafe { child.tcp().cancel(ptr::null_mut()) };
    ensure_eq!(cancel, Status::SUCCESS, "Cancel(NULL) when unmapped");
    ensure_eq!(
        child.reset(),
        Status::ACCESS_DENIED,
        "Configure(NULL) when unmapped"
    );
    // Ip4Impl.c `EfiIp4Configure` l.921-924: the IP child keeps the mode.
    let ex = explicit(active_config(echo, 0), t.local_ip());
    ensure_eq!(
        configure(&child, ex),
        Status::ALREADY_STARTED,
        "explicit station after NO_MAPPING"
    );
    ensure_eq!(
        configure(&child, active_config(echo, 0)),
        Status::NO_MAPPING,
        "UseDefaultAddress again before the lease"
    );
    Ok(())
}

fn unmapped_after_policy_change<T: SocketTarget>(t: &mut T) -> CaseResult {
    t.unconfigure().map_err(|e| fail(e.to_string()))?;
    let p = t.platform();
    let echo = t.peer(ports::ECHO);
    let child = RawChild::create(p.clone()).map_err(fail)?;
    let first = configure(&child, active_config(echo, 0));
    if first == Status::ALREADY_STARTED {
        return legacy_refusal(&p, &child, echo, t.local_ip());
    }
    ensure_eq!(
        first,
        Status::NO_MAPPING,
        "Configure(UseDefaultAddress) before a lease"
    );
    // `Net::dhcp` sets the DHCP policy again before the lease, which
    // replaces the default interface (Ip4Config2Impl.c
    // `Ip4Config2SetPolicy` l.1146-1149, `Ip4Config2OnPolicyChanged`).
    let addr = t
        .net()
        .dhcp(std::time::Duration::from_secs(30))
        .map_err(fail)?;
    ensure_eq!(addr, t.local_ip(), "DHCP address");
    ensure_eq!(
        configure(&child, active_config(echo, 0)),
        Status::NO_MAPPING,
        "the unmapped child after the lease"
    );
    let fresh = RawChild::create(p.clone()).map_err(fail)?;
    ensure_eq!(
        configure(&fresh, active_config(echo, 0)),
        Status::SUCCESS,
        "a fresh child after the lease"
    );
    echo_through(&p, &fresh)
}

fn explicit_before_lease<T: SocketTarget>(t: &mut T) -> CaseResult {
    t.unconfigure().map_err(|e| fail(e.to_string()))?;
    let p = t.platform();
    let echo = t.peer(ports::ECHO);
    let child = RawChild::create(p.clone()).map_err(fail)?;
    // Ip4Impl.c `Ip4ConfigProtocol` l.636-672: an interface of its own.
    let ex = explicit(active_config(echo, 0), t.local_ip());
    ensure_eq!(
        configure(&child, ex),
        Status::SUCCESS,
        "explicit station before a lease"
    );
    echo_through(&p, &child)?;
    ensure_eq!(
        policy(&p)?,
        Ip4Config2Policy::STATIC,
        "policy after the explicit child"
    );
    Ok(())
}

fn already_started<T: SocketTarget>(t: &mut T) -> CaseResult {
    let p = t.platform();
    let station = t.local_ip();
    let echo = t.peer(ports::ECHO);
    let holder = RawChild::create(p.clone())
        .map_err(fail)?
        .with_station(station);
    ensure_eq!(
        holder.configure_passive(HELD_PORT),
        Status::SUCCESS,
        "holder"
    );
    let child = RawChild::create(p.clone()).map_err(fail)?;
    let first = configure(&child, passive_config(HELD_PORT));
    if first == Status::ALREADY_STARTED {
        return legacy_refusal(&p, &child, echo, station);
    }
    // TcpDispatcher.c `TcpBind` refuses after `IpIoConfigIp` configured the
    // IP child (l.501-542), which keeps it configured.
    ensure_eq!(first, Status::INVALID_PARAMETER, "Configure on a held port");
    let ex = explicit(passive_config(HELD_PORT + 1), station);
    ensure_eq!(
        configure(&child, ex),
        Status::ALREADY_STARTED,
        "explicit station afterwards"
    );
    ensure_eq!(
        configure(&child, passive_config(HELD_PORT + 1)),
        Status::SUCCESS,
        "UseDefaultAddress afterwards"
    );
    Ok(())
}
