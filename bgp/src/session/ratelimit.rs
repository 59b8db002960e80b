//! Rate-limited logging: anything a peer can repeat is logged at most once per interval,
//! with the number of occurrences since the last line.

use std::time::{Duration, Instant};

/// How often a repeated per-peer event may be logged.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts occurrences and says when one may be logged.
#[derive(Debug)]
pub(crate) struct LogEvery {
    interval: Duration,
    last: Option<Instant>,
    count: u64,
}

impl LogEvery {
    pub(crate) fn new(interval: Duration) -> Self {
        LogEvery {
            interval,
            last: None,
            count: 0,
        }
    }

    /// Counts one occurrence; returns how many happened since the last line when a line
    /// is due now (the first occurrence is always logged).
    pub(crate) fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

impl Default for LogEvery {
    fn default() -> Self {
        LogEvery::new(LOG_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_interval_with_a_count() {
        let mut l = LogEvery::new(Duration::from_millis(50));
        assert_eq!(l.hit(), Some(1));
        for _ in 0..1000 {
            assert_eq!(l.hit(), None);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.hit(), Some(1001));
    }
}
