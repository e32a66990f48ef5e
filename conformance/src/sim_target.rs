//! The simulator as a conformance target.
//!
//! Every case gets a fresh world built from its seed: the system under test
//! (10.0.2.15, configured statically so that cases start at once; the
//! IP-configuration cases rebuild it unconfigured) and the peer host
//! 10.0.2.2 running every peer service on its fixed port and its witnessed
//! port, and the witness (`peers::witness`), which sees the system under
//! test's segments themselves.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use efisock::Net;
use efisock_sim::{
    ConnHandler, ConnIo, PeerConnState as SimState, Profile, Quirks, Sim, SimConfig, SimHost,
    SimPlatform,
};

use crate::error::{SetupError, TargetError};
use crate::peers::witness::{Ledger, WitnessQuery, Witnessed};
use crate::peers::{self, Peer, PeerConnState, PeerIo, WireView};
use crate::runner::Target;
use crate::target::{Expectations, SocketTarget};

/// The system under test's address on the simulated network (slirp's).
pub const SUT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The peer host's address (slirp's host alias).
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// The virtual-time bound of every simulated case (120 s of firmware time),
/// so that a lost completion or an endless wait fails the case with its
/// seed and replay command instead of hanging the run.
///
/// Measured before the bound existed (`--json --seeds 5` under each of the
/// six `--strategy` values, both profiles, 5340 case runs, all passed):
/// the longest case took 40.0 s of virtual time
/// (server/sequential_1000_connections under timer-only, 39.991 s on every
/// seed); under every other strategy the longest is 11.7 s
/// (backpressure/hold_not_writable; next nonblocking/send_eagain_when_full,
/// 10.5 s). 120 s is three times the longest: no passing case comes near
/// it, and a hung case still fails within a second or two of wall time.
pub const CASE_BOUND: Duration = Duration::from_secs(120);

/// How to build simulator targets: profile and quirk overrides.
#[derive(Debug, Clone)]
pub struct SimSetup {
    /// The firmware profile.
    pub profile: Profile,
    /// Quirk switches applied on top of the profile's.
    pub quirk_overrides: Vec<(String, bool)>,
    /// Poll strategy name (`None`: the core's default).
    pub strategy: Option<String>,
    /// Virtual-time bound of each case ([`CASE_BOUND`] by default; `None`:
    /// unbounded). See [`SimTarget::set_bound`].
    pub case_bound: Option<Duration>,
}

impl Default for SimSetup {
    fn default() -> Self {
        SimSetup {
            profile: Profile::Edk2Stable202211,
            quirk_overrides: Vec::new(),
            strategy: None,
            case_bound: Some(CASE_BOUND),
        }
    }
}

impl SimSetup {
    /// The simulator configuration for `seed`, or [`SetupError::Quirk`]
    /// naming a bad quirk.
    pub fn config(&self, seed: u64) -> Result<SimConfig, SetupError> {
        let mut config = SimConfig::new(seed).with_profile(self.profile);
        for (name, on) in &self.quirk_overrides {
            config
                .quirks
                .set(name, *on)
                .map_err(|e| SetupError::Quirk(e.into()))?;
        }
        Ok(config)
    }

    /// A target for one case run, bounded by [`SimSetup::case_bound`].
    pub fn build(&self, seed: u64) -> Result<SimTarget, SetupError> {
        let mut target = SimTarget::new(self.config(seed)?)?;
        target.set_bound(self.case_bound);
        if let Some(name) = &self.strategy {
            let strategy = efisock::strategy_by_name(name)
                .ok_or_else(|| SetupError::UnknownStrategy(name.clone()))?;
            target.net.set_strategy(strategy);
        }
        Ok(target)
    }
}

/// One simulated world plus the socket layer on it.
pub struct SimTarget {
    config: SimConfig,
    sim: Sim,
    net: Net<SimPlatform>,
    bound: Option<Duration>,
}

impl SimTarget {
    /// A world from `config` with the peer services running and the SUT
    /// configured statically; unbounded (see [`SimTarget::set_bound`]).
    pub fn new(config: SimConfig) -> Result<Self, SetupError> {
        let (sim, net) = world(&config);
        net.set_static(SUT_IP, MASK, Some(PEER_IP))
            .map_err(SetupError::Address)?;
        Ok(SimTarget {
            config,
            sim,
            net,
            bound: None,
        })
    }

    /// Bounds the case in virtual time: the first firmware call at or
    /// past `bound` after the world's origin (the time the `virt` column
    /// shows) unwinds the case (`Sim::set_deadline_ns`), and the runner
    /// fails it with [`bound_exceeded`](Target::bound_exceeded)'s message,
    /// its seed and replay command. `None` lifts the bound. Setting it
    /// reads no clock and checking it costs no virtual time, so a case
    /// that ends within the bound runs exactly as an unbounded one (unlike
    /// `Net::set_wait_deadline`, whose deadline check reads the firmware
    /// clock in waits that have none of their own). A world rebuilt by
    /// [`unconfigure`](SocketTarget::unconfigure) gets the same bound on
    /// its own clock.
    pub fn set_bound(&mut self, bound: Option<Duration>) {
        self.bound = bound;
        self.sim
            .set_deadline_ns(bound.map(|b| u64::try_from(b.as_nanos()).unwrap_or(u64::MAX)));
    }

    /// The virtual-time bound in effect (see [`SimTarget::set_bound`]).
    pub fn bound(&self) -> Option<Duration> {
        self.bound
    }

    /// The simulator behind this target.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    /// The contract breaches and leaks the simulator saw, after shutting
    /// the socket layer down. Empty means the case left nothing behind.
    pub fn leftovers(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.net.shutdown(std::time::Duration::from_secs(30)) {
            problems.push(format!("socket layer shutdown: {e}"));
        }
        problems.extend(self.sim.finish().iter().map(ToString::to_string));
        problems
    }
}

fn world(config: &SimConfig) -> (Sim, Net<SimPlatform>) {
    let sim = Sim::new(config.clone());
    host_services(&sim.peer_host());
    let net = Net::new(sim.platform());
    (sim, net)
}

/// Runs every peer service on `host`, each on its fixed port and on its
/// witnessed port, and the witness that reports on the witnessed ones.
pub fn host_services(host: &SimHost) {
    for &(port, service) in peers::listening_services() {
        host.listen(
            port,
            Box::new(move || Box::new(ServiceHandler(peers::make_service(service)))),
        );
    }
    let ledger = Ledger::new();
    for (port, service) in peers::witnessed_services() {
        let ledger = ledger.clone();
        host.listen(
            port,
            Box::new(move || {
                Box::new(WitnessedHandler(Witnessed::service(
                    ledger.clone(),
                    peers::make_service(service),
                )))
            }),
        );
    }
    host.listen(
        peers::ports::WITNESS,
        Box::new(move || Box::new(ClientHandler(Box::new(WitnessQuery::new(ledger.clone()))))),
    );
}

struct WitnessedHandler(Witnessed);

impl ConnHandler for WitnessedHandler {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        self.0.poll(&mut Bridge(io));
        if let Some((to, client)) = self.0.take_connect_back() {
            io.connect(to, Box::new(ClientHandler(client)));
        }
    }
}

struct ServiceHandler(peers::ServicePeer);

impl ConnHandler for ServiceHandler {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        self.0.poll(&mut Bridge(io));
        if let Some(request) = self.0.take_connect_back() {
            io.connect(request.to, Box::new(ClientHandler(request.client())));
        }
    }
}

struct ClientHandler(Box<dyn Peer>);

impl ConnHandler for ClientHandler {
    fn poll(&mut self, io: &mut dyn ConnIo) {
        self.0.poll(&mut Bridge(io));
    }
}

/// The simulator's connection I/O seen through the peers' trait.
struct Bridge<'a>(&'a mut dyn ConnIo);

impl PeerIo for Bridge<'_> {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
    fn state(&self) -> PeerConnState {
        match self.0.state() {
            SimState::Connecting => PeerConnState::Connecting,
            SimState::Established => PeerConnState::Established,
            SimState::PeerFin => PeerConnState::PeerFin,
            SimState::Closed => PeerConnState::Closed,
            SimState::Reset => PeerConnState::Reset,
            SimState::TimedOut => PeerConnState::TimedOut,
        }
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.0.recv(buf)
    }
    fn send(&mut self, data: &[u8]) -> usize {
        self.0.send(data)
    }
    fn send_queue(&self) -> usize {
        self.0.send_queue()
    }
    fn close(&mut self) {
        self.0.close()
    }
    fn abort(&mut self) {
        self.0.abort()
    }
    fn local_addr(&self) -> SocketAddrV4 {
        self.0.local_addr()
    }
    fn peer_addr(&self) -> SocketAddrV4 {
        self.0.peer_addr()
    }
    fn wake_at(&mut self, t_ns: u64) {
        self.0.wake_at(t_ns)
    }
    fn wire(&self) -> Option<WireView> {
        let w = self.0.wire();
        Some(WireView {
            fin_at_ns: w.fin_at_ns,
            rst_at_ns: w.rst_at_ns,
            max_window: w.max_window,
            window_scale: w.window_scale,
        })
    }
}

/// The failure message of a case that ran into its virtual-time bound.
pub fn bound_message(bound: Duration) -> String {
    format!(
        "case exceeded its virtual-time bound of {} s (lost completion or endless wait?)",
        bound.as_secs_f64()
    )
}

impl Target for SimTarget {
    fn virtual_ns(&self) -> u64 {
        self.sim.now_ns()
    }

    fn bound_exceeded(&self) -> Option<String> {
        let bound = self.bound?;
        self.sim.deadline_passed_ns().map(|_| bound_message(bound))
    }

    fn finish(&mut self) -> Result<(), TargetError> {
        let problems = self.leftovers();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TargetError::Leftovers(problems))
        }
    }
}

impl SocketTarget for SimTarget {
    type P = SimPlatform;

    fn net(&self) -> &Net<SimPlatform> {
        &self.net
    }

    fn platform(&self) -> SimPlatform {
        self.sim.platform()
    }

    fn peer(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(PEER_IP, port)
    }

    fn local_ip(&self) -> Ipv4Addr {
        SUT_IP
    }

    /// The profile's behaviour, not the quirk overrides': an override makes
    /// the simulator depart from the firmware it replays, which is what the
    /// probes are there to notice (`tests/quirk_flip.rs`).
    fn expect(&self) -> Expectations {
        expectations(&self.config.profile.quirks())
    }

    fn has_silent_addresses(&self) -> bool {
        true
    }

    fn slow_down_links(&self, bandwidth_bps: u64, latency_ns: u64) -> bool {
        self.sim.set_link(efisock_sim::LinkConfig {
            bandwidth_bps,
            latency_ns,
            ..efisock_sim::LinkConfig::default()
        });
        true
    }

    fn unconfigure(&mut self) -> Result<(), TargetError> {
        let problems = self.leftovers();
        if !problems.is_empty() {
            return Err(TargetError::Leftovers(problems));
        }
        let (sim, net) = world(&self.config);
        self.sim = sim;
        self.net = net;
        self.set_bound(self.bound);
        Ok(())
    }
}

/// What a firmware with `quirks` is expected to do.
pub fn expectations(quirks: &Quirks) -> Expectations {
    Expectations {
        cancel_unsupported: quirks.cancel_unsupported,
        receive_fin_as_return_value: quirks.receive_fin_as_return_value,
        connect_closed_port_reports_reset: quirks.connect_closed_port_reports_reset,
        close_with_unread_data_sends_rst: quirks.close_with_unread_data_sends_rst,
        time_wait_holds_port: quirks.time_wait_holds_port,
        listen_any_unsupported: quirks.listen_any_unsupported,
        use_default_address_already_started: quirks.use_default_address_already_started,
    }
}
