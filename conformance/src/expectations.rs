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
    }
}
