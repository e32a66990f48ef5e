//! The lossless completion queue and the notify trampoline.
//!
//! Why: a notify function may run at `TPL_CALLBACK` at any firmware-call
//! boundary or, on real firmware, from a timer interrupt in the middle of
//! application code (even in the middle of [`CompletionQueue::pop`]). So it
//! must not touch socket state, allocate, or take a `RefCell`. It only pushes
//! `(slot id, time)` onto this bounded multi-producer ring (Vyukov's sequence
//! scheme, atomics only). The socket layer drains the ring at its next safe
//! point (every wait-loop iteration and every socket call).
//!
//! Losslessness: the ring's capacity is at least the size of the token-slot
//! table, every slot is submitted at most once before its record is drained,
//! and the firmware signals each accepted token exactly once; therefore there
//! are never more records outstanding than cells, and a push cannot fail. Were
//! that invariant ever broken (a firmware signalling twice), the push is
//! counted in [`CompletionQueue::overflows`] and reported by `Net::stats`,
//! never dropped silently.
//!
//! The `efisock::notify` trace event is emitted when the record is drained,
//! with the time recorded inside the notify function, to keep the notify path
//! free of anything but atomics.

use crate::firmware::Event;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::c_void;
use sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The atomics the ring is built from: `core`'s in every real build, loom's
/// model-checked ones under `RUSTFLAGS="--cfg loom"` so that
/// `core/tests/loom_queue.rs` explores every interleaving of the real code.
mod sync {
    #[cfg(not(loom))]
    pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
}

/// One recorded completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The token slot whose event was signalled.
    pub slot: u32,
    /// Monotonic time (ns) read inside the notify function.
    pub t_ns: u64,
}

/// Reads the monotonic clock from an opaque context (see [`Clock`]).
pub type ClockFn = unsafe fn(*const ()) -> u64;

/// A clock the notify function can read without touching socket state: a
/// function and the `BootServices` instance it reads.
#[derive(Clone, Copy)]
pub struct Clock {
    /// Reads the time from `ctx`.
    pub read: ClockFn,
    /// The clock's context; must outlive the queue.
    pub ctx: *const (),
}

/// A claimed, not yet published cell: see [`CompletionQueue::reserve`].
/// Consumed by [`CompletionQueue::publish`]; deliberately not `Clone`.
#[derive(Debug)]
#[must_use = "an unpublished reservation stalls the consumer forever"]
pub struct Reservation {
    pos: usize,
}

struct Cell {
    seq: AtomicUsize,
    slot: AtomicU32,
    t_ns: AtomicU64,
}

/// A bounded, lock-free, multi-producer single-consumer ring of [`Record`]s.
pub struct CompletionQueue {
    cells: Box<[Cell]>,
    mask: usize,
    head: AtomicUsize,
    tail: AtomicUsize,
    overflows: AtomicU64,
    clock: Clock,
}

// SAFETY: all shared state is atomic; `clock.ctx` is only passed to
// `clock.read`, whose implementor is a `BootServices` reachable from any
// context the firmware runs notify functions in.
unsafe impl Sync for CompletionQueue {}
// SAFETY: as above; the queue owns no thread-affine data.
unsafe impl Send for CompletionQueue {}

impl CompletionQueue {
    /// A queue holding at least `capacity` records (rounded up to a power of two).
    pub fn new(capacity: usize, clock: Clock) -> Self {
        let size = capacity.max(2).next_power_of_two();
        let cells: Vec<Cell> = (0..size)
            .map(|i| Cell {
                seq: AtomicUsize::new(i),
                slot: AtomicU32::new(0),
                t_ns: AtomicU64::new(0),
            })
            .collect();
        CompletionQueue {
            cells: cells.into_boxed_slice(),
            mask: size - 1,
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            overflows: AtomicU64::new(0),
            clock,
        }
    }

    /// Number of cells.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Pushes a record stamped with the current time. Lock-free: never waits
    /// for the consumer or for another producer. Returns false (and counts an
    /// overflow) only if the capacity invariant was broken.
    pub fn push(&self, slot: u32) -> bool {
        // SAFETY: `clock.ctx` outlives the queue (constructor contract) and
        // `clock.read` is the matching reader.
        let t_ns = unsafe { (self.clock.read)(self.clock.ctx) };
        self.push_at(slot, t_ns)
    }

    /// Pushes a record with an explicit time.
    pub fn push_at(&self, slot: u32, t_ns: u64) -> bool {
        match self.reserve() {
            Some(reservation) => {
                self.publish(reservation, slot, t_ns);
                true
            }
            None => false,
        }
    }

    /// Claims the next cell (the first half of a push). Returns `None` and
    /// counts an overflow if the ring is full. Until the claim is
    /// [`publish`](Self::publish)ed, the consumer stops at this cell: a
    /// producer interrupted here delays later records but loses none.
    pub fn reserve(&self) -> Option<Reservation> {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & self.mask];
            let seq = cell.seq.load(Ordering::Acquire);
            let dif = seq as isize - pos as isize;
            if dif == 0 {
                #[cfg(feature = "deliberate-bugs")]
                if crate::deliberate::is_enabled(crate::deliberate::Bug::LoseBackToBackCompletion) {
                    // DELIBERATE BUG (c): not atomic; a notify interrupting
                    // this one between load and store claims the same cell.
                    self.tail.store(pos.wrapping_add(1), Ordering::Relaxed);
                    return Some(Reservation { pos });
                }
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(Reservation { pos }),
                    Err(now) => pos = now,
                }
            } else if dif < 0 {
                self.overflows.fetch_add(1, Ordering::Relaxed);
                return None;
            } else {
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Fills and publishes a claimed cell (the second half of a push).
    pub fn publish(&self, reservation: Reservation, slot: u32, t_ns: u64) {
        let pos = reservation.pos;
        let cell = &self.cells[pos & self.mask];
        cell.slot.store(slot, Ordering::Relaxed);
        cell.t_ns.store(t_ns, Ordering::Relaxed);
        cell.seq.store(pos.wrapping_add(1), Ordering::Release);
    }

    /// Pops the oldest published record. Single consumer (the application).
    /// A producer that reserved a cell but has not published it yet (it was
    /// interrupted) makes this return `None`; its record is drained later.
    pub fn pop(&self) -> Option<Record> {
        let pos = self.head.load(Ordering::Relaxed);
        let cell = &self.cells[pos & self.mask];
        let seq = cell.seq.load(Ordering::Acquire);
        if seq != pos.wrapping_add(1) {
            return None;
        }
        let record = Record {
            slot: cell.slot.load(Ordering::Relaxed),
            t_ns: cell.t_ns.load(Ordering::Relaxed),
        };
        self.head.store(pos.wrapping_add(1), Ordering::Relaxed);
        cell.seq
            .store(pos.wrapping_add(self.mask + 1), Ordering::Release);
        Some(record)
    }

    /// Records pushed so far (claimed by notify functions), drained or not: a
    /// progress signal a wait loop can read right after a Poll, before the
    /// next safe point drains them.
    pub fn recorded(&self) -> u64 {
        self.tail.load(Ordering::Acquire) as u64
    }

    /// Pushes that found the ring full (a broken firmware contract).
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }
}

/// What a token event's notify context points to: the first field of every
/// token slot's pool block. Written once before the event is created and
/// never modified while the event exists.
#[repr(C)]
pub(crate) struct SlotHeader {
    /// The queue to push to; outlives every event.
    pub queue: *const CompletionQueue,
    /// The slot id to record.
    pub slot: u32,
}

/// The notify function of every token event: records the slot and the time.
///
/// # Safety
/// `context` must point to a live [`SlotHeader`] whose queue is alive.
pub(crate) unsafe extern "efiapi" fn notify_trampoline(_event: Event, context: *mut c_void) {
    if context.is_null() {
        return;
    }
    // SAFETY: the context of every token event is its slot's header, which
    // lives (unmodified) in pool memory until the event is closed.
    let header = unsafe { &*(context as *const SlotHeader) };
    // SAFETY: the queue outlives every event (it is leaked if events remain).
    let queue = unsafe { &*header.queue };
    queue.push(header.slot);
    #[cfg(all(feature = "deliberate-bugs", not(loom)))]
    crate::deliberate::process_inside_notify();
}

/// Reads `BootServices::monotonic_ns` through an erased pointer.
///
/// # Safety
/// `ctx` must point to a live `B`.
pub(crate) unsafe fn read_clock<B: crate::firmware::BootServices>(ctx: *const ()) -> u64 {
    // SAFETY: the caller guarantees `ctx` is a live `B`.
    unsafe { (*(ctx as *const B)).monotonic_ns() }
}

// The unit tests use real threads and const atomics; under `cfg(loom)` the
// model in `core/tests/loom_queue.rs` replaces them.
#[cfg(all(test, not(loom)))]
mod tests {
    extern crate std;
    use super::*;
    use std::sync::Arc;
    use std::vec;

    static FAKE_NOW: AtomicU64 = AtomicU64::new(0);
    unsafe fn fake_clock(_: *const ()) -> u64 {
        FAKE_NOW.load(Ordering::Relaxed)
    }
    fn clock() -> Clock {
        Clock {
            read: fake_clock,
            ctx: core::ptr::null(),
        }
    }

    #[test]
    fn fifo_order_and_times() {
        let q = CompletionQueue::new(4, clock());
        assert_eq!(q.capacity(), 4);
        assert!(q.push_at(7, 100));
        assert!(q.push_at(3, 200));
        assert_eq!(q.pop(), Some(Record { slot: 7, t_ns: 100 }));
        assert!(q.push_at(9, 300));
        assert_eq!(q.pop(), Some(Record { slot: 3, t_ns: 200 }));
        assert_eq!(q.pop(), Some(Record { slot: 9, t_ns: 300 }));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn push_reads_the_clock() {
        let q = CompletionQueue::new(2, clock());
        FAKE_NOW.store(42, Ordering::Relaxed);
        assert!(q.push(1));
        assert_eq!(q.pop().map(|r| r.t_ns), Some(42));
    }

    #[test]
    fn full_ring_counts_overflow_instead_of_losing_silently() {
        let q = CompletionQueue::new(2, clock());
        assert!(q.push_at(1, 0));
        assert!(q.push_at(2, 0));
        assert!(!q.push_at(3, 0));
        assert_eq!(q.overflows(), 1);
        assert_eq!(q.pop().map(|r| r.slot), Some(1));
        assert!(q.push_at(4, 0));
        assert_eq!(q.pop().map(|r| r.slot), Some(2));
        assert_eq!(q.pop().map(|r| r.slot), Some(4));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn wraps_around_many_times_without_loss() {
        let q = CompletionQueue::new(8, clock());
        let mut next_pop = 0u32;
        for i in 0..10_000u32 {
            assert!(q.push_at(i, u64::from(i)));
            // Interleave: a "notify" pushes between pops of a drain.
            if i % 3 == 2 {
                while let Some(r) = q.pop() {
                    assert_eq!(r.slot, next_pop);
                    next_pop += 1;
                }
            }
        }
        while let Some(r) = q.pop() {
            assert_eq!(r.slot, next_pop);
            next_pop += 1;
        }
        assert_eq!(next_pop, 10_000);
        assert_eq!(q.overflows(), 0);
    }

    #[test]
    fn concurrent_producers_lose_nothing() {
        let q = Arc::new(CompletionQueue::new(64, clock()));
        let producers = 4u32;
        let per = 5_000u32;
        let handles: vec::Vec<_> = (0..producers)
            .map(|p| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for i in 0..per {
                        // The consumer keeps up; a full ring would be a
                        // capacity bug, so retry and count it.
                        while !q.push_at(p * per + i, 0) {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut seen = vec![false; (producers * per) as usize];
        let mut last = vec![None::<u32>; producers as usize];
        let mut count = 0;
        while count < producers * per {
            if let Some(r) = q.pop() {
                let p = r.slot / per;
                // Per-producer order is preserved.
                if let Some(prev) = last[p as usize] {
                    assert!(r.slot > prev);
                }
                last[p as usize] = Some(r.slot);
                assert!(!seen[r.slot as usize], "duplicate {}", r.slot);
                seen[r.slot as usize] = true;
                count += 1;
            } else {
                std::thread::yield_now();
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn trampoline_pushes_the_header_slot() {
        let q = CompletionQueue::new(4, clock());
        let mut header = SlotHeader { queue: &q, slot: 5 };
        // SAFETY: header and queue are alive for the call.
        unsafe {
            notify_trampoline(
                core::ptr::null_mut(),
                &mut header as *mut SlotHeader as *mut c_void,
            )
        };
        let r = q.pop().unwrap();
        assert_eq!(r.slot, 5);
    }
}
