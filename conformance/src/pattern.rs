//! The deterministic byte pattern and the FNV-1a-64 checksum.
//!
//! Transfers in the suite are checked end to end without keeping copies: the
//! sender produces `pattern_byte(offset)` for every stream offset and the
//! receiver either compares byte by byte or folds the stream into an
//! [`Fnv64`] checksum. The pattern is derived from SplitMix64 of `offset / 8`,
//! so it has no short period: a duplicated, dropped or reordered segment of
//! any size shows up as a mismatch (a periodic pattern such as `offset % 251`
//! would hide a loss of exactly 251 bytes). Peers and cases share this module
//! so both sides agree by construction.

use crate::mix::splitmix64;

/// The pattern byte at stream offset `offset`.
pub fn pattern_byte(offset: u64) -> u8 {
    splitmix64(offset / 8).to_le_bytes()[(offset % 8) as usize]
}

/// Fills `buf` with the pattern bytes for offsets `offset..offset + buf.len()`.
///
/// Offsets wrap around at `u64::MAX` (never reached in practice).
pub fn fill_pattern(offset: u64, buf: &mut [u8]) {
    let mut pos = 0usize;
    let mut off = offset;
    while pos < buf.len() {
        let word = splitmix64(off / 8).to_le_bytes();
        let start = (off % 8) as usize;
        let take = (8 - start).min(buf.len() - pos);
        buf[pos..pos + take].copy_from_slice(&word[start..start + take]);
        pos += take;
        off = off.wrapping_add(take as u64);
    }
}

/// Returns the index of the first byte of `data` that differs from the
/// pattern starting at `offset`, or `None` if all of `data` matches.
pub fn find_pattern_mismatch(offset: u64, data: &[u8]) -> Option<usize> {
    let mut expected = [0u8; 256];
    let mut checked = 0usize;
    while checked < data.len() {
        let n = (data.len() - checked).min(expected.len());
        fill_pattern(offset.wrapping_add(checked as u64), &mut expected[..n]);
        if let Some(i) = (0..n).find(|&i| expected[i] != data[checked + i]) {
            return Some(checked + i);
        }
        checked += n;
    }
    None
}

/// FNV-1a 64-bit offset basis.
pub const FNV64_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Streaming FNV-1a-64 checksum: feeding a stream in any chunking gives the
/// same result as feeding it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv64 {
    hash: u64,
    len: u64,
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv64 {
    /// A checksum over zero bytes.
    pub const fn new() -> Self {
        Self {
            hash: FNV64_OFFSET_BASIS,
            len: 0,
        }
    }

    /// Folds `data` into the checksum.
    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.hash;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV64_PRIME);
        }
        self.hash = h;
        self.len = self.len.wrapping_add(data.len() as u64);
    }

    /// The checksum of everything fed so far.
    pub const fn value(&self) -> u64 {
        self.hash
    }

    /// How many bytes were fed so far.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes were fed yet.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The FNV-1a-64 checksum of `data`.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h = Fnv64::new();
    h.update(data);
    h.value()
}

/// The FNV-1a-64 checksum of the `len` pattern bytes starting at `offset`,
/// computed without materialising them.
pub fn pattern_checksum(offset: u64, len: u64) -> u64 {
    let mut h = Fnv64::new();
    let mut buf = [0u8; 4096];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        fill_pattern(offset.wrapping_add(done), &mut buf[..n]);
        h.update(&buf[..n]);
        done += n as u64;
    }
    h.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_vectors() {
        // Published FNV-1a-64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fnv_streaming_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut h = Fnv64::new();
        for chunk in data.chunks(13) {
            h.update(chunk);
        }
        assert_eq!(h.value(), fnv1a64(&data));
        assert_eq!(h.len(), 1000);
    }

    #[test]
    fn fill_matches_bytewise_at_any_alignment() {
        for start in [0u64, 1, 7, 8, 9, 1_000_003] {
            let mut buf = [0u8; 77];
            fill_pattern(start, &mut buf);
            for (i, &b) in buf.iter().enumerate() {
                assert_eq!(b, pattern_byte(start + i as u64), "start {start} i {i}");
            }
        }
    }

    #[test]
    fn pattern_has_no_small_period() {
        let mut buf = vec![0u8; 64 * 1024];
        fill_pattern(0, &mut buf);
        for period in 1..=4096usize {
            assert!(
                buf[..4096] != buf[period..period + 4096],
                "pattern repeats with period {period}"
            );
        }
        // Roughly uniform: every byte value occurs.
        let mut seen = [false; 256];
        buf.iter().for_each(|&b| seen[b as usize] = true);
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn mismatch_is_located() {
        let mut buf = vec![0u8; 1000];
        fill_pattern(500, &mut buf);
        assert_eq!(find_pattern_mismatch(500, &buf), None);
        buf[777] ^= 1;
        assert_eq!(find_pattern_mismatch(500, &buf), Some(777));
        assert_eq!(find_pattern_mismatch(501, &buf[..1]), Some(0));
    }

    #[test]
    fn pattern_checksum_matches_materialised() {
        let mut buf = vec![0u8; 10_000];
        fill_pattern(3, &mut buf);
        assert_eq!(pattern_checksum(3, 10_000), fnv1a64(&buf));
        assert_eq!(pattern_checksum(3, 0), FNV64_OFFSET_BASIS);
    }
}
