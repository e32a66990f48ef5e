//! Token slots: firmware-owned memory with an explicit state machine.
//!
//! Why: the firmware owns a token, its rx/tx data, fragment table, buffer
//! and event from a `SUCCESS` return until it signals the event. A slot keeps
//! all of these in `allocate_pool` memory together with the notify context,
//! and its [`SlotState`] makes "never free or touch while Pending" a checked
//! rule rather than a convention. Slots whose socket went away while Pending
//! belong to the graveyard (see `socket::teardown`) and are freed only once
//! signalled.

use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::{self, addr_of_mut};

use crate::calls::completion::{CompletionQueue, SlotHeader, notify_trampoline};
use crate::calls::{Ctx, St};
use crate::error::FirmwareCall;
use crate::firmware::{
    Boolean, Event, EventType, Handle, Platform, Status, Tcp4, Tcp4CloseToken, Tcp4CompletionToken,
    Tcp4ConnectionToken, Tcp4IoToken, Tcp4ListenToken, Tcp4ReceiveData, Tcp4TransmitData, Tpl,
};
use crate::raw::{ReceiveData1, TransmitData1};

/// Index into the slot table.
pub(crate) type SlotId = u32;

/// What a slot's token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Connect,
    Accept,
    Transmit,
    Receive,
    Close,
}

impl TokenKind {
    /// The name used in `efisock::completion` traces.
    pub const fn name(self) -> &'static str {
        match self {
            TokenKind::Connect => "connect",
            TokenKind::Accept => "accept",
            TokenKind::Transmit => "transmit",
            TokenKind::Receive => "receive",
            TokenKind::Close => "close",
        }
    }
}

/// The life of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Owned by the core; may be filled, submitted or freed.
    Idle,
    /// Owned by the firmware until its event is signalled.
    Pending,
    /// Signalled with this status; owned by the core again.
    Done(Status),
}

/// A transition the state machine forbids (a core bug, reported not hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadTransition {
    pub from: SlotState,
    pub op: &'static str,
}

impl SlotState {
    /// Idle → Pending (before the firmware call).
    pub fn submit(self) -> Result<Self, BadTransition> {
        match self {
            SlotState::Idle => Ok(SlotState::Pending),
            from => Err(BadTransition { from, op: "submit" }),
        }
    }
    /// Pending → Idle (the call returned an error: the firmware took nothing).
    pub fn rejected(self) -> Result<Self, BadTransition> {
        match self {
            SlotState::Pending => Ok(SlotState::Idle),
            from => Err(BadTransition {
                from,
                op: "rejected",
            }),
        }
    }
    /// Pending → Done(status) (the event was signalled).
    pub fn complete(self, status: Status) -> Result<Self, BadTransition> {
        match self {
            SlotState::Pending => Ok(SlotState::Done(status)),
            from => Err(BadTransition {
                from,
                op: "complete",
            }),
        }
    }
    /// Done → Idle, yielding the status.
    pub fn take(self) -> Result<(Self, Status), BadTransition> {
        match self {
            SlotState::Done(s) => Ok((SlotState::Idle, s)),
            from => Err(BadTransition { from, op: "take" }),
        }
    }
    /// True unless the firmware owns the slot.
    pub fn freeable(self) -> bool {
        !matches!(self, SlotState::Pending)
    }
    /// True once signalled.
    pub fn is_done(self) -> bool {
        matches!(self, SlotState::Done(_))
    }
}

/// Storage for any of the four token layouts (all start with the
/// completion token; the size is checked below).
#[repr(C, align(8))]
struct TokenStorage([u8; 32]);

const _: () = {
    use core::mem::{align_of, size_of};
    assert!(size_of::<Tcp4IoToken>() <= size_of::<TokenStorage>());
    assert!(size_of::<Tcp4ListenToken>() <= size_of::<TokenStorage>());
    assert!(size_of::<Tcp4CloseToken>() <= size_of::<TokenStorage>());
    assert!(size_of::<Tcp4ConnectionToken>() <= size_of::<TokenStorage>());
    assert!(align_of::<Tcp4IoToken>() <= align_of::<TokenStorage>());
};

/// The pool block of one slot. The header comes first: it is the notify context.
#[repr(C)]
struct SlotBlock {
    header: SlotHeader,
    token: TokenStorage,
    rx: ReceiveData1,
    tx: TransmitData1,
}

// The fragment must sit exactly where the `[T; 0]` table starts.
const _: () = {
    assert!(core::mem::offset_of!(SlotBlock, header) == 0);
};

/// One slot: pool block, event, optional data buffer, state.
pub(crate) struct Slot {
    pub kind: TokenKind,
    pub state: SlotState,
    pub instance: u64,
    block: *mut SlotBlock,
    event: Event,
    buf: *mut u8,
    /// Buffer capacity in bytes (0 for Connect/Accept/Close).
    pub cap: usize,
    /// Bytes queued by the current Transmit.
    pub len: usize,
}

/// Why a slot could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// Every slot is in use (the completion queue bound).
    TableFull,
    /// The firmware refused pool memory or an event.
    Firmware(Status),
}

/// All token slots of one `Net`; its size bounds the completion queue.
pub(crate) struct SlotTable {
    slots: Vec<Option<Slot>>,
    free: Vec<SlotId>,
    limit: usize,
    live: usize,
    /// When the last Transmit was submitted (firmware clock, ns).
    last_transmit_ns: Option<u64>,
}

impl SlotTable {
    /// A table of at most `limit` live slots.
    pub fn new(limit: usize) -> Self {
        SlotTable {
            slots: Vec::new(),
            free: Vec::new(),
            limit,
            live: 0,
            last_transmit_ns: None,
        }
    }

    /// When the last Transmit was submitted (firmware clock, ns).
    pub fn last_transmit_ns(&self) -> Option<u64> {
        self.last_transmit_ns
    }

    /// Slots the firmware owns.
    pub fn pending(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.state == SlotState::Pending)
            .count()
    }

    /// The slot `id`, if live.
    pub fn get(&self, id: SlotId) -> Option<&Slot> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// The slot `id`, if live.
    pub fn get_mut(&mut self, id: SlotId) -> Option<&mut Slot> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// State of slot `id` (Idle if it does not exist: nothing pending).
    pub fn state(&self, id: SlotId) -> SlotState {
        self.get(id).map_or(SlotState::Idle, |s| s.state)
    }

    /// Creates a slot with a `cap`-byte buffer (0: none).
    pub fn alloc<P: Platform>(
        &mut self,
        ctx: &Ctx<'_, P>,
        kind: TokenKind,
        cap: usize,
        instance: u64,
    ) -> Result<SlotId, AllocError> {
        if self.live >= self.limit {
            return Err(AllocError::TableFull);
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as SlotId
            }
        };
        match Self::build(ctx, ctx.queue, kind, cap, instance, id) {
            Ok(slot) => {
                self.slots[id as usize] = Some(slot);
                self.live += 1;
                Ok(id)
            }
            Err(st) => {
                self.free.push(id);
                Err(AllocError::Firmware(st))
            }
        }
    }

    fn build<P: Platform>(
        ctx: &Ctx<'_, P>,
        queue: &CompletionQueue,
        kind: TokenKind,
        cap: usize,
        instance: u64,
        id: SlotId,
    ) -> Result<Slot, Status> {
        let raw = ctx.allocate_pool(core::mem::size_of::<SlotBlock>())?;
        if (raw as usize) % core::mem::align_of::<SlotBlock>() != 0 {
            // SAFETY: just allocated, never handed to the firmware.
            unsafe {
                let _ = ctx.free_pool(raw);
            }
            return Err(Status::BAD_BUFFER_SIZE);
        }
        let block = raw as *mut SlotBlock;
        // SAFETY: `block` is a fresh, aligned pool allocation of the block's
        // size; zero is a valid bit pattern for every field (integers, null
        // pointers); the header is then written before the event exists.
        unsafe {
            ptr::write_bytes(raw, 0, core::mem::size_of::<SlotBlock>());
            addr_of_mut!((*block).header).write(SlotHeader {
                queue: queue as *const CompletionQueue,
                slot: id,
            });
        }
        let buf = if cap > 0 {
            match ctx.allocate_pool(cap) {
                Ok(b) => b,
                Err(st) => {
                    // SAFETY: the block was never handed to the firmware.
                    unsafe {
                        let _ = ctx.free_pool(raw);
                    }
                    return Err(st);
                }
            }
        } else {
            ptr::null_mut()
        };
        let event = match ctx.create_event(
            EventType::NOTIFY_SIGNAL,
            Tpl::CALLBACK,
            Some(notify_trampoline),
            block as *mut c_void,
        ) {
            Ok(e) => e,
            Err(st) => {
                // SAFETY: neither allocation was handed to the firmware.
                unsafe {
                    if !buf.is_null() {
                        let _ = ctx.free_pool(buf);
                    }
                    let _ = ctx.free_pool(raw);
                }
                return Err(st);
            }
        };
        Ok(Slot {
            kind,
            state: SlotState::Idle,
            instance,
            block,
            event,
            buf,
            cap,
            len: 0,
        })
    }

    /// Frees slot `id`. Refuses (returns false) while the firmware owns it.
    pub fn free<P: Platform>(&mut self, ctx: &Ctx<'_, P>, id: SlotId) -> bool {
        let Some(entry) = self.slots.get_mut(id as usize) else {
            return false;
        };
        match entry {
            Some(s) if s.state.freeable() => {}
            _ => return false,
        }
        let Some(slot) = entry.take() else {
            return false;
        };
        let _ = ctx.close_event(slot.event);
        // SAFETY: the slot is not Pending, so the firmware has signalled (or
        // never accepted) its token and no longer references this memory.
        unsafe {
            if !slot.buf.is_null() {
                let _ = ctx.free_pool(slot.buf);
            }
            let _ = ctx.free_pool(slot.block as *mut u8);
        }
        self.free.push(id);
        self.live -= 1;
        true
    }

    /// DELIBERATE BUG (a) helper: frees slot `id`'s data buffer whatever the
    /// slot's state (the simulator quarantines memory freed under it).
    #[cfg(feature = "deliberate-bugs")]
    pub fn deliberately_free_buffer<P: Platform>(&mut self, ctx: &Ctx<'_, P>, id: SlotId) {
        if let Some(slot) = self.get_mut(id) {
            let buf = core::mem::replace(&mut slot.buf, ptr::null_mut());
            slot.cap = 0;
            if !buf.is_null() {
                // SAFETY: none; this is the deliberate bug. The buffer is a
                // live pool block the core allocated; the firmware may still
                // own it, which the simulator detects and quarantines.
                unsafe {
                    let _ = ctx.free_pool(buf);
                }
            }
        }
    }

    /// Marks slot `id` signalled, reading the status the firmware wrote.
    /// Returns the kind, instance and status, or None for a stale record.
    pub fn complete(&mut self, id: SlotId) -> Option<(TokenKind, u64, Status)> {
        let slot = self.get_mut(id)?;
        // SAFETY: the record was published after the firmware wrote the status
        // (release/acquire through the queue); the block is live.
        let status =
            unsafe { ptr::read_volatile(addr_of_mut!((*Self::completion_token(slot)).status)) };
        slot.state = slot.state.complete(status).ok()?;
        Some((slot.kind, slot.instance, status))
    }

    /// Data received by a Done Receive slot.
    pub fn received(&self, id: SlotId) -> &[u8] {
        let Some(slot) = self.get(id) else {
            return &[];
        };
        if !slot.state.is_done() || slot.buf.is_null() {
            return &[];
        }
        // SAFETY: the slot is Done, so the firmware no longer writes the rx
        // data; DataLength was rewritten by the firmware and is clamped to the
        // buffer capacity.
        unsafe {
            let len = ptr::read_volatile(addr_of_mut!((*slot.block).rx.head.data_length)) as usize;
            core::slice::from_raw_parts(slot.buf, len.min(slot.cap))
        }
    }

    fn completion_token(slot: &Slot) -> *mut Tcp4CompletionToken {
        // SAFETY: computing a field address inside the live block.
        unsafe { addr_of_mut!((*slot.block).token) as *mut Tcp4CompletionToken }
    }

    fn begin(&mut self, id: SlotId) -> Option<&mut Slot> {
        let slot = self.get_mut(id)?;
        slot.state = slot.state.submit().ok()?;
        let ct = Self::completion_token(slot);
        // SAFETY: the slot was Idle (core-owned); writing its token header.
        unsafe {
            ct.write(Tcp4CompletionToken {
                event: slot.event,
                status: Status::NOT_READY,
            })
        };
        Some(slot)
    }

    fn finish(&mut self, id: SlotId, st: Status) -> Status {
        if st != Status::SUCCESS {
            if let Some(slot) = self.get_mut(id) {
                // The firmware did not take the token.
                slot.state = slot.state.rejected().unwrap_or(SlotState::Idle);
            }
        }
        st
    }

    /// Submits slot `id` as a Connect token.
    pub fn submit_connect<P: Platform>(
        &mut self,
        ctx: &Ctx<'_, P>,
        tcp: &impl Tcp4,
        id: SlotId,
    ) -> Status {
        let Some(slot) = self.begin(id) else {
            return Status::INVALID_PARAMETER;
        };
        let token = Self::completion_token(slot) as *mut Tcp4ConnectionToken;
        let st = ctx.traced(
            slot.instance,
            FirmwareCall::Connect,
            "Tcp4.Connect",
            &id,
            || {
                // SAFETY: the token lives in this slot's pool block and stays
                // untouched while Pending (state set above).
                unsafe { tcp.connect(token) }
            },
        );
        self.finish(id, st)
    }

    /// Submits slot `id` as an Accept token.
    pub fn submit_accept<P: Platform>(
        &mut self,
        ctx: &Ctx<'_, P>,
        tcp: &impl Tcp4,
        id: SlotId,
    ) -> Status {
        let Some(slot) = self.begin(id) else {
            return Status::INVALID_PARAMETER;
        };
        let token = Self::completion_token(slot) as *mut Tcp4ListenToken;
        // SAFETY: the token is core-owned (Idle → Pending not yet published).
        unsafe { addr_of_mut!((*token).new_child_handle).write(ptr::null_mut()) };
        let st = ctx.traced(
            slot.instance,
            FirmwareCall::Accept,
            "Tcp4.Accept",
            &id,
            || {
                // SAFETY: pool-backed token, untouched while Pending.
                unsafe { tcp.accept(token) }
            },
        );
        self.finish(id, st)
    }

    /// The child handle of a Done Accept slot.
    pub fn accepted_child(&self, id: SlotId) -> Handle {
        let Some(slot) = self.get(id) else {
            return ptr::null_mut();
        };
        if !slot.state.is_done() {
            return ptr::null_mut();
        }
        let token = Self::completion_token(slot) as *mut Tcp4ListenToken;
        // SAFETY: the slot is Done; the firmware wrote the handle before signalling.
        unsafe { ptr::read_volatile(addr_of_mut!((*token).new_child_handle)) }
    }

    /// Submits slot `id` as a Receive of up to its capacity.
    pub fn submit_receive<P: Platform>(
        &mut self,
        ctx: &Ctx<'_, P>,
        tcp: &impl Tcp4,
        id: SlotId,
    ) -> Status {
        let Some(slot) = self.begin(id) else {
            return Status::INVALID_PARAMETER;
        };
        let block = slot.block;
        let cap = u32::try_from(slot.cap).unwrap_or(u32::MAX);
        let buf = slot.buf;
        // SAFETY: the block is core-owned until the call below; the fragment
        // points at the slot's own pool buffer of `cap` bytes.
        let token = unsafe {
            let rx = addr_of_mut!((*block).rx);
            rx.write(ReceiveData1::one(buf, cap));
            let token = addr_of_mut!((*block).token) as *mut Tcp4IoToken;
            addr_of_mut!((*token).packet.rx_data).write(rx as *mut Tcp4ReceiveData);
            token
        };
        let st = ctx.traced(
            slot.instance,
            FirmwareCall::Receive,
            "Tcp4.Receive",
            &cap,
            || {
                // SAFETY: pool-backed token, data and buffer, untouched while Pending.
                unsafe { tcp.receive(token) }
            },
        );
        self.finish(id, st)
    }

    /// Copies `data` (at most the capacity) into slot `id` and submits it as
    /// a Transmit. Returns the status and the number of bytes queued.
    pub fn submit_transmit<P: Platform>(
        &mut self,
        ctx: &Ctx<'_, P>,
        tcp: &impl Tcp4,
        id: SlotId,
        data: &[u8],
    ) -> (Status, usize) {
        let Some(slot) = self.begin(id) else {
            return (Status::INVALID_PARAMETER, 0);
        };
        let n = data.len().min(slot.cap);
        slot.len = n;
        let block = slot.block;
        let buf = slot.buf;
        let len = n as u32;
        // SAFETY: the block and buffer are core-owned until the call; `n`
        // bytes fit in the buffer (n <= cap).
        let token = unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), buf, n);
            let tx = addr_of_mut!((*block).tx);
            tx.write(TransmitData1::one(buf, len));
            let token = addr_of_mut!((*block).token) as *mut Tcp4IoToken;
            addr_of_mut!((*token).packet.tx_data).write(tx as *mut Tcp4TransmitData);
            token
        };
        let st = ctx.traced(
            slot.instance,
            FirmwareCall::Transmit,
            "Tcp4.Transmit",
            &len,
            || {
                // SAFETY: pool-backed token, data and buffer, untouched while Pending.
                unsafe { tcp.transmit(token) }
            },
        );
        self.last_transmit_ns = Some(ctx.now());
        (self.finish(id, st), n)
    }

    /// Submits slot `id` as a Close token.
    pub fn submit_close<P: Platform>(
        &mut self,
        ctx: &Ctx<'_, P>,
        tcp: &impl Tcp4,
        id: SlotId,
        abort: bool,
    ) -> Status {
        let Some(slot) = self.begin(id) else {
            return Status::INVALID_PARAMETER;
        };
        let token = Self::completion_token(slot) as *mut Tcp4CloseToken;
        // SAFETY: core-owned until the call below.
        unsafe { addr_of_mut!((*token).abort_on_close).write(Boolean::from(abort)) };
        let args = if abort { "abort" } else { "graceful" };
        let st = ctx.traced(
            slot.instance,
            FirmwareCall::Close,
            "Tcp4.Close",
            &args,
            || {
                // SAFETY: pool-backed token, untouched while Pending.
                unsafe { tcp.close(token) }
            },
        );
        self.finish(id, st)
    }

    /// Bytes a Done slot moved: received for a Receive, queued for a
    /// Transmit, 0 for the other tokens.
    pub fn completed_bytes(&self, id: SlotId) -> usize {
        match self.get(id) {
            Some(slot) if slot.kind == TokenKind::Receive => self.received(id).len(),
            Some(slot) if slot.kind == TokenKind::Transmit => slot.len,
            _ => 0,
        }
    }

    /// Emits the drain-time traces of a completion (`bytes`: see
    /// [`SlotTable::completed_bytes`]).
    pub fn trace_completion(
        kind: TokenKind,
        instance: u64,
        slot: SlotId,
        status: Status,
        bytes: usize,
        (t_ns, now): (u64, u64),
    ) {
        tracing::trace!(target: "efisock::notify", slot, t_ns);
        tracing::trace!(
            target: "efisock::completion",
            instance,
            token = kind.name(),
            status = %St(status),
            bytes,
            t_ns = now
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn happy_path() {
        let s = SlotState::Idle.submit().unwrap();
        assert_eq!(s, SlotState::Pending);
        assert!(!s.freeable());
        let s = s.complete(Status::SUCCESS).unwrap();
        assert!(s.freeable() && s.is_done());
        let (s, st) = s.take().unwrap();
        assert_eq!((s, st), (SlotState::Idle, Status::SUCCESS));
    }

    /// (state, freeable, is_done) for every state.
    #[test]
    fn state_predicates_table() {
        let rows = [
            (SlotState::Idle, true, false),
            (SlotState::Pending, false, false),
            (SlotState::Done(Status::SUCCESS), true, true),
            (SlotState::Done(Status::ABORTED), true, true),
        ];
        for (state, freeable, done) in rows {
            assert_eq!(state.freeable(), freeable, "{state:?}");
            assert_eq!(state.is_done(), done, "{state:?}");
        }
    }

    #[test]
    fn rejected_submission_returns_to_idle() {
        let s = SlotState::Idle.submit().unwrap().rejected().unwrap();
        assert_eq!(s, SlotState::Idle);
    }

    #[test]
    fn forbidden_transitions_are_reported() {
        assert_eq!(
            SlotState::Pending.submit(),
            Err(BadTransition {
                from: SlotState::Pending,
                op: "submit"
            })
        );
        assert!(SlotState::Idle.complete(Status::SUCCESS).is_err());
        assert!(
            SlotState::Done(Status::ABORTED)
                .complete(Status::SUCCESS)
                .is_err()
        );
        assert!(SlotState::Pending.take().is_err());
        assert!(SlotState::Idle.take().is_err());
        assert!(SlotState::Done(Status::SUCCESS).submit().is_err());
        assert!(SlotState::Idle.rejected().is_err());
    }

    #[test]
    fn token_layouts_fit_the_storage() {
        use core::mem::size_of;
        assert!(size_of::<TokenStorage>() >= size_of::<Tcp4IoToken>());
        assert!(size_of::<TokenStorage>() >= size_of::<Tcp4ListenToken>());
        assert!(size_of::<TokenStorage>() >= size_of::<Tcp4CloseToken>());
        // The completion token is the first field of every token type.
        assert_eq!(core::mem::offset_of!(Tcp4IoToken, completion_token), 0);
        assert_eq!(core::mem::offset_of!(Tcp4ListenToken, completion_token), 0);
        assert_eq!(core::mem::offset_of!(Tcp4CloseToken, completion_token), 0);
    }

    #[test]
    fn kinds_map_to_their_calls() {
        let rows = [
            (TokenKind::Connect, "connect"),
            (TokenKind::Accept, "accept"),
            (TokenKind::Transmit, "transmit"),
            (TokenKind::Receive, "receive"),
            (TokenKind::Close, "close"),
        ];
        for (kind, name) in rows {
            assert_eq!(kind.name(), name);
        }
    }
}
