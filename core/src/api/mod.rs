//! The public API on top of `Net`: the `Socket` handle and its calls,
//! `select`, the `Poller`, IP configuration and `std::io`.
//!
//! Why a layer of its own: every call here may block, and blocking means
//! `Net`'s wait loop; the socket state machine below never waits.

pub(crate) mod close;
pub(crate) mod connect;
#[cfg(feature = "std")]
mod io;
pub(crate) mod ipconfig;
pub(crate) mod listen;
pub(crate) mod poller;
pub(crate) mod select;
pub(crate) mod socket;
pub(crate) mod stream;
