//! The real firmware as a conformance target (feature `suite-app`).
//!
//! Why here and not in `efisock-conformance`: the target needs both the
//! suite's `SocketTarget` trait and this crate's `EfiPlatform`; putting it on
//! this side keeps the suite crate free of firmware plumbing and lets the
//! suite build for the host without any UEFI code.
//!
//! Unlike the simulator, the firmware is one long-lived world: the address
//! obtained by DHCP, TIME_WAIT entries and anything a case leaks persist
//! into later cases. Every case still gets a fresh `Net` (and must leave
//! every resource released: [`Target::finish`] checks), and a case that
//! removed the address (`unconfigure`) leaves the next target to run DHCP
//! again.

use std::fmt;
use std::string::String;
use std::time::Duration;

use core::net::{Ipv4Addr, SocketAddrV4};

use efisock::firmware::{
    BootServices as _, Ip4Config2 as _, Ip4Config2DataType, Ip4Config2Policy, Platform,
};
use efisock::{Net, NetConfig};
use efisock_conformance::error::TargetError;
use efisock_conformance::expectations::EDK2_STABLE202211;
use efisock_conformance::runner::Target;
use efisock_conformance::target::{Expectations, SocketTarget};

use efisock_efi::backend::EfiPlatform;

/// slirp's host alias: every peer service lives there.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// How long a DHCP round may take (observed: 3.1-3.5 s).
pub const DHCP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long teardown may wait for the firmware to return every token.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `unconfigure` waits for the address to disappear.
const UNCONFIGURE_WAIT: Duration = Duration::from_secs(5);

/// Why the OVMF setup or a case's target could not be made.
#[derive(Debug)]
pub enum SetupError {
    /// DHCP at start failed.
    Dhcp(efisock::Error),
    /// Shutting down the socket layer that ran DHCP failed.
    ShutdownAfterDhcp(efisock::Error),
    /// DHCP before a case (the address had changed) failed.
    DhcpBeforeCase {
        /// The address and mask before (None: none).
        was: Option<(Ipv4Addr, Ipv4Addr)>,
        /// Why DHCP failed.
        source: efisock::Error,
    },
    /// DHCP before a case gave another address than the run started with.
    AddressChanged {
        /// The new address.
        got: Ipv4Addr,
        /// The address at start.
        started: Ipv4Addr,
    },
    /// Reading the station address failed.
    Address(efisock::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dhcp(e) => write!(f, "DHCP: {e}"),
            Self::ShutdownAfterDhcp(e) => write!(f, "shutdown after DHCP: {e}"),
            Self::DhcpBeforeCase { was, source } => {
                write!(f, "DHCP before the case (address was {was:?}): {source}")
            }
            Self::AddressChanged { got, started } => {
                write!(f, "DHCP gave {got}, the run started with {started}")
            }
            Self::Address(e) => write!(f, "reading the address: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// How OVMF targets are built for each case.
#[derive(Debug, Clone)]
pub struct OvmfSetup {
    /// The firmware.
    pub platform: EfiPlatform,
    /// The station address DHCP gave at start (10.0.2.15 under slirp).
    pub local_ip: Ipv4Addr,
    /// Bound on every blocking connect without a socket timeout (the
    /// per-case limit; the firmware's own connect timer is 75 s).
    pub connect_timeout: Duration,
    /// Poll strategy name (`None`: the core's default).
    pub strategy: Option<String>,
}

impl OvmfSetup {
    /// Runs DHCP once (bounded) and returns the setup for later targets.
    pub fn start(
        platform: EfiPlatform,
        connect_timeout: Duration,
        strategy: Option<String>,
    ) -> Result<Self, SetupError> {
        let local_ip = dhcp(&platform)?;
        Ok(OvmfSetup {
            platform,
            local_ip,
            connect_timeout,
            strategy,
        })
    }

    /// A target for one case (the seed only labels the run: real firmware
    /// is not seedable). Re-runs DHCP if an earlier case removed the
    /// address.
    pub fn build(&self, _seed: u64) -> Result<OvmfTarget, SetupError> {
        let net = self.net();
        match net.address() {
            Ok(Some((ip, _))) if ip == self.local_ip => {}
            Ok(other) => {
                let got = net
                    .dhcp(DHCP_TIMEOUT)
                    .map_err(|source| SetupError::DhcpBeforeCase { was: other, source })?;
                if got != self.local_ip {
                    return Err(SetupError::AddressChanged {
                        got,
                        started: self.local_ip,
                    });
                }
            }
            Err(e) => return Err(SetupError::Address(e)),
        }
        // No wait of the case may outlive the per-case limit: the guest has
        // no threads, so this is what turns a hang into a reported failure.
        net.set_wait_deadline(Some(self.connect_timeout));
        Ok(OvmfTarget {
            setup: self.clone(),
            started_ns: self.platform.boot().monotonic_ns(),
            net,
        })
    }

    fn net(&self) -> Net<EfiPlatform> {
        let config = NetConfig {
            connect_timeout: Some(self.connect_timeout),
            ..NetConfig::default()
        };
        let net = Net::with_config(self.platform, config);
        if let Some(s) = self.strategy.as_deref().and_then(efisock::strategy_by_name) {
            net.set_strategy(s);
        }
        net
    }
}

/// DHCP through a throw-away `Net` (the address stays in the firmware).
fn dhcp(platform: &EfiPlatform) -> Result<Ipv4Addr, SetupError> {
    let net = Net::new(*platform);
    let ip = net.dhcp(DHCP_TIMEOUT).map_err(SetupError::Dhcp)?;
    net.shutdown(SHUTDOWN_TIMEOUT)
        .map_err(SetupError::ShutdownAfterDhcp)?;
    Ok(ip)
}

/// One case's view of the firmware.
pub struct OvmfTarget {
    setup: OvmfSetup,
    started_ns: u64,
    net: Net<EfiPlatform>,
}

impl OvmfTarget {
    /// Shuts the socket layer down and checks that nothing is left.
    fn release(&self) -> Result<(), TargetError> {
        // Teardown gets its own bound, not what is left of the case's.
        self.net.set_wait_deadline(None);
        self.net
            .shutdown(SHUTDOWN_TIMEOUT)
            .map_err(TargetError::Shutdown)?;
        let r = self.net.resources();
        if r.is_zero() {
            Ok(())
        } else {
            Err(TargetError::ResourcesHeld(r))
        }
    }
}

impl Target for OvmfTarget {
    fn virtual_ns(&self) -> u64 {
        self.setup
            .platform
            .boot()
            .monotonic_ns()
            .saturating_sub(self.started_ns)
    }

    fn finish(&mut self) -> Result<(), TargetError> {
        self.release()
    }
}

impl SocketTarget for OvmfTarget {
    type P = EfiPlatform;

    fn net(&self) -> &Net<EfiPlatform> {
        &self.net
    }

    fn platform(&self) -> EfiPlatform {
        self.setup.platform
    }

    fn peer(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(PEER_IP, port)
    }

    fn local_ip(&self) -> Ipv4Addr {
        self.setup.local_ip
    }

    fn expect(&self) -> Expectations {
        EDK2_STABLE202211
    }

    fn has_silent_addresses(&self) -> bool {
        false
    }

    fn slow_down_links(&self, _bandwidth_bps: u64, _latency_ns: u64) -> bool {
        false
    }

    /// Sets the Ip4Config2 policy to STATIC without a manual address, which
    /// in EDK2 (`Ip4Config2SetPolicy`) stops DHCP and clears the station
    /// address; then waits (bounded) until the address reads 0.0.0.0.
    fn unconfigure(&mut self) -> Result<(), TargetError> {
        self.release()?;
        let policy = Ip4Config2Policy::STATIC.0.to_ne_bytes();
        let ip = self.setup.platform.ip4_config2();
        // SAFETY: `policy` is a live local of exactly the size passed.
        let st = unsafe {
            ip.set_data(
                Ip4Config2DataType::POLICY,
                policy.len(),
                policy.as_ptr().cast(),
            )
        };
        if st != efisock::firmware::Status::SUCCESS && st != efisock::firmware::Status::NOT_READY {
            return Err(TargetError::Firmware {
                call: "SetData(Policy, STATIC)",
                status: st,
            });
        }
        let net = self.setup.net();
        let boot = self.setup.platform.boot();
        let deadline = boot
            .monotonic_ns()
            .saturating_add(UNCONFIGURE_WAIT.as_nanos() as u64);
        loop {
            match net.address() {
                Ok(None) => break,
                Ok(Some((address, mask))) if boot.monotonic_ns() >= deadline => {
                    return Err(TargetError::AddressKept {
                        address,
                        mask,
                        waited: UNCONFIGURE_WAIT,
                    });
                }
                Ok(Some(_)) => net.sleep(Duration::from_millis(10)),
                Err(e) => return Err(TargetError::Address(e)),
            }
        }
        self.net = net;
        self.started_ns = boot.monotonic_ns();
        Ok(())
    }
}

impl core::fmt::Debug for OvmfTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OvmfTarget")
            .field("local_ip", &self.setup.local_ip)
            .field("started_ns", &self.started_ns)
            .finish_non_exhaustive()
    }
}
