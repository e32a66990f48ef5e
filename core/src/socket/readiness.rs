//! Readiness for select and the Poller, and the listener's Accept decision:
//! pure functions of a socket's state.

use crate::socket::{Phase, teardown};

/// Whether a listener with `queued` accepted connections waiting for
/// `accept()` keeps an Accept armed: while fewer than `max(backlog, 1)`,
/// and never more than [`teardown::MAX_ACCEPT_QUEUE`].
pub(crate) fn accept_wanted(queued: usize, backlog: u32) -> bool {
    queued < (backlog.max(1) as usize).min(teardown::MAX_ACCEPT_QUEUE)
}

/// What readiness is computed from (pure, for testing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyInputs {
    pub phase: Phase,
    pub rx_queued: bool,
    pub rx_eof: bool,
    pub rx_err: bool,
    pub accept_queued: bool,
    pub budget_free: bool,
    pub shut_wr: bool,
    pub so_error: bool,
    pub reset: bool,
}

/// Readiness of one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Readiness {
    pub read: bool,
    pub write: bool,
    pub except: bool,
    pub hup: bool,
}

/// select/poll readiness, POSIX-style:
/// - read: data queued, EOF, a receive error, or (listening) a connection to accept;
///   also a failed connect (recv would return its error at once);
/// - write: connected with send budget free (or write side shut: send fails
///   at once with EPIPE), or a connect that finished (either way);
/// - except: a pending error (SO_ERROR set or a receive error);
/// - hup: the peer's FIN/RST or our read shutdown, and no more data queued.
pub(crate) fn readiness(i: &ReadyInputs) -> Readiness {
    let read = match i.phase {
        Phase::Listening { .. } => i.accept_queued,
        Phase::Failed { .. } => true,
        Phase::Connected => i.rx_queued || i.rx_eof || i.rx_err,
        Phase::Fresh | Phase::Connecting { .. } => false,
    };
    let write = match i.phase {
        Phase::Connected => i.budget_free || i.shut_wr || i.reset,
        Phase::Failed { .. } => true,
        Phase::Connecting { .. } | Phase::Fresh | Phase::Listening { .. } => false,
    };
    let except = i.so_error || i.rx_err;
    let hup = (i.phase == Phase::Connected && (i.rx_eof || i.reset) && !i.rx_queued)
        || i.phase.is_failed();
    Readiness {
        read,
        write,
        except,
        hup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(phase: Phase) -> ReadyInputs {
        ReadyInputs {
            phase,
            rx_queued: false,
            rx_eof: false,
            rx_err: false,
            accept_queued: false,
            budget_free: true,
            shut_wr: false,
            so_error: false,
            reset: false,
        }
    }

    #[test]
    fn connected_socket_with_nothing_queued_is_only_writable() {
        let r = readiness(&base(Phase::Connected));
        assert_eq!(
            r,
            Readiness {
                read: false,
                write: true,
                except: false,
                hup: false
            }
        );
    }

    #[test]
    fn full_budget_is_not_writable() {
        let mut i = base(Phase::Connected);
        i.budget_free = false;
        assert!(!readiness(&i).write);
    }

    /// With the budget full, a shut write side or a reset still makes the
    /// socket writable: send fails at once instead of blocking.
    #[test]
    fn full_budget_but_send_would_fail_is_writable() {
        for (shut_wr, reset) in [(true, false), (false, true), (true, true)] {
            let mut i = base(Phase::Connected);
            i.budget_free = false;
            i.shut_wr = shut_wr;
            i.reset = reset;
            assert!(readiness(&i).write, "shut_wr {shut_wr}, reset {reset}");
        }
    }

    #[test]
    fn data_eof_and_error_are_readable() {
        for f in [
            |i: &mut ReadyInputs| i.rx_queued = true,
            |i: &mut ReadyInputs| i.rx_eof = true,
            |i: &mut ReadyInputs| i.rx_err = true,
        ] {
            let mut i = base(Phase::Connected);
            f(&mut i);
            assert!(readiness(&i).read);
        }
    }

    #[test]
    fn eof_with_data_queued_is_not_hup_yet() {
        let mut i = base(Phase::Connected);
        i.rx_eof = true;
        i.rx_queued = true;
        assert!(!readiness(&i).hup);
        i.rx_queued = false;
        assert!(readiness(&i).hup);
    }

    #[test]
    fn listener_readable_only_with_queued_connection() {
        let mut i = base(Phase::Listening { backlog: 1 });
        assert_eq!(readiness(&i), Readiness::default());
        assert!(!readiness(&i).read);
        assert!(!readiness(&i).write);
        i.accept_queued = true;
        assert!(readiness(&i).read);
    }

    #[test]
    fn connecting_becomes_writable_when_connect_finishes() {
        let i = base(Phase::Connecting { slot: 0 });
        assert_eq!(readiness(&i), Readiness::default());
        assert!(readiness(&base(Phase::Connected)).write);
        assert!(
            readiness(&base(Phase::Failed {
                abandoned_connect: None
            }))
            .write
        );
    }

    #[test]
    fn failed_connect_is_writable_readable_and_exceptional() {
        let mut i = base(Phase::Failed {
            abandoned_connect: None,
        });
        i.so_error = true;
        let r = readiness(&i);
        assert!(r.write && r.read && r.except && r.hup);
    }

    /// (queued, backlog) -> keep an Accept armed.
    #[test]
    fn accept_wanted_table() {
        let rows = [
            (0, 0, true),
            (1, 0, false),
            (0, 1, true),
            (1, 1, false),
            (2, 3, true),
            (3, 3, false),
            (127, 1000, true),
            (128, 1000, false),
        ];
        for (queued, backlog, want) in rows {
            assert_eq!(accept_wanted(queued, backlog), want, "{queued} {backlog}");
        }
    }

    #[test]
    fn fresh_socket_is_not_ready() {
        assert_eq!(
            readiness(&base(Phase::Fresh)),
            Readiness {
                read: false,
                write: false,
                except: false,
                hup: false
            }
        );
    }
}
