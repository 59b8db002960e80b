//! The speaker's view of the cluster: what the watchers saw, reduced to plain data.
//!
//! Level-triggered: watch events only update this cache (and say whether anything the
//! decision reads actually changed); the driver then recomputes the whole decision from it.
//! EndpointSlices are kept per slice and joined to their Service at decision time, so a
//! slice arriving before its Service (or after it is gone) is harmless.

use std::collections::{BTreeMap, HashMap};

use crate::decision::{EndpointView, ServiceView};
use crate::k8s::views::{NodeInfo, ServiceInfo, SliceInfo};

/// Everything the decision reads, apart from the configuration.
#[derive(Debug, Default)]
pub struct Cache {
    services: BTreeMap<String, ServiceInfo>,
    slices: HashMap<String, SliceInfo>,
    /// Slice keys per Service key.
    slices_of: HashMap<String, Vec<String>>,
    /// This node (`None` until the Node object was seen).
    pub node: Option<NodeInfo>,
}

impl Cache {
    /// Insert or replace a Service; returns whether anything changed.
    pub fn upsert_service(&mut self, info: ServiceInfo) -> bool {
        if self.services.get(&info.key) == Some(&info) {
            return false;
        }
        self.services.insert(info.key.clone(), info);
        true
    }

    /// Forget a Service; returns whether it was known.
    pub fn remove_service(&mut self, key: &str) -> bool {
        self.services.remove(key).is_some()
    }

    /// Keep only the Services in `keep` (after a relist); returns whether any was dropped.
    pub fn retain_services(&mut self, keep: &std::collections::HashSet<String>) -> bool {
        let before = self.services.len();
        self.services.retain(|k, _| keep.contains(k));
        before != self.services.len()
    }

    /// Insert or replace an EndpointSlice; returns whether anything changed.
    pub fn upsert_slice(&mut self, info: SliceInfo) -> bool {
        if self.slices.get(&info.key) == Some(&info) {
            return false;
        }
        self.remove_slice(&info.key.clone());
        if let Some(svc) = &info.service {
            self.slices_of
                .entry(svc.clone())
                .or_default()
                .push(info.key.clone());
        }
        self.slices.insert(info.key.clone(), info);
        true
    }

    /// Forget an EndpointSlice; returns whether it was known.
    pub fn remove_slice(&mut self, key: &str) -> bool {
        let Some(old) = self.slices.remove(key) else {
            return false;
        };
        if let Some(svc) = &old.service
            && let Some(list) = self.slices_of.get_mut(svc)
        {
            list.retain(|k| k != key);
            if list.is_empty() {
                self.slices_of.remove(svc);
            }
        }
        true
    }

    /// Keep only the slices in `keep` (after a relist); returns whether any was dropped.
    pub fn retain_slices(&mut self, keep: &std::collections::HashSet<String>) -> bool {
        let gone: Vec<String> = self
            .slices
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.remove_slice(k);
        }
        !gone.is_empty()
    }

    /// Replace this node's info; returns whether anything changed.
    pub fn set_node(&mut self, node: Option<NodeInfo>) -> bool {
        if self.node == node {
            return false;
        }
        self.node = node;
        true
    }

    /// A Service by key.
    pub fn service(&self, key: &str) -> Option<&ServiceInfo> {
        self.services.get(key)
    }

    /// Number of Services known.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The endpoints of a Service, from all of its slices.
    pub fn endpoints_of(&self, key: &str) -> Vec<EndpointView> {
        self.slices_of
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|s| self.slices.get(s))
            .flat_map(|s| s.endpoints.iter().cloned())
            .collect()
    }

    /// The decision's input: every Service that has status IPs, with its endpoints.
    /// Services without IPs can never be announced, so they are not even looked at.
    pub fn service_views(&self) -> Vec<ServiceView> {
        self.services
            .values()
            .filter(|s| !s.ips.is_empty())
            .map(|s| s.view(self.endpoints_of(&s.key)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::TrafficPolicy;

    fn svc(key: &str, ips: &[&str]) -> ServiceInfo {
        let (ns, name) = key.split_once('/').unwrap();
        ServiceInfo {
            key: key.into(),
            namespace: ns.into(),
            name: name.into(),
            uid: None,
            is_load_balancer: true,
            lb_class: None,
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            traffic_policy: TrafficPolicy::Cluster,
            publish_not_ready: false,
        }
    }

    fn slice(key: &str, svc: &str, nodes: &[&str]) -> SliceInfo {
        SliceInfo {
            key: key.into(),
            service: Some(svc.into()),
            endpoints: nodes
                .iter()
                .map(|n| EndpointView {
                    node_name: Some(n.to_string()),
                    addresses: Vec::new(),
                    ready: Some(true),
                    serving: None,
                })
                .collect(),
        }
    }

    #[test]
    fn joins_slices_to_services_and_reports_changes() {
        let mut c = Cache::default();
        // A slice may arrive before its Service.
        assert!(c.upsert_slice(slice("a/web-1", "a/web", &["n1"])));
        assert!(c.upsert_service(svc("a/web", &["10.0.0.1"])));
        assert!(!c.upsert_service(svc("a/web", &["10.0.0.1"])), "unchanged");
        assert!(c.upsert_slice(slice("a/web-2", "a/web", &["n2", "n3"])));
        assert!(!c.upsert_slice(slice("a/web-2", "a/web", &["n2", "n3"])));
        assert!(c.upsert_service(svc("a/noip", &[])));
        let views = c.service_views();
        assert_eq!(views.len(), 1, "services without IPs are skipped");
        let mut nodes: Vec<String> = views[0]
            .endpoints
            .iter()
            .filter_map(|e| e.node_name.clone())
            .collect();
        nodes.sort();
        assert_eq!(nodes, vec!["n1", "n2", "n3"]);
        // A slice moving to another Service leaves the first one.
        assert!(c.upsert_slice(slice("a/web-2", "a/other", &["n2"])));
        assert_eq!(c.endpoints_of("a/web").len(), 1);
        assert!(c.remove_slice("a/web-1"));
        assert!(!c.remove_slice("a/web-1"));
        assert!(c.endpoints_of("a/web").is_empty());
        let keep = std::collections::HashSet::from(["a/noip".to_string()]);
        assert!(c.retain_services(&keep));
        assert_eq!(c.service_count(), 1);
    }
}
