//! Firmware profiles and their quirk switches.

use core::fmt;
use core::str::FromStr;

/// Which firmware generation to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// EDK2 edk2-stable202211 (TcpDxe, Cancel implemented).
    Edk2Stable202211,
    /// Pre-2016 EDK2 / the old Tcp4Dxe as BITS met it.
    Legacy,
}

impl Profile {
    /// Stable name, as accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Edk2Stable202211 => "edk2-stable202211",
            Profile::Legacy => "legacy",
        }
    }

    /// The quirk set of this profile.
    pub fn quirks(self) -> Quirks {
        let modern = Quirks {
            cancel_unsupported: false,
            receive_fin_as_return_value: true,
            close_with_unread_data_sends_rst: true,
            connect_closed_port_reports_reset: true,
            time_wait_holds_port: true,
            backlog_full_drops_syn: true,
            use_default_address_already_started: false,
            listen_any_unsupported: false,
            completions_inside_call: true,
            data_after_close_sends_rst: true,
            stored_error_leaks_into_next_connection: true,
        };
        match self {
            Profile::Edk2Stable202211 => modern,
            Profile::Legacy => Quirks {
                cancel_unsupported: true,
                use_default_address_already_started: true,
                listen_any_unsupported: true,
                ..modern
            },
        }
    }
}

/// A profile name that is not one of [`Profile::name`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown profile {:?} (expected \"edk2-stable202211\" or \"legacy\")",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, UnknownProfile> {
        match s {
            "edk2-stable202211" => Ok(Profile::Edk2Stable202211),
            "legacy" => Ok(Profile::Legacy),
            other => Err(UnknownProfile(other.to_string())),
        }
    }
}

/// One switch per EDK2 behaviour that differs from a textbook TCP or between
/// firmware generations. References are to tianocore/edk2 `NetworkPkg/TcpDxe`.
///
/// Each switch names the conformance probe (group `probe`) that measures it
/// on the simulator and in OVMF; flipping any switch on the default profile
/// fails at least one probe (`conformance/tests/quirk_flip.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// `Cancel` always returns UNSUPPORTED (Tcp4Dxe before 2016; `Tcp4Cancel`
    /// was a stub in MdeModulePkg/Universal/Network/Tcp4Dxe/Tcp4Main.c).
    /// Probe: `probe/cancel_receive`.
    pub cancel_unsupported: bool,
    /// `Receive` returns CONNECTION_FIN as the function result when the FIN is
    /// in and nothing is buffered (SockInterface.c `SockRcv`); off: the token
    /// is queued and completes with CONNECTION_FIN.
    /// Probe: `probe/receive_fin_return_value`.
    pub receive_fin_as_return_value: bool,
    /// `Close` with unread received data completes in the call and sends RST
    /// (SockInterface.c `SockClose` → TcpDispatcher.c `TcpDisconnect`, which
    /// resets when `GET_RCV_DATASIZE` != 0); off: graceful FIN.
    /// Probe: `probe/close_with_unread_data_resets` (measured on OVMF).
    pub close_with_unread_data_sends_rst: bool,
    /// RST+ACK in SYN_SENT completes Connect with CONNECTION_RESET
    /// (TcpInput.c sets `SockError = EFI_CONNECTION_RESET`); off: REFUSED.
    /// Probe: `probe/closed_port_status`.
    pub connect_closed_port_reports_reset: bool,
    /// A station port stays in use while an instance is in TIME_WAIT
    /// (TcpDispatcher.c `TcpBind` → `TcpFindTcbByPeer` scans `mTcpRunQue`),
    /// as in every other state, until the instance is reset
    /// (Configure(NULL) or DestroyChild, `TcpFlushPcb`); off: a TIME_WAIT
    /// instance holds no port. Probe: `probe/time_wait_holds_port`.
    pub time_wait_holds_port: bool,
    /// SYNs beyond MaxSynBackLog are dropped silently (TcpInput.c
    /// `TcpCloneTcb` fails when `ConnCnt + BacklogCnt >= BackLog`); off:
    /// answered with RST. Probe: `probe/backlog_full_drops_syn`.
    pub backlog_full_drops_syn: bool,
    /// Configure with UseDefaultAddress=TRUE returns ALREADY_STARTED on any
    /// child, before its IP child is touched: the firmware BITS met, which
    /// it worked around by passing the DHCP address explicitly. Not found in
    /// EDK2's code: `EfiIp4Configure` has the same rules in 2015
    /// (MdeModulePkg Ip4Dxe at d551cc64cd) as in edk2-stable202211
    /// [unverified: vendor firmware]. Off (edk2-stable202211), ALREADY_STARTED
    /// comes only from a configured IP child in the other addressing mode
    /// (Ip4Impl.c `EfiIp4Configure` l.921-932; `tcp4::addressing`), measured
    /// on OVMF by probe/addressing_already_started and
    /// probe/addressing_no_mapping_sticks.
    pub use_default_address_already_started: bool,
    /// A passive instance on station address 0.0.0.0 is rejected with
    /// INVALID_PARAMETER (old firmware; BITS special-cases 0.0.0.0).
    /// Probe: `probe/listen_on_any_address` (measured on OVMF: accepted).
    pub listen_any_unsupported: bool,
    /// Completions caused by a call run their notify functions as that call
    /// returns (EfiReleaseLock → RestoreTPL in SockInterface.c); off: they
    /// are deferred to the next MNP tick / Poll. Probes:
    /// `probe/receive_buffered_inside_call`, `probe/transmit_inside_call`,
    /// `probe/configure_null_aborts`, `probe/close_with_unread_data_resets`.
    pub completions_inside_call: bool,
    /// Data arriving after the local Close (FIN_WAIT_*, CLOSING, TIME_WAIT,
    /// LAST_ACK) resets the connection (TcpInput.c, seventh step:
    /// `TCP_LOCAL_CLOSED (Tcb->State) && Nbuf->TotalSize != 0` →
    /// `RESET_THEN_DROP`), whether or not a Receive is pending: the pending
    /// Receive completes ABORTED, the Close SUCCESS, and no TIME_WAIT
    /// follows. Off: the data is silently discarded. Probes (measured on
    /// OVMF): `probe/data_after_close_resets_armed`,
    /// `probe/data_after_close_resets_unarmed`.
    pub data_after_close_sends_rst: bool,
    /// The socket error stored by a reset/timeout survives a new Connect on
    /// the same child and is delivered to its first Receive (SockInterface.c
    /// `SockRcv` checks `Sock->SockError` first; only Receive and
    /// Configure(NULL) clear it). Off: Connect clears it. Probe:
    /// `probe/stored_error_survives_reconnect` (measured on OVMF).
    pub stored_error_leaks_into_next_connection: bool,
}

const QUIRK_NAMES: &[&str] = &[
    "cancel_unsupported",
    "receive_fin_as_return_value",
    "close_with_unread_data_sends_rst",
    "connect_closed_port_reports_reset",
    "time_wait_holds_port",
    "backlog_full_drops_syn",
    "use_default_address_already_started",
    "listen_any_unsupported",
    "completions_inside_call",
    "data_after_close_sends_rst",
    "stored_error_leaks_into_next_connection",
];

/// A quirk name that is not one of [`Quirks::names`]; its message lists
/// the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownQuirk(pub String);

impl fmt::Display for UnknownQuirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown quirk {:?}; known: {}",
            self.0,
            QUIRK_NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownQuirk {}

impl Quirks {
    /// Names of every quirk switch.
    pub fn names() -> &'static [&'static str] {
        QUIRK_NAMES
    }

    fn slot(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "cancel_unsupported" => &mut self.cancel_unsupported,
            "receive_fin_as_return_value" => &mut self.receive_fin_as_return_value,
            "close_with_unread_data_sends_rst" => &mut self.close_with_unread_data_sends_rst,
            "connect_closed_port_reports_reset" => &mut self.connect_closed_port_reports_reset,
            "time_wait_holds_port" => &mut self.time_wait_holds_port,
            "backlog_full_drops_syn" => &mut self.backlog_full_drops_syn,
            "use_default_address_already_started" => &mut self.use_default_address_already_started,
            "listen_any_unsupported" => &mut self.listen_any_unsupported,
            "completions_inside_call" => &mut self.completions_inside_call,
            "data_after_close_sends_rst" => &mut self.data_after_close_sends_rst,
            "stored_error_leaks_into_next_connection" => {
                &mut self.stored_error_leaks_into_next_connection
            }
            _ => return None,
        })
    }

    /// Turn one quirk on or off by name.
    pub fn set(&mut self, name: &str, on: bool) -> Result<(), UnknownQuirk> {
        match self.slot(name) {
            Some(b) => {
                *b = on;
                Ok(())
            }
            None => Err(UnknownQuirk(name.to_string())),
        }
    }

    /// Read one quirk by name.
    pub fn get(&self, name: &str) -> Option<bool> {
        let mut copy = *self;
        copy.slot(name).map(|b| *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_reported_with_the_known_ones() {
        assert_eq!(
            "ovmf".parse::<Profile>(),
            Err(UnknownProfile("ovmf".into()))
        );
        let mut q = Profile::Legacy.quirks();
        let e = q.set("bogus", true).unwrap_err();
        assert_eq!(e, UnknownQuirk("bogus".into()));
        assert!(e.to_string().contains("known: cancel_unsupported, "));
        assert_eq!(q, Profile::Legacy.quirks(), "a failed set changes nothing");
    }
}
