//! Per-target expectations: the ONE place where the simulator and OVMF are
//! allowed to differ, each difference justified.
//!
//! The same case list runs on both targets. A case is expected to pass on
//! both unless [`TABLE`] says otherwise; the QEMU runner and the fidelity
//! report (`docs/fidelity.md`) read this table, so an undocumented
//! divergence is a failure, and a documented one is visible in the report.
//!
//! [`EDK2_STABLE202211`] is what the OVMF build in use (Debian
//! 2022.11-6+deb12u2, edk2-stable202211) is expected to do in the quirk
//! probes. The source of truth is the simulator's default profile
//! (`efisock_sim::Profile::Edk2Stable202211.quirks()` via
//! `sim_target::expectations`); it is copied here because the UEFI build
//! does not link the simulator, and a host test asserts the two are equal.

use crate::target::Expectations;

/// The quirk-probe expectations for edk2-stable202211 (copy of the
/// simulator's default profile; see the module docs).
pub const EDK2_STABLE202211: Expectations = Expectations {
    cancel_unsupported: false,
    receive_fin_as_return_value: true,
    connect_closed_port_reports_reset: true,
    close_with_unread_data_sends_rst: true,
    time_wait_holds_port: true,
    listen_any_unsupported: false,
    use_default_address_already_started: false,
};

/// The targets a case can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetId {
    /// The deterministic simulator.
    Sim,
    /// OVMF under QEMU.
    Ovmf,
}

/// What a case is expected to do on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The case passes.
    Pass,
    /// The case cannot pass on this target, for the reason given.
    Fail,
    /// The outcome depends on the environment's timing (the reason says
    /// which race), so either verdict is accepted; both are reported.
    Either,
}

impl Outcome {
    /// Whether a case that `passed` (or not) meets this expectation.
    pub fn accepts(self, passed: bool) -> bool {
        match self {
            Outcome::Pass => passed,
            Outcome::Fail => !passed,
            Outcome::Either => true,
        }
    }
}

/// One justified per-target expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseExpectation {
    /// `group/name`.
    pub id: &'static str,
    /// Expected outcome on the simulator.
    pub sim: Outcome,
    /// Expected outcome inside OVMF.
    pub ovmf: Outcome,
    /// Why the targets differ.
    pub why: &'static str,
}

/// Every case whose expected outcome is not "pass on both".
pub const TABLE: &[CaseExpectation] = &[
    CaseExpectation {
        id: "connect/connect_timeout",
        sim: Outcome::Pass,
        ovmf: Outcome::Fail,
        why: "needs an address nobody answers; the network rules let the guest talk only to \
              10.0.2.2 and itself, and slirp answers for 10.0.2.2 (sim-only)",
    },
    CaseExpectation {
        id: "reset/reset_on_recv",
        sim: Outcome::Pass,
        ovmf: Outcome::Either,
        why: "QEMU's user-mode network (slirp) sometimes relays the host peer's RST to the \
              guest as FIN, depending on when its read of the host socket sees the reset: \
              one capture (EFISOCK_QEMU_PCAP) shows the last data segment from \
              10.0.2.2:7011 with FIN set and no RST ever reaching the guest (the guest then \
              rightly reports EOF), another run got the RST and passed; the host peer's RST \
              itself is checked on loopback (host::tokio_tests source-rst) and the firmware \
              path in the simulator",
    },
    CaseExpectation {
        id: "close/linger_zero_aborts_at_once",
        sim: Outcome::Pass,
        ovmf: Outcome::Fail,
        why: "slirp terminates the guest's TCP: the guest's RST makes slirp drop its own \
              connection and close(2) its host socket, which sends the host peer a FIN (nothing \
              was unread there), so the witness behind slirp sees a FIN (measured: the \
              accept-hold peer saw Fin, observer Socket); the simulator's hosts see the guest's \
              segments and check the RST itself",
    },
    CaseExpectation {
        id: "close/unread_data",
        sim: Outcome::Pass,
        ovmf: Outcome::Fail,
        why: "EDK2's RST on a close with unread data (close_with_unread_data_sends_rst) reaches \
              slirp, not the host: slirp then closes its host socket, whose FIN is all the host \
              peer sees (measured: the source-fin peer saw Fin after all 5000 bytes were \
              acknowledged, observer Socket); the simulator's hosts see the RST on the wire",
    },
    CaseExpectation {
        id: "buffers/accepted_window_holds_1mib_unread",
        sim: Outcome::Pass,
        ovmf: Outcome::Fail,
        why: "the window a guest connection advertises is seen only by slirp, which terminates \
              the guest's TCP; the host peer sees slirp's window, so the witness reports none \
              (the case's other check, 1 MiB acknowledged before the application reads, passed \
              on OVMF, but there it also counts slirp's and the host kernel's buffers)",
    },
];

/// Why a case's call-level recordings differ between the simulator and
/// OVMF (`--compare`'s call-level column): the mechanism, from the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLevelReason {
    /// `group/name`.
    pub id: &'static str,
    /// The mechanism behind the first divergence.
    pub why: &'static str,
    /// The divergence the diff shows next, measured once by replaying
    /// OVMF's recording (`--replay-log`) with the first one neutralised;
    /// where it depends on the peer's timing (FIN/ACK arrival, several
    /// peers at once) another run may show the next timing-dependent step.
    pub next: &'static str,
}

/// EDK2 writes into the caller's `Tcp4ConfigData`; the simulator does not.
const CONFIGURE_WRITES_BACK: &str = "EDK2's Tcp4.Configure writes the default station address \
     (TcpConfigurePcb copies IP4's StationAddress and SubnetMask into the caller's access point) \
     and the port it bound (TcpBind: `*Port = *RandomPort` for port 0) back into the caller's \
     Tcp4ConfigData (edk2-stable202211 NetworkPkg/TcpDxe/TcpDispatcher.c); measured: OVMF's \
     recording shows station=<lease>:<port> after the call. The simulator leaves the caller's \
     config untouched (station=0.0.0.0:0).";

/// EDK2's INTERFACE_INFO carries the route table after the structure.
const IFINFO_ROUTE_TABLE: &str = "EDK2's Ip4Config2.GetData(InterfaceInfo) needs room for the \
     default route table after the structure (Ip4Config2GetIfInfo, \
     NetworkPkg/Ip4Dxe/Ip4Config2Impl.c) and answers a structure-sized buffer with \
     BUFFER_TOO_SMALL once routes exist (measured: OVMF's first GetData); the simulator's \
     InterfaceInfo has no route table and answers SUCCESS.";

/// The case is sim-only.
const NOT_RUN_IN_OVMF: &str = "the case needs an address nobody answers, which slirp cannot \
     provide (see TABLE): in OVMF it stops before its first firmware call.";

/// The ipconfig cases call the target's own `unconfigure`.
const UNCONFIGURE_HARNESS: &str = "the case calls the target's `unconfigure`, which is harness \
     code and differs by construction: the simulator builds a fresh unconfigured world, OVMF \
     releases the lease and sets the STATIC policy through raw Ip4Config2 calls (untraced), so \
     the traced address calls around it differ.";

const NEXT_NONE: &str = "nothing: with the first divergence neutralised the recordings are \
     identical.";

/// EDK2's SockConnFlush order.
const NEXT_FLUSH_ORDER: &str = "the tokens a reset or close flushes complete in another order: \
     EDK2's SockConnFlush (NetworkPkg/TcpDxe/SockImpl.c) signals the Connect token, then the \
     Close token, then the Accept, Receive and Transmit tokens; the simulator signals the \
     pending Receive (or Accept) token before the Close token.";

/// The first divergence.
const NEXT_TRANSMIT: &str = "a Transmit token the simulator signals inside the call stays \
     pending in OVMF (EDK2 signals it once its bytes are segmented, which the peer's and the \
     congestion window limit: SockDataSent via TcpOutput.c); the simulator signals it when the \
     bytes are copied into smoltcp's send buffer.";

const NEXT_CLOSE_BEFORE_DATA: &str = "OVMF completes the Close token before the simulator's last \
     Receive completion (the simulator still delivers 1-2 bytes first); the mechanism is not \
     yet explained.";

const NEXT_PEER_FIN_TIMING: &str = "the connection state a wait loop sees (ESTABLISHED vs \
     CLOSE_WAIT, FIN_WAIT1 vs FIN_WAIT2) or whether the peer's FIN came before a call: in OVMF \
     the stack runs between the application's calls (MNP's receive timer), so the peer's FIN or \
     ACK is often processed before the next call; in virtual time it arrives Polls later.";

const NEXT_CONCURRENT_PEERS: &str = "with several peers connecting at once, the order of the \
     Accept and Connect completions differs; it depends on when each peer's handshake \
     segments arrive.";

const NEXT_UNMEASURED: &str = "not measured.";

/// Every case whose call-level recording is expected to differ, with the
/// reason. `--compare` lists any non-identical case missing here as an
/// unexplained call-level divergence and fails. Measured with
/// `cargo run --release -- --compare` (base seed 0xef150c4b5eed0001).
pub const CALL_LEVEL: &[CallLevelReason] = &[
    CallLevelReason {
        id: "lifecycle/connect_echo_hello",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "lifecycle/peer_and_local_names",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "lifecycle/connect_ex_returns_zero",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "lifecycle/connect_twice_eisconn",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "lifecycle/closed_socket_ebadf",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "lifecycle/bind_then_getsockname",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "lifecycle/bind_twice_einval",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "lifecycle/accept_connect_back",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_PEER_FIN_TIMING,
    },
    CallLevelReason {
        id: "lifecycle/listen_unbound_gets_port",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "transfer/echo_4k_exact",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "transfer/sink_1mib_checksum",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "transfer/source_1mib_checksum",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "transfer/recv_one_leaves_rest",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "transfer/recv_into_partial",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "transfer/echo_interleaved_256k",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "transfer/send_returns_count",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "transfer/io_read_write_traits",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "eof/eof_is_sticky",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "eof/eof_is_readable",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "eof/accept_and_close_gives_eof",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "eof/send_after_peer_fin_works",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_PEER_FIN_TIMING,
    },
    CallLevelReason {
        id: "reset/reset_on_recv",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_PEER_FIN_TIMING,
    },
    CallLevelReason {
        id: "reset/reset_on_send",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "reset/reset_so_error",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "connect/refused",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "connect/connect_ex_refused",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "connect/connect_timeout",
        why: NOT_RUN_IN_OVMF,
        next: NEXT_UNMEASURED,
    },
    CallLevelReason {
        id: "connect/reconnect_after_refused",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "nonblocking/connect_inprogress_already_isconn",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_CLOSE_BEFORE_DATA,
    },
    CallLevelReason {
        id: "nonblocking/connect_refused_via_so_error",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "nonblocking/recv_eagain",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "nonblocking/accept_eagain",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "nonblocking/send_eagain_when_full",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "nonblocking/recv_after_eagain_gets_data",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "backpressure/sendall_timeout_against_hold",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "backpressure/hold_not_writable",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "backpressure/sendall_slow_reader",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "timeout/net_wait_deadline_ends_blocking_recv",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "timeout/recv_timeout_keeps_late_data",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "select/timeout_honoured",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "select/zero_timeout_polls",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "select/readable_does_not_consume",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "select/writable_when_connected",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "select/listener_readable_on_connection",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_PEER_FIN_TIMING,
    },
    CallLevelReason {
        id: "select/only_ready_sockets_reported",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "select/closed_socket_ebadf",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "poller/readable_event_with_token",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "poller/modify_and_unregister",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "poller/timeout_honoured",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "poller/register_errors",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "poller/hup_on_eof",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "close/with_armed_receive",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "close/with_pending_transmit",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "close/drop_without_close",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_CLOSE_BEFORE_DATA,
    },
    CallLevelReason {
        id: "close/listener_with_armed_accept",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "close/linger_zero_aborts_at_once",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_TRANSMIT,
    },
    CallLevelReason {
        id: "close/unread_data",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "shutdown/write_sends_fin",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_NONE,
    },
    CallLevelReason {
        id: "shutdown/read_gives_eof",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "shutdown/send_after_write_shutdown_epipe",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "ports/listen_port_in_use",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "ports/relisten_after_close",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "ports/reuse_after_active_close",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "server/select_echo_server_32_clients",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_CONCURRENT_PEERS,
    },
    CallLevelReason {
        id: "server/sequential_1000_connections",
        why: CONFIGURE_WRITES_BACK,
        next: NEXT_FLUSH_ORDER,
    },
    CallLevelReason {
        id: "server/accept_many_in_order",
        why: IFINFO_ROUTE_TABLE,
        next: NEXT_CONCURRENT_PEERS,
    },
    CallLevelReason {
        id: "ipconfig/dhcp_assigns_address",
        why: UNCONFIGURE_HARNESS,
        next: NEXT_UNMEASURED,
    },
    CallLevelReason {
        id: "ipconfig/dhcp_is_idempotent",
        why: UNCONFIGURE_HARNESS,
        next: NEXT_UNMEASURED,
    },
    CallLevelReason {
        id: "ipconfig/static_address",
        why: UNCONFIGURE_HARNESS,
        next: NEXT_UNMEASURED,
    },
];

/// The written reason why case `id` is not call-level identical, if any.
pub fn call_level_reason(id: &str) -> Option<&'static CallLevelReason> {
    CALL_LEVEL.iter().find(|e| e.id == id)
}

/// The expected outcome of case `id` on `target`.
pub fn expected(id: &str, target: TargetId) -> Outcome {
    TABLE
        .iter()
        .find(|e| e.id == id)
        .map(|e| match target {
            TargetId::Sim => e.sim,
            TargetId::Ovmf => e.ovmf,
        })
        .unwrap_or(Outcome::Pass)
}

/// The table entry for `id`, if the case has a per-target expectation.
pub fn entry(id: &str) -> Option<&'static CaseExpectation> {
    TABLE.iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_cases_pass_everywhere() {
        assert_eq!(expected("transfer/whatever", TargetId::Ovmf), Outcome::Pass);
        assert_eq!(
            expected("connect/connect_timeout", TargetId::Ovmf),
            Outcome::Fail
        );
        assert_eq!(
            expected("connect/connect_timeout", TargetId::Sim),
            Outcome::Pass
        );
    }

    #[cfg(feature = "sim")]
    #[test]
    fn ovmf_expectations_equal_the_default_sim_profile() {
        let sim = crate::sim_target::expectations(&efisock_sim::Profile::Edk2Stable202211.quirks());
        assert_eq!(EDK2_STABLE202211, sim);
        assert_eq!(
            crate::sim_target::SimSetup::default().profile,
            efisock_sim::Profile::Edk2Stable202211,
            "the simulator's default profile is the one OVMF is compared with"
        );
    }

    #[cfg(feature = "sim")]
    #[test]
    fn table_names_real_cases() {
        let ids: Vec<String> = crate::cases::all::<crate::sim_target::SimTarget>()
            .iter()
            .map(|c| c.id())
            .collect();
        for e in TABLE {
            assert!(ids.iter().any(|i| i == e.id), "{} is not a case", e.id);
            assert_ne!(e.sim, e.ovmf, "{}: an entry must differ", e.id);
        }
        for e in CALL_LEVEL {
            assert!(ids.iter().any(|i| i == e.id), "{} is not a case", e.id);
        }
    }

    #[test]
    fn call_level_reasons_are_unique_and_say_something() {
        for (i, e) in CALL_LEVEL.iter().enumerate() {
            assert!(
                CALL_LEVEL[..i].iter().all(|o| o.id != e.id),
                "{} listed twice",
                e.id
            );
            assert!(e.why.len() >= 40, "{}: a reason names a mechanism", e.id);
            assert!(
                !e.why.to_ascii_lowercase().contains("simpler"),
                "{}: \"the simulator is simpler\" is not a reason",
                e.id
            );
        }
    }
}
