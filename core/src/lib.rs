//! # efisock: Berkeley sockets and `select` over `EFI_TCP4_PROTOCOL`
//!
//! A platform-agnostic socket layer (no_std + alloc) in the style of Python's
//! `socket` and `select` modules, driving the firmware's asynchronous TCP4
//! protocol through the small trait boundary in [`firmware`].
//!
//! Start with [`Net::new`], then [`Net::socket`]; see `docs/architecture.md`.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod addr;
pub mod error;
pub mod firmware;

mod completion;
#[cfg(feature = "deliberate-bugs")]
pub mod deliberate;
/// The completion queue, exported only for the loom model
/// (`core/tests/loom_queue.rs`, built with `RUSTFLAGS="--cfg loom"`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_model {
    pub use crate::completion::{Clock, ClockFn, CompletionQueue, Record, Reservation};
}
mod fw;
#[cfg(feature = "std")]
mod io;
mod ipconfig;
mod net;
mod poller;
pub mod raw;
mod select;
mod socket;
pub mod strategy;
mod time;
mod token;

pub use addr::{htonl, htons, inet_aton, inet_ntoa, ntohl, ntohs, parse_socket_addr};
pub use error::{Errno, Error, ErrorKind, Result};
pub use ipconfig::STATIC_WAIT;
pub use net::{Net, NetConfig, NetStats, Resources};
pub use poller::{Interest, PollEvent, Poller};
pub use select::Selected;
pub use socket::listen::REUSE_WAIT;
pub use socket::{Shutdown, Socket, SocketId};
pub use strategy::{
    DEFAULT_STRATEGY, PollStrategy, STRATEGY_NAMES, WaitIo, by_name as strategy_by_name, strategies,
};
