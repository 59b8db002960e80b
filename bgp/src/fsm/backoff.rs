//! The connect-retry back-off and the small seeded PRNG behind its jitter, so that the
//! delays are reproducible in tests.

use std::time::Duration;

use super::{BACKOFF_CAP, BACKOFF_START};

/// A small deterministic PRNG (splitmix64) so jitter is reproducible from a seed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Connect-retry back-off: 1 s doubling to a 120 s cap, with jitter in [0.75, 1.0].
#[derive(Debug, Clone)]
pub struct Backoff {
    next_base: Duration,
    rng: SplitMix64,
}

impl Backoff {
    /// A fresh back-off whose jitter is drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Backoff {
            next_base: BACKOFF_START,
            rng: SplitMix64(seed),
        }
    }

    /// The next delay (jittered), advancing the sequence.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next_base;
        self.next_base = (base * 2).min(BACKOFF_CAP);
        let factor = 0.75 + 0.25 * self.rng.next_unit();
        base.mul_f64(factor)
    }

    /// The un-jittered base of the next delay.
    pub fn peek_base(&self) -> Duration {
        self.next_base
    }

    /// Back to the first delay (after a session was Established).
    pub fn reset(&mut self) {
        self.next_base = BACKOFF_START;
    }
}
