//! `select.select` over sockets of one `Net`.
//!
//! Why readiness is computed, not waited on: a socket is ready when an
//! armed token completed (data/EOF/error queued, a child accepted, a connect
//! finished) or an error is stored — all visible in the socket state after a
//! safe point. Checking never consumes data; it may arm a Receive or Accept.
//! `except` reports sockets with a pending error (SO_ERROR set or a receive
//! error), since TCP4 has no out-of-band data to report there.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::time::Duration;

use crate::api::socket::Socket;
use crate::error::{Errno, Error, Result};
use crate::firmware::Platform;
use crate::net::Net;
use crate::socket::table::State;
use crate::socket::{Readiness, SocketId};
use crate::time;

/// The ready subsets, in the order the sockets were given.
///
/// ```
/// # use efisock_sim::{ConnHandler, ConnIo, PeerConnState, Sim, SimConfig};
/// # struct Echo;
/// # impl ConnHandler for Echo {
/// #     fn poll(&mut self, io: &mut dyn ConnIo) {
/// #         let mut buf = [0; 4096];
/// #         let n = io.recv(&mut buf);
/// #         io.send(&buf[..n]);
/// #         if io.state() == PeerConnState::PeerFin {
/// #             io.close();
/// #         }
/// #     }
/// # }
/// # let sim = Sim::new(SimConfig::new(1));
/// # sim.peer_host().listen(7, Box::new(|| Box::new(Echo)));
/// # let platform = sim.platform();
/// # let net = efisock::Net::new(platform);
/// # net.set_static(
/// #     std::net::Ipv4Addr::new(10, 0, 2, 15),
/// #     std::net::Ipv4Addr::new(255, 255, 255, 0),
/// #     None,
/// # )?;
/// use std::time::Duration;
///
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// let ready = net.select(&[&s], &[], &[], Some(Duration::ZERO))?;
/// assert!(ready.is_empty(), "nothing to read yet");
/// s.sendall(b"x")?;
/// let ready = net.select(&[&s], &[], &[], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready.read, [s.fileno()]);
/// assert_eq!(s.recv(1)?, b"x", "select never consumes data");
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selected {
    /// Readable sockets.
    pub read: Vec<SocketId>,
    /// Writable sockets.
    pub write: Vec<SocketId>,
    /// Sockets with a pending error.
    pub except: Vec<SocketId>,
}

impl Selected {
    /// True when nothing is ready (the timeout expired).
    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty() && self.except.is_empty()
    }
}

/// Readiness of socket `id` (None if closed).
pub(crate) fn ready_of<P: Platform>(
    st: &State<P>,
    id: SocketId,
    budget: usize,
) -> Option<Readiness> {
    st.socks.get(&id).map(|s| s.readiness(budget))
}

/// Checks that every socket is open and belongs to `net`.
pub(crate) fn check_sockets<P: Platform + 'static>(
    net: &Net<P>,
    st: &State<P>,
    lists: &[&[&Socket<P>]],
) -> Result<()> {
    for s in lists.iter().flat_map(|l| l.iter()) {
        if !Rc::ptr_eq(&s.net.inner, &net.inner) {
            return Err(Error::os(Errno::EINVAL, "select: socket of another Net"));
        }
        if !st.socks.contains_key(&s.id) {
            return Err(Error::os(Errno::EBADF, "select"));
        }
    }
    Ok(())
}

fn select<P: Platform + 'static>(
    net: &Net<P>,
    read: &[&Socket<P>],
    write: &[&Socket<P>],
    except: &[&Socket<P>],
    timeout: Option<Duration>,
) -> Result<Selected> {
    let inner = &*net.inner;
    let mut st = inner.state.borrow_mut();
    let ctx = inner.ctx();
    inner.safe_point(&ctx, &mut st);
    check_sockets(net, &st, &[read, write, except])?;
    let budget = inner.cfg.send_budget;
    let deadline = time::deadline(ctx.now(), timeout);
    let got = inner.wait(&mut st, deadline, |_, st| {
        let mut sel = Selected::default();
        for s in read {
            if ready_of(st, s.id, budget).is_none_or(|r| r.read) {
                sel.read.push(s.id);
            }
        }
        for s in write {
            if ready_of(st, s.id, budget).is_none_or(|r| r.write) {
                sel.write.push(s.id);
            }
        }
        for s in except {
            if ready_of(st, s.id, budget).is_some_and(|r| r.except) {
                sel.except.push(s.id);
            }
        }
        (!sel.is_empty()).then_some(sel)
    });
    Ok(got.unwrap_or_default())
}

impl<P: Platform + 'static> Net<P> {
    /// `select.select`: the ready subsets of the given sockets.
    pub fn select(
        &self,
        read: &[&Socket<P>],
        write: &[&Socket<P>],
        except: &[&Socket<P>],
        timeout: Option<Duration>,
    ) -> Result<Selected> {
        select(self, read, write, except, timeout)
    }
}
