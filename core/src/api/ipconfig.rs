//! IPv4 configuration through `EFI_IP4_CONFIG2_PROTOCOL`: DHCP or static.
//!
//! Why bounded: prior art (BITS) waits for DHCP forever; here every wait has
//! a deadline and runs the normal wait loop, so the stack (and DHCP, which
//! runs on the same MNP) keeps progressing while we wait.

use core::net::Ipv4Addr;
use core::time::Duration;

use crate::calls::ipconfig::{address, set};
use crate::error::{Errno, Error, Result};
use crate::firmware::{Ip4Config2DataType, Ip4Config2Policy, Platform};
use crate::net::Net;
use crate::time;

/// How long `set_static` waits when the firmware applies the address
/// asynchronously (`NOT_READY`, e.g. duplicate address detection).
pub const STATIC_WAIT: Duration = Duration::from_secs(5);

/// Waits until `want(address)` holds.
fn wait_for_address<P: Platform + 'static>(
    net: &Net<P>,
    timeout: Duration,
    want: impl Fn(Option<(Ipv4Addr, Ipv4Addr)>) -> bool,
) -> Option<Result<Ipv4Addr>> {
    let inner = &*net.inner;
    let mut st = inner.state.borrow_mut();
    let deadline = time::deadline(inner.ctx().now(), Some(timeout));
    inner.wait(&mut st, deadline, |ctx, _| match address(ctx) {
        Ok(a) if want(a) => a.map(|(ip, _)| Ok(ip)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

fn dhcp<P: Platform + 'static>(net: &Net<P>, timeout: Duration) -> Result<Ipv4Addr> {
    let ctx = net.inner.ctx();
    if let Some((ip, _)) = address(&ctx)? {
        return Ok(ip);
    }
    set(
        &ctx,
        Ip4Config2DataType::POLICY,
        &Ip4Config2Policy::DHCP.0.to_ne_bytes(),
    )?;
    match wait_for_address(net, timeout, |a| a.is_some()) {
        Some(r) => r,
        None => Err(Error::os(
            Errno::ETIMEDOUT,
            "dhcp: no DHCP lease within the timeout",
        )),
    }
}

/// True for a contiguous netmask (ones then zeros).
pub(crate) fn valid_mask(mask: Ipv4Addr) -> bool {
    let m = u32::from(mask);
    m.leading_ones() + m.trailing_zeros() == 32
}

fn set_static<P: Platform + 'static>(
    net: &Net<P>,
    addr: Ipv4Addr,
    mask: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
) -> Result<()> {
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() || addr.is_loopback() {
        return Err(Error::os(
            Errno::EINVAL,
            "set_static: not a unicast host address",
        ));
    }
    if !valid_mask(mask) || mask.is_unspecified() {
        return Err(Error::os(
            Errno::EINVAL,
            "set_static: netmask is not contiguous",
        ));
    }
    let ctx = net.inner.ctx();
    set(
        &ctx,
        Ip4Config2DataType::POLICY,
        &Ip4Config2Policy::STATIC.0.to_ne_bytes(),
    )?;
    let mut manual = [0u8; 8];
    manual[..4].copy_from_slice(&addr.octets());
    manual[4..].copy_from_slice(&mask.octets());
    let mut applied = set(&ctx, Ip4Config2DataType::MANUAL_ADDRESS, &manual)?;
    if let Some(gw) = gateway {
        if gw.is_unspecified() || gw.is_broadcast() {
            return Err(Error::os(Errno::EINVAL, "set_static: invalid gateway"));
        }
        applied &= set(&ctx, Ip4Config2DataType::GATEWAY, &gw.octets())?;
    }
    if applied && address(&ctx)?.is_some_and(|(a, _)| a == addr) {
        return Ok(());
    }
    match wait_for_address(net, STATIC_WAIT, |a| a.is_some_and(|(a, _)| a == addr)) {
        Some(r) => r.map(|_| ()),
        None => Err(Error::os(
            Errno::ETIMEDOUT,
            "set_static: address not applied in time",
        )),
    }
}

impl<P: Platform + 'static> Net<P> {
    /// Obtains an address by DHCP if the interface has none, waiting at most
    /// `timeout`; returns the station address.
    pub fn dhcp(&self, timeout: Duration) -> Result<Ipv4Addr> {
        dhcp(self, timeout)
    }

    /// Sets a static address (policy STATIC + manual address + gateway).
    pub fn set_static(
        &self,
        addr: Ipv4Addr,
        mask: Ipv4Addr,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        set_static(self, addr, mask, gateway)
    }

    /// Station address and subnet mask; None while unconfigured.
    pub fn address(&self) -> Result<Option<(Ipv4Addr, Ipv4Addr)>> {
        address(&self.inner.ctx())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert!(valid_mask(Ipv4Addr::new(255, 255, 255, 0)));
        assert!(valid_mask(Ipv4Addr::new(255, 255, 255, 255)));
        assert!(valid_mask(Ipv4Addr::new(0, 0, 0, 0)));
        assert!(!valid_mask(Ipv4Addr::new(255, 0, 255, 0)));
        assert!(!valid_mask(Ipv4Addr::new(0, 255, 255, 255)));
    }
}
