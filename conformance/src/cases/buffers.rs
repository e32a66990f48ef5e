//! Socket buffer sizes, as the peer sees them.
//!
//! efisock configures a listener's children with EDK2's largest buffers
//! (2 MiB each way). The receive buffer decides the window an accepted
//! connection advertises and how much a client can send before the
//! application reads; the peer sees both.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::util::{recv_to_eof, socket};
use super::witness::{connect_witnessed, peer_view};
use crate::pattern::pattern_checksum;
use crate::peers::witness::{Leg, Until};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseError, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

const MIB: u64 = 1 << 20;
/// The guest port the accepted connection arrives on.
const LISTEN_PORT: u16 = 44070;

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![Case {
        group: "buffers",
        name: "accepted_window_holds_1mib_unread",
        about: "an accepted connection advertises a window of at least 1 MiB and takes 1 MiB unread",
        run: accepted_window::<T>,
    }]
}

fn accepted_window<T: SocketTarget>(t: &mut T) -> CaseResult {
    let l = socket(t)?;
    l.bind(SocketAddrV4::new(t.local_ip(), LISTEN_PORT))
        .context("bind")?;
    l.listen(1).context("listen")?;
    let (req, token) = connect_witnessed(t, ports::CONNECT_BACK)?;
    req.sendall(&protocol::connect_back_request(LISTEN_PORT, MIB))
        .context("connect-back request")?;
    let (c, _) = l.accept().context("accept the connect-back")?;
    // Not reading: everything the peer manages to deliver now sits in the
    // firmware's receive buffer and efisock's own queue (a quarter MiB by
    // default), so with 2 MiB buffers all of it is acknowledged, once the
    // peer's slow start got there (a few seconds of EDK2's delayed ACKs).
    let mut view = peer_view(t, token, Leg::ConnectBack, Until::Now)?;
    for _ in 0..40 {
        if view.acked_out >= MIB {
            break;
        }
        t.net().sleep(Duration::from_millis(500));
        view = peer_view(t, token, Leg::ConnectBack, Until::Now)?;
    }
    ensure_eq!(
        (view.bytes_out, view.acked_out),
        (MIB, MIB),
        "bytes the peer sent and saw acknowledged before the application read ({view:?})"
    );
    let window = view.max_window.ok_or_else(|| {
        CaseError::new(format!(
            "the peer cannot see the window this host advertises ({:?} observer)",
            view.observer
        ))
    })?;
    ensure!(
        u64::from(window) >= MIB,
        "largest advertised window {window} bytes (scale {:?}), expected at least 1 MiB",
        view.window_scale
    );
    let (count, sum, _) = recv_to_eof(&c, MIB)?;
    ensure_eq!((count, sum), (MIB, pattern_checksum(0, MIB)), "data read");
    Ok(())
}
