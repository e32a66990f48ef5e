//! What a peer host did, returned when it stops.

use std::collections::BTreeMap;

use crate::peers::Service;

/// Per-service counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Connections accepted.
    pub accepted: u32,
    /// Connections that ended closed in both directions.
    pub closed: u32,
    /// Connections that ended by reset (sent or received).
    pub reset: u32,
    /// Connections still open when the host stopped.
    pub cut_at_stop: u32,
    /// Whether the listener closed because it reached its connection limit.
    pub limit_reached: bool,
}

/// Everything a host run produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReport {
    /// Counters per service (every listening service has an entry).
    pub services: BTreeMap<Service, ServiceStats>,
    /// Connect-back connections that were established.
    pub connect_backs_connected: u32,
    /// Connect-back connections that sent every byte and FIN.
    pub connect_backs_completed: u32,
    /// Whether the host stopped because its lifetime ran out (rather than
    /// an explicit stop).
    pub lifetime_expired: bool,
    /// Unexpected events: accept failures, connect-back failures and
    /// unmapped ports, I/O errors other than resets.
    pub errors: Vec<String>,
}

impl HostReport {
    /// Connections accepted by `service`.
    pub fn accepted(&self, service: Service) -> u32 {
        self.services.get(&service).map_or(0, |s| s.accepted)
    }
}
