//! Model check of the completion queue (`core/src/calls/completion.rs`) with loom.
//!
//! Why: notify functions push onto the queue from `TPL_CALLBACK`, which on
//! real firmware can interrupt the application anywhere, including in the
//! middle of a pop or of another notify's push. Loom runs the real queue code
//! (its atomics are swapped for loom's under `cfg(loom)`) with threads
//! standing in for those interrupts and explores every interleaving and every
//! weak-memory outcome loom models, checking that each pushed record is
//! popped exactly once, in per-producer order, with nothing lost and no
//! overflow while the capacity invariant holds.
//!
//! Run (a separate target dir keeps the normal build cache intact):
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p efisock --release --test loom_queue -- --nocapture
//! ```
//! Each model prints how many interleavings it explored and how long it took.
#![cfg(loom)]

use std::time::Instant;

use efisock::loom_model::{Clock, CompletionQueue, Record};
use loom::sync::Arc;

unsafe fn zero_clock(_: *const ()) -> u64 {
    0
}

fn queue(capacity: usize) -> CompletionQueue {
    CompletionQueue::new(
        capacity,
        Clock {
            read: zero_clock,
            ctx: core::ptr::null(),
        },
    )
}

/// Runs `f` under loom, exhaustively, and prints the figures.
fn explore(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&iterations);
    let started = Instant::now();
    let builder = loom::model::Builder::new();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    println!(
        "loom {name}: {} interleavings explored in {:.2?}",
        iterations.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed()
    );
}

/// The application's side while notifies may fire: `tries` pops, each of
/// which may find an unpublished cell (no spinning, so the model stays
/// finite and small).
fn pop_concurrently(q: &CompletionQueue, tries: usize) -> Vec<Record> {
    (0..tries).filter_map(|_| q.pop()).collect()
}

/// The next safe point after every notify returned: drains what is left.
fn drain_rest(q: &CompletionQueue, got: &mut Vec<Record>) {
    while let Some(r) = q.pop() {
        got.push(r);
    }
}

/// Record ids: producer `p`'s `i`-th record is `p * 100 + i`.
fn check(mut got: Vec<Record>, per_producer: &[u32]) {
    // Per-producer order: each producer's ids appear in increasing order.
    for (p, &n) in per_producer.iter().enumerate() {
        let mine: Vec<u32> = got
            .iter()
            .map(|r| r.slot)
            .filter(|s| s / 100 == p as u32)
            .collect();
        let expected: Vec<u32> = (0..n).map(|i| p as u32 * 100 + i).collect();
        assert_eq!(
            mine, expected,
            "producer {p}: lost, duplicated or reordered"
        );
    }
    // The time travels with its slot.
    for r in &got {
        assert_eq!(r.t_ns, u64::from(r.slot) + 1_000, "torn record {r:?}");
    }
    got.sort_by_key(|r| r.slot);
    got.dedup();
    assert_eq!(got.len(), per_producer.iter().sum::<u32>() as usize);
}

fn push(q: &CompletionQueue, id: u32) {
    assert!(
        q.push_at(id, u64::from(id) + 1_000),
        "overflow with the capacity invariant holding"
    );
}

/// Two notify "interrupts" push one record each while the application
/// drains; the ring has wrapped once before (head = tail = 1 of 2 cells).
#[test]
fn two_notifies_race_the_drain() {
    explore("two_notifies_race_the_drain", || {
        let q = Arc::new(queue(2));
        // Warm-up: one record through, so the ring starts wrapped.
        push(&q, 7);
        assert_eq!(q.pop().map(|r| r.slot), Some(7));
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let q = Arc::clone(&q);
                loom::thread::spawn(move || push(&q, p * 100))
            })
            .collect();
        let mut got = pop_concurrently(&q, 2);
        for h in producers {
            h.join().unwrap();
        }
        drain_rest(&q, &mut got);
        assert_eq!(q.pop(), None);
        assert_eq!(q.overflows(), 0);
        check(got, &[1, 1]);
    });
}

/// One producer pushes two records back to back (two completions of
/// different slots signalled in a row) while another pushes one and the
/// consumer drains: per-producer order must survive every interleaving.
#[test]
fn back_to_back_notifies_keep_their_order() {
    explore("back_to_back_notifies_keep_their_order", || {
        let q = Arc::new(queue(4));
        let a = {
            let q = Arc::clone(&q);
            loom::thread::spawn(move || {
                push(&q, 0);
                push(&q, 1);
            })
        };
        let b = {
            let q = Arc::clone(&q);
            loom::thread::spawn(move || push(&q, 100))
        };
        let mut got = pop_concurrently(&q, 2);
        a.join().unwrap();
        b.join().unwrap();
        drain_rest(&q, &mut got);
        assert_eq!(q.pop(), None);
        assert_eq!(q.overflows(), 0);
        check(got, &[2, 1]);
    });
}

/// A producer is preempted between reserving its cell and publishing it
/// while a second producer completes a push: the consumer must see nothing
/// (never skip the reserved cell or return the later record first), and
/// once the first producer resumes both records arrive, in slot order.
#[test]
fn producer_preempted_between_reserve_and_publish() {
    explore("producer_preempted_between_reserve_and_publish", || {
        let q = Arc::new(queue(2));
        // The interrupted producer: reserves, then is "preempted" until the
        // consumer has observed the stall.
        let r = q.reserve().expect("empty ring has room");
        let b = {
            let q = Arc::clone(&q);
            loom::thread::spawn(move || push(&q, 100))
        };
        // Whatever B has done, the consumer is blocked behind A's cell.
        assert_eq!(q.pop(), None, "consumer skipped an unpublished cell");
        // The application keeps draining on another thread while A resumes.
        let consumer = {
            let q = Arc::clone(&q);
            loom::thread::spawn(move || pop_concurrently(&q, 2))
        };
        q.publish(r, 0, 1_000);
        let mut got = consumer.join().unwrap();
        b.join().unwrap();
        drain_rest(&q, &mut got);
        assert_eq!(q.pop(), None);
        assert_eq!(q.overflows(), 0);
        assert_eq!(got[0].slot, 0, "the reserved cell comes first");
        check(got, &[1, 1]);
    });
}

/// The same stall seen from another thread: the consumer runs concurrently
/// with a producer that is between its two halves, and with a second
/// producer, over a ring that has wrapped.
#[test]
fn consumer_concurrent_with_split_push() {
    explore("consumer_concurrent_with_split_push", || {
        let q = Arc::new(queue(2));
        push(&q, 7);
        assert_eq!(q.pop().map(|r| r.slot), Some(7));
        let a = {
            let q = Arc::clone(&q);
            loom::thread::spawn(move || {
                let r = q.reserve().expect("room");
                loom::thread::yield_now();
                q.publish(r, 0, 1_000);
            })
        };
        let b = {
            let q = Arc::clone(&q);
            loom::thread::spawn(move || push(&q, 100))
        };
        let mut got = pop_concurrently(&q, 2);
        a.join().unwrap();
        b.join().unwrap();
        drain_rest(&q, &mut got);
        assert_eq!(q.pop(), None);
        assert_eq!(q.overflows(), 0);
        check(got, &[1, 1]);
    });
}

/// Deliberate bug (c), `Bug::LoseBackToBackCompletion` (a plain load + store
/// instead of the tail CAS): the same two-notify model must find the
/// interleaving where the second notify interrupts the first between its load
/// and its store, and one record is lost. Run with
/// `--features deliberate-bugs` added to the command above.
#[cfg(feature = "deliberate-bugs")]
#[test]
fn finds_deliberate_lost_completion() {
    use efisock::deliberate::{self, Bug};
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&iterations);
    let started = Instant::now();
    deliberate::enable(Bug::LoseBackToBackCompletion);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loom::model::Builder::new().check(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let q = Arc::new(queue(2));
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let q = Arc::clone(&q);
                    loom::thread::spawn(move || push(&q, p * 100))
                })
                .collect();
            for h in producers {
                h.join().unwrap();
            }
            let mut got = Vec::new();
            drain_rest(&q, &mut got);
            check(got, &[1, 1]);
        })
    }));
    deliberate::disable_all();
    println!(
        "loom finds_deliberate_lost_completion: caught = {} after {} interleavings in {:.2?}",
        outcome.is_err(),
        iterations.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed()
    );
    assert!(outcome.is_err(), "loom missed the lost completion");
}
