//! Case generation for the campaign: operation lists and swarm knobs drawn
//! from one seed (the simulator's own PRNG, so nothing here reads the OS).

use efisock_sim::rng::{Rng, splitmix64};
use efisock_sim::{Faults, Scheduler};

use super::case::{Direction, FuzzCase, Op, SLOTS};

/// Stream of the generator's PRNG (distinct from the simulator's streams).
const GEN_STREAM: u64 = 0xF022;
/// Stream that decides whether a case has several connections, apart from
/// `GEN_STREAM` so that the single-connection cases stay what they were.
const CONNECTIONS_STREAM: u64 = 0xF023;
/// Share of several-connection cases in a mixed campaign.
const MULTI_SHARE: f64 = 0.25;

/// Which cases hold several connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connections {
    /// One connection per case.
    Single,
    /// Every case has several connections.
    Multi,
    /// A quarter of the cases, chosen by their seed.
    Mixed,
}

/// The seed of case number `index` of a campaign with base seed `base`.
pub fn case_seed(base: u64, index: u64) -> u64 {
    let mut s = base ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    splitmix64(&mut s)
}

/// One random operation (weights favour traffic and readiness checks).
pub fn op(rng: &mut Rng) -> Op {
    let n = |rng: &mut Rng, max: u64| 1 + rng.below(max) as u16;
    match rng.below(100) {
        0..=11 => Op::Send(n(rng, 3000)),
        12..=17 => Op::SendAll(n(rng, 20_000)),
        18..=31 => Op::Recv(n(rng, 4096)),
        32..=39 => Op::SelectRead,
        40..=44 => Op::SelectWrite,
        45..=49 => Op::PollerWait(rng.below(30) as u16),
        50..=54 => Op::SetTimeout([0u16, 1, 20, 200][rng.below(4) as usize]),
        55..=57 => Op::SetBlocking(rng.chance(0.5)),
        58..=63 => Op::Sleep(rng.below(60) as u16),
        64..=69 => Op::Compute(rng.below(60) as u16),
        70..=84 => Op::PeerWrite(n(rng, 6000)),
        85..=87 => Op::PeerFin,
        88..=89 => Op::PeerRst,
        90..=94 => Op::PeerStall(rng.chance(0.5)),
        95..=96 => Op::PeerCrash(rng.below(2000) as u16),
        _ => Op::Close,
    }
}

/// One operation of a several-connection case: connection management
/// (slots, connect, listen, dial, accept) or any single-connection one.
pub fn multi_op(rng: &mut Rng) -> Op {
    // Connection churn dominates: bugs of this kind show once sockets,
    // ports and listening slots are reused.
    match rng.below(100) {
        0..=9 => Op::Slot(rng.below(u64::from(SLOTS)) as u8),
        10..=23 => Op::Open,
        24..=39 => Op::Dial,
        40..=57 => Op::Accept,
        // Backlogs around EDK2's 5..=10 range (the core clamps into it).
        58..=60 => Op::Listen(rng.below(13) as u8),
        61..=62 => Op::Unlisten,
        _ => op(rng),
    }
}

/// The operations of a several-connection case: a listener first, then
/// up to twice `max_ops` operations.
fn multi_ops(rng: &mut Rng, max_ops: usize) -> Vec<Op> {
    let len = 1 + rng.below(2 * max_ops.max(1) as u64) as usize;
    let backlog = 5 + rng.below(6) as u8;
    std::iter::once(Op::Listen(backlog))
        .chain((0..len).map(|_| multi_op(rng)))
        .collect()
}

/// Case number `index` of a campaign.
pub fn case(
    base: u64,
    index: u64,
    scheduler: Scheduler,
    swarm: bool,
    bug: Option<&str>,
    max_ops: usize,
    connections: Connections,
) -> FuzzCase {
    let seed = case_seed(base, index);
    let mut rng = Rng::new(seed, GEN_STREAM);
    let len = 1 + rng.below(max_ops.max(1) as u64) as usize;
    let ops = (0..len).map(|_| op(&mut rng)).collect();
    // Half the cases wait with the core's default strategy, the rest with
    // any strategy: the strategy decides when Poll runs, and so which
    // orderings the firmware can produce.
    let strategy = if rng.chance(0.5) {
        efisock::DEFAULT_STRATEGY
    } else {
        efisock::STRATEGY_NAMES[rng.below(efisock::STRATEGY_NAMES.len() as u64) as usize]
    };
    let mut direction = if rng.chance(0.25) {
        Direction::Accept
    } else {
        Direction::Connect
    };
    let mut ops = ops;
    let mut several = Rng::new(seed, CONNECTIONS_STREAM);
    let multi = match connections {
        Connections::Single => false,
        Connections::Multi => true,
        Connections::Mixed => several.chance(MULTI_SHARE),
    };
    if multi {
        direction = Direction::Multi;
        ops = multi_ops(&mut several, max_ops);
    }
    FuzzCase {
        seed,
        scheduler,
        strategy: strategy.to_string(),
        faults: if swarm {
            Faults::swarm(seed)
        } else {
            Faults::none()
        },
        tape: None,
        direction,
        bug: bug.map(str::to_string),
        ops,
    }
}
