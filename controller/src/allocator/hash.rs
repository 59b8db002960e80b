//! A fast hasher for the allocator's maps (service keys and IP addresses).
//!
//! Why not std's SipHash: with 100,000+ Services the allocator does several map lookups per
//! operation and SipHash was a measurable share of the time. This is a word-at-a-time
//! multiplicative hash with a murmur3 finaliser (so addresses differing only in their last octet
//! spread over all buckets), seeded per map from std's random `RandomState`, so the bucket
//! layout is not predictable from outside. Keys are Service names from the API server, written
//! by authenticated users; this is not meant to resist a determined collision attack.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Builds [`FastHasher`]s with a per-instance random seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        FastState {
            seed: RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.seed)
    }
}

const K: u64 = 0x517c_c1b7_2722_0a95;

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Byte by byte: a variable-length copy would be a memcpy call per hash.
            let w = rest
                .iter()
                .enumerate()
                .fold(0u64, |w, (i, b)| w | u64::from(*b) << (8 * i));
            self.add(w);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3 fmix64.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn sequential_addresses_spread_over_low_bits() {
        let s = FastState::default();
        let buckets: HashSet<u64> = (0..256u32)
            .map(|i| s.hash_one(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))) & 0xff)
            .collect();
        // 256 random values into 256 buckets fill ~162 on average; a broken hash fills 1.
        assert!(buckets.len() > 120, "only {} buckets used", buckets.len());
        let keys: HashSet<u64> = (0..256)
            .map(|i| s.hash_one(format!("ns/svc-{i}")) & 0xff)
            .collect();
        assert!(keys.len() > 120, "only {} buckets used", keys.len());
    }
}
