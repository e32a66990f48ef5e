//! `Net::shutdown` and the teardown when the last `Net` handle goes: close
//! every socket and wait for the graveyard to empty.

use alloc::vec::Vec;
use core::time::Duration;

use crate::error::{Errno, Error, Result};
use crate::firmware::Platform;
use crate::net::Inner;
use crate::socket::table::State;
use crate::socket::teardown::{Stage, bury};
use crate::time;

/// Closes every socket and waits for the graveyard to empty (see `Net::shutdown`).
pub(crate) fn shutdown_all<P: Platform>(inner: &Inner<P>, timeout: Duration) -> Result<()> {
    let Ok(mut st) = inner.state.try_borrow_mut() else {
        return Err(Error::os(Errno::EINVAL, "shutdown: Net is in use"));
    };
    let ctx = inner.ctx();
    st.down = true;
    inner.safe_point(&ctx, &mut st);
    let ids: Vec<_> = st.socks.keys().copied().collect();
    for id in ids {
        if let Some(sock) = st.socks.remove(&id) {
            let State { slots, corpses, .. } = &mut *st;
            bury(&ctx, slots, corpses, sock);
        }
    }
    let now = ctx.now();
    let deadline = now.saturating_add(time::nanos(timeout));
    // Leave half the time for the graceful part, then reset.
    let close_by = now.saturating_add(time::nanos(timeout) / 2);
    for c in st.corpses.iter_mut() {
        if let Stage::Closing { deadline } = &mut c.stage {
            *deadline = (*deadline).min(close_by);
        }
    }
    inner.wait(&mut st, Some(deadline), |_, st| {
        st.corpses.is_empty().then_some(())
    });
    if let Some(timer) = st.timer.take() {
        let _ = ctx.close_event(timer);
    }
    if !st.corpses.is_empty() {
        return Err(Error::os(
            Errno::ETIMEDOUT,
            "shutdown: the firmware still owns tokens; their memory is kept",
        ));
    }
    Ok(())
}
