//! How a wait makes progress: pluggable poll strategies.
//!
//! Why: every blocking call, `select` and `Poller::poll` run one loop —
//! drain completions, test the condition, stop at the deadline, else
//! [`PollStrategy::step`]. What a step does (Tcp4.Poll, Stall, a timer wait)
//! trades CPU for latency and throughput very differently on real firmware
//! (EDK2 receives one frame per 10 ms MNP tick unless someone calls Poll), so
//! it is a strategy the user (and the benchmarks) can swap. Every strategy
//! must let virtual and real time advance, so each step ends in a firmware
//! call that takes time.

use alloc::boxed::Box;

/// What a strategy may do in one step of a wait.
///
/// ```
/// use efisock::strategies::BusyPoll;
/// use efisock::{PollStrategy, WaitIo};
///
/// /// A stand-in firmware that counts what a strategy asks of it.
/// #[derive(Default)]
/// struct Counting {
///     polls: u32,
///     stalled_us: u64,
/// }
/// impl WaitIo for Counting {
///     fn now_ns(&self) -> u64 {
///         self.stalled_us * 1000
///     }
///     fn deadline_ns(&self) -> Option<u64> {
///         None
///     }
///     fn pending_tokens(&self) -> usize {
///         1
///     }
///     fn poll_firmware(&mut self) {
///         self.polls += 1;
///     }
///     fn stall(&mut self, us: u64) {
///         self.stalled_us += us;
///     }
///     fn wait_timer(&mut self, us: u64) {
///         self.stalled_us += us;
///     }
/// }
///
/// let mut io = Counting::default();
/// let mut busy = BusyPoll;
/// busy.begin();
/// busy.step(&mut io);
/// assert_eq!((io.polls, io.stalled_us), (1, 0));
/// ```
pub trait WaitIo {
    /// Monotonic time, ns.
    fn now_ns(&self) -> u64;
    /// The wait's deadline (ns, same clock), None for forever.
    fn deadline_ns(&self) -> Option<u64>;
    /// Tokens the firmware currently owns.
    fn pending_tokens(&self) -> usize;
    /// When the socket layer last submitted a Transmit (same clock as
    /// [`WaitIo::now_ns`]), if ever. EDK2 completes a Transmit as soon as
    /// its data fits in the 2 MiB send buffer, so for a while afterwards the
    /// firmware holds data that moves only as ACKs are taken in, one frame
    /// per Poll, with no token pending to show it.
    fn last_transmit_ns(&self) -> Option<u64> {
        None
    }
    /// `Tcp4.Poll` once (one instance suffices: it drives the shared MNP).
    /// With no TCP4 instance alive it stalls instead (up to 1 ms, capped at
    /// the deadline), so time advances.
    fn poll_firmware(&mut self);
    /// `Stall(us)`: busy-wait; timers and notify functions keep running.
    fn stall(&mut self, us: u64);
    /// `WaitForEvent` on a timer event armed for `us` microseconds.
    fn wait_timer(&mut self, us: u64);
    /// Completions recorded by notify functions since the `Net` was created,
    /// including ones not drained yet (a progress signal: a strategy that
    /// sees it move after a Poll should return instead of stalling).
    fn completions(&self) -> u64 {
        0
    }
}

/// A policy for one step of a wait loop.
///
/// ```
/// # use efisock_sim::{Sim, SimConfig};
/// # let sim = Sim::new(SimConfig::new(1));
/// # let platform = sim.platform();
/// use efisock::{Net, PollStrategy, WaitIo};
///
/// /// Poll, then stall 50 µs: a fixed-rate strategy.
/// struct PollAndNap;
/// impl PollStrategy for PollAndNap {
///     fn name(&self) -> &'static str {
///         "poll-and-nap"
///     }
///     fn step(&mut self, io: &mut dyn WaitIo) {
///         io.poll_firmware();
///         io.stall(efisock::strategy::cap_to_deadline(io, 50));
///     }
/// }
///
/// let net = Net::new(platform);
/// net.set_strategy(Box::new(PollAndNap));
/// assert_eq!(net.strategy_name(), "poll-and-nap");
/// net.sleep(std::time::Duration::from_millis(1)); // waits run through it
/// ```
pub trait PollStrategy {
    /// A short stable name, e.g. `"busy-poll"`.
    fn name(&self) -> &'static str;
    /// Called once at the start of every wait.
    fn begin(&mut self) {}
    /// Make progress once (the condition was false and the deadline not reached).
    fn step(&mut self, io: &mut dyn WaitIo);
}

/// One back-off step: stall for `*current_us` (capped at the deadline), then
/// double it up to `max_us` for the next idle step.
fn stall_and_back_off(io: &mut dyn WaitIo, current_us: &mut u64, max_us: u64) {
    let us = cap_to_deadline(io, *current_us);
    io.stall(us);
    *current_us = current_us.saturating_mul(2).min(max_us);
}

/// Microseconds until the deadline, capped at `cap` (at least 1).
pub fn cap_to_deadline(io: &dyn WaitIo, cap_us: u64) -> u64 {
    match io.deadline_ns() {
        None => cap_us.max(1),
        Some(d) => {
            let left_us = d.saturating_sub(io.now_ns()).div_ceil(1000);
            left_us.clamp(1, cap_us.max(1))
        }
    }
}

/// The built-in strategies.
///
/// ```
/// # use efisock_sim::{Sim, SimConfig};
/// # let sim = Sim::new(SimConfig::new(1));
/// # let platform = sim.platform();
/// use efisock::{strategies, strategy_by_name, Net, STRATEGY_NAMES};
///
/// let net = Net::new(platform);
/// assert_eq!(net.strategy_name(), efisock::DEFAULT_STRATEGY);
/// net.set_strategy(Box::new(strategies::AdaptiveBackoff::new(10, 1000)));
/// assert_eq!(net.strategy_name(), "adaptive-backoff");
/// for name in STRATEGY_NAMES {
///     assert_eq!(strategy_by_name(name).unwrap().name(), *name);
/// }
/// ```
pub mod strategies {
    use super::{PollStrategy, WaitIo, cap_to_deadline};

    /// Tcp4.Poll on every step: lowest latency, 100% CPU.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct BusyPoll;

    impl PollStrategy for BusyPoll {
        fn name(&self) -> &'static str {
            "busy-poll"
        }
        fn step(&mut self, io: &mut dyn WaitIo) {
            io.poll_firmware();
        }
    }

    /// Never calls Poll: relies on the firmware's own timers (MNP's 10 ms
    /// poll, TCP's 200 ms tick), waiting on a 1 ms timer event per step.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct TimerOnly;

    impl PollStrategy for TimerOnly {
        fn name(&self) -> &'static str {
            "timer-only"
        }
        fn step(&mut self, io: &mut dyn WaitIo) {
            let us = cap_to_deadline(io, 1000);
            io.wait_timer(us);
        }
    }

    /// Poll while tokens are pending; otherwise wait 1 ms on a timer.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct PollWhilePending;

    impl PollStrategy for PollWhilePending {
        fn name(&self) -> &'static str {
            "poll-while-pending"
        }
        fn step(&mut self, io: &mut dyn WaitIo) {
            if io.pending_tokens() > 0 {
                io.poll_firmware();
            } else {
                let us = cap_to_deadline(io, 1000);
                io.wait_timer(us);
            }
        }
    }

    /// Poll, then stall for a back-off that doubles while nothing completes
    /// (from `min_us` up to `max_us`) and resets when something does.
    #[derive(Debug, Clone, Copy)]
    pub struct AdaptiveBackoff {
        /// Smallest stall, µs.
        pub min_us: u64,
        /// Largest stall, µs.
        pub max_us: u64,
        current_us: u64,
        last_completions: u64,
    }

    impl AdaptiveBackoff {
        /// A back-off between `min_us` and `max_us` (both at least 1).
        pub fn new(min_us: u64, max_us: u64) -> Self {
            let min_us = min_us.max(1);
            AdaptiveBackoff {
                min_us,
                max_us: max_us.max(min_us),
                current_us: min_us,
                last_completions: 0,
            }
        }

        /// The stall the next idle step will use.
        pub fn current_us(&self) -> u64 {
            self.current_us
        }
    }

    impl Default for AdaptiveBackoff {
        fn default() -> Self {
            AdaptiveBackoff::new(10, 1000)
        }
    }

    impl PollStrategy for AdaptiveBackoff {
        fn name(&self) -> &'static str {
            "adaptive-backoff"
        }
        fn begin(&mut self) {
            self.current_us = self.min_us;
        }
        fn step(&mut self, io: &mut dyn WaitIo) {
            io.poll_firmware();
            let done = io.completions();
            if done != self.last_completions {
                self.last_completions = done;
                self.current_us = self.min_us;
                return;
            }
            super::stall_and_back_off(io, &mut self.current_us, self.max_us);
        }
    }

    /// Poll on every step; once nothing has completed for `spin_us` and no
    /// Transmit was submitted for `send_spin_us`, stall between Polls for a
    /// back-off that doubles from `min_us` to `max_us` and resets at the
    /// next completion.
    ///
    /// Why (measured in OVMF and on the simulator): in OVMF a Poll on every step is
    /// what keeps bulk sends and round trips fast (busy-poll): EDK2
    /// completes a Transmit once its data is in the firmware's 2 MiB send
    /// buffer, and that data then moves only as ACKs are taken in, one
    /// frame per Poll, with no token completing in between; adaptive-
    /// backoff's stalls of up to 1 ms starve exactly that (6x slower than
    /// busy-poll on a 16 MiB send in OVMF; a completion-based spin window
    /// alone was still 2x slower). But a wait that is merely idle (a
    /// timeout, a silent peer, a Receive armed for later) should not spin
    /// for its whole length, which on the simulator costs one simulated
    /// Poll per step (the suite takes 46 s with busy-poll). So: spin right
    /// after progress and for a while after the last Transmit, else back
    /// off.
    /// Timer waits are not used: OVMF's timer tick is 10 ms, so a "1 ms"
    /// timer wait takes up to 10 ms there.
    #[derive(Debug, Clone, Copy)]
    pub struct SpinBackoff {
        /// How long to keep polling without stalls after the last completion, µs.
        pub spin_us: u64,
        /// How long to keep polling without stalls after the last Transmit
        /// was submitted, µs (the firmware may still be sending its data).
        pub send_spin_us: u64,
        /// First stall after the spin window, µs.
        pub min_us: u64,
        /// Largest stall, µs.
        pub max_us: u64,
        current_us: u64,
        last_completions: u64,
        last_progress_ns: Option<u64>,
    }

    impl SpinBackoff {
        /// Spins `spin_us` after progress and `send_spin_us` after the last
        /// Transmit, then stalls from `min_us` doubling to `max_us` (stalls
        /// at least 1 µs).
        pub fn new(spin_us: u64, send_spin_us: u64, min_us: u64, max_us: u64) -> Self {
            let min_us = min_us.max(1);
            SpinBackoff {
                spin_us,
                send_spin_us,
                min_us,
                max_us: max_us.max(min_us),
                current_us: min_us,
                last_completions: 0,
                last_progress_ns: None,
            }
        }

        /// The stall the next idle step will use.
        pub fn current_us(&self) -> u64 {
            self.current_us
        }
    }

    impl Default for SpinBackoff {
        fn default() -> Self {
            SpinBackoff::new(1_000, 200_000, 10, 200)
        }
    }

    impl PollStrategy for SpinBackoff {
        fn name(&self) -> &'static str {
            "spin-backoff"
        }
        fn begin(&mut self) {
            // A new wait starts spinning: the caller just did something
            // (sent, armed a Receive) that may complete soon.
            self.last_progress_ns = None;
            self.current_us = self.min_us;
        }
        fn step(&mut self, io: &mut dyn WaitIo) {
            let now = io.now_ns();
            let done = io.completions();
            if self.last_progress_ns.is_none() || done != self.last_completions {
                self.last_completions = done;
                self.last_progress_ns = Some(now);
                self.current_us = self.min_us;
            }
            io.poll_firmware();
            let since = now.saturating_sub(self.last_progress_ns.unwrap_or(now));
            let sending = io
                .last_transmit_ns()
                .is_some_and(|t| now.saturating_sub(t) < self.send_spin_us.saturating_mul(1000));
            if !sending && since >= self.spin_us.saturating_mul(1000) && io.completions() == done {
                super::stall_and_back_off(io, &mut self.current_us, self.max_us);
            }
        }
    }

    /// Poll once, then block in `WaitForEvent` on a timer of `slice_us`
    /// (capped at the deadline): the CPU sleeps between firmware ticks.
    #[derive(Debug, Clone, Copy)]
    pub struct EventWait {
        /// Length of one timer wait, µs.
        pub slice_us: u64,
    }

    impl Default for EventWait {
        fn default() -> Self {
            EventWait { slice_us: 1000 }
        }
    }

    impl PollStrategy for EventWait {
        fn name(&self) -> &'static str {
            "event-wait"
        }
        fn step(&mut self, io: &mut dyn WaitIo) {
            io.poll_firmware();
            let us = cap_to_deadline(io, self.slice_us);
            io.wait_timer(us);
        }
    }
}

/// The strategy called `name` (one of [`STRATEGY_NAMES`]) with its default
/// parameters, or `None` for an unknown name.
pub fn by_name(name: &str) -> Option<Box<dyn PollStrategy>> {
    use strategies::*;
    Some(match name {
        "busy-poll" => Box::new(BusyPoll),
        "timer-only" => Box::new(TimerOnly),
        "poll-while-pending" => Box::new(PollWhilePending),
        "adaptive-backoff" => Box::new(AdaptiveBackoff::default()),
        "event-wait" => Box::new(EventWait::default()),
        "spin-backoff" => Box::new(SpinBackoff::default()),
        _ => return None,
    })
}

/// The names [`by_name`] accepts, default first.
pub const STRATEGY_NAMES: &[&str] = &[
    "spin-backoff",
    "busy-poll",
    "poll-while-pending",
    "adaptive-backoff",
    "event-wait",
    "timer-only",
];

/// The default: [`strategies::SpinBackoff`] (`spin-backoff`: Poll on
/// every step while completions come in or within 200 ms of the last
/// Transmit, otherwise Poll + Stall backing off from 10 µs to 200 µs).
///
/// Chosen from `cargo xtask bench-report` (`docs/benchmarks.md`; five
/// workloads, six strategies, simulator and OVMF side by side in one run).
/// In OVMF it is within the run-to-run noise (20-70 % spread under TCG on
/// the shared build machine) of the fastest strategy on every workload:
/// busy-poll and poll-while-pending are the fastest, adaptive-backoff is 4-5x slower on a bulk send because its stalls of up
/// to 1 ms starve the ACK processing that only Poll drives, and
/// timer-only/event-wait are 10-100x slower (OVMF's timer tick is 10 ms).
/// It matches the raw Tcp4 loop and std's TcpStream on bulk receive, bulk
/// send and round trips. Unlike busy-poll it does not spin through idle
/// waits: the simulator suite takes ~3 s of wall time with it against ~9 s
/// with busy-poll and ~1 s with adaptive-backoff.
pub(crate) fn default_strategy() -> Box<dyn PollStrategy> {
    Box::new(strategies::SpinBackoff::default())
}

/// The name of the strategy every `Net` starts with (see `default_strategy`).
pub const DEFAULT_STRATEGY: &str = "spin-backoff";

#[cfg(test)]
mod tests {
    extern crate std;
    use super::strategies::*;
    use super::*;
    use std::vec::Vec;

    /// A recording WaitIo: time advances by the calls' durations.
    #[derive(Default)]
    struct Rec {
        now: u64,
        deadline: Option<u64>,
        pending: usize,
        last_transmit: Option<u64>,
        completions: u64,
        log: Vec<(&'static str, u64)>,
    }

    impl WaitIo for Rec {
        fn now_ns(&self) -> u64 {
            self.now
        }
        fn deadline_ns(&self) -> Option<u64> {
            self.deadline
        }
        fn pending_tokens(&self) -> usize {
            self.pending
        }
        fn last_transmit_ns(&self) -> Option<u64> {
            self.last_transmit
        }
        fn poll_firmware(&mut self) {
            self.now += 100;
            self.log.push(("poll", 0));
        }
        fn stall(&mut self, us: u64) {
            self.now += us * 1000;
            self.log.push(("stall", us));
        }
        fn wait_timer(&mut self, us: u64) {
            self.now += us * 1000;
            self.log.push(("timer", us));
        }
        fn completions(&self) -> u64 {
            self.completions
        }
    }

    /// The send window ends exactly `send_spin_us` after the last Transmit:
    /// (µs since the last Transmit) -> stalls after the Poll.
    #[test]
    fn spin_backoff_send_window_boundary() {
        for (since_transmit_us, stalls) in [(4, false), (5, true), (6, true)] {
            let mut s = SpinBackoff::new(0, 5, 10, 40);
            s.begin();
            let mut io = Rec {
                now: 1_000_000,
                ..Rec::default()
            };
            io.last_transmit = Some(io.now - since_transmit_us * 1000);
            s.step(&mut io);
            let stalled = io.log.iter().any(|(what, _)| *what == "stall");
            assert_eq!(stalled, stalls, "{since_transmit_us} µs after the Transmit");
        }
    }

    /// Every name in STRATEGY_NAMES builds the strategy of that name.
    #[test]
    fn names_round_trip() {
        assert_eq!(STRATEGY_NAMES.len(), 6);
        for name in STRATEGY_NAMES {
            assert_eq!(by_name(name).map(|s| s.name()), Some(*name));
        }
        assert!(by_name("no-such-strategy").is_none());
        assert_eq!(default_strategy().name(), DEFAULT_STRATEGY);
    }

    /// What a `WaitIo` that implements only the required methods reports.
    #[test]
    fn wait_io_defaults() {
        struct Minimal;
        impl WaitIo for Minimal {
            fn now_ns(&self) -> u64 {
                0
            }
            fn deadline_ns(&self) -> Option<u64> {
                None
            }
            fn pending_tokens(&self) -> usize {
                0
            }
            fn poll_firmware(&mut self) {}
            fn stall(&mut self, _: u64) {}
            fn wait_timer(&mut self, _: u64) {}
        }
        assert_eq!(Minimal.last_transmit_ns(), None, "never transmitted");
        assert_eq!(Minimal.completions(), 0);
    }

    #[test]
    fn busy_poll_only_polls() {
        let mut io = Rec::default();
        let mut s = BusyPoll;
        s.step(&mut io);
        s.step(&mut io);
        assert_eq!(io.log, [("poll", 0), ("poll", 0)]);
    }

    #[test]
    fn timer_only_never_polls_and_respects_deadline() {
        let mut io = Rec {
            deadline: Some(300_000),
            ..Rec::default()
        };
        let mut s = TimerOnly;
        s.step(&mut io);
        assert_eq!(io.log, [("timer", 300)]);
        s.step(&mut io);
        // Past the deadline it still advances time by at least 1 µs.
        assert_eq!(io.log[1], ("timer", 1));
    }

    #[test]
    fn poll_while_pending_switches_on_pending_tokens() {
        let mut io = Rec {
            pending: 1,
            ..Rec::default()
        };
        let mut s = PollWhilePending;
        s.step(&mut io);
        io.pending = 0;
        s.step(&mut io);
        assert_eq!(io.log, [("poll", 0), ("timer", 1000)]);
    }

    #[test]
    fn adaptive_backoff_doubles_and_resets() {
        let mut io = Rec::default();
        let mut s = AdaptiveBackoff::new(10, 40);
        s.begin();
        s.step(&mut io);
        s.step(&mut io);
        s.step(&mut io);
        s.step(&mut io);
        let stalls: Vec<u64> = io
            .log
            .iter()
            .filter(|(k, _)| *k == "stall")
            .map(|(_, us)| *us)
            .collect();
        assert_eq!(stalls, [10, 20, 40, 40]);
        io.completions = 1;
        s.step(&mut io);
        assert_eq!(s.current_us(), 10);
        assert_eq!(io.log.last(), Some(&("poll", 0)));
    }

    #[test]
    fn event_wait_polls_then_sleeps() {
        let mut io = Rec::default();
        let mut s = EventWait { slice_us: 500 };
        s.step(&mut io);
        assert_eq!(io.log, [("poll", 0), ("timer", 500)]);
    }

    #[test]
    fn spin_backoff_spins_after_progress_then_backs_off() {
        let mut io = Rec::default();
        let mut s = SpinBackoff::new(1, 5, 10, 40);
        s.begin();
        // Within the spin window: Poll only (each Poll takes 100 ns here).
        for _ in 0..10 {
            s.step(&mut io);
        }
        assert!(io.log.iter().all(|(k, _)| *k == "poll"), "{:?}", io.log);
        // Past 1 µs without a completion: Poll, then stalls 10, 20, 40, 40.
        for _ in 0..4 {
            s.step(&mut io);
        }
        let stalls: Vec<u64> = io
            .log
            .iter()
            .filter(|(k, _)| *k == "stall")
            .map(|(_, us)| *us)
            .collect();
        assert_eq!(stalls, [10, 20, 40, 40]);
        // A completion restarts the spin window and the back-off.
        io.completions = 1;
        io.log.clear();
        s.step(&mut io);
        assert_eq!(io.log, [("poll", 0)]);
        assert_eq!(s.current_us(), 10);
        // A recent Transmit keeps it polling without stalls (5 µs here).
        io.last_transmit = Some(io.now);
        io.log.clear();
        for _ in 0..80 {
            s.step(&mut io);
        }
        assert!(
            io.log[..40].iter().all(|(k, _)| *k == "poll"),
            "{:?}",
            io.log
        );
        assert!(io.log.iter().any(|(k, _)| *k == "stall"), "{:?}", io.log);
    }

    #[test]
    fn cap_to_deadline_rounds_up_and_clamps() {
        let io = Rec {
            now: 1_000,
            deadline: Some(2_500),
            ..Rec::default()
        };
        assert_eq!(cap_to_deadline(&io, 1000), 2);
        assert_eq!(cap_to_deadline(&io, 1), 1);
        let io = Rec::default();
        assert_eq!(cap_to_deadline(&io, 0), 1);
    }

    #[test]
    fn default_strategy_name_matches() {
        assert_eq!(default_strategy().name(), DEFAULT_STRATEGY);
        assert!(STRATEGY_NAMES.contains(&DEFAULT_STRATEGY));
    }

    #[test]
    fn names_are_distinct() {
        let names = [
            BusyPoll.name(),
            TimerOnly.name(),
            PollWhilePending.name(),
            AdaptiveBackoff::default().name(),
            EventWait::default().name(),
            SpinBackoff::default().name(),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
