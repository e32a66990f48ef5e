//! # efisock: Berkeley sockets and `select` over `EFI_TCP4_PROTOCOL`
//!
//! A platform-agnostic socket layer (no_std + alloc) in the style of Python's
//! `socket` and `select` modules, driving the firmware's asynchronous TCP4
//! protocol through the small trait boundary in [`firmware`].
//!
//! Start with [`Net::new`], then [`Net::socket`]; see `docs/architecture.md`.
//!
//! Layers, each importing only the ones below it (checked by `cargo xtask
//! layers`):
//!
//! | layer | modules | job |
//! |---|---|---|
//! | 0 | `firmware` | the ABI boundary |
//! | 1 | `error`, `addr`, `time`, `config`, `strategy`, `deliberate` | vocabulary shared by every layer |
//! | 2 | `calls` | traced firmware calls out, the completion queue in |
//! | 3 | `slots` | token slots in pool memory |
//! | 4 | `socket` | the per-socket state machine, the socket table, the graveyard |
//! | 5 | `net` | `Net`: the shared state and the one wait loop |
//! | 6 | `api` | `Socket`, select, `Poller`, IP configuration, `std::io` |
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod addr;
pub mod error;
pub mod firmware;

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
