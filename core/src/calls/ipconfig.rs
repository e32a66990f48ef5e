//! Reading and writing `EFI_IP4_CONFIG2_PROTOCOL` data: the station
//! address and the policy/address records.
//!
//! Why below the socket layer: `Configure`'s `ALREADY_STARTED` fallback and
//! `bind` need the station address, and reading it is one firmware call.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::{offset_of, size_of};
use core::net::Ipv4Addr;

use crate::calls::Ctx;
use crate::error::{Error, FirmwareCall, Result};
use crate::firmware::{Ip4Config2DataType, Ip4Config2InterfaceInfo, Platform, Status};

/// Station address and mask from INTERFACE_INFO; None while 0.0.0.0.
pub(crate) fn address<P: Platform>(ctx: &Ctx<'_, P>) -> Result<Option<(Ipv4Addr, Ipv4Addr)>> {
    let words = size_of::<Ip4Config2InterfaceInfo>().div_ceil(8);
    let mut buf: Vec<u64> = vec![0; words];
    let (mut st, size) = ctx.ip_get(Ip4Config2DataType::INTERFACE_INFO, &mut buf);
    if st == Status::BUFFER_TOO_SMALL {
        // The route table follows the structure.
        buf = vec![0; size.div_ceil(8).max(words)];
        st = ctx.ip_get(Ip4Config2DataType::INTERFACE_INFO, &mut buf).0;
    }
    if st != Status::SUCCESS {
        return Err(Error::from_status(FirmwareCall::Ip4Config2, st));
    }
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let at = |off: usize| Ipv4Addr::new(bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]);
    let station = at(offset_of!(Ip4Config2InterfaceInfo, station_addr));
    let mask = at(offset_of!(Ip4Config2InterfaceInfo, subnet_mask));
    Ok((!station.is_unspecified()).then_some((station, mask)))
}

pub(crate) fn set<P: Platform>(
    ctx: &Ctx<'_, P>,
    kind: Ip4Config2DataType,
    data: &[u8],
) -> Result<bool> {
    match ctx.ip_set(kind, data) {
        Status::SUCCESS => Ok(true),
        // Accepted, applied asynchronously.
        Status::NOT_READY => Ok(false),
        st => Err(Error::from_status(FirmwareCall::Ip4Config2, st)),
    }
}
