//! Transmit and Receive: argument and state checks, then the token joins
//! its queue and the child is serviced inside the call.

use efisock::firmware::status::CONNECTION_FIN;
use efisock::firmware::{
    Status, Tcp4CompletionToken, Tcp4IoToken, Tcp4ReceiveData, Tcp4TransmitData,
};
use smoltcp::socket::tcp::{self, State};

use crate::tokens;
use crate::world::Env;

use super::Edk2Tcp4;
use super::pending::{Kind, Pending};

impl Edk2Tcp4 {
    /// Whether Transmit (or, with `for_rx`, Receive) is allowed in the
    /// child's state (SockSend/SockRcv); the status to return if not.
    pub(super) fn io_state_ok(&self, id: usize, for_rx: bool) -> Result<(), Status> {
        let c = &self.children[&id];
        if c.cfg.is_none() {
            return Err(super::addressing::unconfigured_status(c.no_mapping));
        }
        if c.listener.is_some() || c.tokens.close.is_some() || c.local_close.fin_queued {
            return Err(Status::ACCESS_DENIED);
        }
        match self.state_of(id) {
            // SockRcv/SockSend: a closed socket (also after RST) is ACCESS_DENIED.
            None | Some(State::Closed) => Err(Status::ACCESS_DENIED),
            Some(State::SynSent | State::SynReceived | State::Established | State::CloseWait) => {
                Ok(())
            }
            Some(State::LastAck | State::Closing | State::TimeWait) if for_rx => Ok(()),
            Some(_) => Err(Status::ACCESS_DENIED),
        }
    }

    /// Transmit: queue the token and copy what fits into the send buffer.
    ///
    /// # Safety
    /// `token` non-null and valid, with valid transmit data.
    pub unsafe fn transmit(&mut self, cx: &mut Env, id: usize, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: caller-vouched token with a packet pointer.
        let tx = unsafe { (*token).packet.tx_data };
        if tx.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: non-null transmit data, valid by contract.
        let (len, frags) = unsafe { tokens::tx_frags(tx) };
        if !fragments_valid(len, &frags) {
            return Status::INVALID_PARAMETER;
        }
        if let Err(s) = self.io_state_ok(id, false) {
            return s;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        // Injected: SockInterface.c `SockSend` buffers every token (either
        // list); `SockBufferToken` == NULL → EFI_OUT_OF_RESOURCES, nothing sent.
        if let Some(st) = cx.inject("Transmit", &[Status::OUT_OF_RESOURCES]) {
            return st;
        }
        let block = tokens::block_size(size_of::<Tcp4TransmitData>(), frags.len());
        // SAFETY: the fragments are readable (contract).
        let check = unsafe { tokens::tx_hash(len, &frags) };
        let data = (tx as usize, block);
        let p = Pending::io(
            Kind::Transmit,
            token as usize,
            event,
            data,
            frags,
            len,
            check,
        );
        self.check_pool(cx, &p);
        self.children
            .get_mut(&id)
            .expect("exists")
            .tokens
            .txs
            .push_back(p);
        self.service(cx, id);
        self.egress(cx);
        Status::SUCCESS
    }

    /// Receive: a stored error or the FIN may answer at once; otherwise
    /// queue the token and deliver what is buffered.
    ///
    /// # Safety
    /// `token` non-null and valid, with valid receive data.
    pub unsafe fn receive(&mut self, cx: &mut Env, id: usize, token: *mut Tcp4IoToken) -> Status {
        // SAFETY: caller-vouched token.
        let rx = unsafe { (*token).packet.rx_data };
        if rx.is_null() {
            return Status::INVALID_PARAMETER;
        }
        // SAFETY: non-null receive data, valid by contract.
        let (len, frags) = unsafe { tokens::rx_frags(rx) };
        if !fragments_valid(len, &frags) {
            return Status::INVALID_PARAMETER;
        }
        if let Err(s) = self.io_state_ok(id, true) {
            return s;
        }
        // SAFETY: caller-vouched token.
        let event = unsafe { tokens::event_of(token as *const Tcp4CompletionToken) };
        if let Err(s) = self.admit_token(cx, id, token as usize, event) {
            return s;
        }
        if let Some(st) = self.answer_receive_at_once(cx, id, token as usize, event) {
            return st;
        }
        let buffered = self.children[&id]
            .sock
            .map_or(0, |h| self.sockets.get::<tcp::Socket>(h).recv_queue());
        // Injected: nothing buffered, so SockInterface.c `SockRcv` buffers
        // the token and that allocation fails (`SockBufferToken` == NULL →
        // EFI_OUT_OF_RESOURCES, nothing else happens).
        if buffered == 0 {
            if let Some(st) = cx.inject("Receive", &[Status::OUT_OF_RESOURCES]) {
                return st;
            }
        }
        let block = tokens::block_size(size_of::<Tcp4ReceiveData>(), frags.len());
        // SAFETY: receive buffers are writable by contract.
        unsafe { tokens::fill_canary(&frags) };
        let check = tokens::rx_hash(len, &frags);
        let data = (rx as usize, block);
        let p = Pending::io(
            Kind::Receive,
            token as usize,
            event,
            data,
            frags,
            len,
            check,
        );
        self.check_pool(cx, &p);
        self.children
            .get_mut(&id)
            .expect("exists")
            .tokens
            .rxs
            .push_back(p);
        self.service(cx, id);
        Status::SUCCESS
    }

    /// SockRcv answers without taking the token over when it can: a
    /// stored socket error completes this token inside the call (and is
    /// cleared); after the peer's FIN with nothing left to read, the profile
    /// may return CONNECTION_FIN from the call itself.
    fn answer_receive_at_once(
        &mut self,
        cx: &mut Env,
        id: usize,
        token: usize,
        event: usize,
    ) -> Option<Status> {
        if let Some(err) = self.children.get_mut(&id).and_then(|c| c.error.take()) {
            let p = Pending::token_only(Kind::Receive, token, event, size_of::<Tcp4IoToken>());
            self.complete(cx, p, err);
            return Some(Status::SUCCESS);
        }
        let c = &self.children[&id];
        let buffered = c
            .sock
            .map_or(0, |h| self.sockets.get::<tcp::Socket>(h).recv_queue());
        let fin = c.observed.peer_fin
            || self.state_of(id).is_some_and(|s| {
                matches!(
                    s,
                    State::CloseWait | State::LastAck | State::Closing | State::TimeWait
                )
            });
        let fin_as_result = fin
            && buffered == 0
            && c.tokens.rxs.is_empty()
            && cx.cfg.quirks.receive_fin_as_return_value;
        fin_as_result.then_some(CONNECTION_FIN)
    }
}

/// EDK2's fragment-table checks for Transmit and Receive: a non-zero
/// DataLength equal to the sum of the fragment lengths, at least one
/// fragment, and no null buffer behind a non-empty fragment.
fn fragments_valid(len: u32, frags: &[(usize, usize)]) -> bool {
    let sum: usize = frags.iter().map(|f| f.1).sum();
    len != 0
        && !frags.is_empty()
        && sum == len as usize
        && !frags.iter().any(|f| f.0 == 0 && f.1 > 0)
}
