//! `std::io::Read`/`Write` for connected sockets (feature `std`).
//!
//! Why: lets sockets plug into `BufReader`, `io::copy` and friends. Errors
//! keep their errno, call and EFI status behind the closest `io::ErrorKind`
//! (EAGAIN → WouldBlock, timeout → TimedOut).

use std::io;

use crate::api::socket::Socket;
use crate::firmware::Platform;

impl<P: Platform + 'static> io::Read for &Socket<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.recv_into(buf)?)
    }
}

impl<P: Platform + 'static> io::Write for &Socket<P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.send(buf)?)
    }
    /// Data handed to `write` is already queued in Transmit tokens that
    /// the firmware will send; there is no user-space buffer to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<P: Platform + 'static> io::Read for Socket<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl<P: Platform + 'static> io::Write for Socket<P> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}
