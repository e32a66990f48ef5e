//! The DHCP step: switch Ip4Config2 to the DHCP policy and wait (bounded)
//! for an address.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use efisock::firmware::{
    BootServices, Ip4Config2, Ip4Config2DataType, Ip4Config2InterfaceInfo, Ip4Config2Policy,
    Platform, Status,
};
use efisock::raw::PoolBuf;

use super::{Emit, SmokeConfig, fmt_ip, st};
use crate::json::JsonObject;

/// Stall between two address checks.
const CHECK_INTERVAL_US: usize = 10_000;

/// Sets the DHCP policy and waits for an address, at most
/// `cfg.dhcp_timeout_ms` (and so at most one check per 10 ms stall).
pub(super) fn dhcp<P: Platform>(p: &P, cfg: &SmokeConfig, emit: Emit<'_>) -> Result<[u8; 4], ()> {
    let boot = p.boot();
    let ip = p.ip4_config2();
    let t0 = boot.monotonic_ns();
    let mut step = JsonObject::new();
    step.str("step", "dhcp");

    let mut policy = Ip4Config2Policy::STATIC;
    let mut size = size_of::<Ip4Config2Policy>();
    // SAFETY: `size` and `policy` are valid for the size passed.
    let get = unsafe {
        ip.get_data(
            Ip4Config2DataType::POLICY,
            &mut size,
            ptr::from_mut(&mut policy).cast::<c_void>(),
        )
    };
    step.str("get_policy", st(get))
        .u64("old_policy", policy.0 as u64);
    let dhcp = Ip4Config2Policy::DHCP;
    // SAFETY: `dhcp` is valid for reads of its size.
    let set = unsafe {
        ip.set_data(
            Ip4Config2DataType::POLICY,
            size_of::<Ip4Config2Policy>(),
            ptr::from_ref(&dhcp).cast::<c_void>(),
        )
    };
    step.str("set_policy", st(set));

    let limit = cfg.dhcp_timeout_ms * 1_000_000;
    // A count bound as well, in case the clock misbehaves: twice the checks
    // the time limit allows, because a Stall may end early under TCG.
    let max_checks = 2 * (limit / (CHECK_INTERVAL_US as u64 * 1000)) + 1;
    let mut checks = 0u64;
    let mut last;
    let result = loop {
        checks += 1;
        match interface_info(boot, ip) {
            Ok((addr, mask)) if addr != [0; 4] => {
                step.str("address", &fmt_ip(addr))
                    .str("mask", &fmt_ip(mask));
                break Ok(addr);
            }
            Ok(_) => last = Status::NOT_READY,
            Err(s) => last = s,
        }
        if boot.monotonic_ns() - t0 > limit || checks >= max_checks {
            step.str("error", "timeout").str("last_status", st(last));
            break Err(());
        }
        let _ = boot.stall(CHECK_INTERVAL_US);
    };
    step.u64("checks", checks)
        .u64("ms", (boot.monotonic_ns() - t0) / 1_000_000)
        .bool("ok", result.is_ok());
    emit("STEP", &step.finish());
    result
}

/// `GetData(InterfaceInfo)`: station address and mask.
fn interface_info<B: BootServices, I: Ip4Config2>(
    boot: &B,
    ip: &I,
) -> Result<([u8; 4], [u8; 4]), Status> {
    let mut size = 512usize;
    // The route table is appended to the structure, so the size varies: grow
    // once or twice on BUFFER_TOO_SMALL.
    for _ in 0..3 {
        let buf = PoolBuf::zeroed(boot, size.max(size_of::<Ip4Config2InterfaceInfo>()))
            .map_err(|e| e.status)?;
        let mut len = buf.len();
        // SAFETY: `buf` is writable for `len` bytes and not firmware-owned.
        let s = unsafe {
            ip.get_data(
                Ip4Config2DataType::INTERFACE_INFO,
                &mut len,
                buf.as_ptr::<c_void>(),
            )
        };
        match s {
            Status::SUCCESS => {
                // SAFETY: the firmware wrote a full structure at the start of
                // the 8-aligned pool buffer.
                let info = unsafe { ptr::read(buf.as_ptr::<Ip4Config2InterfaceInfo>()) };
                return Ok((info.station_addr.0, info.subnet_mask.0));
            }
            Status::BUFFER_TOO_SMALL if len > size => size = len,
            other => return Err(other),
        }
    }
    Err(Status::BUFFER_TOO_SMALL)
}
