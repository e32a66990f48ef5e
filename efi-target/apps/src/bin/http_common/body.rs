//! Deterministic generated bodies (GET responses, POST uploads).
//!
//! Why generated: the sender never needs the whole body in memory and the
//! receiver can check it by checksum alone. The same generator is written
//! out independently in `xtask/src/http_examples.rs` (host side), so a
//! wrong byte anywhere shows up as a checksum mismatch on the other end.
//! Byte `i` of body `(seed)` is byte `i % 8` (little-endian) of
//! `splitmix64(seed + i / 8)`.

use super::fnv::Fnv;

/// One splitmix64 output for input `x`.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A reader-like generator of `len` bytes for `seed`.
#[derive(Debug, Clone)]
pub struct Generated {
    seed: u64,
    pos: u64,
    len: u64,
}

impl Generated {
    /// The body of `len` bytes for `seed`.
    pub const fn new(seed: u64, len: u64) -> Self {
        Generated { seed, pos: 0, len }
    }

    /// Bytes not produced yet.
    pub const fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    /// Fills as much of `buf` as remains; returns the count (0 at the end).
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining()).unwrap_or(usize::MAX));
        for b in &mut buf[..n] {
            let word = splitmix64(self.seed.wrapping_add(self.pos / 8));
            *b = word.to_le_bytes()[(self.pos % 8) as usize];
            self.pos += 1;
        }
        n
    }

    /// The FNV-1a-64 of the whole body (consumes a fresh copy).
    pub fn checksum(seed: u64, len: u64) -> Fnv {
        let mut g = Generated::new(seed, len);
        let mut h = Fnv::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = g.fill(&mut buf);
            if n == 0 {
                return h;
            }
            h.update(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_change_bytes() {
        let mut a = Generated::new(42, 1001);
        let mut whole = vec![0u8; 2000];
        assert_eq!(a.fill(&mut whole), 1001);
        assert_eq!(a.fill(&mut whole), 0);
        let mut b = Generated::new(42, 1001);
        let mut pieces = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = b.fill(&mut buf);
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(&whole[..1001], &pieces[..]);
        // The first word is splitmix64(seed), little-endian.
        assert_eq!(&whole[..8], &splitmix64(42).to_le_bytes());
        let mut h = Fnv::new();
        h.update(&pieces);
        assert_eq!(Generated::checksum(42, 1001).hash(), h.hash());
        assert_ne!(Generated::checksum(43, 1001).hash(), h.hash());
    }

    #[test]
    fn splitmix_reference_value() {
        // splitmix64 seeded with 0: first output of the reference generator.
        assert_eq!(splitmix64(0), 0xe220a8397b1dcdaf);
    }
}
