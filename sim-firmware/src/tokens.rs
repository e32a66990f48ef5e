//! Raw access to caller-owned token structures (the firmware-ABI plumbing),
//! plus the fingerprints the checker uses to detect modification while owned.
//!
//! Every function here dereferences pointers the caller handed to a `Tcp4`
//! method; the trait contract (see `efisock::firmware`) makes them valid until
//! the token is signalled, and the simulator only touches pending tokens.
//! Memory freed early is quarantined by the pool, never released.

use core::ptr::addr_of;

use efisock::firmware::{
    Status, Tcp4CompletionToken, Tcp4FragmentData, Tcp4ReceiveData, Tcp4TransmitData,
};

/// FNV-1a over bytes.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    if h == 0 {
        h = 0xcbf2_9ce4_8422_2325;
    }
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Byte written into receive buffers at submission; checked before writing.
pub const CANARY: u8 = 0xC5;

/// The event of a completion token.
///
/// # Safety
/// `tok` must be valid for reads.
pub unsafe fn event_of(tok: *const Tcp4CompletionToken) -> usize {
    // SAFETY: the caller guarantees `tok` is readable.
    unsafe { (*tok).event as usize }
}

/// Write a token's status.
///
/// # Safety
/// `tok` must be a pending token (valid for writes).
pub unsafe fn set_status(tok: *mut Tcp4CompletionToken, st: Status) {
    // SAFETY: pending tokens are firmware-owned and valid (trait contract).
    unsafe { (*tok).status = st };
}

/// One fragment: (buffer address, length).
pub type Frag = (usize, usize);

/// Header and fragments of a transmit data block.
///
/// # Safety
/// `tx` must be valid for reads including its fragment table.
pub unsafe fn tx_frags(tx: *const Tcp4TransmitData) -> (u32, Vec<Frag>) {
    // SAFETY: caller-vouched transmit data with `fragment_count` entries.
    unsafe {
        let n = (*tx).fragment_count as usize;
        let table = addr_of!((*tx).fragment_table) as *const Tcp4FragmentData;
        let frags = (0..n.min(65_536))
            .map(|i| {
                let f = table.add(i);
                ((*f).fragment_buf as usize, (*f).fragment_length as usize)
            })
            .collect();
        ((*tx).data_length, frags)
    }
}

/// Header and fragments of a receive data block.
///
/// # Safety
/// `rx` must be valid for reads including its fragment table.
pub unsafe fn rx_frags(rx: *const Tcp4ReceiveData) -> (u32, Vec<Frag>) {
    // SAFETY: caller-vouched receive data with `fragment_count` entries.
    unsafe {
        let n = (*rx).fragment_count as usize;
        let table = addr_of!((*rx).fragment_table) as *const Tcp4FragmentData;
        let frags = (0..n.min(65_536))
            .map(|i| {
                let f = table.add(i);
                ((*f).fragment_buf as usize, (*f).fragment_length as usize)
            })
            .collect();
        ((*rx).data_length, frags)
    }
}

/// Size of a data block header plus `n` fragment descriptors.
pub fn block_size(header: usize, n: usize) -> usize {
    header + n * core::mem::size_of::<Tcp4FragmentData>()
}

/// Fingerprint of a transmit request: header, table and every data byte.
///
/// # Safety
/// The fragments must be readable for their lengths.
pub unsafe fn tx_hash(len: u32, frags: &[Frag]) -> u64 {
    let mut h = fnv(0, &len.to_le_bytes());
    for &(p, l) in frags {
        h = fnv(h, &(p as u64).to_le_bytes());
        h = fnv(h, &(l as u64).to_le_bytes());
        if l > 0 && p != 0 {
            // SAFETY: caller-vouched fragment buffer of `l` bytes.
            h = fnv(h, unsafe { core::slice::from_raw_parts(p as *const u8, l) });
        }
    }
    h
}

/// Fingerprint of a receive request's header and table (not the buffers).
pub fn rx_hash(len: u32, frags: &[Frag]) -> u64 {
    let mut h = fnv(0, &len.to_le_bytes());
    for &(p, l) in frags {
        h = fnv(h, &(p as u64).to_le_bytes());
        h = fnv(h, &(l as u64).to_le_bytes());
    }
    h
}

/// Fill receive buffers with the canary.
///
/// # Safety
/// The fragments must be writable for their lengths.
pub unsafe fn fill_canary(frags: &[Frag]) {
    for &(p, l) in frags {
        if p != 0 {
            // SAFETY: caller-vouched receive buffer of `l` bytes.
            unsafe { core::ptr::write_bytes(p as *mut u8, CANARY, l) };
        }
    }
}

/// Are the first `n` bytes (across fragments) still canary?
///
/// # Safety
/// The fragments must be readable for their lengths.
pub unsafe fn canary_intact(frags: &[Frag], mut n: usize) -> bool {
    for &(p, l) in frags {
        let k = l.min(n);
        if p != 0 && k > 0 {
            // SAFETY: caller-vouched receive buffer of at least `k` bytes.
            let s = unsafe { core::slice::from_raw_parts(p as *const u8, k) };
            if s.iter().any(|&b| b != CANARY) {
                return false;
            }
        }
        n -= k;
    }
    true
}

/// Scatter `data` into the fragments; rewrite DataLength and the lengths of
/// the fragments used (unused ones get 0), as EDK2 does.
///
/// # Safety
/// `rx` and its fragments must be writable (pending receive token).
pub unsafe fn scatter(rx: *mut Tcp4ReceiveData, frags: &[Frag], data: &[u8]) {
    let mut off = 0;
    // SAFETY: pending receive data: header, table and buffers are
    // firmware-owned and valid for the lengths recorded at submission.
    unsafe {
        let table = core::ptr::addr_of_mut!((*rx).fragment_table) as *mut Tcp4FragmentData;
        for (i, &(p, l)) in frags.iter().enumerate() {
            let k = l.min(data.len() - off);
            if k > 0 {
                core::ptr::copy_nonoverlapping(data.as_ptr().add(off), p as *mut u8, k);
            }
            (*table.add(i)).fragment_length = k as u32;
            off += k;
        }
        (*rx).data_length = data.len() as u32;
        (*rx).urgent = false.into();
    }
}

/// Gather bytes `[from, from+len)` of a transmit request.
///
/// # Safety
/// The fragments must be readable for their lengths.
pub unsafe fn gather(frags: &[Frag], from: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = 0;
    for &(p, l) in frags {
        let (s, e) = (from.max(pos), (from + len).min(pos + l));
        if s < e {
            // SAFETY: caller-vouched transmit buffer of `l` bytes.
            let sl = unsafe { core::slice::from_raw_parts(p as *const u8, l) };
            out.extend_from_slice(&sl[s - pos..e - pos]);
        }
        pos += l;
    }
    out
}
