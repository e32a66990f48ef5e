//! A selectors/mio-style poller: registrations with interests and user
//! tokens, polled through the same wait loop as everything else.
//!
//! Why: `select` rebuilds its lists on every call; a server loop wants to
//! register once. Misuse mirrors Python's `selectors` with errnos (the
//! errno table has no EEXIST/ENOENT): registering a closed socket is EBADF,
//! registering twice, or modifying/unregistering an unregistered socket, is
//! EINVAL (Python raises KeyError). A registered socket that gets closed is
//! reported once as an event with `error` and `hup` set, then dropped.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::ops::BitOr;
use core::time::Duration;

use crate::api::socket::Socket;
use crate::error::{Errno, Error, Result};
use crate::firmware::Platform;
use crate::net::Net;
use crate::socket::SocketId;
use crate::time;

/// What a registration waits for.
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
/// use efisock::Interest;
///
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// let mut poller = net.poller();
/// poller.register(&s, Interest::READABLE | Interest::WRITABLE, 1)?;
/// let events = poller.poll(Some(std::time::Duration::ZERO))?;
/// assert!(events[0].writable && !events[0].readable);
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    read: bool,
    write: bool,
}

impl Interest {
    /// Readable.
    pub const READABLE: Interest = Interest {
        read: true,
        write: false,
    };
    /// Writable.
    pub const WRITABLE: Interest = Interest {
        read: false,
        write: true,
    };
    /// Both.
    pub const BOTH: Interest = Interest {
        read: true,
        write: true,
    };

    /// Includes readability.
    pub fn is_readable(self) -> bool {
        self.read
    }

    /// Includes writability.
    pub fn is_writable(self) -> bool {
        self.write
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest {
            read: self.read || rhs.read,
            write: self.write || rhs.write,
        }
    }
}

/// One ready registration.
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
/// use efisock::Interest;
/// use std::time::Duration;
///
/// let s = net.socket()?;
/// s.connect("10.0.2.2:7".parse().unwrap())?;
/// s.sendall(b"x")?;
/// let mut poller = net.poller();
/// poller.register(&s, Interest::READABLE, 42)?;
/// let events = poller.poll(Some(Duration::from_secs(5)))?;
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].token, 42);
/// assert!(events[0].readable && !events[0].hup && !events[0].error);
/// # Ok::<(), efisock::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollEvent {
    /// The user token given at registration.
    pub token: usize,
    /// Readable (and readability was of interest).
    pub readable: bool,
    /// Writable (and writability was of interest).
    pub writable: bool,
    /// A pending error (always reported).
    pub error: bool,
    /// Peer closed / reset, or the socket was closed (always reported).
    pub hup: bool,
}

/// Registrations over one `Net`.
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
/// use efisock::Interest;
/// use std::time::Duration;
///
/// let a = net.socket()?;
/// let b = net.socket()?;
/// a.connect("10.0.2.2:7".parse().unwrap())?;
/// b.connect("10.0.2.2:7".parse().unwrap())?;
/// let mut poller = net.poller();
/// poller.register(&a, Interest::READABLE, 0)?;
/// poller.register(&b, Interest::READABLE, 1)?;
/// b.sendall(b"echo me")?;
/// let events = poller.poll(Some(Duration::from_secs(5)))?;
/// assert_eq!(events.iter().map(|e| e.token).collect::<Vec<_>>(), [1]);
/// # Ok::<(), efisock::Error>(())
/// ```
pub struct Poller<P: Platform + 'static> {
    net: Net<P>,
    regs: BTreeMap<SocketId, (Interest, usize)>,
}

impl<P: Platform + 'static> Net<P> {
    /// A selectors/mio-style poller over this `Net`'s sockets.
    pub fn poller(&self) -> Poller<P> {
        Poller {
            net: self.clone(),
            regs: BTreeMap::new(),
        }
    }
}

impl<P: Platform + 'static> Poller<P> {
    fn check(&self, s: &Socket<P>, api: &'static str) -> Result<()> {
        if !Rc::ptr_eq(&s.net.inner, &self.net.inner) {
            return Err(Error::os(Errno::EINVAL, "poller: socket of another Net"));
        }
        if !self.net.inner.state.borrow().socks.contains_key(&s.id) {
            return Err(Error::os(Errno::EBADF, api));
        }
        Ok(())
    }

    /// Registers `s`; EINVAL if already registered.
    pub fn register(&mut self, s: &Socket<P>, interest: Interest, token: usize) -> Result<()> {
        self.check(s, "register")?;
        if self.regs.contains_key(&s.id) {
            return Err(Error::os(Errno::EINVAL, "register: already registered"));
        }
        self.regs.insert(s.id, (interest, token));
        Ok(())
    }

    /// Changes the interest and token of a registered socket.
    pub fn modify(&mut self, s: &Socket<P>, interest: Interest, token: usize) -> Result<()> {
        self.check(s, "modify")?;
        match self.regs.get_mut(&s.id) {
            Some(r) => {
                *r = (interest, token);
                Ok(())
            }
            None => Err(Error::os(Errno::EINVAL, "modify: not registered")),
        }
    }

    /// Removes a registration (a closed socket may still be unregistered).
    pub fn unregister(&mut self, s: &Socket<P>) -> Result<()> {
        match self.regs.remove(&s.id) {
            Some(_) => Ok(()),
            None => Err(Error::os(Errno::EINVAL, "unregister: not registered")),
        }
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.regs.len()
    }

    /// True without registrations.
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }

    /// Waits until a registration is ready or `timeout` passes (None:
    /// forever; zero: check once). Events come in fileno order.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<Vec<PollEvent>> {
        let inner = &*self.net.inner;
        let mut st = inner.state.borrow_mut();
        let ctx = inner.ctx();
        let budget = inner.cfg.send_budget;
        let deadline = time::deadline(ctx.now(), timeout);
        let regs = &self.regs;
        let mut gone = Vec::new();
        let events = inner.wait(&mut st, deadline, |_, st| {
            let mut ev = Vec::new();
            gone.clear();
            for (id, (interest, token)) in regs {
                match st.socks.get(id) {
                    None => {
                        gone.push(*id);
                        ev.push(PollEvent {
                            token: *token,
                            readable: false,
                            writable: false,
                            error: true,
                            hup: true,
                        });
                    }
                    Some(s) => {
                        let r = s.readiness(budget);
                        let e = PollEvent {
                            token: *token,
                            readable: interest.read && r.read,
                            writable: interest.write && r.write,
                            error: r.except,
                            hup: r.hup,
                        };
                        if e.readable || e.writable || e.error || e.hup {
                            ev.push(e);
                        }
                    }
                }
            }
            (!ev.is_empty()).then_some(ev)
        });
        for id in gone {
            self.regs.remove(&id);
        }
        Ok(events.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interests_combine() {
        assert_eq!(Interest::READABLE | Interest::WRITABLE, Interest::BOTH);
        assert!(Interest::BOTH.is_readable() && Interest::BOTH.is_writable());
        assert!(!Interest::READABLE.is_writable());
        assert!(Interest::READABLE.is_readable());
        assert!(!Interest::WRITABLE.is_readable());
        assert!(Interest::WRITABLE.is_writable());
    }
}
