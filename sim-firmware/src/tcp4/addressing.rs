//! The IP4 child beneath each TCP4 child, and the statuses EDK2 derives
//! from it: NO_MAPPING that sticks, DHCP turned on by UseDefaultAddress,
//! explicit station addresses without a lease, ALREADY_STARTED when the
//! addressing mode changes under a configured IP child.
//!
//! Everything here is code-read at edk2-stable202211 (`NetworkPkg/`) unless
//! marked measured; the decisions are pure functions so that each rule is
//! table-tested on its own.

use std::net::Ipv4Addr;

use efisock::firmware::Status;

/// The state of a TCP4 child's own IP4 child (`Tcb->IpInfo`).
///
/// TcpDxe configures it at the start of every Configure (TcpDispatcher.c
/// `TcpConfigurePcb` l.501, `IpIoConfigIp`) and leaves it configured when a
/// later step fails (DxeIpIoLib.c `IpIoConfigIp` l.1834-1842 returns without
/// cleanup; TcpDispatcher.c l.532-542 leaves after a failed `TcpBind`). Only
/// a successful Configure(NULL) or DestroyChild resets it (`TcpFlushPcb`
/// l.299).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IpChild {
    /// Never configured, or reset.
    #[default]
    Unconfigured,
    /// Configured with UseDefaultAddress: it uses the default interface
    /// (the Ip4Config2 address, when there is one).
    Default,
    /// Configured with UseDefaultAddress on a default interface that
    /// Ip4Config2 has since replaced: a policy change, or SetData(DHCP)
    /// again before the lease, frees the default interface and creates a
    /// new one (Ip4Config2Impl.c `Ip4Config2OnPolicyChanged` l.92-149), but
    /// the IP child keeps its reference to the old one (Ip4If.c
    /// `Ip4FreeInterface` l.744-746 only drops a reference). The old one is
    /// never given an address again.
    Detached {
        /// The old interface had an address when it was replaced.
        mapped: bool,
    },
    /// Configured with an explicit station address: it has an interface of
    /// its own with that address and an on-link route only (Ip4Impl.c
    /// `Ip4ConfigProtocol` l.636-672).
    Explicit {
        /// The station address.
        station: Ipv4Addr,
        /// Its subnet mask.
        mask: Ipv4Addr,
    },
}

/// What a Configure asks of the IP child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpRequest {
    /// UseDefaultAddress TRUE.
    Default,
    /// UseDefaultAddress FALSE with this station address and mask.
    Explicit {
        /// The station address.
        station: Ipv4Addr,
        /// Its subnet mask.
        mask: Ipv4Addr,
    },
}

/// The IP4 service's state as far as the default address is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultAddress {
    /// The default interface has an address (a lease or a manual address).
    pub(crate) mapped: bool,
    /// The Ip4Config2 policy is DHCP.
    pub(crate) dhcp_policy: bool,
}

/// What configuring the IP child gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpOutcome {
    /// The call's status: SUCCESS, NO_MAPPING (the IP child is configured
    /// nonetheless), ALREADY_STARTED or INVALID_PARAMETER.
    pub(crate) status: Status,
    /// The IP child afterwards.
    pub(crate) ip: IpChild,
    /// The Ip4Config2 policy is switched to DHCP, which starts the DHCP
    /// client.
    pub(crate) start_dhcp: bool,
}

/// Ip4Common.c `Ip4StationAddressValid`: 0.0.0.0/0 (the DHCP client's), or
/// a contiguous mask with a class A-C unicast address that is neither the
/// subnet's network nor its broadcast address (`NetIp4IsUnicast`).
pub(crate) fn station_valid(station: Ipv4Addr, mask: Ipv4Addr) -> bool {
    let (ip, m) = (u32::from(station), u32::from(mask));
    if m == 0 {
        return ip == 0;
    }
    if m.leading_ones() + m.trailing_zeros() != 32 || m == u32::MAX {
        return false;
    }
    // Class D (multicast) and E: the top three bits all set.
    if ip >> 29 == 0b111 {
        return false;
    }
    let host = ip & !m;
    ip != 0 && host != 0 && host != !m
}

/// Ip4Impl.c `EfiIp4Configure` (l.893-938) then `Ip4ConfigProtocol`
/// (l.578-748) for the IP child of a TCP4 child in state `current`.
///
/// - A configured IP child accepts only the same addressing: another
///   UseDefaultAddress, or another explicit station or mask, is
///   ALREADY_STARTED (l.921-932); the same default address without a
///   mapping is NO_MAPPING (l.934-937); otherwise SUCCESS (l.600-612).
/// - A fresh explicit station gets its own interface: SUCCESS with or
///   without a lease (l.636-672).
/// - A fresh UseDefaultAddress on an IP4 service that is unstarted with a
///   non-DHCP policy (STATIC and no manual address) sets the policy to DHCP
///   (l.676-695). The child is configured either way and the call returns
///   NO_MAPPING while the default interface has no address (l.734-739).
pub(crate) fn configure_ip(current: IpChild, req: IpRequest, svc: DefaultAddress) -> IpOutcome {
    let out = |status, ip| IpOutcome {
        status,
        ip,
        start_dhcp: false,
    };
    if let IpRequest::Explicit { station, mask } = req
        && !station_valid(station, mask)
    {
        return out(Status::INVALID_PARAMETER, current);
    }
    match (current, req) {
        (IpChild::Unconfigured, IpRequest::Explicit { station, mask }) => {
            out(Status::SUCCESS, IpChild::Explicit { station, mask })
        }
        (IpChild::Unconfigured, IpRequest::Default) => {
            // Unstarted means no address under a STATIC policy; the switch
            // brings no address at once.
            let start_dhcp = !svc.dhcp_policy && !svc.mapped;
            IpOutcome {
                status: if svc.mapped {
                    Status::SUCCESS
                } else {
                    Status::NO_MAPPING
                },
                ip: IpChild::Default,
                start_dhcp,
            }
        }
        (IpChild::Default, IpRequest::Default) if !svc.mapped => out(Status::NO_MAPPING, current),
        (IpChild::Default, IpRequest::Default) => out(Status::SUCCESS, current),
        (IpChild::Detached { mapped: false }, IpRequest::Default) => {
            out(Status::NO_MAPPING, current)
        }
        (IpChild::Detached { mapped: true }, IpRequest::Default) => out(Status::SUCCESS, current),
        (
            IpChild::Explicit { station, mask },
            IpRequest::Explicit {
                station: s,
                mask: m,
            },
        ) if station == s && mask == m => out(Status::SUCCESS, current),
        _ => out(Status::ALREADY_STARTED, current),
    }
}

/// What replacing the default interface leaves of an IP child: one on the
/// default interface keeps the old interface, mapped or not as it was.
pub(crate) fn detach(ip: IpChild, mapped: bool) -> IpChild {
    match ip {
        IpChild::Default => IpChild::Detached { mapped },
        other => other,
    }
}

/// The status a call that needs a configured instance gets from an
/// instance that is not: NO_MAPPING once a Configure returned NO_MAPPING
/// (TcpMain.c `Tcp4Configure` l.179-181 sets `SO_NO_MAPPING`, which
/// SockInterface.c checks first in Connect l.425, Accept l.500, Transmit
/// l.609, Receive l.728, Close l.888 and Routes l.1067), else NOT_STARTED.
pub(crate) fn unconfigured_status(no_mapping: bool) -> Status {
    if no_mapping {
        Status::NO_MAPPING
    } else {
        Status::NOT_STARTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 99);
    const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

    fn explicit(station: Ipv4Addr) -> IpChild {
        IpChild::Explicit {
            station,
            mask: MASK,
        }
    }

    fn ask(station: Ipv4Addr) -> IpRequest {
        IpRequest::Explicit {
            station,
            mask: MASK,
        }
    }

    const STATIC_NONE: DefaultAddress = DefaultAddress {
        mapped: false,
        dhcp_policy: false,
    };
    const STATIC_MANUAL: DefaultAddress = DefaultAddress {
        mapped: true,
        dhcp_policy: false,
    };
    const DHCP_WAITING: DefaultAddress = DefaultAddress {
        mapped: false,
        dhcp_policy: true,
    };
    const DHCP_LEASED: DefaultAddress = DefaultAddress {
        mapped: true,
        dhcp_policy: true,
    };

    #[test]
    fn configure_ip_follows_efi_ip4_configure() {
        use IpChild::{Default as D, Unconfigured as U};
        use Status as S;
        let def = IpRequest::Default;
        let unmapped_old = IpChild::Detached { mapped: false };
        let mapped_old = IpChild::Detached { mapped: true };
        #[rustfmt::skip]
        let table: &[(IpChild, IpRequest, DefaultAddress, Status, IpChild, bool)] = &[
            // A fresh UseDefaultAddress.
            (U, def, STATIC_NONE, S::NO_MAPPING, D, true),
            (U, def, STATIC_MANUAL, S::SUCCESS, D, false),
            (U, def, DHCP_WAITING, S::NO_MAPPING, D, false),
            (U, def, DHCP_LEASED, S::SUCCESS, D, false),
            // A fresh explicit station: its own interface, lease or not.
            (U, ask(LEASE), STATIC_NONE, S::SUCCESS, explicit(LEASE), false),
            (U, ask(OTHER), DHCP_LEASED, S::SUCCESS, explicit(OTHER), false),
            // Already configured with the default address.
            (D, def, DHCP_WAITING, S::NO_MAPPING, D, false),
            (D, def, DHCP_LEASED, S::SUCCESS, D, false),
            (D, ask(LEASE), DHCP_LEASED, S::ALREADY_STARTED, D, false),
            (D, ask(LEASE), DHCP_WAITING, S::ALREADY_STARTED, D, false),
            // Already configured with an explicit station.
            (explicit(LEASE), ask(LEASE), STATIC_NONE, S::SUCCESS, explicit(LEASE), false),
            (explicit(LEASE), ask(OTHER), DHCP_LEASED, S::ALREADY_STARTED, explicit(LEASE), false),
            (explicit(LEASE), def, DHCP_LEASED, S::ALREADY_STARTED, explicit(LEASE), false),
            // Holding a replaced default interface: never mapped again.
            (unmapped_old, def, DHCP_LEASED, S::NO_MAPPING, unmapped_old, false),
            (unmapped_old, def, STATIC_NONE, S::NO_MAPPING, unmapped_old, false),
            (unmapped_old, ask(LEASE), DHCP_LEASED, S::ALREADY_STARTED, unmapped_old, false),
            (mapped_old, def, DHCP_LEASED, S::SUCCESS, mapped_old, false),
            // An invalid station is refused before the mode check.
            (D, ask(Ipv4Addr::new(10, 0, 2, 255)), DHCP_LEASED, S::INVALID_PARAMETER, D, false),
        ];
        for (i, &(current, req, svc, status, ip, start_dhcp)) in table.iter().enumerate() {
            let got = configure_ip(current, req, svc);
            let want = IpOutcome {
                status,
                ip,
                start_dhcp,
            };
            assert_eq!(got, want, "row {i}: {current:?} {req:?} {svc:?}");
        }
    }

    #[test]
    fn a_different_mask_is_another_explicit_address() {
        let got = configure_ip(
            explicit(LEASE),
            IpRequest::Explicit {
                station: LEASE,
                mask: Ipv4Addr::new(255, 255, 0, 0),
            },
            DHCP_LEASED,
        );
        assert_eq!(got.status, Status::ALREADY_STARTED);
    }

    #[test]
    fn replacing_the_default_interface_detaches_only_default_children() {
        assert_eq!(
            detach(IpChild::Default, false),
            IpChild::Detached { mapped: false }
        );
        assert_eq!(
            detach(IpChild::Default, true),
            IpChild::Detached { mapped: true }
        );
        assert_eq!(detach(explicit(LEASE), false), explicit(LEASE));
        assert_eq!(detach(IpChild::Unconfigured, true), IpChild::Unconfigured);
        let old = IpChild::Detached { mapped: false };
        assert_eq!(detach(old, true), old, "an old interface stays as it was");
    }

    #[test]
    fn station_validity_follows_ip4_station_address_valid() {
        let v = |a: [u8; 4], m: [u8; 4]| station_valid(Ipv4Addr::from(a), Ipv4Addr::from(m));
        assert!(v([0, 0, 0, 0], [0, 0, 0, 0]), "the DHCP client's 0.0.0.0/0");
        assert!(!v([10, 0, 2, 15], [0, 0, 0, 0]), "an address needs a mask");
        assert!(v([10, 0, 2, 15], [255, 255, 255, 0]));
        assert!(!v([10, 0, 2, 0], [255, 255, 255, 0]), "network address");
        assert!(!v([10, 0, 2, 255], [255, 255, 255, 0]), "subnet broadcast");
        assert!(!v([10, 0, 2, 15], [255, 0, 255, 0]), "non-contiguous mask");
        assert!(!v([224, 0, 0, 1], [255, 255, 255, 0]), "class D");
        assert!(!v([240, 0, 0, 1], [255, 255, 255, 0]), "class E");
        assert!(!v([10, 0, 2, 15], [255, 255, 255, 255]), "no host part");
    }

    #[test]
    fn an_unconfigured_call_status_tells_no_mapping_apart() {
        assert_eq!(unconfigured_status(true), Status::NO_MAPPING);
        assert_eq!(unconfigured_status(false), Status::NOT_STARTED);
    }
}
