//! Initial sequence numbers as a firmware generation picks them.
//!
//! smoltcp chooses its own ISN; the wire boundary replaces it per connection
//! with the value the firmware's generator gives (see `super`), so every
//! profile can put its own generator on the link.

use crate::config::Profile;
use crate::rng::Rng;

use super::Flow;

/// `TCP_BASE_ISS` (TcpMain.h l.52): the driver draws its starting ISS below it.
const EDK2_BASE_ISS: u64 = 0x4d7e_980b;
/// `TCP_ISS_INCREMENT_1` (TcpMain.h l.53): added by every `TcpGetIss`.
const EDK2_ISS_PER_CONNECTION: u32 = 2048;
/// `TCP_ISS_INCREMENT_2` (TcpMain.h l.54): added by every TCP tick.
const EDK2_ISS_PER_TICK: u32 = 100;

/// How a firmware generation picks initial sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsnScheme {
    /// EDK2 before the CVE-2023-45236 fix (edk2-stable202211 TcpDxe and
    /// the old Tcp4Dxe): one global counter with a random start below
    /// `TCP_BASE_ISS`, plus 2048 per connection and 100 per 200 ms tick.
    Edk2GlobalCounter,
}

impl Profile {
    /// The ISN generator of this firmware generation.
    pub fn isn_scheme(self) -> IsnScheme {
        match self {
            // TcpDriver.c l.205-207, TcpMisc.c `TcpGetIss` l.515-521,
            // TcpTimer.c `TcpTickingDpc` l.485-486 (edk2-stable202211);
            // the same counter in Tcp4Dxe (Tcp4Driver.c l.214, Tcp4Misc.c
            // l.457, edk2-stable201808).
            Profile::Edk2Stable202211 | Profile::Legacy => IsnScheme::Edk2GlobalCounter,
        }
    }
}

impl IsnScheme {
    /// A fresh generator of this scheme, its secrets drawn from `rng`.
    pub(crate) fn generator(self, rng: &mut Rng) -> Box<dyn IsnGenerator> {
        match self {
            IsnScheme::Edk2GlobalCounter => Box::new(Edk2GlobalIss::new(rng.next_u64())),
        }
    }
}

/// Gives the ISN of each new connection.
pub(crate) trait IsnGenerator {
    /// The ISN of a connection on `flow` opened when the TCP tick counter
    /// reads `ticks` (one tick per 200 ms since the driver started).
    fn next_isn(&mut self, flow: &Flow, ticks: u64) -> u32;
}

/// EDK2's `mTcpGlobalIss`: the start drawn at driver entry, 2048 more per
/// `TcpGetIss` (which adds before it returns), 100 more per tick.
#[derive(Debug, Clone)]
pub(crate) struct Edk2GlobalIss {
    start: u32,
    connections: u32,
}

impl Edk2GlobalIss {
    /// The counter as `TcpDriverEntryPoint` leaves it: `random` modulo
    /// `TCP_BASE_ISS` (TcpDriver.c l.206-207).
    pub(crate) fn new(random: u64) -> Edk2GlobalIss {
        Edk2GlobalIss {
            start: (random % EDK2_BASE_ISS) as u32,
            connections: 0,
        }
    }
}

impl IsnGenerator for Edk2GlobalIss {
    fn next_isn(&mut self, _flow: &Flow, ticks: u64) -> u32 {
        self.connections = self.connections.wrapping_add(1);
        self.start
            .wrapping_add(self.connections.wrapping_mul(EDK2_ISS_PER_CONNECTION))
            .wrapping_add((ticks as u32).wrapping_mul(EDK2_ISS_PER_TICK))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: Flow = ([10, 0, 2, 15], 1030, [10, 0, 2, 2], 7);

    #[test]
    fn edk2_counter_adds_2048_per_connection_and_100_per_tick() {
        // (ticks at the connection, ISN relative to the start)
        let table: &[(u64, u32)] = &[
            (0, 2048),           // TcpGetIss adds before returning
            (0, 2 * 2048),       // same tick: one connection more
            (1, 3 * 2048 + 100), // one tick later
            (5, 4 * 2048 + 500), // four more ticks
            (5, 5 * 2048 + 500), // same tick again
            (105, 6 * 2048 + 10_500),
        ];
        let mut g = Edk2GlobalIss::new(12_345);
        for &(ticks, rel) in table {
            assert_eq!(
                g.next_isn(&FLOW, ticks),
                12_345u32.wrapping_add(rel),
                "tick {ticks}"
            );
        }
    }

    #[test]
    fn edk2_counter_starts_below_the_base_iss_and_wraps() {
        let g = Edk2GlobalIss::new(u64::MAX);
        assert_eq!(u64::from(g.start), u64::MAX % EDK2_BASE_ISS);
        assert!(u64::from(g.start) < EDK2_BASE_ISS);
        let mut g = Edk2GlobalIss {
            start: u32::MAX - 1000,
            connections: 0,
        };
        assert_eq!(g.next_isn(&FLOW, 0), 1047);
    }

    #[test]
    fn both_profiles_use_the_global_counter() {
        for p in [Profile::Edk2Stable202211, Profile::Legacy] {
            assert_eq!(p.isn_scheme(), IsnScheme::Edk2GlobalCounter);
        }
    }
}
