//! [`Relist`]: what a watch's (re)list delivered, so that what vanished meanwhile can be
//! dropped.
//!
//! kube-runtime's watcher restarts with a fresh list after an expired resource version or
//! a reconnect: `Init`, one `InitApply` per object, `InitDone`. It sends no `Delete` for
//! an object deleted while the watch was down, so a daemon keeping its own cache must
//! drop, at `InitDone`, every key the list did not deliver. Both daemons do this for
//! their watches; this is the one way they track it.

use std::collections::HashSet;

/// The keys delivered by the list in progress, if one is.
#[derive(Debug, Default)]
pub struct Relist(Option<HashSet<String>>);

impl Relist {
    /// A (re)list starts (`Event::Init`).
    pub fn start(&mut self) {
        self.0 = Some(HashSet::new());
    }

    /// The list in progress (if any) delivered `key` (`Event::InitApply`, or an `Apply`
    /// while it runs).
    pub fn saw(&mut self, key: &str) {
        if let Some(seen) = &mut self.0
            && !seen.contains(key)
        {
            seen.insert(key.to_owned());
        }
    }

    /// The list is complete (`Event::InitDone`): the keys it delivered, or `None` when no
    /// list was being tracked (nothing may be dropped then).
    pub fn finish(&mut self) -> Option<HashSet<String>> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_list_in_progress_only() {
        let mut r = Relist::default();
        r.saw("ns/before");
        assert_eq!(r.finish(), None, "no list started: nothing to drop");
        r.start();
        r.saw("ns/a");
        r.saw("ns/b");
        r.saw("ns/a");
        let seen = r.finish().expect("a list was tracked");
        assert_eq!(seen, HashSet::from(["ns/a".to_owned(), "ns/b".to_owned()]));
        assert_eq!(r.finish(), None, "finished once");
    }
}
