//! # efisock: Berkeley sockets and `select` over `EFI_TCP4_PROTOCOL`
//!
//! A platform-agnostic socket layer (no_std + alloc) in the style of Python's
//! `socket` and `select` modules, driving the firmware's asynchronous TCP4
//! protocol through the small trait boundary in [`firmware`].
//!
//! Start with [`Net::new`], then [`Net::socket`]. The [`manual`] explains
//! the [architecture](manual::architecture) and the [socket
//! semantics](manual::semantics) (what EFI can and cannot express).
//!
//! ```
//! use efisock::{Net, Shutdown};
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::Duration;
//!
//! fn fetch<P: efisock::firmware::Platform + 'static>(platform: P) -> efisock::Result<Vec<u8>> {
//!     let net = Net::new(platform);
//!     net.dhcp(Duration::from_secs(30))?;
//!     let s = net.socket()?;
//!     s.settimeout(Some(Duration::from_secs(10)))?;
//!     s.connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7))?;
//!     s.sendall(b"hello")?;
//!     let reply = s.recv(5)?; // b"" would mean EOF
//!     s.shutdown(Shutdown::Both)?;
//!     Ok(reply)
//! }
//! # let sim = efisock_sim::Sim::new(efisock_sim::SimConfig::new(1));
//! # struct Echo;
//! # impl efisock_sim::ConnHandler for Echo {
//! #     fn poll(&mut self, io: &mut dyn efisock_sim::ConnIo) {
//! #         let mut buf = [0; 64];
//! #         let n = io.recv(&mut buf);
//! #         io.send(&buf[..n]);
//! #     }
//! # }
//! # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
//! assert_eq!(fetch(sim.platform()).unwrap(), b"hello");
//! ```
//!
//! `Platform` is the firmware: `efisock_sim::Sim::platform()` on a host,
//! `efisock_efi::backend::EfiPlatform` inside UEFI.
//!
//! Layers, each importing only the ones below it (checked by `cargo xtask
//! layers`):
//!
//! | layer | modules | job |
//! |---|---|---|
//! | 0 | `firmware`, `raw` | the ABI boundary; the raw token toolkit over it |
//! | 1 | `error`, `addr`, `time`, `config`, `strategy`, `deliberate` | vocabulary shared by every layer |
//! | 2 | `calls` | traced firmware calls out, the completion queue in |
//! | 3 | `slots` | token slots in pool memory |
//! | 4 | `socket` | the per-socket state machine, the socket table, the graveyard |
//! | 5 | `net` | `Net`: the shared state and the one wait loop |
//! | 6 | `api`, `manual` | `Socket`, select, `Poller`, IP configuration, `std::io`; the manual |
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod addr;
pub mod error;
pub mod firmware;
pub mod raw;

mod api;
mod calls;
mod config;
#[cfg(feature = "deliberate-bugs")]
pub mod deliberate;
/// The completion queue, exported only for the loom model
/// (`core/tests/loom_queue.rs`, built with `RUSTFLAGS="--cfg loom"`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model {
    pub use crate::calls::completion::{Clock, ClockFn, CompletionQueue, Record, Reservation};
}
pub mod manual;
/// The README's examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
mod net;
mod slots;
mod socket;
pub mod strategy;
mod time;

pub use addr::{htonl, htons, inet_aton, inet_ntoa, ntohl, ntohs, parse_socket_addr};
pub use api::ipconfig::STATIC_WAIT;
pub use api::listen::REUSE_WAIT;
pub use api::poller::{Interest, PollEvent, Poller};
pub use api::select::Selected;
pub use api::socket::Socket;
pub use config::NetConfig;
pub use error::{Errno, Error, ErrorKind, Result};
pub use net::{Net, NetStats, Resources};
pub use socket::{Shutdown, SocketId};
pub use strategy::{
    DEFAULT_STRATEGY, PollStrategy, STRATEGY_NAMES, WaitIo, by_name as strategy_by_name, strategies,
};
