//! The manual: how efisock is built and what its sockets do where EFI
//! forces a choice. The same text as the repository's `docs/` pages.

#[doc = include_str!("../../docs/architecture.md")]
pub mod architecture {}

#[doc = include_str!("../../docs/core-semantics.md")]
pub mod semantics {}
