//! Which Event object an occurrence belongs to: client-go's `EventCorrelator` rules, pure.
//!
//! - **Dedup**: occurrences with the same source, object, type, reason and message are one
//!   Event whose `count` grows (the writer patches `count`/`lastTimestamp`).
//! - **Aggregation**: once an object has had [`MAX_SIMILAR`] different messages with the same
//!   source, type and reason within [`WINDOW`] of each other, further ones are folded into a
//!   single Event with the message prefixed `(combined from similar events): `.
//! - **Bounded**: both caches are LRUs of [`CACHE`] entries, as client-go's.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::bounded::Bounded;

use super::{EventSpec, Source};

/// Distinct messages of one (object, reason) before they are combined (client-go: 10).
pub const MAX_SIMILAR: usize = 10;
/// How close together similar occurrences must be to count towards [`MAX_SIMILAR`]
/// (client-go: 600 s).
pub const WINDOW: Duration = Duration::from_secs(600);
/// Entries in each LRU (client-go: 4096).
pub const CACHE: usize = 4096;
/// The prefix of a combined Event's message (client-go's wording).
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// Where one occurrence goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlated {
    /// The Event it is counted in (occurrences with equal keys are one Event).
    pub key: String,
    /// The message to write.
    pub message: String,
    /// Whether it was folded into a combined Event.
    pub combined: bool,
}

struct Similar {
    messages: HashSet<String>,
    last: Instant,
}

/// The aggregation state (the dedup cache lives with the writer, which knows the names).
pub struct Correlator {
    similar: Bounded<String, Similar>,
    max_similar: usize,
    window: Duration,
}

impl Default for Correlator {
    fn default() -> Self {
        Self::new(CACHE)
    }
}

fn join(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

/// The key of everything but the message.
pub fn aggregate_key(source: &Source, ev: &EventSpec) -> String {
    let r = &ev.regarding;
    join(&[
        source.component,
        source.host.as_deref().unwrap_or(""),
        r.kind,
        &r.namespace,
        &r.name,
        r.uid.as_deref().unwrap_or(""),
        ev.severity.as_str(),
        ev.reason,
    ])
}

impl Correlator {
    /// With LRUs of `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Correlator {
            similar: Bounded::new(capacity),
            max_similar: MAX_SIMILAR,
            window: WINDOW,
        }
    }

    /// Where `ev` (from `source`, seen at `now`) goes.
    pub fn correlate(&mut self, source: &Source, ev: &EventSpec, now: Instant) -> Correlated {
        let agg = aggregate_key(source, ev);
        let rec = self.similar.get_or_insert_mut(agg.clone(), || Similar {
            messages: HashSet::new(),
            last: now,
        });
        if now.duration_since(rec.last) > self.window {
            rec.messages.clear();
        }
        rec.last = now;
        rec.messages.insert(ev.message.clone());
        if rec.messages.len() < self.max_similar {
            return Correlated {
                key: join(&[&agg, &ev.message]),
                message: ev.message.clone(),
                combined: false,
            };
        }
        // Keep the set from growing past the threshold (client-go pops one).
        if let Some(any) = rec.messages.iter().next().cloned() {
            rec.messages.remove(&any);
        }
        Correlated {
            key: agg,
            message: format!("{COMBINED_PREFIX}{}", ev.message),
            combined: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Regarding, Severity};
    use super::*;

    fn src() -> Source {
        Source {
            component: "metallb-controller",
            host: None,
            instance: "me".into(),
        }
    }

    fn ev(name: &str, reason: &'static str, msg: &str) -> EventSpec {
        EventSpec {
            regarding: Regarding {
                kind: "Service",
                namespace: "ns".into(),
                name: name.into(),
                uid: Some("u".into()),
            },
            severity: Severity::Warning,
            reason,
            message: msg.into(),
        }
    }

    #[test]
    fn same_message_same_key_other_message_other_key() {
        let mut c = Correlator::default();
        let t = Instant::now();
        let a = c.correlate(&src(), &ev("a", "R", "m1"), t);
        let b = c.correlate(&src(), &ev("a", "R", "m1"), t);
        assert_eq!(a, b);
        assert!(!a.combined);
        let other = c.correlate(&src(), &ev("a", "R", "m2"), t);
        assert_ne!(a.key, other.key);
        // Another object or reason never shares a key.
        assert_ne!(c.correlate(&src(), &ev("b", "R", "m1"), t).key, a.key);
        assert_ne!(c.correlate(&src(), &ev("a", "S", "m1"), t).key, a.key);
    }

    #[test]
    fn the_tenth_distinct_message_is_combined_and_later_ones_join_it() {
        let mut c = Correlator::default();
        let t = Instant::now();
        let keys: Vec<Correlated> = (0..15)
            .map(|i| c.correlate(&src(), &ev("a", "R", &format!("m{i}")), t))
            .collect();
        assert!(keys[..9].iter().all(|k| !k.combined), "{keys:?}");
        assert!(keys[9..].iter().all(|k| k.combined), "{keys:?}");
        assert!(keys[9..].iter().all(|k| k.key == keys[9].key));
        assert_eq!(keys[14].message, "(combined from similar events): m14");
        // Distinct keys: nine single ones and one combined.
        let distinct: HashSet<&String> = keys.iter().map(|k| &k.key).collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn similar_messages_far_apart_are_not_combined() {
        let mut c = Correlator::default();
        let t = Instant::now();
        for i in 0..9 {
            c.correlate(&src(), &ev("a", "R", &format!("m{i}")), t);
        }
        let later = t + WINDOW + Duration::from_secs(1);
        assert!(!c.correlate(&src(), &ev("a", "R", "m9"), later).combined);
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = Correlator::new(3);
        let t = Instant::now();
        for i in 0..100 {
            c.correlate(&src(), &ev(&format!("s{i}"), "R", "m"), t);
        }
        assert_eq!(c.similar.len(), 3);
    }
}
