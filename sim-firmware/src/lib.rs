//! # efisock-sim: EDK2's TCP4 on the host
//!
//! A deterministic, seeded simulation of the firmware services efisock uses
//! (`efisock::firmware::Platform`): the DXE event system with TPLs and a
//! virtual clock, guarded pool memory, `EFI_IP4_CONFIG2_PROTOCOL` with a
//! DHCP server, and `EFI_TCP4_PROTOCOL` children that replay EDK2's statuses
//! and completion timing on top of smoltcp, talking over simulated links to
//! peer hosts that run sans-IO applications ([`ConnHandler`]).
//!
//! Why: the socket layer must be exercised against the firmware's quirks, its
//! timing, and its ownership contract, reproducibly (one seed = one run), and
//! misuse must be reported like a firmware ASSERT ([`Breach`]) instead of as
//! memory corruption on a real machine.
//!
//! # Using it
//! Build a world from a seed, give a peer host a service, and drive the
//! socket layer (or the raw `efisock::firmware` traits) over
//! [`Sim::platform`]. Here the peer at 10.0.2.2 echoes on port 7:
//! ```
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::Duration;
//! use efisock::Net;
//! use efisock_sim::{ConnHandler, ConnIo, Sim, SimConfig};
//!
//! struct Echo;
//! impl ConnHandler for Echo {
//!     fn poll(&mut self, io: &mut dyn ConnIo) {
//!         let mut buf = [0u8; 512];
//!         let n = io.recv(&mut buf);
//!         io.send(&buf[..n]);
//!     }
//! }
//!
//! let sim = Sim::new(SimConfig::new(0x5EED));
//! sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
//! let net = Net::new(sim.platform()); // `SimPlatform` implements `Platform`
//! let addr = net.dhcp(Duration::from_secs(30)).unwrap(); // the simulated DHCP server
//! assert_eq!(addr, Ipv4Addr::new(10, 0, 2, 15));
//! let sock = net.socket().unwrap();
//! sock.connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 7)).unwrap();
//! sock.sendall(b"ping").unwrap();
//! assert_eq!(sock.recv(64).unwrap(), b"ping");
//! sock.close().unwrap();
//! net.shutdown(Duration::from_secs(5)).unwrap();
//! // Leaked children, events or pool memory, and contract breaches:
//! assert!(sim.finish().is_empty());
//! assert!(sim.now_ns() > 0); // virtual time, from the cost model
//! ```
//!
//! # Timing model
//! Virtual nanoseconds. Every firmware call costs `CostModel::per_call_ns`
//! (Poll adds `poll_ns`, each SUT frame `per_frame_ns`, copies
//! `per_byte_copy_ps`). Frames reaching the SUT wait in a 64-frame NIC queue
//! and are processed one per 10 ms MNP tick or one per `Tcp4.Poll`; after
//! each, the "DPCs" complete Receive (min(available, DataLength)), Accept,
//! Connect and Close tokens. Egress (SYN, data, RST) leaves inside the call.
//! Peer hosts process frames on arrival.
//!
//! # Decisions, tape and replay
//! Every nondeterministic choice goes through one [`Decider`]:
//! `choose(kind, n)` gives a value in `0..n` where **0 is the
//! EDK2-faithful / no-fault default**. The [`DecisionKind`]s: `NotifyPick`
//! (which runnable notify of the highest pending TPL runs; 0 = FIFO head),
//! `NotifyDefer` (deliver at this delivery point or defer, at most
//! [`MAX_DEFERRALS`] times), `CompletionInCall` (a completion produced by
//! a Tcp4 call notified as the call returns, or at the next tick/Poll),
//! `PacketFate` (deliver, drop, duplicate, reorder, latency spike),
//! `LinkDelay` (magnitudes of link jitter, reorder and spike delays),
//! `TimerJitter` (timer events and MNP ticks up to 2 ms late) and
//! `StatusInjection` (an unusual but legal status: OUT_OF_RESOURCES from
//! CreateEvent/AllocatePool/Transmit/Receive/Accept, NO_MAPPING from
//! Configure while DHCP runs, NOT_READY/DEVICE_ERROR from Poll, and a
//! pending Receive/Transmit completing with CONNECTION_RESET (a real reset:
//! RST to the peer, CLOSED) or a pending Connect with TIMEOUT; each logged
//! in [`Sim::injected`]).
//!
//! The values come from the [`Scheduler`] (notify decisions: `Fifo` =
//! always 0, `Uniform`, or PCT with a depth) and from the fault knobs
//! ([`Faults`] and [`LinkConfig`]), both seeded, unless
//! [`SimConfig::tape`] holds a [`Tape`]: then decision `i` takes
//! `tape[i] % n`, and 0 past its end, so the empty tape is the faithful
//! run. Which decisions exist depends only on the configuration (FIFO has
//! no notify decisions; a fault kind exists only while its knob is on), so
//! [`Sim::tape`] replayed with the same configuration reproduces the run
//! bit for bit: same [`Sim::decision_hash`], [`Sim::decisions`],
//! [`Sim::trace`] and [`Sim::stats`]. The default configuration (FIFO, no
//! faults) takes no decisions at all. [`Faults::swarm`] draws a swarm
//! configuration from a seed, [`Sim::heal`] turns all faults off for a
//! liveness phase, and `Tape`, `Scheduler` and `Faults` have text forms
//! that parse back, for replay strings.
//!
//! # Known deviations from EDK2 (documented, not hidden)
//! - The per-instance lock is held while the notify functions of completions
//!   produced by a call run (as that call returns), so re-entering the same
//!   instance from such a notify gets ACCESS_DENIED. (EDK2 releases the lock
//!   just before RestoreTPL; the stricter behaviour shows that the socket
//!   layer never re-enters an instance from a notify.)
//! - A Transmit completes when its last byte is cut into a segment, as in
//!   EDK2 (TcpOutput.c `TcpGetSegmentSock` -> `SockDataSent`): the driver
//!   runs EDK2's sender (`TcpDataToSend`: peer window, congestion window
//!   from one MSS with slow start and congestion avoidance, NewReno fast
//!   recovery, sender SWS, Nagle, several segments per call only while each
//!   is a full MSS) and hands smoltcp only what it allows; smoltcp (no
//!   congestion control, Nagle off) sends it at once. The peer's window
//!   comes from the frames the driver hands smoltcp. SendBufferSize bounds
//!   the bytes not yet cut; a Transmit joins the buffer whole while 2 KiB
//!   of it are free, and Transmit never returns NOT_READY. [code-read]
//!   Where it differs: cwnd collapses on an RTO the model infers (no ACK
//!   progress for its RTO) rather than on smoltcp's own timer; smoltcp
//!   retransmits go-back-N with its own fast retransmit.
//! - A zero window is probed without end from the persist timer (first at
//!   the RTO, doubling to 60 s), as EDK2 does. EDK2's probe is an empty ACK
//!   one below SND.NXT; the simulator's is smoltcp's keep-alive segment (one
//!   below SND.NXT, carrying one byte the peer already has), which draws the
//!   same ACK and cuts nothing. The retransmission watchdog below does not
//!   run while the peer's window is zero.
//! - Retransmission timing is smoltcp's after the handshake: RTO from its
//!   RTT sample, at least 1 s, doubling up to [`MAX_RTO_NS`], which is
//!   EDK2's schedule after its own handshake sample (TcpInput.c
//!   `TcpComputeRtt`). An unanswered SYN goes out at EDK2's times (0, 3, 9,
//!   21, 45 s: initial RTO 3 s; the driver holds back smoltcp's 1 s
//!   schedule and re-sends the SYN); a SYN-ACK keeps smoltcp's schedule
//!   (from 1 s, EDK2: 3 s); a half-open SYN_RCVD is dropped with a RST
//!   after ConnectionTimeout (75 s by default) from its SYN, exactly rather
//!   than on a 200 ms tick.
//! - Delayed ACKs: at once for a segment with PSH or FIN, with the second
//!   segment (smoltcp: once more than one MSS is unacknowledged), else at
//!   the next 200 ms tick; ticks fall at multiples of 200 ms from boot
//!   (EDK2: from its driver start, and a tick runs only when DPCs are
//!   dispatched). The connect, FIN_WAIT_2, TIME_WAIT, persist and SYN
//!   timers fire at exact deadlines rather than on ticks.
//! - Keep-alive is not modelled. DataRetries is modelled as a watchdog: no
//!   ACK progress for EDK2's whole back-off schedule (483 s for 12 retries
//!   from a 1 s RTO) closes the connection with TIMEOUT, rather than a
//!   count of timer expiries.
//! - Hosts send no ICMP; urgent data is smoltcp's; the SUT's frames carry
//!   EDK2's ISN, IP header and SYN options ([`Sim::start_capture`] shows
//!   them), but no timestamps after the handshake, which EDK2 sends only to
//!   peers that offer them (no simulated peer does); `Routes` validates and
//!   changes nothing (every
//!   address is routed directly); `GetModeData` zero-fills `Ip4ModeData`.
//! - Tcp4.Poll returns SUCCESS, as EDK2's always does (TcpDispatcher.c
//!   `SOCK_POLL` discards the IP4 Poll's status). The fault knob
//!   `non_edk2_poll` (not EDK2, never in the swarm) makes it return
//!   NOT_READY, TIMEOUT or DEVICE_ERROR as other firmware may.
//! - A completion notified late (`completions_inside_call` off, or a
//!   `CompletionInCall` decision) has its token Status written at once and
//!   its event signalled at the next MNP tick / Poll.
//! - Under non-FIFO schedulers notifies may also be deferred at RestoreTPL
//!   and during waits, not only at call boundaries.
//! - WaitForEvent that can never return records `WouldHangForever` and
//!   returns [`HANG_STATUS`] (`DEVICE_ERROR`).

mod boot;
mod breach;
mod config;
mod decide;
mod demux;
mod device;
mod host;
mod host_wire;
mod ip4config;
mod pool;
pub mod rng;
mod sim;
mod tcp4;
mod tokens;
mod world;

pub use boot::HANG_STATUS;
pub use breach::{Breach, BreachKind};
pub use config::{
    BreachPolicy, CostModel, DhcpConfig, Faults, LinkConfig, NotifyMode, ParseFaultsError, Profile,
    Quirks, SimConfig, UnknownProfile, UnknownQuirk,
};
pub use decide::{
    Decider, DecisionKind, MAX_DEFERRALS, MAX_RUN, PCT_INITIAL_HORIZON, ParseSchedulerError,
    ParseTapeError, Scheduler, Tape, TapeNumber,
};
pub use host::{ConnHandler, ConnIo, MAX_RTO_NS, PeerConnState};
pub use host_wire::WireSeen;
pub use sim::{
    DEADLINE_REPEAT_NS, Sim, SimBoot, SimHost, SimIp4Config2, SimPlatform, SimTcp4Service,
};
pub use tcp4::NIC_QUEUE_FRAMES;
pub use tcp4::SimTcp4;
pub use tcp4::{IsnScheme, TCP_TICK_NS, WireDirection, WireFrame, write_pcap};
pub use tokens::CANARY;
pub use world::{Injection, SimStats};
