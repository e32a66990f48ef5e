//! Configure and GetModeData: a child's access point and options.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use efisock::firmware::{Status, Tcp4ConfigData, Tcp4ConnectionState, Tcp4Option};
use smoltcp::socket::tcp::State;
use smoltcp::wire::{IpAddress, IpCidr};

use crate::world::Env;

use super::addressing::{DefaultAddress, IpChild, IpRequest, configure_ip, detach};
use super::child::{Child, ChildCfg, ListenerState, read_opts};
use super::{Edk2Tcp4, edk2_state};

impl Edk2Tcp4 {
    /// Configure: null resets the child; otherwise check the access point,
    /// bind the port and, for a passive child, start listening. As EDK2
    /// does, the station address and mask in force and the port bound are
    /// written back into `*cfg`.
    ///
    /// # Safety
    /// `cfg` is null or valid for reads and writes including its control
    /// option (read only).
    pub unsafe fn configure(
        &mut self,
        cx: &mut Env,
        id: usize,
        cfg: *mut Tcp4ConfigData,
    ) -> Status {
        if cfg.is_null() {
            return self.reset_child(cx, id);
        }
        // A bitwise copy (integers and the option pointer), so no reference
        // into the caller's config is alive while the write-back goes through
        // `cfg`.
        // SAFETY: non-null config is valid for reads (trait contract).
        let d = unsafe { core::ptr::read(cfg) };
        // SAFETY: the control option is null or valid (trait contract).
        if let Err(st) = unsafe { options_supported(d.control_option) } {
            return st;
        }
        let ap = &d.access_point;
        let (station, mask, remote) = (
            ip(ap.station_address),
            ip(ap.subnet_mask),
            ip(ap.remote_address),
        );
        let active = bool::from(ap.active_flag);
        let use_default = bool::from(ap.use_default_address);
        if remote.is_broadcast()
            || (active && (ap.remote_port == 0 || remote.is_unspecified()))
            || (!use_default && (station.is_broadcast() || !mask_ok(mask)))
        {
            return Status::INVALID_PARAMETER;
        }
        if self.children[&id].cfg.is_some() {
            return Status::ACCESS_DENIED;
        }
        let q = cx.cfg.quirks;
        if use_default && q.use_default_address_already_started {
            return Status::ALREADY_STARTED;
        }
        if !use_default && station.is_unspecified() && !active && q.listen_any_unsupported {
            return Status::INVALID_PARAMETER;
        }
        let req = if use_default {
            IpRequest::Default
        } else {
            IpRequest::Explicit { station, mask }
        };
        let svc = DefaultAddress {
            mapped: cx.ip4.address.is_some(),
            dhcp_policy: cx.ip4.dhcp_policy,
        };
        let mut outcome = configure_ip(self.children[&id].ip, req, svc);
        // Injected: while the DHCP client runs, the default interface may
        // be unmapped (lease being renewed); `EfiIp4Configure` then answers
        // NO_MAPPING with the IP child configured.
        if use_default && outcome.status == Status::SUCCESS && cx.ip4.dhcp_policy {
            if let Some(st) = cx.inject("Configure", &[Status::NO_MAPPING]) {
                outcome.status = st;
            }
        }
        if outcome.start_dhcp {
            cx.trace(format!(
                "child {id}: UseDefaultAddress on an unstarted STATIC service switches Ip4Config2 to DHCP"
            ));
            // The switch replaces the default interface before this child
            // takes the new one (Ip4ConfigProtocol l.676-700).
            self.replace_default_interface(false);
            crate::ip4config::start_dhcp_client(cx);
        }
        let c = self.children.get_mut(&id).expect("exists");
        c.ip = outcome.ip;
        if outcome.status == Status::NO_MAPPING {
            c.no_mapping = true;
        }
        self.sync_addresses(cx.ip4.address);
        if outcome.status != Status::SUCCESS {
            return outcome.status;
        }
        let (station, mask) = match outcome.ip {
            IpChild::Explicit { station, mask } => (station, mask),
            // A replaced interface that was mapped keeps its old address in
            // EDK2; the simulator knows only the current one.
            _ => match cx.ip4.address {
                Some(a) => a,
                None => {
                    self.children.get_mut(&id).expect("exists").no_mapping = true;
                    return Status::NO_MAPPING;
                }
            },
        };
        // SAFETY: `cfg` is valid for writes (trait contract) and no
        // reference into it is alive.
        unsafe { write_back_address(cfg, station, mask) };
        let port = match self.bind_port(cx, ap.station_port) {
            Ok(p) => p,
            Err(st) => return st,
        };
        // SAFETY: as above.
        unsafe { (*cfg).access_point.station_port = port };
        let ccfg = ChildCfg {
            station,
            mask,
            port,
            remote,
            remote_port: ap.remote_port,
            active,
            use_default,
            tos: d.type_of_service,
            ttl: d.time_to_live,
            // SAFETY: option pointer is null or valid (trait contract).
            opts: unsafe { read_opts(d.control_option) },
        };
        let c = self.children.get_mut(&id).expect("exists");
        c.cfg = Some(ccfg);
        c.no_mapping = false;
        if !active {
            let h = Self::new_listen_socket(&mut self.sockets, &ccfg);
            let c = self.children.get_mut(&id).expect("exists");
            c.listener = Some(ListenerState {
                pool: vec![h],
                ready: VecDeque::new(),
            });
        }
        cx.trace(format!(
            "child {id}: configured {station}:{port} active={active}"
        ));
        Status::SUCCESS
    }

    /// Configure(NULL), the brutal reset: abort everything inside the call,
    /// send neither FIN nor RST, and leave the child unconfigured.
    fn reset_child(&mut self, cx: &mut Env, id: usize) -> Status {
        let c = self.children.get_mut(&id).expect("caller checked");
        if c.cfg.is_none() {
            return Status::ACCESS_DENIED;
        }
        self.flush_tokens(cx, id, Status::ABORTED, true);
        self.drop_socket(id);
        let c = self.children.get_mut(&id).expect("exists");
        // `TcpFlushPcb` also resets the IP child (TcpDispatcher.c l.299).
        *c = Child {
            busy: c.busy,
            ..Child::new(c.origin)
        };
        self.sync_addresses(cx.ip4.address);
        Status::SUCCESS
    }

    /// The station port: the one asked for if free, else an ephemeral one.
    fn bind_port(&mut self, cx: &mut Env, asked: u16) -> Result<u16, Status> {
        if asked != 0 {
            if self.port_in_use(cx, asked) {
                return Err(Status::INVALID_PARAMETER);
            }
            return Ok(asked);
        }
        self.ephemeral_port(cx).ok_or(Status::OUT_OF_RESOURCES)
    }

    /// GetModeData: the connection state and the configuration in force.
    ///
    /// # Safety
    /// Non-null pointers valid for writes.
    pub unsafe fn get_mode_data(
        &mut self,
        id: usize,
        state: *mut Tcp4ConnectionState,
        config: *mut Tcp4ConfigData,
        ip4: *mut efisock::firmware::Ip4ModeData,
    ) -> Status {
        let c = &self.children[&id];
        let cfg = c.cfg;
        if cfg.is_none() && !config.is_null() {
            return Status::NOT_STARTED;
        }
        let st = if c.listener.is_some() {
            Tcp4ConnectionState::LISTEN
        } else {
            // A graceful Close moves EDK2 to FIN_WAIT_1 (or LAST_ACK from
            // CLOSE_WAIT) at once, its FIN following the data still queued
            // (TcpMisc.c `TcpOnAppClose`); the simulator hands smoltcp the
            // close only once the pending Transmits are cut, so its socket
            // still says ESTABLISHED (or CLOSE_WAIT) until then.
            match self.state_of(id) {
                Some(State::Established) if c.tokens.close.is_some() => {
                    Tcp4ConnectionState::FIN_WAIT1
                }
                Some(State::CloseWait) if c.tokens.close.is_some() => Tcp4ConnectionState::LAST_ACK,
                other => other.map_or(Tcp4ConnectionState::CLOSED, edk2_state),
            }
        };
        // SAFETY: non-null output pointers are writable (trait contract).
        unsafe {
            if !state.is_null() {
                *state = st;
            }
            if let (Some(cfg), false) = (cfg, config.is_null()) {
                let d = &mut *config;
                d.type_of_service = cfg.tos;
                d.time_to_live = cfg.ttl;
                let ap = &mut d.access_point;
                ap.use_default_address = cfg.use_default.into();
                ap.station_address = efisock::firmware::Ipv4Address(cfg.station.octets());
                ap.subnet_mask = efisock::firmware::Ipv4Address(cfg.mask.octets());
                ap.station_port = cfg.port;
                ap.remote_address = efisock::firmware::Ipv4Address(cfg.remote.octets());
                ap.remote_port = cfg.remote_port;
                ap.active_flag = (st != Tcp4ConnectionState::LISTEN).into();
                if !d.control_option.is_null() {
                    let o = &mut *d.control_option;
                    o.receive_buffer_size = cfg.opts.rcv_buf;
                    o.send_buffer_size = cfg.opts.snd_buf;
                    o.max_syn_back_log = cfg.opts.backlog as u32;
                    o.connection_timeout = cfg.opts.conn_timeout_s;
                    o.data_retries = cfg.opts.data_retries;
                    o.fin_timeout = cfg.opts.fin_timeout_s;
                    o.time_wait_timeout = cfg.opts.tw_timeout_s;
                    o.enable_nagle = cfg.opts.nagle.into();
                }
            }
            if !ip4.is_null() {
                // Zeroed: the simulator models no IP4 child state beyond TCP's.
                core::ptr::write_bytes(ip4, 0, 1);
            }
        }
        Status::SUCCESS
    }
}

fn ip(a: efisock::firmware::Ipv4Address) -> Ipv4Addr {
    Ipv4Addr::from(a.0)
}

fn mask_ok(m: Ipv4Addr) -> bool {
    let v = u32::from(m);
    v.leading_ones() + v.trailing_zeros() == 32
}

/// SACK and path-MTU discovery are options EDK2's TCP4 does not implement.
///
/// # Safety
/// `o` is null or valid for reads.
unsafe fn options_supported(o: *const Tcp4Option) -> Result<(), Status> {
    if o.is_null() {
        return Ok(());
    }
    // SAFETY: non-null option pointer is valid for reads.
    let ov = unsafe { &*o };
    if bool::from(ov.enable_selective_ack) || bool::from(ov.enable_path_mtu_discovery) {
        return Err(Status::UNSUPPORTED);
    }
    Ok(())
}

/// What EDK2's `TcpConfigurePcb` stores into the caller's access point once
/// the IP child is configured, before the port is bound (TcpDispatcher.c
/// l.510-517): the station address and mask in force.
///
/// # Safety
/// `cfg` is valid for writes and no reference into it is alive.
unsafe fn write_back_address(cfg: *mut Tcp4ConfigData, station: Ipv4Addr, mask: Ipv4Addr) {
    // SAFETY: caller's contract.
    unsafe {
        (*cfg).access_point.station_address = efisock::firmware::Ipv4Address(station.octets());
        (*cfg).access_point.subnet_mask = efisock::firmware::Ipv4Address(mask.octets());
    }
}

impl Edk2Tcp4 {
    /// The interface's addresses: the default one (`lease`) and every
    /// explicit station a child's IP4 child holds, each with its on-link
    /// prefix (Ip4Impl.c `Ip4ConfigProtocol` gives an explicit station an
    /// interface of its own). smoltcp's interface holds two addresses
    /// (`IFACE_MAX_ADDR_COUNT`): the default one and one explicit station;
    /// further explicit stations configure but get no traffic.
    pub(crate) fn sync_addresses(&mut self, lease: Option<(Ipv4Addr, Ipv4Addr)>) {
        let mut want: Vec<(Ipv4Addr, Ipv4Addr)> = lease.into_iter().collect();
        for c in self.children.values() {
            if let IpChild::Explicit { station, mask } = c.ip
                && !station.is_unspecified()
                && !want.iter().any(|(a, _)| *a == station)
            {
                want.push((station, mask));
            }
        }
        self.iface.update_ip_addrs(|a| {
            a.clear();
            for (ad, m) in want {
                let prefix = u32::from(m).leading_ones() as u8;
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(ad), prefix));
            }
        });
    }

    /// Ip4Config2 replaced the default interface (`Ip4Config2OnPolicyChanged`):
    /// every IP child on it keeps the old one, which had an address if
    /// `mapped`.
    pub(crate) fn replace_default_interface(&mut self, mapped: bool) {
        for c in self.children.values_mut() {
            c.ip = detach(c.ip, mapped);
        }
    }

    /// Whether a datagram to `dst` is for this machine: the default address
    /// or a child's explicit station.
    pub(crate) fn is_local(&self, dst: Ipv4Addr, lease: Option<(Ipv4Addr, Ipv4Addr)>) -> bool {
        lease.is_some_and(|(a, _)| a == dst)
            || self.children.values().any(|c| {
                matches!(c.ip, IpChild::Explicit { station, .. } if station == dst && !station.is_unspecified())
            })
    }
}
