//! One completion token with its data, buffer and event in pool memory.

use alloc::vec::Vec;
use core::mem::{ManuallyDrop, size_of};
use core::ptr;

use super::error::RawError;
use super::event::RawEvent;
use super::layout::{ReceiveData1, TransmitData1};
use super::pool::PoolBuf;
use crate::firmware::{
    Boolean, BootServices, Event, Handle, Status, Tcp4, Tcp4CloseToken, Tcp4CompletionToken,
    Tcp4ConnectionToken, Tcp4IoToken, Tcp4ListenToken, Tcp4Packet, Tcp4ReceiveData,
    Tcp4TransmitData,
};

/// What a [`RawToken`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A `Tcp4ConnectionToken` for `Connect`.
    Connect,
    /// A `Tcp4ListenToken` for `Accept`; the new child's handle is read with
    /// [`RawToken::accepted`].
    Accept,
    /// A `Tcp4IoToken` for `Receive` with a buffer of this many bytes.
    Receive(usize),
    /// A `Tcp4IoToken` for `Transmit` carrying these bytes (the buffer keeps
    /// their length as its capacity, see [`RawToken::rearm_transmit`]).
    Transmit(Vec<u8>),
    /// A `Tcp4CloseToken` for `Close`.
    Close {
        /// `AbortOnClose`: reset instead of a graceful FIN.
        abort: bool,
    },
}

/// Bytes reserved for the token at the start of the block (the largest,
/// `Tcp4IoToken`, is 24).
const TOKEN_AREA: usize = 64;
/// Bytes reserved for the one-fragment transmit or receive data.
const DATA_AREA: usize = 64;

const _: () = {
    assert!(size_of::<Tcp4ConnectionToken>() <= TOKEN_AREA);
    assert!(size_of::<Tcp4ListenToken>() <= TOKEN_AREA);
    assert!(size_of::<Tcp4IoToken>() <= TOKEN_AREA);
    assert!(size_of::<Tcp4CloseToken>() <= TOKEN_AREA);
    assert!(size_of::<TransmitData1>() <= DATA_AREA);
    assert!(size_of::<ReceiveData1>() <= DATA_AREA);
};

/// One token in a single pool block laid out as `[token][data + 1
/// fragment][buffer]`, with its own plain event.
///
/// [`submit`](Self::submit) hands it to the firmware; [`done`](Self::done)
/// sees the event signalled and takes it back. Dropped while the firmware
/// may own it, it leaks block and event (module docs).
#[derive(Debug)]
pub struct RawToken<'a, B: BootServices> {
    event: ManuallyDrop<RawEvent<'a, B>>,
    block: ManuallyDrop<PoolBuf<'a, B>>,
    kind: TokenKind,
    /// Buffer bytes after the data area.
    capacity: usize,
    /// Submitted with `SUCCESS` and not yet seen signalled.
    in_flight: bool,
    /// The event was seen signalled since the token was last armed.
    seen: bool,
}

impl<'a, B: BootServices> RawToken<'a, B> {
    /// A token of `kind` with a fresh event: `CreateEvent`, then one
    /// `AllocatePool` for token, data and buffer.
    pub fn new(boot: &'a B, kind: TokenKind) -> Result<Self, RawError> {
        let event = RawEvent::new(boot)?;
        let capacity = match &kind {
            TokenKind::Receive(n) => *n,
            TokenKind::Transmit(bytes) => bytes.len(),
            _ => 0,
        };
        let block = PoolBuf::zeroed(boot, TOKEN_AREA + DATA_AREA + capacity)?;
        let mut token = RawToken {
            event: ManuallyDrop::new(event),
            block: ManuallyDrop::new(block),
            kind,
            capacity,
            in_flight: false,
            seen: false,
        };
        token.init();
        Ok(token)
    }

    fn completion(&self) -> *mut Tcp4CompletionToken {
        self.block.as_ptr()
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: the block is at least TOKEN_AREA + DATA_AREA bytes.
        unsafe { self.block.as_ptr::<u8>().add(TOKEN_AREA) }
    }

    fn buffer(&self) -> *mut u8 {
        // SAFETY: as in `data`; the buffer starts right after the data area.
        unsafe { self.block.as_ptr::<u8>().add(TOKEN_AREA + DATA_AREA) }
    }

    /// Writes the token for its kind, `status` NOT_READY; called while the
    /// firmware does not own the block.
    fn init(&mut self) {
        let base = self.block.as_ptr::<u8>();
        let completion = self.fresh_completion();
        match &self.kind {
            TokenKind::Connect => {
                // SAFETY: the block starts with TOKEN_AREA bytes, enough and
                // aligned (POOL_ALIGN) for the token (const assertions above).
                unsafe {
                    base.cast::<Tcp4ConnectionToken>()
                        .write(Tcp4ConnectionToken {
                            completion_token: completion,
                        })
                };
            }
            TokenKind::Accept => {
                // SAFETY: as for Connect.
                unsafe {
                    base.cast::<Tcp4ListenToken>().write(Tcp4ListenToken {
                        completion_token: completion,
                        new_child_handle: ptr::null_mut(),
                    })
                };
            }
            TokenKind::Close { abort } => {
                let abort_on_close = if *abort {
                    Boolean::TRUE
                } else {
                    Boolean::FALSE
                };
                // SAFETY: as for Connect.
                unsafe {
                    base.cast::<Tcp4CloseToken>().write(Tcp4CloseToken {
                        completion_token: completion,
                        abort_on_close,
                    })
                };
            }
            TokenKind::Receive(n) => {
                let n = *n;
                self.write_io(completion, n, false);
            }
            TokenKind::Transmit(bytes) => {
                let len = bytes.len();
                // SAFETY: the buffer holds `capacity == bytes.len()` bytes and
                // is a different allocation from `bytes`.
                unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.buffer(), len) };
                self.write_io(completion, len, true);
            }
        }
    }

    /// Writes the one-fragment transmit or receive data for `len` buffer
    /// bytes and the I/O token pointing at it.
    fn write_io(&self, completion: Tcp4CompletionToken, len: usize, transmit: bool) {
        let (buf, len) = (self.buffer(), len as u32);
        let packet = if transmit {
            let tx = self.data().cast::<TransmitData1>();
            // SAFETY: the data area holds a TransmitData1 (const assertions),
            // 8-aligned; the firmware does not own the block.
            unsafe { tx.write(TransmitData1::one(buf, len)) };
            Tcp4Packet {
                tx_data: tx.cast::<Tcp4TransmitData>(),
            }
        } else {
            let rx = self.data().cast::<ReceiveData1>();
            // SAFETY: as for the transmit data.
            unsafe { rx.write(ReceiveData1::one(buf, len)) };
            Tcp4Packet {
                rx_data: rx.cast::<Tcp4ReceiveData>(),
            }
        };
        // SAFETY: the token area holds a Tcp4IoToken (const assertions); the
        // fragment stays inside the buffer because callers pass
        // `len <= capacity`; the firmware does not own the block.
        unsafe {
            self.block.as_ptr::<Tcp4IoToken>().write(Tcp4IoToken {
                completion_token: completion,
                packet,
            })
        };
    }

    /// A completion token on this token's event, not yet completed.
    fn fresh_completion(&self) -> Tcp4CompletionToken {
        Tcp4CompletionToken {
            event: self.event.handle(),
            status: Status::NOT_READY,
        }
    }

    /// The token's event.
    pub fn event(&self) -> Event {
        self.event.handle()
    }

    /// The token pointer as the firmware sees it (a `Tcp4ConnectionToken`,
    /// `Tcp4IoToken` or `Tcp4CloseToken` by kind), for tests that must pass
    /// it to the firmware themselves.
    pub fn as_ptr<T>(&self) -> *mut T {
        self.block.as_ptr()
    }

    /// Submits the token with the call of its kind. On `SUCCESS` the firmware
    /// owns it until [`done`](Self::done) sees it signalled. A token already
    /// in flight is not submitted again (`ALREADY_STARTED`).
    pub fn submit<T: Tcp4>(&mut self, tcp: &T) -> Status {
        if self.in_flight {
            return Status::ALREADY_STARTED;
        }
        let base = self.block.as_ptr::<u8>();
        // SAFETY: `init`/`rearm_*` wrote a token of the call's type at the
        // start of the block; the block and the event stay alive while the
        // firmware owns them (`in_flight` is set below on SUCCESS and keeps
        // Drop from freeing them).
        let status = unsafe {
            match self.kind {
                TokenKind::Connect => tcp.connect(base.cast()),
                TokenKind::Accept => tcp.accept(base.cast()),
                TokenKind::Close { .. } => tcp.close(base.cast()),
                TokenKind::Receive(_) => tcp.receive(base.cast()),
                TokenKind::Transmit(_) => tcp.transmit(base.cast()),
            }
        };
        if status == Status::SUCCESS {
            self.in_flight = true;
        }
        status
    }

    /// `Cancel` of this token.
    pub fn cancel<T: Tcp4>(&self, tcp: &T) -> Status {
        // SAFETY: the completion token is the first field of every token kind
        // and lives in pool memory that outlives the call.
        unsafe { tcp.cancel(self.completion()) }
    }

    /// Whether the firmware has signalled the token since it was armed
    /// (`CheckEvent` until seen once, then remembered without further calls).
    pub fn done(&mut self) -> bool {
        if !self.seen && self.event.signalled() {
            self.seen = true;
            self.in_flight = false;
        }
        self.seen
    }

    /// Whether the token was submitted and not yet seen signalled.
    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The status the firmware wrote (NOT_READY until it completes).
    pub fn status(&self) -> Status {
        // SAFETY: the completion token is initialised and in pool memory; a
        // volatile read because the firmware writes it behind our back.
        unsafe { ptr::read_volatile(ptr::addr_of!((*self.completion()).status)) }
    }

    /// For a Receive token: the bytes the firmware delivered (empty for other
    /// kinds and while in flight).
    pub fn received(&self) -> &[u8] {
        if self.in_flight || !matches!(self.kind, TokenKind::Receive(_)) {
            return &[];
        }
        let rx = self.data().cast::<Tcp4ReceiveData>();
        // SAFETY: not in flight, so the firmware no longer writes the block;
        // DataLength is what it placed in the buffer, clamped to the buffer.
        unsafe {
            let len =
                (ptr::read_volatile(ptr::addr_of!((*rx).data_length)) as usize).min(self.capacity);
            core::slice::from_raw_parts(self.buffer(), len)
        }
    }

    /// For an Accept token that completed with `SUCCESS`: the new child's
    /// handle (`None` for other kinds, while in flight, or on failure).
    pub fn accepted(&self) -> Option<Handle> {
        if self.in_flight || self.kind != TokenKind::Accept || self.status() != Status::SUCCESS {
            return None;
        }
        // SAFETY: not in flight, so the firmware no longer writes the block,
        // which starts with the Tcp4ListenToken written by `init`.
        let handle = unsafe {
            ptr::read_volatile(ptr::addr_of!(
                (*self.block.as_ptr::<Tcp4ListenToken>()).new_child_handle
            ))
        };
        (!handle.is_null()).then_some(handle)
    }

    /// Makes a Receive token ready for another `Receive` of up to `len`
    /// bytes (clamped to its buffer). Fails while in flight or for another
    /// kind.
    pub fn rearm_receive(&mut self, len: usize) -> Result<(), RawError> {
        if self.in_flight || !matches!(self.kind, TokenKind::Receive(_)) {
            return Err(RawError::new("Receive", Status::ALREADY_STARTED));
        }
        self.write_io(self.fresh_completion(), len.min(self.capacity), false);
        self.seen = false;
        Ok(())
    }

    /// Makes a Transmit token ready to send `bytes` (at most its capacity;
    /// returns how many it took). Fails while in flight or for another kind.
    pub fn rearm_transmit(&mut self, bytes: &[u8]) -> Result<usize, RawError> {
        if self.in_flight || !matches!(self.kind, TokenKind::Transmit(_)) {
            return Err(RawError::new("Transmit", Status::ALREADY_STARTED));
        }
        let len = bytes.len().min(self.capacity);
        // SAFETY: not in flight, so the firmware does not own the buffer; it
        // holds `capacity >= len` bytes, separate from `bytes`.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.buffer(), len) };
        self.write_io(self.fresh_completion(), len, true);
        self.seen = false;
        Ok(len)
    }
}

impl<B: BootServices> Drop for RawToken<'_, B> {
    /// Closes the event and frees the block, unless the token is in flight:
    /// then the firmware may still write both, and both are leaked.
    fn drop(&mut self) {
        if self.in_flight {
            return;
        }
        // SAFETY: not in flight, so the firmware owns neither; each field is
        // dropped exactly once and not used afterwards.
        unsafe {
            ManuallyDrop::drop(&mut self.event);
            ManuallyDrop::drop(&mut self.block);
        }
    }
}
