//! Hosting the peer services on the real host, for runs inside OVMF.
//!
//! On the simulator the peers live on simulated hosts; when the suite runs
//! inside QEMU, the guest reaches the services at the slirp alias 10.0.2.2,
//! which QEMU turns into connections to the host's 127.0.0.1. Something on
//! the host therefore has to listen on every port of
//! [`peers::listening_services`](crate::peers::listening_services) and drive
//! the same sans-IO peers over real sockets: that is [`tokio_host`] (feature
//! `tokio-host`, so simulator builds do not compile tokio).
//!
//! [`config`] and [`report`] are plain data, always compiled, so a runner can
//! describe a host without the feature. Everything binds loopback only:
//! [`HostConfig::validate`] rejects any other address.

pub mod config;
pub mod report;
#[cfg(feature = "tokio-host")]
pub mod tokio_conn;
#[cfg(feature = "tokio-host")]
pub mod tokio_host;
#[cfg(all(test, feature = "tokio-host"))]
mod tokio_tests;

pub use config::{ConnectBackMap, HostConfig, Listen};
pub use report::{HostReport, ServiceStats};
