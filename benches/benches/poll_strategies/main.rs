//! The Poll strategies on the simulator: every workload × every Poll strategy, measured
//! in virtual firmware time ([`virtual_time::VirtualTime`]).
//!
//! Run: `cargo bench -p efisock-benches` (add a criterion filter such as
//! `-- bulk_receive` for one group). Each criterion group is a workload and
//! each bench id a strategy from `efisock::STRATEGY_NAMES`. Every iteration
//! batch gets a fresh simulated world built from [`SEED`], so the first
//! iteration of a batch is bit-for-bit reproducible; later iterations reuse
//! that world (its connections' TIME_WAIT, port counters, congestion state).
//! At the end a table prints, per workload × strategy: mean virtual time per
//! iteration, the first iteration's virtual time, the speed-up over
//! timer-only, and host wall seconds per simulated second (the simulator's
//! own speed), followed by best/timer-only per workload.
//!
//! Sizes: bulk transfers move `BULK_BYTES` (16 MiB).
//! Criterion runs 10 samples with a minimal warm-up and a 1 s measurement
//! budget; warm-up and iteration counts are scheduled on wall time (that is
//! criterion's design), the reported values are virtual time.

mod virtual_time;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use efisock_benches::workloads::{CONNECTS, ROUND_TRIPS, SELECT_CONNECTIONS, SELECT_ROUNDS};
use efisock_benches::{SpeedTable, Workload, bench_target};
use virtual_time::VirtualTime;

/// The seed of every simulated world in this bench.
const SEED: u64 = 0x5EED_0005;

thread_local! {
    static TABLE: RefCell<SpeedTable> = RefCell::new(SpeedTable::new());
}

fn fail(workload: Workload, strategy: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("bench {} / {strategy} failed: {e}", workload.name());
    std::process::exit(1)
}

/// Runs `iters` iterations of `workload` on a fresh world; returns their
/// virtual time and records the batch in the summary table.
fn batch(workload: Workload, strategy: &str, iters: u64) -> u64 {
    let target = bench_target(strategy, SEED).unwrap_or_else(|e| fail(workload, strategy, e));
    let prepared = workload
        .prepare(&target)
        .unwrap_or_else(|e| fail(workload, strategy, e));
    let _bound = VirtualTime::bind(target.sim());
    let wall = Instant::now();
    let start = VirtualTime::now_ns();
    let mut first = None;
    for _ in 0..iters {
        let before = VirtualTime::now_ns();
        workload
            .run_once(&target, &prepared)
            .unwrap_or_else(|e| fail(workload, strategy, e));
        first.get_or_insert(VirtualTime::now_ns() - before);
    }
    let virt = VirtualTime::now_ns() - start;
    let wall = wall.elapsed();
    TABLE.with(|t| {
        t.borrow_mut().record(
            workload.name(),
            strategy,
            iters,
            virt,
            wall,
            first.unwrap_or(0),
        )
    });
    prepared
        .close()
        .unwrap_or_else(|e| fail(workload, strategy, e));
    virt
}

fn throughput(workload: Workload) -> Throughput {
    match workload {
        Workload::BulkReceive(n) | Workload::BulkSend(n) => Throughput::Bytes(n),
        Workload::RequestResponse => Throughput::Elements(ROUND_TRIPS as u64),
        Workload::SelectLoop => Throughput::Elements((SELECT_ROUNDS * SELECT_CONNECTIONS) as u64),
        Workload::ConnectRate => Throughput::Elements(CONNECTS as u64),
    }
}

fn main() {
    let started = Instant::now();
    let mut c = Criterion::default()
        .with_measurement(VirtualTime)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for workload in Workload::all() {
        let mut group = c.benchmark_group(workload.name());
        group.sampling_mode(criterion::SamplingMode::Flat);
        group.throughput(throughput(workload));
        for &strategy in efisock::STRATEGY_NAMES {
            group.bench_function(strategy, |b| {
                b.iter_custom(|iters| batch(workload, strategy, iters))
            });
        }
        group.finish();
    }
    c.final_summary();
    let table = TABLE.with(|t| t.borrow().render());
    eprintln!(
        "\nvirtual firmware time per iteration (seed {SEED:#x}), speed-up vs timer-only, simulator speed:"
    );
    eprintln!("{table}");
    eprintln!("bench wall time: {:.1} s", started.elapsed().as_secs_f64());
}
