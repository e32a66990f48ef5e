//! The peer services on real loopback sockets, driven by tokio.
//!
//! [`start`] binds one listener per service (synchronously, so a busy port
//! is an error right away), then runs a current-thread tokio runtime on its
//! own thread: a task per listener, a task per connection (see
//! [`tokio_conn`](super::tokio_conn)), and connect-back connections opened on
//! request. Everything stops at [`HostConfig::lifetime`] or at
//! [`RunningHost::stop`]; each listener closes after
//! [`HostConfig::max_connections_per_service`] accepts.
//!
//! Tasks run on a `LocalSet`, so peers need not be `Send` (the connect-back
//! hand-off is moving to `Box<dyn Peer>`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{SocketAddrV4, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::LocalSet;

use super::config::{HostConfig, Listen};
use super::report::{HostReport, ServiceStats};
use super::tokio_conn::{Ending, TcpPeerIo, drive};
use crate::error::HostError;
use crate::peers::witness::{Ledger, WitnessQuery, Witnessed};
use crate::peers::{self, Peer, PeerConnState, PeerIo, Service, ServicePeer, ports};

/// How long [`RunningHost::stop`] lets connection tasks record their end.
const DRAIN: Duration = Duration::from_secs(2);

/// What one listener serves: a service on its own port, the same service
/// on its witnessed port, or the witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Served {
    Plain(Service),
    Witnessed(Service),
    Witness,
}

impl Served {
    fn all() -> Vec<Served> {
        let mut all: Vec<Served> = peers::listening_services()
            .iter()
            .map(|&(_, s)| Served::Plain(s))
            .collect();
        all.extend(
            peers::witnessed_services()
                .into_iter()
                .map(|(_, s)| Served::Witnessed(s)),
        );
        all.push(Served::Witness);
        all
    }

    fn port(self) -> u16 {
        match self {
            Served::Plain(s) => s.port(),
            Served::Witnessed(s) => ports::witnessed(s.port()),
            Served::Witness => ports::WITNESS,
        }
    }

    fn name(self) -> String {
        match self {
            Served::Plain(s) => s.name().to_string(),
            Served::Witnessed(s) => format!("witnessed {}", s.name()),
            Served::Witness => "witness".to_string(),
        }
    }

    /// The service whose counters this listener's connections count in.
    fn service(self) -> Option<Service> {
        match self {
            Served::Plain(s) | Served::Witnessed(s) => Some(s),
            Served::Witness => None,
        }
    }

    fn peer(self, ledger: &Ledger) -> ConnPeer {
        match self {
            Served::Plain(s) => ConnPeer::Plain(peers::make_service(s)),
            Served::Witnessed(s) => {
                ConnPeer::Witnessed(Witnessed::service(ledger.clone(), peers::make_service(s)))
            }
            Served::Witness => ConnPeer::Witness(WitnessQuery::new(ledger.clone())),
        }
    }
}

/// The peer of one accepted connection, whichever listener it came from.
enum ConnPeer {
    Plain(ServicePeer),
    Witnessed(Witnessed),
    Witness(WitnessQuery),
}

impl ConnPeer {
    /// The one place that knows the connect-back hand-off API of `peers`:
    /// `(requested port, the peer that drives the new connection)`.
    fn take_connect_back(&mut self) -> Option<(u16, Box<dyn Peer>)> {
        match self {
            ConnPeer::Plain(p) => p
                .take_connect_back()
                .map(|request| (request.to.port(), request.client())),
            ConnPeer::Witnessed(p) => p.take_connect_back().map(|(to, c)| (to.port(), c)),
            ConnPeer::Witness(_) => None,
        }
    }
}

impl Peer for ConnPeer {
    fn poll(&mut self, io: &mut dyn PeerIo) {
        match self {
            ConnPeer::Plain(p) => p.poll(io),
            ConnPeer::Witnessed(p) => p.poll(io),
            ConnPeer::Witness(p) => p.poll(io),
        }
    }
}

/// A host that is serving; stop it with [`RunningHost::stop`] (dropping it
/// stops it too, discarding the report).
#[derive(Debug)]
pub struct RunningHost {
    addrs: BTreeMap<Service, SocketAddrV4>,
    witnessed: BTreeMap<Service, SocketAddrV4>,
    witness: Option<SocketAddrV4>,
    stop: Arc<watch::Sender<bool>>,
    thread: Option<JoinHandle<HostReport>>,
}

impl RunningHost {
    /// Where `service` listens.
    pub fn addr(&self, service: Service) -> Option<SocketAddrV4> {
        self.addrs.get(&service).copied()
    }

    /// Where `service` listens on its witnessed port.
    pub fn witnessed_addr(&self, service: Service) -> Option<SocketAddrV4> {
        self.witnessed.get(&service).copied()
    }

    /// Where the witness listens.
    pub fn witness_addr(&self) -> Option<SocketAddrV4> {
        self.witness
    }

    /// Every listening address of the plain services.
    pub fn addrs(&self) -> &BTreeMap<Service, SocketAddrV4> {
        &self.addrs
    }

    /// Stops every listener and connection and returns what happened.
    pub fn stop(mut self) -> HostReport {
        self.finish()
    }

    fn finish(&mut self) -> HostReport {
        self.stop.send_replace(true);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(report)) => report,
            Some(Err(_)) => HostReport {
                errors: vec!["the host thread panicked".into()],
                ..HostReport::default()
            },
            None => HostReport::default(),
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}

/// Shared by the tasks of one host (single thread).
struct Shared {
    cfg: HostConfig,
    epoch: Instant,
    report: RefCell<HostReport>,
    active: std::cell::Cell<usize>,
    ledger: Ledger,
}

impl Shared {
    fn stats(&self, service: Service, f: impl FnOnce(&mut ServiceStats)) {
        f(self
            .report
            .borrow_mut()
            .services
            .entry(service)
            .or_default());
    }

    fn error(&self, e: String) {
        self.report.borrow_mut().errors.push(e);
    }
}

/// Binds every service on `config.bind` and starts serving.
pub fn start(config: HostConfig) -> Result<RunningHost, HostError> {
    config.validate()?;
    let mut listeners = Vec::new();
    let mut addrs = BTreeMap::new();
    let mut witnessed = BTreeMap::new();
    let mut witness = None;
    for served in Served::all() {
        let port = served.port();
        let port = match config.listen {
            // `validate` checked that the sum fits.
            Listen::Offset(off) => port.saturating_add(off),
            Listen::Ephemeral => 0,
        };
        let l = StdListener::bind((config.bind, port)).map_err(|source| HostError::Io {
            what: format!("bind {}:{port} for {}", config.bind, served.name()),
            source,
        })?;
        l.set_nonblocking(true).map_err(|source| HostError::Io {
            what: format!("nonblocking {}", served.name()),
            source,
        })?;
        let addr = match l.local_addr() {
            Ok(std::net::SocketAddr::V4(a)) => a,
            other => {
                return Err(HostError::UnexpectedAddress {
                    service: served.service().map_or("witness", Service::name),
                    got: format!("{other:?}"),
                });
            }
        };
        match served {
            Served::Plain(s) => {
                addrs.insert(s, addr);
            }
            Served::Witnessed(s) => {
                witnessed.insert(s, addr);
            }
            Served::Witness => witness = Some(addr),
        }
        listeners.push((served, l));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| HostError::Io {
            what: "tokio runtime".into(),
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stop_main = Arc::clone(&stop_tx);
    let thread = std::thread::Builder::new()
        .name("efisock-peer-host".into())
        .spawn(move || serve(rt, config, listeners, stop_main, stop_rx))
        .map_err(|source| HostError::Io {
            what: "spawn host thread".into(),
            source,
        })?;
    Ok(RunningHost {
        addrs,
        witnessed,
        witness,
        stop: stop_tx,
        thread: Some(thread),
    })
}

fn serve(
    rt: tokio::runtime::Runtime,
    cfg: HostConfig,
    listeners: Vec<(Served, StdListener)>,
    stop_tx: Arc<watch::Sender<bool>>,
    mut stop_rx: watch::Receiver<bool>,
) -> HostReport {
    let lifetime = cfg.lifetime;
    let shared = Rc::new(Shared {
        cfg,
        epoch: Instant::now(),
        report: RefCell::new(HostReport::default()),
        active: std::cell::Cell::new(0),
        ledger: Ledger::new(),
    });
    let local = LocalSet::new();
    let sh = Rc::clone(&shared);
    local.block_on(&rt, async move {
        for (service, l) in listeners {
            if let Some(s) = service.service() {
                sh.stats(s, |_| {});
            }
            match TcpListener::from_std(l) {
                Ok(l) => {
                    tokio::task::spawn_local(listen(l, service, Rc::clone(&sh), stop_rx.clone()));
                }
                Err(e) => sh.error(format!("{}: register listener: {e}", service.name())),
            }
        }
        let expired = tokio::select! {
            () = tokio::time::sleep(lifetime) => true,
            _ = stop_rx.wait_for(|s| *s) => false,
        };
        sh.report.borrow_mut().lifetime_expired = expired;
        stop_tx.send_replace(true);
        // Let every task see the stop and record how it ended (bounded).
        let until = tokio::time::Instant::now() + DRAIN;
        while sh.active.get() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if sh.active.get() > 0 {
            sh.error(format!(
                "{} task(s) did not stop within {DRAIN:?}",
                sh.active.get()
            ));
        }
    });
    drop(local);
    shared.report.borrow().clone()
}

/// Tracks a running task in `Shared::active` for the drain at stop.
struct ActiveGuard(Rc<Shared>);

impl ActiveGuard {
    fn new(sh: &Rc<Shared>) -> Self {
        sh.active.set(sh.active.get() + 1);
        Self(Rc::clone(sh))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get() - 1);
    }
}

async fn listen(l: TcpListener, served: Served, sh: Rc<Shared>, mut stop: watch::Receiver<bool>) {
    let count = |sh: &Shared, f: &dyn Fn(&mut ServiceStats)| {
        if let Some(s) = served.service() {
            sh.stats(s, f);
        }
    };
    let _guard = ActiveGuard::new(&sh);
    let mut accepted = 0u32;
    while accepted < sh.cfg.max_connections_per_service {
        let r = tokio::select! {
            r = l.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match r {
            Ok((stream, _)) => {
                accepted += 1;
                count(&sh, &|s| s.accepted += 1);
                tokio::task::spawn_local(serve_conn(stream, served, Rc::clone(&sh), stop.clone()));
            }
            Err(e) => {
                sh.error(format!("{}: accept: {e}", served.name()));
                // Out of descriptors and similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    count(&sh, &|s| s.limit_reached = true);
    // Dropping the listener makes further connections refused.
}

async fn serve_conn(
    stream: TcpStream,
    served: Served,
    sh: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _guard = ActiveGuard::new(&sh);
    let mut io = TcpPeerIo::new(stream, sh.epoch);
    let mut peer = served.peer(&sh.ledger);
    let stop_for_clients = stop.clone();
    let ending = drive(&mut peer, &mut io, &mut stop, |p| {
        if let Some((port, client)) = p.take_connect_back() {
            let stop = stop_for_clients.clone();
            tokio::task::spawn_local(connect_back(port, client, Rc::clone(&sh), stop));
        }
    })
    .await;
    if let Some(e) = io.error() {
        sh.error(format!("{}: {e}", served.name()));
    }
    if let Some(service) = served.service() {
        sh.stats(service, |s| match ending {
            Ending::Closed => s.closed += 1,
            Ending::Reset => s.reset += 1,
            Ending::CutAtStop => s.cut_at_stop += 1,
        });
    }
}

async fn connect_back(
    requested: u16,
    mut client: Box<dyn Peer>,
    sh: Rc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _guard = ActiveGuard::new(&sh);
    let ip = sh.cfg.connect_back_ip;
    let Some(port) = sh.cfg.connect_back_map.host_port(requested) else {
        sh.error(format!(
            "connect-back: no host port mapped for guest port {requested}"
        ));
        let mut io = TcpPeerIo::failed(
            SocketAddrV4::new(ip, requested),
            PeerConnState::Reset,
            sh.epoch,
        );
        client.poll(&mut io);
        return;
    };
    let target = SocketAddrV4::new(ip, port);
    let connected = tokio::select! {
        r = tokio::time::timeout(sh.cfg.connect_timeout, TcpStream::connect(target)) => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    let stream = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            sh.error(format!(
                "connect-back to {target} (guest port {requested}): {e}"
            ));
            let mut io = TcpPeerIo::failed(target, PeerConnState::Reset, sh.epoch);
            client.poll(&mut io);
            return;
        }
        Err(_) => {
            sh.error(format!(
                "connect-back to {target} (guest port {requested}): no connection within {:?}",
                sh.cfg.connect_timeout
            ));
            let mut io = TcpPeerIo::failed(target, PeerConnState::TimedOut, sh.epoch);
            client.poll(&mut io);
            return;
        }
    };
    sh.report.borrow_mut().connect_backs_connected += 1;
    let mut io = TcpPeerIo::new(stream, sh.epoch);
    let ending = drive(client.as_mut(), &mut io, &mut stop, |_| {}).await;
    if let Some(e) = io.error() {
        sh.error(format!("connect-back: {e}"));
    }
    if ending == Ending::Closed {
        sh.report.borrow_mut().connect_backs_completed += 1;
    }
}
