//! What both daemons read off a Service in the same way, so the controller (which
//! assigns IPs) and the speaker (which announces them) can never disagree about it: a
//! Service's key, its traffic policy, and whether it is one of ours at all (MetalLB's
//! `loadBalancerClass` rule).

use std::fmt;

/// The key of a Service (or any namespaced object): `namespace/name`.
pub fn key_of(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    /// Any node may receive traffic (the default).
    #[default]
    Cluster,
    /// Only nodes with a local endpoint.
    Local,
}

impl TrafficPolicy {
    /// From the field's value: `Local`, else (absent, `Cluster`, anything the API server
    /// would have refused) `Cluster`.
    pub fn from_spec(value: Option<&str>) -> TrafficPolicy {
        match value {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        }
    }
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        })
    }
}

/// Whether a daemon started with `our_class` (`--lb-class`) handles a Service: it must
/// be of type LoadBalancer and its `spec.loadBalancerClass` must be exactly ours (a
/// daemon without a class takes only Services without one, as MetalLB does).
pub fn handles(
    is_load_balancer: bool,
    service_class: Option<&str>,
    our_class: Option<&str>,
) -> bool {
    is_load_balancer && service_class == our_class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_rule_table() {
        for (lb, svc, ours, want) in [
            (true, None, None, true),
            (true, Some("x"), None, false),
            (true, None, Some("x"), false),
            (true, Some("x"), Some("x"), true),
            (true, Some("y"), Some("x"), false),
            (false, None, None, false),
            (false, Some("x"), Some("x"), false),
        ] {
            assert_eq!(handles(lb, svc, ours), want, "{lb} {svc:?} {ours:?}");
        }
    }

    #[test]
    fn traffic_policy_from_spec_and_back() {
        assert_eq!(
            TrafficPolicy::from_spec(Some("Local")),
            TrafficPolicy::Local
        );
        assert_eq!(
            TrafficPolicy::from_spec(Some("Cluster")),
            TrafficPolicy::Cluster
        );
        assert_eq!(TrafficPolicy::from_spec(None), TrafficPolicy::Cluster);
        assert_eq!(TrafficPolicy::Local.to_string(), "Local");
        assert_eq!(key_of("ns", "svc"), "ns/svc");
    }
}
