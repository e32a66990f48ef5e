//! The conformance cases, written once and generic over the target.
//!
//! Each group is a module with a `cases()` list; [`all`] concatenates them
//! in a fixed order (the order of the report).

pub mod buffers;
pub mod config;
pub mod eof_reset;
pub mod lifecycle;
pub mod nonblocking;
pub mod probes;
pub mod probes_addressing;
pub mod probes_timer;
pub mod readiness;
pub mod server;
pub mod teardown;
pub mod transfer;
pub mod util;
pub mod witness;

use crate::runner::Case;
use crate::target::SocketTarget;

/// Every case, in report order.
pub fn all<T: SocketTarget>() -> Vec<Case<T>> {
    let mut cases = Vec::new();
    cases.extend(lifecycle::cases());
    cases.extend(transfer::cases());
    cases.extend(eof_reset::cases());
    cases.extend(nonblocking::cases());
    cases.extend(readiness::cases());
    cases.extend(teardown::cases());
    cases.extend(server::cases());
    cases.extend(buffers::cases());
    cases.extend(config::cases());
    cases.extend(probes::cases());
    cases.extend(probes_addressing::cases());
    cases.extend(probes_timer::cases());
    cases
}
