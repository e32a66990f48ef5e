//! Addressing as EDK2 edk2-stable202211 does it: what Configure writes back
//! into the caller's config data, UseDefaultAddress before a lease, explicit
//! station addresses, and ALREADY_STARTED from the IP child's mode.
//!
//! Every expectation names its source: the EDK2 function (code-read at
//! edk2-stable202211) or the OVMF measurement in `efi-target/OBSERVED.md`.

mod common;

use common::*;
use std::net::Ipv4Addr;

use efisock::firmware::{
    Boolean, BootServices, Ip4Config2, Ip4Config2DataType, Ip4Config2Policy, Ipv4Address, Platform,
    Status, Tcp4, Tcp4ConfigData, Tcp4ConnectionState,
};
use efisock_sim::{Profile, SimConfig};

/// The seed of every world here; a failure replays with it.
const SEED: u64 = 0xadd7;

/// `Configure` through a pointer to `cfg` itself, so the test sees what the
/// firmware wrote into the caller's structure.
fn configure_in_place(t: &efisock_sim::SimTcp4, cfg: &mut Tcp4ConfigData) -> Status {
    assert!(cfg.control_option.is_null());
    // SAFETY: `cfg` is exclusively borrowed and live for the call, and its
    // control option is null.
    unsafe { t.configure(cfg) }
}

#[test]
fn configure_writes_station_mask_and_assigned_port_back() {
    // TcpDispatcher.c `TcpConfigurePcb` l.510-517 (address, mask) and
    // `TcpBind` l.280 (the ephemeral port), through the caller's pointer
    // (TcpMain.c `Tcp4Configure` l.177).
    let env = Env::new(SimConfig::new(SEED));
    let (h, t) = env.child();
    let mut cfg = active_cfg(PEER, 7, 0);
    assert_eq!(configure_in_place(&t, &mut cfg), Status::SUCCESS);
    let ap = &cfg.access_point;
    assert_eq!(ap.station_address, Ipv4Address(SUT.octets()));
    assert_eq!(ap.subnet_mask, Ipv4Address([255, 255, 255, 0]));
    assert_ne!(ap.station_port, 0, "the assigned ephemeral port is written");
    assert!(
        ap.use_default_address.is_true(),
        "the mode is not rewritten"
    );
    assert_eq!(reset(&t), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn a_refused_configure_writes_nothing_back() {
    // Without a mapping `IpIoConfigIp` fails and `TcpConfigurePcb` leaves
    // before its write-back (TcpDispatcher.c l.501-504).
    let env = Env::unaddressed(SimConfig::new(SEED));
    let (h, t) = env.child();
    let mut cfg = active_cfg(PEER, 7, 0);
    assert_eq!(configure_in_place(&t, &mut cfg), Status::NO_MAPPING);
    assert_eq!(cfg.access_point.station_address, Ipv4Address([0; 4]));
    assert_eq!(cfg.access_point.station_port, 0);
    env.destroy(h);
}

/// `cfg` with an explicit station address and a /24 mask.
fn explicit(mut cfg: Tcp4ConfigData, station: Ipv4Addr) -> Tcp4ConfigData {
    cfg.access_point.use_default_address = Boolean::FALSE;
    cfg.access_point.station_address = addr(station);
    cfg.access_point.subnet_mask = Ipv4Address([255, 255, 255, 0]);
    cfg
}

/// `GetData(Policy)`.
fn policy(env: &Env) -> Ip4Config2Policy {
    let mut p = Ip4Config2Policy(-1);
    let mut size = size_of::<Ip4Config2Policy>();
    // SAFETY: `size` and `p` are live and `size` is `p`'s size.
    let st = unsafe {
        env.p.ip4_config2().get_data(
            Ip4Config2DataType::POLICY,
            &mut size,
            (&mut p as *mut Ip4Config2Policy).cast(),
        )
    };
    assert_eq!(st, Status::SUCCESS);
    p
}

/// Connect on an already configured child and wait for the token.
fn connect_configured(env: &Env, t: &efisock_sim::SimTcp4) -> Status {
    let c = ConnTok::new(env);
    assert_eq!(connect_tok(t, &c), Status::SUCCESS);
    assert!(env.wait(c.event, 10_000_000_000), "connect never completed");
    let st = c.status();
    c.free(env);
    st
}

/// One echo round trip on a connected child: the bytes went out from the
/// child's station address and the answer came back to it.
fn echo_round_trip(env: &Env, t: &efisock_sim::SimTcp4) {
    let tx = Io::tx(env, b"ping");
    assert_eq!(transmit(t, &tx), Status::SUCCESS);
    assert!(
        env.wait(tx.tok.event, 5_000_000_000),
        "transmit never completed"
    );
    let rx = Io::rx(env, 64);
    assert_eq!(receive(t, &rx), Status::SUCCESS);
    assert!(env.wait(rx.tok.event, 5_000_000_000), "no echo came back");
    assert_eq!(rx.received(), b"ping");
    tx.free(env);
    rx.free(env);
}

#[test]
fn use_default_address_before_a_lease_sticks_at_no_mapping() {
    // Measured on OVMF: efisock-smoke step `addressing_before_lease`
    // (efi-target/OBSERVED.md). Code: TcpMain.c `Tcp4Configure` l.179-181
    // (SO_NO_MAPPING), SockInterface.c (every call checks it first),
    // Ip4Impl.c `EfiIp4Configure` l.921-937.
    let env = Env::unaddressed(SimConfig::new(SEED));
    assert_eq!(policy(&env), Ip4Config2Policy::STATIC);
    let (h, t) = env.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::NO_MAPPING);
    let c = ConnTok::new(&env);
    assert_eq!(connect_tok(&t, &c), Status::NO_MAPPING);
    let rx = Io::rx(&env, 64);
    assert_eq!(receive(&t, &rx), Status::NO_MAPPING);
    let tx = Io::tx(&env, b"ping");
    assert_eq!(transmit(&t, &tx), Status::NO_MAPPING);
    let cl = CloseTok::new(&env);
    assert_eq!(close_tok(&t, &cl), Status::NO_MAPPING);
    let a = ListenTok::new(&env);
    assert_eq!(accept(&t, &a), Status::NO_MAPPING);
    // SAFETY: a null token cancels everything pending (nothing here).
    assert_eq!(unsafe { t.cancel(core::ptr::null_mut()) }, Status::SUCCESS);
    assert_eq!(cancel(&t, &c), Status::NOT_FOUND);
    let mut state = Tcp4ConnectionState::LISTEN;
    assert_eq!(get_state(&t, &mut state), Status::SUCCESS);
    assert_eq!(state, Tcp4ConnectionState::CLOSED);
    // SockFlush refuses a socket that is not configured.
    assert_eq!(reset(&t), Status::ACCESS_DENIED);
    // The IP child stays configured with the default address.
    let ex = explicit(active_cfg(PEER, 7, 0), SUT);
    assert_eq!(configure(&t, &ex), Status::ALREADY_STARTED);
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::NO_MAPPING);
    assert_eq!(connect_tok(&t, &c), Status::NO_MAPPING, "still no mapping");
    c.free(&env);
    rx.free(&env);
    tx.free(&env);
    cl.free(&env);
    a.free(&env);
    env.destroy(h);
}

#[test]
fn use_default_address_turns_dhcp_on_and_works_once_leased() {
    // Measured on OVMF (`addressing_before_lease`: policy_after_default
    // DHCP); Ip4Impl.c `Ip4ConfigProtocol` l.676-695 sets the policy.
    let env = Env::unaddressed(SimConfig::new(SEED));
    let _echo = listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::NO_MAPPING);
    assert_eq!(policy(&env), Ip4Config2Policy::DHCP);
    // The lease arrives after the DHCP delay; the same child then
    // configures with the default address (EfiIp4Configure l.934-937, then
    // the configured branch of Ip4ConfigProtocol l.600-612).
    let timer = relative_timer(&env, 5_000_000_000);
    assert!(env.wait(timer, 6_000_000_000), "the timer never fired");
    env.close_event(timer);
    let mut cfg = active_cfg(PEER, 7, 0);
    assert_eq!(configure_in_place(&t, &mut cfg), Status::SUCCESS);
    assert_eq!(cfg.access_point.station_address, addr(SUT));
    assert_eq!(connect_configured(&env, &t), Status::SUCCESS);
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn an_explicit_station_works_without_a_lease_and_leaves_the_policy_alone() {
    // Measured on OVMF (`addressing_before_lease`: explicit_configure
    // SUCCESS, the Connect reached the host, policy still STATIC);
    // Ip4Impl.c `Ip4ConfigProtocol` l.636-672 (an interface of its own).
    let env = Env::unaddressed(SimConfig::new(SEED));
    let _echo = listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    let mut cfg = explicit(active_cfg(PEER, 7, 0), SUT);
    assert_eq!(configure_in_place(&t, &mut cfg), Status::SUCCESS);
    assert_eq!(cfg.access_point.station_address, addr(SUT));
    assert_ne!(cfg.access_point.station_port, 0);
    assert_eq!(connect_configured(&env, &t), Status::SUCCESS);
    echo_round_trip(&env, &t);
    assert_eq!(policy(&env), Ip4Config2Policy::STATIC);
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn an_explicit_second_address_beside_the_lease_is_reachable() {
    // Measured on OVMF (`addressing_after_lease`: second_configure SUCCESS
    // with 10.0.2.99, its Connect reached the host).
    let second = Ipv4Addr::new(10, 0, 2, 99);
    let env = Env::new(SimConfig::new(SEED));
    let echo = listen_echo(&env.sim, 7);
    let (h, t) = env.child();
    let mut cfg = explicit(active_cfg(PEER, 7, 0), second);
    assert_eq!(configure_in_place(&t, &mut cfg), Status::SUCCESS);
    assert_eq!(cfg.access_point.station_address, addr(second));
    assert_eq!(connect_configured(&env, &t), Status::SUCCESS);
    echo_round_trip(&env, &t);
    assert_eq!(
        echo.borrow().accepted,
        1,
        "the peer accepted one connection"
    );
    assert_eq!(close(&env, &t, true), Status::SUCCESS);
    env.destroy(h);
}

#[test]
fn a_configure_refused_after_the_ip_child_keeps_its_addressing_mode() {
    // Measured on OVMF (`addressing_after_lease`: taken_configure
    // INVALID_PARAMETER, then explicit ALREADY_STARTED, then default
    // SUCCESS). Code: TcpBind fails after IpIoConfigIp (TcpDispatcher.c
    // l.501-542), which leaves the IP child configured.
    let env = Env::new(SimConfig::new(SEED));
    let (h1, holder) = env.child();
    let (h2, t) = env.child();
    assert_eq!(configure(&holder, &passive_cfg(4000)), Status::SUCCESS);
    let mut taken = passive_cfg(4000);
    assert_eq!(
        configure_in_place(&t, &mut taken),
        Status::INVALID_PARAMETER
    );
    assert_eq!(
        taken.access_point.station_address,
        addr(SUT),
        "the address is written back before the port is bound"
    );
    let ex = explicit(passive_cfg(4001), SUT);
    assert_eq!(configure(&t, &ex), Status::ALREADY_STARTED);
    assert_eq!(configure(&t, &passive_cfg(4001)), Status::SUCCESS);
    assert_eq!(reset(&t), Status::SUCCESS);
    // A successful Configure(NULL) resets the IP child too (TcpFlushPcb).
    assert_eq!(configure(&t, &ex), Status::SUCCESS);
    env.destroy(h2);
    env.destroy(h1);
}

#[test]
fn legacy_refuses_use_default_address_outright() {
    // The `use_default_address_already_started` quirk: on the legacy
    // profile UseDefaultAddress is ALREADY_STARTED even on a fresh child
    // with an address; on edk2-stable202211 ALREADY_STARTED comes only
    // from a configured IP child in the other mode (test above).
    let modern = Env::new(SimConfig::new(SEED));
    let (h, t) = modern.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::SUCCESS);
    modern.destroy(h);
    let legacy = Env::new(SimConfig::new(SEED).with_profile(Profile::Legacy));
    let (h, t) = legacy.child();
    assert_eq!(
        configure(&t, &active_cfg(PEER, 7, 0)),
        Status::ALREADY_STARTED
    );
    let ex = explicit(active_cfg(PEER, 7, 0), SUT);
    assert_eq!(configure(&t, &ex), Status::SUCCESS, "BITS' explicit retry");
    legacy.destroy(h);
}

/// `SetData(Policy, p)`.
fn set_policy(env: &Env, p: Ip4Config2Policy) -> Status {
    // SAFETY: `p` is a live policy and `data_size` its size.
    unsafe {
        env.p.ip4_config2().set_data(
            Ip4Config2DataType::POLICY,
            size_of::<Ip4Config2Policy>(),
            (&p as *const Ip4Config2Policy).cast(),
        )
    }
}

#[test]
fn an_unmapped_child_stays_unmapped_once_the_default_interface_is_replaced() {
    // Ip4Config2Impl.c `Ip4Config2SetPolicy` l.1146-1149 lets SetData(DHCP)
    // through before the lease, and `Ip4Config2OnPolicyChanged` then
    // replaces the default interface; the child's IP child keeps the old
    // one, which never gets an address (Ip4If.c `Ip4FreeInterface`).
    let env = Env::unaddressed(SimConfig::new(SEED));
    let (h, t) = env.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::NO_MAPPING);
    assert_eq!(set_policy(&env, Ip4Config2Policy::DHCP), Status::SUCCESS);
    let timer = relative_timer(&env, 5_000_000_000);
    assert!(env.wait(timer, 6_000_000_000), "the timer never fired");
    env.close_event(timer);
    assert_eq!(
        configure(&t, &active_cfg(PEER, 7, 0)),
        Status::NO_MAPPING,
        "the old child holds the replaced interface"
    );
    let (h2, fresh) = env.child();
    assert_eq!(configure(&fresh, &active_cfg(PEER, 7, 0)), Status::SUCCESS);
    env.destroy(h2);
    env.destroy(h);
}

#[test]
fn a_second_dhcp_request_does_not_restart_the_client() {
    // `Ip4StartAutoConfig` returns while the DHCP child exists
    // (Ip4Config2Impl.c l.906-907): asking again keeps the lease's time.
    let once = Env::unaddressed(SimConfig::new(SEED));
    assert_eq!(set_policy(&once, Ip4Config2Policy::DHCP), Status::SUCCESS);
    let twice = Env::unaddressed(SimConfig::new(SEED));
    assert_eq!(set_policy(&twice, Ip4Config2Policy::DHCP), Status::SUCCESS);
    let half = relative_timer(&twice, 2_000_000_000);
    assert!(twice.wait(half, 3_000_000_000));
    twice.close_event(half);
    assert_eq!(set_policy(&twice, Ip4Config2Policy::DHCP), Status::SUCCESS);
    let lease_at = |env: &Env| {
        let start = env.sim.now_ns();
        while env.sim.now_ns() - start < 10_000_000_000 {
            if interface_address(env) != Ipv4Addr::UNSPECIFIED {
                return env.sim.now_ns();
            }
            let _ = env.boot().stall(10_000);
        }
        panic!("no lease within 10 s");
    };
    let (a, b) = (lease_at(&once), lease_at(&twice));
    assert!(a.abs_diff(b) <= 10_000_000, "lease at {a} ns and {b} ns");
}

/// The station address from `GetData(InterfaceInfo)`, sized as the
/// firmware asks (the route table follows the structure once addressed).
fn interface_address(env: &Env) -> Ipv4Addr {
    let mut size = 0usize;
    // SAFETY: a null buffer only asks for the size.
    let st = unsafe {
        env.p.ip4_config2().get_data(
            Ip4Config2DataType::INTERFACE_INFO,
            &mut size,
            core::ptr::null_mut(),
        )
    };
    assert_eq!(st, Status::BUFFER_TOO_SMALL);
    let mut buf = vec![0u64; size.div_ceil(8)];
    // SAFETY: `buf` has at least `size` writable bytes.
    let st = unsafe {
        env.p.ip4_config2().get_data(
            Ip4Config2DataType::INTERFACE_INFO,
            &mut size,
            buf.as_mut_ptr().cast(),
        )
    };
    assert_eq!(st, Status::SUCCESS);
    // SAFETY: the firmware wrote a whole structure (SUCCESS) at the start of
    // the 8-byte aligned `buf`.
    let info = unsafe {
        buf.as_ptr()
            .cast::<efisock::firmware::Ip4Config2InterfaceInfo>()
            .read()
    };
    Ipv4Addr::from(info.station_addr.0)
}

#[test]
fn after_a_first_lease_asking_for_dhcp_again_keeps_the_default_interface() {
    // `Ip4Config2SetPolicy` l.1146-1149: the same DHCP policy is refused as
    // unchanged once `DhcpSuccess` is set (l.865, never cleared), so an
    // unmapped child's default interface is the one that gets the next
    // lease. Measured on OVMF: probe/addressing_unmapped_child_maps_later.
    let env = Env::unaddressed(SimConfig::new(SEED));
    assert_eq!(set_policy(&env, Ip4Config2Policy::DHCP), Status::SUCCESS);
    let wait = |ns| {
        let timer = relative_timer(&env, ns);
        assert!(env.wait(timer, ns + 1_000_000_000), "the timer never fired");
        env.close_event(timer);
    };
    wait(5_000_000_000);
    assert_eq!(interface_address(&env), SUT, "first lease");
    assert_eq!(set_policy(&env, Ip4Config2Policy::STATIC), Status::SUCCESS);
    assert_eq!(interface_address(&env), Ipv4Addr::UNSPECIFIED);
    let (h, t) = env.child();
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::NO_MAPPING);
    assert_eq!(set_policy(&env, Ip4Config2Policy::DHCP), Status::SUCCESS);
    wait(5_000_000_000);
    assert_eq!(configure(&t, &active_cfg(PEER, 7, 0)), Status::SUCCESS);
    env.destroy(h);
}
