//! select and the poller: readiness never lies, never consumes, honours the
//! timeout.

use std::net::SocketAddrV4;
use std::time::Duration;

use efisock::{Errno, Interest};

use super::util::{connect, expect_errno, recv_exact, socket};
use crate::peers::{ports, protocol};
use crate::runner::{Case, CaseResult, Context};
use crate::target::SocketTarget;
use crate::{ensure, ensure_eq};

/// The cases of this group.
pub fn cases<T: SocketTarget>() -> Vec<Case<T>> {
    vec![
        Case {
            group: "select",
            name: "timeout_honoured",
            about: "select with nothing ready returns empty after the timeout (firmware time)",
            run: select_timeout::<T>,
        },
        Case {
            group: "select",
            name: "zero_timeout_polls",
            about: "select with timeout 0 returns at once",
            run: select_zero_timeout::<T>,
        },
        Case {
            group: "select",
            name: "readable_does_not_consume",
            about: "select twice, then recv gets every byte",
            run: readable_does_not_consume::<T>,
        },
        Case {
            group: "select",
            name: "writable_when_connected",
            about: "a connected socket is writable",
            run: writable_when_connected::<T>,
        },
        Case {
            group: "select",
            name: "listener_readable_on_connection",
            about: "a listener is readable when a connection is waiting",
            run: listener_readable::<T>,
        },
        Case {
            group: "select",
            name: "only_ready_sockets_reported",
            about: "of two sockets, only the one with data is readable",
            run: only_ready_reported::<T>,
        },
        Case {
            group: "select",
            name: "closed_socket_ebadf",
            about: "select on a closed socket is EBADF",
            run: select_closed_ebadf::<T>,
        },
        Case {
            group: "poller",
            name: "readable_event_with_token",
            about: "a registered socket's data yields one event with its token",
            run: poller_readable::<T>,
        },
        Case {
            group: "poller",
            name: "modify_and_unregister",
            about: "modify changes interest; unregister stops events",
            run: poller_modify_unregister::<T>,
        },
        Case {
            group: "poller",
            name: "timeout_honoured",
            about: "poll with nothing ready returns no events after the timeout",
            run: poller_timeout::<T>,
        },
        Case {
            group: "poller",
            name: "register_errors",
            about: "registering twice or a closed socket is an error",
            run: poller_register_errors::<T>,
        },
        Case {
            group: "poller",
            name: "hup_on_eof",
            about: "EOF is reported as readable and hup",
            run: poller_hup::<T>,
        },
    ]
}

fn select_timeout<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let start = t.net().now();
    let ready = t
        .net()
        .select(&[&s], &[], &[], Some(Duration::from_millis(300)))
        .context("select")?;
    let waited = t.net().now() - start;
    ensure!(ready.read.is_empty(), "nothing readable");
    ensure!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(400),
        "select waited {waited:?} for a 300 ms timeout"
    );
    Ok(())
}

fn select_zero_timeout<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let start = t.net().now();
    let ready = t
        .net()
        .select(&[&s], &[], &[], Some(Duration::ZERO))
        .context("select")?;
    let waited = t.net().now() - start;
    ensure!(ready.read.is_empty(), "nothing readable");
    ensure!(
        waited < Duration::from_millis(50),
        "a zero-timeout select took {waited:?}"
    );
    Ok(())
}

fn readable_does_not_consume<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.sendall(b"abc").context("sendall")?;
    for i in 0..2 {
        let ready = t
            .net()
            .select(&[&s], &[], &[], Some(Duration::from_secs(10)))
            .context("select")?;
        ensure_eq!(ready.read, vec![s.fileno()], "readable (round {i})");
    }
    t.net().sleep(Duration::from_millis(50));
    ensure_eq!(recv_exact(&s, 3)?, b"abc".to_vec(), "all bytes still there");
    Ok(())
}

fn writable_when_connected<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let ready = t
        .net()
        .select(&[], &[&s], &[], Some(Duration::from_secs(1)))
        .context("select")?;
    ensure_eq!(ready.write, vec![s.fileno()], "writable");
    Ok(())
}

fn listener_readable<T: SocketTarget>(t: &mut T) -> CaseResult {
    let listener = socket(t)?;
    listener
        .bind(SocketAddrV4::new(t.local_ip(), 42101))
        .context("bind")?;
    listener.listen(5).context("listen")?;
    let ready = t
        .net()
        .select(&[&listener], &[], &[], Some(Duration::ZERO))
        .context("select")?;
    ensure!(ready.read.is_empty(), "no connection yet");
    let control = connect(t, ports::CONNECT_BACK)?;
    control
        .sendall(&protocol::connect_back_request(42101, 10))
        .context("request")?;
    let ready = t
        .net()
        .select(&[&listener], &[], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    ensure_eq!(ready.read, vec![listener.fileno()], "listener readable");
    listener.setblocking(false);
    let (conn, _) = listener
        .accept()
        .context("accept after readable must not block")?;
    ensure_eq!(recv_exact(&conn, 10)?.len(), 10, "data on accepted");
    Ok(())
}

fn only_ready_reported<T: SocketTarget>(t: &mut T) -> CaseResult {
    let a = connect(t, ports::ECHO)?;
    let b = connect(t, ports::ECHO)?;
    b.sendall(b"b").context("sendall")?;
    let ready = t
        .net()
        .select(&[&a, &b], &[], &[], Some(Duration::from_secs(10)))
        .context("select")?;
    ensure_eq!(ready.read, vec![b.fileno()], "only b is readable");
    Ok(())
}

fn select_closed_ebadf<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    s.close().context("close")?;
    expect_errno(
        t.net().select(&[&s], &[], &[], Some(Duration::ZERO)),
        Errno::EBADF,
        "select",
    )
}

fn poller_readable<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let mut poller = t.net().poller();
    poller
        .register(&s, Interest::READABLE, 7)
        .context("register")?;
    s.sendall(b"ping").context("sendall")?;
    let events = poller.poll(Some(Duration::from_secs(10))).context("poll")?;
    ensure_eq!(events.len(), 1, "one event: {events:?}");
    ensure_eq!(events[0].token, 7, "token");
    ensure!(
        events[0].readable && !events[0].error,
        "readable event: {:?}",
        events[0]
    );
    ensure_eq!(
        recv_exact(&s, 4)?,
        b"ping".to_vec(),
        "data not consumed by poll"
    );
    Ok(())
}

fn poller_modify_unregister<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let mut poller = t.net().poller();
    poller
        .register(&s, Interest::READABLE, 1)
        .context("register")?;
    let events = poller.poll(Some(Duration::ZERO)).context("poll")?;
    ensure!(events.is_empty(), "not readable yet: {events:?}");
    poller.modify(&s, Interest::WRITABLE, 2).context("modify")?;
    let events = poller.poll(Some(Duration::from_secs(1))).context("poll")?;
    ensure!(
        events.len() == 1 && events[0].token == 2 && events[0].writable,
        "writable event with new token: {events:?}"
    );
    poller.unregister(&s).context("unregister")?;
    let events = poller.poll(Some(Duration::ZERO)).context("poll")?;
    ensure!(events.is_empty(), "no events after unregister: {events:?}");
    Ok(())
}

fn poller_timeout<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let mut poller = t.net().poller();
    poller
        .register(&s, Interest::READABLE, 1)
        .context("register")?;
    let start = t.net().now();
    let events = poller
        .poll(Some(Duration::from_millis(250)))
        .context("poll")?;
    let waited = t.net().now() - start;
    ensure!(events.is_empty(), "no events");
    ensure!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(350),
        "waited {waited:?}"
    );
    Ok(())
}

fn poller_register_errors<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ECHO)?;
    let closed = connect(t, ports::ECHO)?;
    closed.close().context("close")?;
    let mut poller = t.net().poller();
    poller
        .register(&s, Interest::READABLE, 1)
        .context("register")?;
    ensure!(
        poller.register(&s, Interest::READABLE, 2).is_err(),
        "second register must fail"
    );
    expect_errno(
        poller.register(&closed, Interest::READABLE, 3),
        Errno::EBADF,
        "register closed",
    )?;
    Ok(())
}

fn poller_hup<T: SocketTarget>(t: &mut T) -> CaseResult {
    let s = connect(t, ports::ACCEPT_CLOSE)?;
    let mut poller = t.net().poller();
    poller
        .register(&s, Interest::READABLE, 9)
        .context("register")?;
    let events = poller.poll(Some(Duration::from_secs(10))).context("poll")?;
    ensure!(
        events.len() == 1 && events[0].readable && events[0].hup,
        "readable+hup: {events:?}"
    );
    ensure_eq!(s.recv(1).context("recv")?, Vec::<u8>::new(), "EOF");
    Ok(())
}
