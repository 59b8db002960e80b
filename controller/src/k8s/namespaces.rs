//! Namespace labels, for pools whose `serviceAllocation.namespaceSelectors` select namespaces
//! by label: a slim Namespace type (name and labels only) and the cache the watch fills.
//!
//! Why a cache of its own: the decisions ([`crate::reconcile::Reconciler`]) only exist while
//! this replica leads, but the labels must be complete the moment it starts leading, so the
//! watch runs all the time and the cache outlives the reconciler.

use std::collections::{HashMap, HashSet};

use kube::runtime::watcher::Event;

use crate::allocator::Labels;

pub use ferrolb_daemon::slim::SlimNamespace;

/// A namespace whose labels changed: its name and its labels now (`None`: deleted).
pub(crate) type Change = (String, Option<Labels>);

/// The labels of every namespace, as the watch reports them.
#[derive(Debug, Default)]
pub(crate) struct NamespaceCache {
    labels: HashMap<String, Labels>,
    /// Names seen during a (re)list, to drop the ones that vanished meanwhile.
    relist: Option<HashSet<String>>,
    /// The initial list has been received.
    pub(crate) synced: bool,
}

impl NamespaceCache {
    /// Applies one watch event; returns the namespaces whose labels changed.
    pub(crate) fn on_event(&mut self, ev: Event<SlimNamespace>) -> Vec<Change> {
        match ev {
            Event::Init => {
                self.relist = Some(HashSet::new());
                Vec::new()
            }
            Event::InitApply(ns) => {
                let name = ns.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = &mut self.relist {
                    seen.insert(name);
                }
                self.upsert(ns).into_iter().collect()
            }
            Event::InitDone => {
                self.synced = true;
                let Some(seen) = self.relist.take() else {
                    return Vec::new();
                };
                let gone: Vec<String> = self
                    .labels
                    .keys()
                    .filter(|n| !seen.contains(*n))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .map(|n| {
                        self.labels.remove(&n);
                        (n, None)
                    })
                    .collect()
            }
            Event::Apply(ns) => self.upsert(ns).into_iter().collect(),
            Event::Delete(ns) => {
                let name = ns.metadata.name.unwrap_or_default();
                match self.labels.remove(&name) {
                    Some(_) => vec![(name, None)],
                    None => Vec::new(),
                }
            }
        }
    }

    fn upsert(&mut self, ns: SlimNamespace) -> Option<Change> {
        let name = ns.metadata.name?;
        let labels = Labels::new(ns.metadata.labels.unwrap_or_default());
        if self.labels.get(&name) == Some(&labels) {
            return None;
        }
        self.labels.insert(name.clone(), labels.clone());
        Some((name, Some(labels)))
    }

    /// Every namespace with its labels.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Labels)> {
        self.labels.iter().map(|(n, l)| (n.as_str(), l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(name: &str, labels: serde_json::Value) -> SlimNamespace {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "managedFields": [{"manager": "x"}]},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        }))
        .expect("namespace json")
    }

    #[test]
    fn reports_label_changes_and_relist_removals_only() {
        let mut c = NamespaceCache::default();
        assert!(c.on_event(Event::Init).is_empty());
        let first = c.on_event(Event::InitApply(ns("a", json!({"team": "a"}))));
        assert_eq!(first.len(), 1);
        assert!(c.on_event(Event::InitApply(ns("b", json!({})))).len() == 1);
        assert!(!c.synced);
        assert!(c.on_event(Event::InitDone).is_empty());
        assert!(c.synced);
        // Same labels again: no change. New labels: one change.
        assert!(
            c.on_event(Event::Apply(ns("a", json!({"team": "a"}))))
                .is_empty()
        );
        let changed = c.on_event(Event::Apply(ns("a", json!({"team": "b"}))));
        assert_eq!(changed[0].0, "a");
        let labels = changed[0].1.clone().expect("labels");
        assert_eq!(labels.map().get("team").map(String::as_str), Some("b"));
        // A relist that misses "b" removes it.
        c.on_event(Event::Init);
        c.on_event(Event::InitApply(ns("a", json!({"team": "b"}))));
        assert_eq!(c.on_event(Event::InitDone), vec![("b".to_string(), None)]);
        assert_eq!(c.on_event(Event::Delete(ns("a", json!({})))).len(), 1);
        assert_eq!(c.iter().count(), 0);
    }
}
