//! Several-connection fuzz cases: what they check, and the failures they
//! found (each replay string is the shrunk case a campaign printed, and fails
//! again if its fix goes away).

use efisock_conformance::fuzz::generate::{self, Connections};
use efisock_conformance::fuzz::{Direction, FuzzCase, Op, run_guarded};
use efisock_sim::Scheduler;

fn passes(text: &str) {
    let case: FuzzCase = text.parse().expect("parses");
    if let Err(f) = run_guarded(&case) {
        panic!("{text}: {}", f.message);
    }
}

/// A server accepting many connections on one listener and a client
/// opening connection after connection, every connection carrying data
/// both ways, with no faults: the plain path must pass.
#[test]
fn accept_many_and_reconnect_pass_without_faults() {
    passes(
        "efz2/m/1/fifo/event-wait/-/-/-/\
         L5,d,d,d,d,d,d,d,a,w300,s200,k1,a,w10,r10,k2,a,s5000,k3,a,w7000,r4096,\
         k0,a,k1,a,k2,a,k3,o,w100,s100,o,w200,C,o,r1",
    );
}

/// Regression (simulator): a duplicated SYN to a peer host's service, once
/// its spare listening sockets had been reused, started a second handshake
/// for the same address pair, and its SYN-ACK got the SUT's connection reset
/// ("connection slot 0: drain: recv: error [Errno 104] Connection reset by
/// peer ... is not explained by anything that happened"). Found by
/// `fuzz --cases 300 --seed 0x1234 --connections multi --swarm on` on the
/// simulator before the exact-match rule (`efisock_sim` `demux.rs`), case
/// 231.
#[test]
fn duplicated_syn_to_a_reused_peer_listener_resets_nothing() {
    passes(
        "efz2/m/46f0abb1b496c19d/fifo/poll-while-pending/loss=0.082,dup=0.038,late=0.133/\
         _d.12_l.1_6.2/-/L6,d,o,o,d,w3731,s2400,o,S10193,c43,o",
    );
}

/// Regression (simulator): sixteen connections dialed at once to a
/// listener with a backlog of 5 under 5 % duplication, then accepted one by
/// one. On the firmware's listener pool, a duplicated SYN reached a listening
/// socket created after the half-open one (in a lower smoltcp slot) and
/// opened a second handshake for the same address pair, whose RST reset the
/// peer's connection before it was accepted ("the connection the peer
/// dialed ... was reset by the SUT before it was accepted, with the listener
/// open"; seed 6 of 1..=12, with the exact-match rule reverted).
#[test]
fn duplicated_syn_to_the_listener_pool_resets_nothing() {
    let dials = ",d".repeat(16);
    let accepts = ",a,w50,r50,C".repeat(16);
    passes(&format!(
        "efz2/m/6/fifo/event-wait/dup=0.05/-/-/L5{dials}{accepts}"
    ));
}

/// Regression (core): the peer dials, the listener's Accept completes while
/// the application computes (no efisock call, so nothing collects it), then
/// the listener is closed: the accepted child's only handle was in the freed
/// Accept slot, and the child leaked ("TCP4 child 1 was never destroyed").
#[test]
fn closing_a_listener_destroys_a_child_its_accept_just_received() {
    passes("efz2/m/caef7a4c6704f282/pct3/event-wait/-/-/-/d,L10,c27,l");
}

/// The connection management operations print and parse back, and a mixed
/// campaign draws several-connection cases from their own stream, leaving
/// the single-connection cases exactly what a single-only campaign draws.
#[test]
fn several_connection_cases_round_trip_and_leave_single_cases_unchanged() {
    let ops = [
        Op::Slot(3),
        Op::Open,
        Op::Listen(7),
        Op::Unlisten,
        Op::Dial,
        Op::Accept,
    ];
    for op in ops {
        let back: Op = op.to_string().parse().expect("parses");
        assert_eq!(back, op);
    }
    assert!("k4".parse::<Op>().is_err(), "slots are 0..4");
    let mut multi = 0;
    for i in 0..64 {
        let mixed = generate::case(7, i, Scheduler::Fifo, true, None, 12, Connections::Mixed);
        let single = generate::case(7, i, Scheduler::Fifo, true, None, 12, Connections::Single);
        let text = mixed.to_string();
        assert_eq!(text.parse::<FuzzCase>().expect("parses"), mixed, "{text}");
        if mixed.direction == Direction::Multi {
            multi += 1;
            assert!(matches!(mixed.ops[0], Op::Listen(5..=10)), "{text}");
        } else {
            assert_eq!(mixed, single);
        }
    }
    assert!(
        (8..=24).contains(&multi),
        "{multi} of 64 cases have several connections"
    );
}
