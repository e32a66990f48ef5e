//! # efisock: Berkeley sockets and `select` over `EFI_TCP4_PROTOCOL`
//!
//! A platform-agnostic socket layer (no_std + alloc) in the style of Python's
//! `socket` and `select` modules, driving the firmware's asynchronous TCP4
//! protocol through the small trait boundary in [`firmware`].
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]

extern crate alloc;

pub mod addr;
pub mod error;
pub mod firmware;

pub use addr::{htonl, htons, inet_aton, inet_ntoa, ntohl, ntohs, parse_socket_addr};
pub use error::{Errno, Error, ErrorKind, Result};
