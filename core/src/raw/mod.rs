//! Raw `EFI_TCP4_PROTOCOL` access below the socket layer.
//!
//! The socket layer hides tokens, events and pool memory. Code that must talk
//! to the firmware directly (quirk probes, smoke tests, a baseline benchmark
//! loop, simulator tests) needs the same pieces every time; this module holds
//! them once, generic over the [`firmware`](crate::firmware) traits:
//!
//! - [`PoolBuf`]: a zeroed `AllocatePool` block, freed on drop or leaked;
//! - [`RawEvent`]: a plain event (no notify function) tested with `CheckEvent`;
//! - [`RawToken`]: one Connect, Transmit, Receive or Close token with its
//!   one-fragment data ([`TransmitData1`], [`ReceiveData1`]) and buffer, in
//!   pool memory;
//! - [`poll_until`] and [`WaitLimit`]: "Poll until signalled", bounded by a
//!   Poll count and by firmware time;
//! - [`RawChild`]: a TCP4 child from the service binding, destroyed on drop;
//! - [`active_config`], [`passive_config`]: `Tcp4ConfigData` builders;
//! - [`RawError`], [`check`]: a firmware call and the status it failed with.
//!
//! # Ownership contract
//!
//! From a `SUCCESS` return of the call that took a token until the firmware
//! signals the token's event, the firmware owns the token, its data, its
//! buffer and its event (see [`firmware`](crate::firmware)). The types here
//! keep that memory alive: a [`RawToken`] frees its block and closes its event
//! only once it has *seen* the event signalled (through [`RawToken::done`]);
//! dropped earlier, it leaks both, because the firmware may still write them.
//! Leaking is the only safe outcome when a token never completes.
//!
//! # Example
//!
//! Connect and send a greeting, every wait bounded:
//!
//! ```no_run
//! use core::net::SocketAddrV4;
//! use efisock::firmware::{Platform, Status};
//! use efisock::raw::{RawChild, RawError, RawToken, TokenKind, WaitLimit, check, poll_until};
//!
//! fn greet<P: Platform + Clone>(platform: P, peer: SocketAddrV4) -> Result<Status, RawError> {
//!     let child = RawChild::create(platform.clone())?;
//!     check("Configure", child.configure_active(peer))?;
//!     let boot = platform.boot();
//!     let mut connect = RawToken::new(boot, TokenKind::Connect)?;
//!     check("Connect", connect.submit(child.tcp()))?;
//!     if !child.poll_until(|_| connect.done()) {
//!         return Ok(Status::TIMEOUT);
//!     }
//!     let mut hello = RawToken::new(boot, TokenKind::Transmit(b"hello".to_vec()))?;
//!     check("Transmit", hello.submit(child.tcp()))?;
//!     let waited = poll_until(boot, child.tcp(), WaitLimit::DEFAULT, || hello.done());
//!     Ok(if waited.done { hello.status() } else { Status::TIMEOUT })
//! }
//! ```

mod child;
mod config;
mod error;
mod event;
mod layout;
mod pool;
mod token;
mod wait;

pub use child::RawChild;
pub use config::{active_config, passive_config};
pub use error::{RawError, check};
pub use event::RawEvent;
pub use layout::{CompletionHeader, ReceiveData1, TransmitData1};
pub use pool::{POOL_ALIGN, PoolBuf};
pub use token::{RawToken, TokenKind};
pub use wait::{WaitLimit, Waited, poll_until};
