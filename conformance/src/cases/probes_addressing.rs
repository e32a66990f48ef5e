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
use std::time::Duration;

use crate::peers::ports;
use crate::runner::{Case, CaseError, CaseResult};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};
use efisock::firmware::{
    Boolean, BootServices, Ip4Config2, Ip4Config2DataType, Ip4Config2Policy, Ipv4Address, Platform,
    Status, Tcp4, Tcp4ConfigData,
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
            name: "addressing_unmapped_child_maps_later",
            about: "a child left unmapped maps once a lease arrives on the same default interface (DHCP asked again after an earlier lease)",
            run: unmapped_child_maps_after_a_later_lease::<T>,
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

/// Leaves the interface without an address under the STATIC policy, as
/// OVMF boots. `SocketTarget::unconfigure` sets STATIC, which EDK2 refuses
/// as unchanged (keeping any manual address) when the policy is STATIC
/// already (Ip4Config2Impl.c `Ip4Config2SetPolicy` l.1146-1149): switching
/// to DHCP first makes that a change, which clears the manual address.
fn unaddress<T: SocketTarget>(t: &mut T) -> CaseResult {
    set_policy(&t.platform(), Ip4Config2Policy::DHCP)?;
    t.unconfigure().map_err(|e| fail(e.to_string()))
}

/// `SetData(Policy, policy)`.
fn set_policy<P: Platform>(p: &P, policy: Ip4Config2Policy) -> CaseResult {
    // SAFETY: `policy` is a live local and the size passed is its size.
    let st = unsafe {
        p.ip4_config2().set_data(
            Ip4Config2DataType::POLICY,
            size_of::<Ip4Config2Policy>(),
            ptr::from_ref(&policy).cast::<c_void>(),
        )
    };
    ensure_eq!(st, Status::SUCCESS, "SetData(Policy, {})", policy.0);
    Ok(())
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
    unaddress(t)?;
    let p = t.platform();
    let echo = t.peer(ports::ECHO);
    ensure_eq!(
        policy(&p)?,
        Ip4Config2Policy::STATIC,
        "policy after unconfigure"
    );
    let child = RawChild::create(p.clone()).map_err(fail)?;
    let first = configure(&child, active_config(echo, 0));
    if t.expect().use_default_address_already_started {
        ensure_eq!(
            first,
            Status::ALREADY_STARTED,
            "Configure(UseDefaultAddress) on firmware that refuses it"
        );
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

fn unmapped_child_maps_after_a_later_lease<T: SocketTarget>(t: &mut T) -> CaseResult {
    unaddress(t)?;
    let p = t.platform();
    let echo = t.peer(ports::ECHO);
    // One lease first, so that EDK2's `DhcpSuccess` is set on both targets
    // (the simulator's `unconfigure` starts a fresh machine; OVMF's keeps
    // the boot's history).
    let addr = t.net().dhcp(Duration::from_secs(30)).map_err(fail)?;
    ensure_eq!(addr, t.local_ip(), "first DHCP address");
    set_policy(&p, Ip4Config2Policy::STATIC)?;
    let mut checks = 0;
    while t.net().address().map_err(fail)?.is_some() {
        checks += 1;
        ensure!(
            checks < 500,
            "the address stayed after SetData(Policy, STATIC)"
        );
        let _ = p.boot().stall(10_000);
    }
    let child = RawChild::create(p.clone()).map_err(fail)?;
    let first = configure(&child, active_config(echo, 0));
    if t.expect().use_default_address_already_started {
        ensure_eq!(
            first,
            Status::ALREADY_STARTED,
            "Configure(UseDefaultAddress) on firmware that refuses it"
        );
        return legacy_refusal(&p, &child, echo, t.local_ip());
    }
    ensure_eq!(
        first,
        Status::NO_MAPPING,
        "Configure(UseDefaultAddress) without an address"
    );
    // That Configure set the DHCP policy; `Net::dhcp` sets it again, which
    // EDK2 refuses as unchanged once a lease was ever obtained
    // (Ip4Config2Impl.c `Ip4Config2SetPolicy` l.1146-1149), so the default
    // interface the child holds is the one that gets the lease.
    let addr = t.net().dhcp(Duration::from_secs(30)).map_err(fail)?;
    ensure_eq!(addr, t.local_ip(), "second DHCP address");
    ensure_eq!(
        configure(&child, active_config(echo, 0)),
        Status::SUCCESS,
        "the unmapped child after the lease"
    );
    echo_through(&p, &child)
}

fn explicit_before_lease<T: SocketTarget>(t: &mut T) -> CaseResult {
    unaddress(t)?;
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
    if t.expect().use_default_address_already_started {
        ensure_eq!(
            first,
            Status::ALREADY_STARTED,
            "Configure(UseDefaultAddress) on firmware that refuses it"
        );
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
