//! Addressing as EDK2 edk2-stable202211 does it: what Configure writes back
//! into the caller's config data, UseDefaultAddress before a lease, explicit
//! station addresses, and ALREADY_STARTED from the IP child's mode.
//!
//! Every expectation names its source: the EDK2 function (code-read at
//! edk2-stable202211) or the OVMF measurement in `efi-target/OBSERVED.md`.

mod common;

use common::*;
use efisock::firmware::{Ipv4Address, Status, Tcp4, Tcp4ConfigData};
use efisock_sim::SimConfig;

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
    assert!(ap.use_default_address.is_true(), "the mode is not rewritten");
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
