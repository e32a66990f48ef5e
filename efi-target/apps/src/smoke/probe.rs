//! The closed-port observation: what a Connect to a port nobody listens on
//! completes with.

use alloc::string::String;
use core::net::SocketAddrV4;

use efisock::firmware::{Platform, Status};
use efisock::raw::{RawChild, RawToken, TokenKind, poll_until};

use super::{SmokeConfig, st};
use crate::json::JsonObject;

/// Connects to `port + 1` on the echo host, where nothing listens: EDK2
/// reports the RST as the Connect token's status. Returns the step's JSON;
/// never fails the run.
pub(super) fn closed_port_probe<P: Platform + Clone>(p: &P, cfg: &SmokeConfig) -> String {
    let boot = p.boot();
    let mut j = JsonObject::new();
    let port = cfg.port.wrapping_add(1).max(1);
    j.str("step", "closed_port_probe")
        .u64("port", u64::from(port));
    let child = match RawChild::create(p.clone()) {
        Ok(c) => c,
        Err(e) => {
            j.str("create_child", st(e.status)).str("call", e.call);
            return j.finish();
        }
    };
    let mut leaked = false;
    let s = child.configure_active(SocketAddrV4::new(cfg.remote.into(), port));
    j.str("configure", st(s));
    if s == Status::SUCCESS {
        match RawToken::new(boot, TokenKind::Connect) {
            Err(e) => {
                j.str("allocate", st(e.status));
            }
            Ok(mut token) => {
                let c = token.submit(child.tcp());
                j.str("connect", st(c));
                if c == Status::SUCCESS {
                    let w = poll_until(boot, child.tcp(), cfg.wait_limit(), || token.done());
                    j.u64("polls", w.polls).u64("wait_us", w.ns / 1000);
                    if w.done {
                        j.str("token", st(token.status()));
                    } else {
                        j.str("error", "timeout");
                    }
                }
                j.str("configure_null", st(child.reset()));
                // A token still unsignalled after the reset keeps its memory
                // and event (RawToken leaks them on drop).
                leaked = !token.done();
            }
        }
    }
    j.str("destroy_child", st(child.destroy()))
        .bool("leaked_token", leaked);
    j.finish()
}
