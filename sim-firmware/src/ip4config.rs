//! `EFI_IP4_CONFIG2_PROTOCOL`: OVMF's default is the STATIC policy with no
//! address; selecting DHCP obtains the lease after `DhcpConfig::delay_ns`
//! (or never); a manual address applies at once. Data-notify events on
//! INTERFACE_INFO are signalled when the address changes.

use core::ffi::c_void;
use std::net::Ipv4Addr;

use efisock::firmware::{
    Event, Ip4Config2, Ip4Config2DataType, Ip4Config2InterfaceInfo, Ip4Config2ManualAddress,
    Ip4Config2Policy, Ipv4Address, Status,
};
use uefi_raw::MacAddress;

use crate::sim::SimIp4Config2;
use crate::world::{Env, Ip4State, World, ev_id};

/// MAC address reported for the SUT NIC (QEMU's default).
pub const SUT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn v4(a: Ipv4Address) -> Ipv4Addr {
    Ipv4Addr::from(a.0)
}

/// POLICY: DHCP drops a static address and starts the DHCP client (whose
/// lease arrives after the configured delay, unless DHCP is set to fail);
/// STATIC stops it and drops the leased address.
///
/// Every SetData(Policy) that is not refused as unchanged replaces the
/// default interface, which strands the IP children on the old one.
/// Unchanged is the same policy, except DHCP while no lease was ever
/// obtained since boot (Ip4Config2Impl.c `Ip4Config2SetPolicy` l.1146-1149;
/// `DhcpSuccess` is set at l.865 and never cleared); EFI_ABORTED is then
/// reported as SUCCESS (l.1704-1709). DHCP again does not restart the
/// client (`Ip4StartAutoConfig` l.906-907).
fn set_policy(w: &mut World, p: Ip4Config2Policy) -> Status {
    let mapped = w.env.ip4.address.is_some();
    match p {
        Ip4Config2Policy::DHCP if w.env.ip4.dhcp_policy => {
            if !w.env.ip4.dhcp_success {
                w.tcp4.replace_default_interface(mapped);
            }
            Status::SUCCESS
        }
        Ip4Config2Policy::DHCP => {
            w.tcp4.replace_default_interface(mapped);
            if mapped {
                w.set_address(None, None);
            }
            start_dhcp_client(&mut w.env);
            Status::SUCCESS
        }
        Ip4Config2Policy::STATIC if !w.env.ip4.dhcp_policy => Status::SUCCESS,
        Ip4Config2Policy::STATIC => {
            w.tcp4.replace_default_interface(mapped);
            w.env.ip4.dhcp_policy = false;
            w.env.ip4.dhcp_deadline = None;
            if mapped {
                w.set_address(None, None);
            }
            Status::SUCCESS
        }
        _ => Status::INVALID_PARAMETER,
    }
}

/// Switch the policy to DHCP and start the client: the lease arrives after
/// the configured delay, unless DHCP is set to fail. The caller has dropped
/// any address first (a policy change frees the default interface:
/// Ip4Config2Impl.c `Ip4Config2OnPolicyChanged` l.92-149).
pub(crate) fn start_dhcp_client(env: &mut Env) {
    env.ip4.dhcp_policy = true;
    let d = env.cfg.dhcp;
    let f = env.cfg.faults;
    env.ip4.dhcp_deadline =
        (!d.fail && !f.dhcp_fail).then(|| env.now + d.delay_ns + f.dhcp_delay_ns);
}

/// MANUAL_ADDRESS: a unicast address and a contiguous mask; 0.0.0.0 clears
/// the address.
fn set_manual_address(w: &mut World, a: Ipv4Addr, mask: Ipv4Addr) -> Status {
    let mv = u32::from(mask);
    if a.is_broadcast() || mv.leading_ones() + mv.trailing_zeros() != 32 {
        return Status::INVALID_PARAMETER;
    }
    let gw = w.env.ip4.gateway;
    w.set_address((!a.is_unspecified()).then_some((a, mask)), gw);
    Status::SUCCESS
}

// SAFETY: every read and write below is bounded by the sizes passed in.
unsafe impl Ip4Config2 for SimIp4Config2 {
    unsafe fn set_data(
        &self,
        data_type: Ip4Config2DataType,
        data_size: usize,
        data: *const c_void,
    ) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            match data_type {
                Ip4Config2DataType::POLICY => {
                    if data_size != 4 || data.is_null() {
                        Status::BAD_BUFFER_SIZE
                    } else {
                        // SAFETY: 4 readable bytes (checked size, contract).
                        let p = Ip4Config2Policy(unsafe { (data as *const i32).read_unaligned() });
                        set_policy(&mut w, p)
                    }
                }
                Ip4Config2DataType::MANUAL_ADDRESS => {
                    if data_size != size_of::<Ip4Config2ManualAddress>() || data.is_null() {
                        Status::BAD_BUFFER_SIZE
                    } else if w.env.ip4.dhcp_policy {
                        Status::WRITE_PROTECTED
                    } else {
                        // SAFETY: a full ManualAddress is readable (checked size).
                        let m =
                            unsafe { (data as *const Ip4Config2ManualAddress).read_unaligned() };
                        set_manual_address(&mut w, v4(m.address), v4(m.subnet_mask))
                    }
                }
                Ip4Config2DataType::GATEWAY => {
                    if data_size % 4 != 0 || (data_size > 0 && data.is_null()) {
                        Status::BAD_BUFFER_SIZE
                    } else if w.env.ip4.dhcp_policy {
                        Status::WRITE_PROTECTED
                    } else {
                        let gw = (data_size >= 4).then(|| {
                            // SAFETY: at least 4 readable bytes.
                            Ipv4Addr::from(unsafe { (data as *const [u8; 4]).read_unaligned() })
                        });
                        let addr = w.env.ip4.address;
                        w.set_address(addr, gw);
                        Status::SUCCESS
                    }
                }
                _ => Status::UNSUPPORTED,
            }
        };
        self.sim.exit();
        st
    }

    unsafe fn get_data(
        &self,
        data_type: Ip4Config2DataType,
        data_size: *mut usize,
        data: *mut c_void,
    ) -> Status {
        self.sim.enter(0);
        let st = (|| {
            if data_size.is_null() {
                return Status::INVALID_PARAMETER;
            }
            let w = self.sim.w.borrow();
            // SAFETY: data_size is valid (contract).
            let have = unsafe { *data_size };
            let need = match size_of_data(&w.env.ip4, data_type) {
                Ok(n) => n,
                Err(st) => return st,
            };
            if have < need || data.is_null() {
                // SAFETY: data_size is valid for writes.
                unsafe { *data_size = need };
                return Status::BUFFER_TOO_SMALL;
            }
            // SAFETY: `data` has at least `need` writable bytes (checked),
            // and `data_size` is valid for writes.
            unsafe {
                *data_size = need;
                write_data(&w.env.ip4, data_type, data);
            }
            Status::SUCCESS
        })();
        self.sim.exit();
        st
    }

    fn register_data_notify(&self, data_type: Ip4Config2DataType, event: Event) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let id = ev_id(event);
            if !(0..5).contains(&data_type.0) || !w.env.events.contains_key(&id) {
                Status::INVALID_PARAMETER
            } else {
                let v = w.env.ip4.notify.entry(data_type.0).or_default();
                if v.contains(&id) {
                    Status::ACCESS_DENIED
                } else {
                    v.push(id);
                    Status::SUCCESS
                }
            }
        };
        self.sim.exit();
        st
    }

    fn unregister_data_notify(&self, data_type: Ip4Config2DataType, event: Event) -> Status {
        self.sim.enter(0);
        let st = {
            let mut w = self.sim.w.borrow_mut();
            let id = ev_id(event);
            match w.env.ip4.notify.get_mut(&data_type.0) {
                Some(v) if v.contains(&id) => {
                    v.retain(|&e| e != id);
                    Status::SUCCESS
                }
                _ => Status::NOT_FOUND,
            }
        };
        self.sim.exit();
        st
    }
}

/// One `EFI_IP4_ROUTE_TABLE`: subnet address, subnet mask, gateway.
const ROUTE_ENTRY_SIZE: usize = 12;

/// The default route table as `Ip4Config2GetIfInfo` reports it after the
/// interface info (Ip4Config2Impl.c `Ip4Config2BuildDefaultRouteTable`):
/// most specific first, so the station's subnet route, then the default
/// route through the gateway. Its entries make INTERFACE_INFO larger than
/// the structure once an address is set, so a caller sized for the
/// structure alone gets BUFFER_TOO_SMALL, as on OVMF.
fn default_routes(ip4: &Ip4State) -> Vec<[Ipv4Addr; 3]> {
    let Some((addr, mask)) = ip4.address else {
        return Vec::new();
    };
    let subnet = Ipv4Addr::from(u32::from(addr) & u32::from(mask));
    let mut routes = vec![[subnet, mask, Ipv4Addr::UNSPECIFIED]];
    if let Some(gw) = ip4.gateway {
        routes.push([Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, gw]);
    }
    routes
}

/// The size of `data_type`'s data, or why there is none to get.
fn size_of_data(ip4: &Ip4State, data_type: Ip4Config2DataType) -> Result<usize, Status> {
    match data_type {
        Ip4Config2DataType::INTERFACE_INFO => {
            Ok(size_of::<Ip4Config2InterfaceInfo>() + ROUTE_ENTRY_SIZE * default_routes(ip4).len())
        }
        Ip4Config2DataType::POLICY => Ok(4),
        Ip4Config2DataType::MANUAL_ADDRESS => {
            if ip4.dhcp_policy || ip4.address.is_none() {
                return Err(Status::NOT_FOUND);
            }
            Ok(size_of::<Ip4Config2ManualAddress>())
        }
        Ip4Config2DataType::GATEWAY => {
            if ip4.gateway.is_none() {
                return Err(Status::NOT_FOUND);
            }
            Ok(4)
        }
        _ => Err(Status::UNSUPPORTED),
    }
}

/// Write `data_type`'s data, which [`size_of_data`] accepted.
///
/// # Safety
/// `data` has `size_of_data(ip4, data_type)` writable bytes.
unsafe fn write_data(ip4: &Ip4State, data_type: Ip4Config2DataType, data: *mut c_void) {
    let (addr, mask) = ip4
        .address
        .unwrap_or((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
    match data_type {
        Ip4Config2DataType::INTERFACE_INFO => {
            let mut name = [0u16; 32];
            for (i, c) in "eth0".encode_utf16().enumerate() {
                name[i] = c;
            }
            let mut mac = [0u8; 32];
            mac[..6].copy_from_slice(&SUT_MAC);
            let info = Ip4Config2InterfaceInfo {
                name,
                if_type: 1,
                hw_addr_size: 6,
                hw_addr: MacAddress(mac),
                station_addr: Ipv4Address(addr.octets()),
                subnet_mask: Ipv4Address(mask.octets()),
                route_table_size: 0,
                route_table: core::ptr::null_mut(),
            };
            let routes = default_routes(ip4);
            let table = data
                .cast::<u8>()
                .wrapping_add(size_of::<Ip4Config2InterfaceInfo>());
            let info = Ip4Config2InterfaceInfo {
                route_table_size: routes.len() as u32,
                route_table: if routes.is_empty() {
                    core::ptr::null_mut()
                } else {
                    table.cast()
                },
                ..info
            };
            // SAFETY: room for the interface info and the route table after
            // it (caller's contract: `size_of_data` bytes).
            unsafe {
                (data as *mut Ip4Config2InterfaceInfo).write_unaligned(info);
                for (i, route) in routes.iter().enumerate() {
                    let entry: Vec<u8> = route.iter().flat_map(|a| a.octets()).collect();
                    core::ptr::copy_nonoverlapping(
                        entry.as_ptr(),
                        table.add(i * ROUTE_ENTRY_SIZE),
                        ROUTE_ENTRY_SIZE,
                    );
                }
            }
        }
        Ip4Config2DataType::POLICY => {
            let p = if ip4.dhcp_policy {
                Ip4Config2Policy::DHCP
            } else {
                Ip4Config2Policy::STATIC
            };
            // SAFETY: room for the policy (caller's contract).
            unsafe { (data as *mut i32).write_unaligned(p.0) };
        }
        Ip4Config2DataType::MANUAL_ADDRESS => {
            let m = Ip4Config2ManualAddress {
                address: Ipv4Address(addr.octets()),
                subnet_mask: Ipv4Address(mask.octets()),
            };
            // SAFETY: room for the manual address (caller's contract).
            unsafe { (data as *mut Ip4Config2ManualAddress).write_unaligned(m) };
        }
        _ => {
            let g = ip4.gateway.expect("checked").octets();
            // SAFETY: room for the gateway (caller's contract).
            unsafe { (data as *mut [u8; 4]).write_unaligned(g) };
        }
    }
}
