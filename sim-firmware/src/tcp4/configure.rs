//! Configure and GetModeData: a child's access point and options.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use efisock::firmware::{Status, Tcp4ConfigData, Tcp4ConnectionState, Tcp4Option};

use crate::world::Env;

use super::child::{Child, ChildCfg, ListenerState, read_opts};
use super::{Edk2Tcp4, edk2_state};

impl Edk2Tcp4 {
    /// Configure: null resets the child; otherwise check the access point,
    /// bind the port and, for a passive child, start listening.
    ///
    /// # Safety
    /// `cfg` is null or valid for reads including its control option.
    pub unsafe fn configure(
        &mut self,
        cx: &mut Env,
        id: usize,
        cfg: *const Tcp4ConfigData,
    ) -> Status {
        if cfg.is_null() {
            return self.reset_child(cx, id);
        }
        // SAFETY: non-null config is valid for reads (trait contract).
        let d = unsafe { &*cfg };
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
        let (station, mask) = match station_address(cx, use_default, active, station, mask) {
            Ok(a) => a,
            Err(st) => return st,
        };
        // Injected: while the DHCP client runs, the IP4 child below may be
        // unmapped (lease being renewed); TcpDispatcher.c `TcpConfigurePcb`
        // passes on IP4's EFI_NO_MAPPING (Ip4Dxe/Ip4Impl.c `EfiIp4Configure`)
        // and the instance stays unconfigured, to be configured again later.
        if cx.ip4.dhcp_policy {
            if let Some(st) = cx.inject("Configure", &[Status::NO_MAPPING]) {
                return st;
            }
        }
        let port = match self.bind_port(cx, ap.station_port) {
            Ok(p) => p,
            Err(st) => return st,
        };
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
        *c = Child {
            busy: c.busy,
            ..Child::new(c.origin)
        };
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
            self.state_of(id)
                .map_or(Tcp4ConnectionState::CLOSED, edk2_state)
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

/// The station address and mask in force: the DHCP/static address for
/// UseDefaultAddress, else the given one, which must be the interface's
/// (or 0.0.0.0, where the profile allows listening on it).
fn station_address(
    cx: &Env,
    use_default: bool,
    active: bool,
    station: Ipv4Addr,
    mask: Ipv4Addr,
) -> Result<(Ipv4Addr, Ipv4Addr), Status> {
    let q = cx.cfg.quirks;
    if use_default {
        if q.use_default_address_already_started {
            return Err(Status::ALREADY_STARTED);
        }
        return cx.ip4.address.ok_or(Status::NO_MAPPING);
    }
    if station.is_unspecified() && !active && q.listen_any_unsupported {
        return Err(Status::INVALID_PARAMETER);
    }
    match cx.ip4.address {
        None => Err(Status::NO_MAPPING),
        Some((a, _)) if !station.is_unspecified() && a != station => Err(Status::INVALID_PARAMETER),
        Some(_) => Ok((station, mask)),
    }
}
