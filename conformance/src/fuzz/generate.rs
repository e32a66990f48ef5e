//! Case generation for the campaign: operation lists and swarm knobs drawn
//! from one seed (the simulator's own PRNG, so nothing here reads the OS).

use efisock_sim::rng::{Rng, splitmix64};
use efisock_sim::{Faults, Scheduler};

use super::case::{Direction, FuzzCase, Op};

/// Stream of the generator's PRNG (distinct from the simulator's streams).
const GEN_STREAM: u64 = 0xF022;

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

/// Case number `index` of a campaign.
pub fn case(
    base: u64,
    index: u64,
    scheduler: Scheduler,
    swarm: bool,
    bug: Option<&str>,
    max_ops: usize,
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
    let direction = if rng.chance(0.25) {
        Direction::Accept
    } else {
        Direction::Connect
    };
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
