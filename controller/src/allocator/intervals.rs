//! A set of `u128` values kept as coalesced, inclusive intervals.
//!
//! Why: the allocator must find "the lowest free address at or after X" in time that does not
//! depend on the pool size (a /8 or an IPv6 /64 must cost no more than a /28). Keeping the
//! *allocated* addresses as coalesced runs means the first free value after `x` is either `x`
//! itself or one past the end of the single run that contains `x` — one ordered-map lookup,
//! O(log n) in the number of runs, never a scan.

use std::collections::BTreeMap;

/// Coalesced inclusive intervals: no two stored runs overlap or touch
/// (`prev.end + 1 < next.start` always holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    /// start -> end (inclusive).
    runs: BTreeMap<u128, u128>,
    /// Number of values in the set (saturating; only an IPv6 /0 could reach the limit).
    len: u128,
}

impl IntervalSet {
    /// Number of values held.
    pub(crate) fn len(&self) -> u128 {
        self.len
    }

    /// Number of stored runs (for tests and memory reasoning).
    #[cfg(test)]
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The run containing `x`, if any.
    fn run_containing(&self, x: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=x)
            .next_back()
            .filter(|&(_, &end)| end >= x)
            .map(|(&s, &e)| (s, e))
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, x: u128) -> bool {
        self.run_containing(x).is_some()
    }

    /// Adds `x`. Returns false if it was already present.
    pub(crate) fn insert(&mut self, x: u128) -> bool {
        // The run starting at or before x: it may contain x, or end right before it.
        let left = self.runs.range_mut(..=x).next_back();
        let extends_left = match left {
            Some((_, end)) if *end >= x => return false,
            Some((&start, end)) if x.checked_sub(1) == Some(*end) => {
                *end = x;
                Some(start)
            }
            _ => None,
        };
        // A run starting right after x merges in.
        if let Some(next) = x.checked_add(1)
            && let Some(right_end) = self.runs.remove(&next)
        {
            match extends_left {
                Some(start) => self.runs.insert(start, right_end),
                None => self.runs.insert(x, right_end),
            };
        } else if extends_left.is_none() {
            self.runs.insert(x, x);
        }
        self.len = self.len.saturating_add(1);
        true
    }

    /// Removes `x`, splitting its run if needed. Returns false if it was absent.
    pub(crate) fn remove(&mut self, x: u128) -> bool {
        let Some((&start, end)) = self.runs.range_mut(..=x).next_back() else {
            return false;
        };
        let old_end = *end;
        if old_end < x {
            return false;
        }
        if start < x {
            // Shorten in place; the part after x (if any) becomes its own run.
            *end = x - 1;
        } else {
            self.runs.remove(&start);
        }
        if x < old_end {
            self.runs.insert(x + 1, old_end);
        }
        self.len = self.len.saturating_sub(1);
        true
    }

    /// The smallest value `>= from` that is NOT in the set, or `None` if every value from
    /// `from` up to `u128::MAX` is taken. O(log runs): since runs are coalesced, the value
    /// right after the run containing `from` is free.
    pub(crate) fn first_absent_from(&self, from: u128) -> Option<u128> {
        match self.run_containing(from) {
            None => Some(from),
            Some((_, end)) => end.checked_add(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_coalesces_and_remove_splits() {
        let mut s = IntervalSet::default();
        assert!(s.insert(5));
        assert!(s.insert(7));
        assert_eq!(s.runs(), 2);
        assert!(s.insert(6));
        assert_eq!(s.runs(), 1, "5,6,7 must be one run");
        assert!(!s.insert(6));
        assert_eq!(s.len(), 3);
        assert_eq!(s.first_absent_from(5), Some(8));
        assert_eq!(s.first_absent_from(4), Some(4));
        assert!(s.remove(6));
        assert_eq!(s.runs(), 2);
        assert_eq!(s.first_absent_from(5), Some(6));
        assert!(!s.remove(6));
        assert!(s.contains(5) && s.contains(7) && !s.contains(6));
        assert!(s.remove(5) && s.remove(7));
        assert_eq!(s.len(), 0);
        assert_eq!(s.runs(), 0);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut s = IntervalSet::default();
        assert!(s.insert(u128::MAX));
        assert!(s.insert(0));
        assert_eq!(s.first_absent_from(u128::MAX), None);
        assert_eq!(s.first_absent_from(0), Some(1));
        assert!(s.insert(u128::MAX - 1));
        assert_eq!(s.runs(), 2);
        assert!(s.remove(u128::MAX));
        assert_eq!(s.first_absent_from(u128::MAX - 1), Some(u128::MAX));
    }

    #[test]
    fn matches_a_naive_model() {
        // Deterministic pseudo-random walk compared to a BTreeSet.
        let mut s = IntervalSet::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = u128::from(x % 200);
            if x & (1 << 40) == 0 {
                assert_eq!(s.insert(v), model.insert(v));
            } else {
                assert_eq!(s.remove(v), model.remove(&v));
            }
            let probe = u128::from((x >> 20) % 210);
            let want = (probe..).find(|p| !model.contains(p));
            assert_eq!(s.first_absent_from(probe), want);
            assert_eq!(s.len(), model.len() as u128);
        }
    }
}
