//! Addressing observations: what EDK2's Tcp4.Configure does before and
//! after the DHCP lease with UseDefaultAddress and with an explicit station
//! address, and what it writes back into the caller's config data. They
//! never fail the run; each returns one `STEP` object.
//!
//! Pre-lease (run before the DHCP step, with the policy as the firmware
//! booted): an explicit 10.0.2.15/24 child connects to the closed port on
//! the echo host (the RST proves the route both ways without disturbing the
//! echo server); then a UseDefaultAddress child is configured before any
//! lease and every call on it is recorded. Post-lease: an IP child left
//! configured by a refused Configure (port in use) is reconfigured in the
//! other addressing mode.

use alloc::string::String;
use core::ffi::c_void;
use core::mem::size_of;
use core::net::SocketAddrV4;
use core::ptr;

use efisock::firmware::{
    Boolean, Ip4Config2, Ip4Config2DataType, Ip4Config2Policy, Ipv4Address, Platform, Status, Tcp4,
    Tcp4ConfigData,
};
use efisock::raw::{RawChild, RawToken, TokenKind, active_config, passive_config, poll_until};

use super::{SmokeConfig, fmt_ip, st};
use crate::json::JsonObject;

/// The address slirp's DHCP server hands out, used as the explicit station.
const STATION: [u8; 4] = [10, 0, 2, 15];
/// A second address on the same subnet, for an explicit station beside the
/// lease.
const SECOND_STATION: [u8; 4] = [10, 0, 2, 99];
/// The passive port of the post-lease ALREADY_STARTED probe.
const PROBE_PORT: u16 = 47_390;

/// `cfg` with an explicit station address and a /24 mask.
fn explicit(mut cfg: Tcp4ConfigData, station: [u8; 4]) -> Tcp4ConfigData {
    cfg.access_point.use_default_address = Boolean::FALSE;
    cfg.access_point.station_address = Ipv4Address(station);
    cfg.access_point.subnet_mask = Ipv4Address([255, 255, 255, 0]);
    cfg
}

/// `Configure(cfg)` on `child`, recording the status under `key` and what
/// the firmware wrote back into `cfg` under `key_station`/`key_port`.
fn configure<P: Platform>(
    j: &mut JsonObject,
    child: &RawChild<P>,
    key: &str,
    mut cfg: Tcp4ConfigData,
) -> Status {
    // SAFETY: `cfg` is a live, exclusively borrowed local with a null
    // control option; the firmware writes its access point back during the
    // call and keeps no pointer into it.
    let s = unsafe { child.tcp().configure(&mut cfg) };
    j.str(key, st(s));
    let mut k = String::from(key);
    k.push_str("_station");
    j.str(&k, &fmt_ip(cfg.access_point.station_address.0));
    let mut k = String::from(key);
    k.push_str("_port");
    j.u64(&k, u64::from(cfg.access_point.station_port));
    s
}

/// `GetData(Policy)` as a name.
fn policy<P: Platform>(p: &P) -> &'static str {
    let mut policy = Ip4Config2Policy(-1);
    let mut size = size_of::<Ip4Config2Policy>();
    // SAFETY: `size` and `policy` are valid for the size passed.
    let s = unsafe {
        p.ip4_config2().get_data(
            Ip4Config2DataType::POLICY,
            &mut size,
            ptr::from_mut(&mut policy).cast::<c_void>(),
        )
    };
    match (s, policy) {
        (Status::SUCCESS, Ip4Config2Policy::STATIC) => "STATIC",
        (Status::SUCCESS, Ip4Config2Policy::DHCP) => "DHCP",
        (Status::SUCCESS, _) => "OTHER",
        _ => st(s),
    }
}

/// Submits one token of `kind` on `child` and records the call's status
/// under `key`; a token the firmware took is waited for (bounded) and its
/// completion recorded under `key_token`.
fn submit<P: Platform>(
    j: &mut JsonObject,
    p: &P,
    child: &RawChild<P>,
    cfg: &SmokeConfig,
    key: &str,
    kind: TokenKind,
) -> bool {
    let boot = p.boot();
    let mut token = match RawToken::new(boot, kind) {
        Ok(t) => t,
        Err(e) => {
            j.str(key, "allocate failed").str("allocate", st(e.status));
            return true;
        }
    };
    let s = token.submit(child.tcp());
    j.str(key, st(s));
    if s != Status::SUCCESS {
        return true;
    }
    let w = poll_until(boot, child.tcp(), cfg.wait_limit(), || token.done());
    let mut k = String::from(key);
    k.push_str("_token");
    if w.done {
        j.str(&k, st(token.status()));
    } else {
        j.str(&k, "timeout");
    }
    let _ = child.reset();
    // A token still unsignalled after the reset keeps its memory and event
    // (RawToken leaks them on drop).
    token.done()
}

/// Before any lease: the explicit-station child, then the UseDefaultAddress
/// child. Returns the step's JSON and the UseDefaultAddress child, kept in
/// its NO_MAPPING state for [`unmapped_after_lease`].
pub(super) fn before_lease<P: Platform + Clone>(
    p: &P,
    cfg: &SmokeConfig,
) -> (String, Option<RawChild<P>>) {
    let mut j = JsonObject::new();
    j.str("step", "addressing_before_lease")
        .str("policy_at_start", policy(p));
    let closed = SocketAddrV4::new(cfg.remote.into(), cfg.port.wrapping_add(1).max(1));

    match RawChild::create(p.clone()) {
        Err(e) => {
            j.str("explicit_create", st(e.status));
        }
        Ok(child) => {
            let c = explicit(active_config(closed, 0), STATION);
            if configure(&mut j, &child, "explicit_configure", c) == Status::SUCCESS {
                let clean = submit(
                    &mut j,
                    p,
                    &child,
                    cfg,
                    "explicit_connect",
                    TokenKind::Connect,
                );
                j.bool("explicit_clean", clean);
            }
            j.str("explicit_destroy", st(child.destroy()));
        }
    }
    j.str("policy_after_explicit", policy(p));

    match RawChild::create(p.clone()) {
        Err(e) => {
            j.str("default_create", st(e.status));
        }
        Ok(child) => {
            let _ = configure(
                &mut j,
                &child,
                "default_configure",
                active_config(closed, 0),
            );
            j.str("policy_after_default", policy(p));
            let _ = submit(
                &mut j,
                p,
                &child,
                cfg,
                "default_connect",
                TokenKind::Connect,
            );
            let _ = submit(
                &mut j,
                p,
                &child,
                cfg,
                "default_receive",
                TokenKind::Receive(64),
            );
            let tx = TokenKind::Transmit(alloc::vec![0u8; 4]);
            let _ = submit(&mut j, p, &child, cfg, "default_transmit", tx);
            let close = TokenKind::Close { abort: false };
            let _ = submit(&mut j, p, &child, cfg, "default_close", close);
            // SAFETY: a null token asks to cancel everything pending.
            let cancel = unsafe { child.tcp().cancel(ptr::null_mut()) };
            j.str("default_cancel_null", st(cancel));
            match child.state() {
                Ok(s) => j.u64("default_state", u64::try_from(s.0).unwrap_or(u64::MAX)),
                Err(s) => j.str("default_state", st(s)),
            };
            j.str("default_configure_null", st(child.reset()));
            let c = explicit(active_config(closed, 0), STATION);
            let _ = configure(&mut j, &child, "default_then_explicit", c);
            let _ = configure(&mut j, &child, "default_again", active_config(closed, 0));
            return (j.finish(), Some(child));
        }
    }
    (j.finish(), None)
}

/// After the lease: the child left in NO_MAPPING before it, configured
/// again with UseDefaultAddress. The DHCP step's SetData(Policy, DHCP)
/// replaced the default interface (Ip4Config2Impl.c
/// `Ip4Config2OnPolicyChanged`), while this child's IP child still holds the
/// one it took before. Then a fresh child, for contrast.
pub(super) fn unmapped_after_lease<P: Platform + Clone>(
    p: &P,
    cfg: &SmokeConfig,
    child: RawChild<P>,
) -> String {
    let mut j = JsonObject::new();
    j.str("step", "unmapped_child_after_lease");
    let closed = SocketAddrV4::new(cfg.remote.into(), cfg.port.wrapping_add(1).max(1));
    let _ = configure(
        &mut j,
        &child,
        "old_child_configure",
        active_config(closed, 0),
    );
    j.str("old_child_reset", st(child.reset()))
        .str("old_child_destroy", st(child.destroy()));
    if let Ok(fresh) = RawChild::create(p.clone()) {
        let _ = configure(
            &mut j,
            &fresh,
            "fresh_child_configure",
            active_config(closed, 0),
        );
        j.str("fresh_child_destroy", st(fresh.destroy()));
    }
    j.finish()
}

/// After the lease: an explicit second address, and ALREADY_STARTED on an
/// IP child that a refused Configure left configured. Returns the step's
/// JSON.
pub(super) fn after_lease<P: Platform + Clone>(p: &P, cfg: &SmokeConfig) -> String {
    let mut j = JsonObject::new();
    j.str("step", "addressing_after_lease");
    let closed = SocketAddrV4::new(cfg.remote.into(), cfg.port.wrapping_add(1).max(1));

    if let Ok(child) = RawChild::create(p.clone()) {
        let c = explicit(active_config(closed, 0), SECOND_STATION);
        if configure(&mut j, &child, "second_configure", c) == Status::SUCCESS {
            let clean = submit(&mut j, p, &child, cfg, "second_connect", TokenKind::Connect);
            j.bool("second_clean", clean);
        }
        j.str("second_destroy", st(child.destroy()));
    }

    let (Ok(holder), Ok(child)) = (RawChild::create(p.clone()), RawChild::create(p.clone())) else {
        j.str("error", "CreateChild");
        return j.finish();
    };
    let _ = configure(
        &mut j,
        &holder,
        "holder_configure",
        passive_config(PROBE_PORT),
    );
    // The same (address, port) is taken: TcpBind refuses after the IP child
    // was configured with UseDefaultAddress.
    let _ = configure(
        &mut j,
        &child,
        "taken_configure",
        passive_config(PROBE_PORT),
    );
    let other = PROBE_PORT + 1;
    let c = explicit(passive_config(other), STATION);
    let _ = configure(&mut j, &child, "taken_then_explicit", c);
    let _ = configure(&mut j, &child, "taken_then_default", passive_config(other));
    j.str("holder_destroy", st(holder.destroy()))
        .str("taken_destroy", st(child.destroy()));
    j.finish()
}
