//! A log line that a loop may repeat at most once per period; what it held back is counted
//! and reported with the next line, so nothing disappears silently.

use std::time::{Duration, Instant};

/// Lets one line through per `period`.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    period: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogLimiter {
    /// At most one line per `period`.
    pub fn new(period: Duration) -> Self {
        LogLimiter {
            period,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(n)` if a line may be logged now (`n` = lines held back since the last one),
    /// else `None` (and the line is counted).
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.period)
        {
            self.last = Some(now);
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_and_a_count_of_the_rest() {
        let mut l = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.allow(), Some(2));
    }
}
