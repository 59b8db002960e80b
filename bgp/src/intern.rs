//! [`Interner`]: shares equal values between the many entries of a table.
//!
//! A routing table holds few distinct values (attribute sets, next-hop sets) for many
//! prefixes; each prefix keeps an `Arc` to the one shared copy. Values no prefix uses
//! any more are swept in batches (amortised O(1) per change, so a peer with many
//! distinct values does not make every change scan the whole set).

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// The shared copies of the values of one table.
#[derive(Debug)]
pub struct Interner<T> {
    set: HashSet<Arc<T>>,
    /// The value interned last: a large table repeats one value for run after run of
    /// prefixes, which then costs a comparison instead of a hash lookup.
    last: Option<Arc<T>>,
    /// References dropped since the last sweep.
    released: usize,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::new(),
            last: None,
            released: 0,
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// The shared copy of `value` (stored if new).
    pub fn intern(&mut self, value: T) -> Arc<T> {
        if let Some(last) = &self.last
            && **last == value
        {
            return last.clone();
        }
        let r = match self.set.get(&value) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(value);
                self.set.insert(r.clone());
                r
            }
        };
        self.last = Some(r.clone());
        r
    }

    /// The shared copy equal to `value`, which the caller already holds in an `Arc`
    /// (kept as the shared copy if new).
    pub fn intern_arc(&mut self, value: Arc<T>) -> Arc<T> {
        if self.last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &value)) {
            return value;
        }
        if let Some(r) = self.set.get(&*value) {
            return r.clone();
        }
        self.set.insert(value.clone());
        value
    }

    /// Notes that `n` references were dropped, and forgets values nothing uses any more
    /// once enough were dropped.
    pub fn released(&mut self, n: usize) {
        self.released += n;
        if self.released > 64 + self.set.len() / 2 {
            self.last = None;
            self.set.retain(|r| Arc::strong_count(r) > 1);
            self.released = 0;
        }
    }

    /// Forgets every value (the table was emptied).
    pub fn clear(&mut self) {
        self.set.clear();
        self.last = None;
        self.released = 0;
    }

    /// Number of distinct values held (some may be unused until the next sweep).
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when no value is held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_and_unused_ones_are_swept() {
        let mut i: Interner<Vec<u32>> = Interner::default();
        let a = i.intern(vec![1, 2]);
        let b = i.intern(vec![1, 2]);
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern_arc(Arc::new(vec![3]));
        assert_eq!(i.len(), 2);
        drop(c);
        // Not yet swept: the sweep is amortised.
        i.released(1);
        assert_eq!(i.len(), 2);
        i.released(100);
        assert_eq!(i.len(), 1, "the unused value is gone, the used one stays");
        assert!(Arc::ptr_eq(&i.intern(vec![1, 2]), &a));
    }
}
