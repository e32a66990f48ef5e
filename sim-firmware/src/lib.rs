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
//!
//! # Using it
//! ```no_run
//! use efisock_sim::{Sim, SimConfig};
//! let sim = Sim::new(SimConfig::new(0x5EED));
//! let platform = sim.platform(); // implements efisock::firmware::Platform
//! // ... drive the core or the raw traits, peers via sim.peer_host() ...
//! for b in sim.finish() { eprintln!("{b}"); }
//! ```
//!
//! # Timing model
//! Virtual nanoseconds. Every firmware call costs `CostModel::per_call_ns`
//! (Poll adds `poll_ns`, each SUT frame `per_frame_ns`, copies
//! `per_byte_copy_ps`). Frames reaching the SUT wait in a 64-frame NIC queue
//! and are processed one per 10 ms MNP tick or one per `Tcp4.Poll`; after
//! each, the "DPCs" complete Receive (min(available, DataLength)), Accept,
//! Connect and Close tokens. Egress (SYN, data, RST) leaves inside the call.
//! Peer hosts process frames on arrival.
//!
//! # Known deviations from EDK2 (documented, not hidden)
//! - The per-instance lock is held while the notify functions of completions
//!   produced by a call run (as that call returns), so re-entering the same
//!   instance from such a notify gets ACCESS_DENIED. (EDK2 releases the lock
//!   just before RestoreTPL; the brief asks for ACCESS_DENIED here.)
//! - Retransmission, SYN retries, delayed ACKs and congestion control are
//!   smoltcp's (Reno; initial RTO 1 s, not EDK2's 3 s; ACK delay 10 ms),
//!   and TIME_WAIT/FIN_WAIT_2/connect timers fire at exact deadlines rather
//!   than on 200 ms ticks.
//! - Keep-alive is not modelled. DataRetries is modelled as a watchdog: no
//!   ACK progress for EDK2's whole back-off schedule (513 s for 12 retries)
//!   closes the connection with TIMEOUT (smoltcp's own retransmissions
//!   happen at its own RTOs meanwhile).
//! - Hosts send no ICMP; urgent data, timestamps and window-scaling options
//!   are smoltcp's defaults; `Routes` validates and changes nothing (every
//!   address is routed directly); `GetModeData` zero-fills `Ip4ModeData`.
//! - Transmit completes when its bytes enter the send buffer (bounded by
//!   SendBufferSize), which is when EDK2 would segment them.
//! - WaitForEvent that can never return records `WouldHangForever` and
//!   returns [`HANG_STATUS`] (`DEVICE_ERROR`).
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

pub use boot::HANG_STATUS;
pub use breach::{Breach, BreachKind};
pub use config::{
    BreachPolicy, CostModel, DhcpConfig, Faults, LinkConfig, NotifyMode, Profile, Quirks, SimConfig,
};
pub use decide::{
    Decider, DecisionKind, MAX_DEFERRALS, MAX_RUN, PCT_INITIAL_HORIZON, Scheduler, Tape,
};
pub use host::{ConnHandler, ConnIo, PeerConnState};
pub use sim::{Sim, SimBoot, SimHost, SimIp4Config2, SimPlatform, SimTcp4Service};
pub use tcp4::NIC_QUEUE_FRAMES;
pub use tcp4_api::SimTcp4;
pub use tokens::CANARY;
pub use world::{Injection, SimStats};
