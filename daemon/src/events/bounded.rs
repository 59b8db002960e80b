//! [`Bounded`]: an LRU cache of at most `cap` entries that grows as it fills.
//!
//! `lru::LruCache::new(cap)` allocates room for all `cap` entries at once: the two event
//! caches of client-go's size (4,096 each) cost every daemon ~280 KB of heap before its
//! first Event. This one starts empty and evicts the least recently used entry only when
//! full, which is the same behaviour for the caller.

use std::hash::Hash;

use lru::LruCache;

/// An LRU of at most `cap` entries, allocated as it fills.
pub struct Bounded<K: Hash + Eq, V> {
    cache: LruCache<K, V>,
    cap: usize,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    /// Empty, for at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Bounded {
            cache: LruCache::unbounded(),
            cap: cap.max(1),
        }
    }

    /// Makes room for `key` if it is new and the cache is full.
    fn room_for(&mut self, key: &K) {
        if self.cache.len() >= self.cap && !self.cache.contains(key) {
            self.cache.pop_lru();
        }
    }

    /// The value of `key` (now the most recently used).
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.cache.get(key)
    }

    /// Stores `value` under `key`, evicting the least recently used entry when full.
    pub fn put(&mut self, key: K, value: V) {
        self.room_for(&key);
        self.cache.put(key, value);
    }

    /// The value of `key`, inserted with `make` if absent (evicting when full).
    pub fn get_or_insert_mut(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        self.room_for(&key);
        self.cache.get_or_insert_mut(key, make)
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_only_when_full() {
        let mut b: Bounded<u32, &str> = Bounded::new(2);
        b.put(1, "a");
        b.put(2, "b");
        assert_eq!(b.get(&1), Some(&"a"), "1 is now the most recent");
        b.put(3, "c");
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(&2), None, "2 was the least recently used");
        // Replacing a present key evicts nothing.
        b.put(1, "a2");
        assert_eq!(b.get(&1), Some(&"a2"));
        assert_eq!(b.get(&3), Some(&"c"));
        *b.get_or_insert_mut(4, || "d") = "d2";
        assert_eq!(b.len(), 2);
        assert_eq!(b.get(&4), Some(&"d2"));
        assert_eq!(b.get(&1), None);
    }
}
