//! # efisock-sim: EDK2's TCP4 on the host
//!
//! A deterministic, seeded simulation of the firmware services efisock uses
//! (`efisock::firmware::Platform`): the DXE event system with TPLs and a
//! virtual clock, guarded pool memory, `EFI_IP4_CONFIG2_PROTOCOL` with a
//! DHCP server, and `EFI_TCP4_PROTOCOL` children that replay EDK2's statuses
//! and completion timing on top of smoltcp, talking over simulated links to
//! peer hosts that run sans-IO applications ([`ConnHandler`]).
//!
//! Why: the socket layer must be exercised against the firmware's quirks, its
//! timing, and its ownership contract, reproducibly (one seed = one run), and
//! misuse must be reported like a firmware ASSERT ([`Breach`]) instead of as
//! memory corruption on a real machine.
#![warn(missing_docs)]

mod boot;
mod breach;
mod config;
mod decide;
mod device;
mod host;
mod ip4config;
mod pool;
pub mod rng;
mod sim;
mod tcp4;
mod tcp4_api;
mod tokens;
mod world;

pub use breach::{Breach, BreachKind};
pub use config::{
    BreachPolicy, CostModel, DhcpConfig, LinkConfig, NotifyMode, Profile, Quirks, SimConfig,
};
pub use decide::{Decider, MAX_DEFERRALS};
pub use host::{ConnHandler, ConnIo, PeerConnState};
pub use sim::{Sim, SimBoot, SimHost, SimIp4Config2, SimPlatform, SimTcp4Service};
pub use tcp4::NIC_QUEUE_FRAMES;
pub use tcp4_api::SimTcp4;
pub use tokens::CANARY;
pub use world::SimStats;
