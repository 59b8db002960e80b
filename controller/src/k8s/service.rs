//! From the API object to [`SvcView`] (the edge side of the view: annotations, spec fields
//! and status parsed into the allocator's request).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::allocator::{Family, FamilyPolicy, Labels, Port, Protocol, Request, TrafficPolicy};
use crate::k8s::slim::SlimService;
use crate::view::{ANN_ALLOCATED_FROM_POOL, ANN_ALLOCATED_FROM_POOL_IO, SvcView, key_of};

const ANN_LB_IPS: &str = "loadBalancerIPs";
const ANN_POOL: &str = "address-pool";
const ANN_SHARED: &str = "allow-shared-ip";

/// Read an annotation under either prefix; the newer `metallb.io/` wins, as in MetalLB.
fn annotation<'a>(anns: &'a BTreeMap<String, String>, suffix: &str) -> Option<&'a str> {
    anns.get(&format!("metallb.io/{suffix}"))
        .or_else(|| anns.get(&format!("metallb.universe.tf/{suffix}")))
        .map(String::as_str)
}

impl SvcView {
    /// Build the view from an API object.
    pub fn from_service(svc: &SlimService) -> SvcView {
        let meta = &svc.metadata;
        let empty = BTreeMap::new();
        let anns = meta.annotations.as_ref().unwrap_or(&empty);
        let spec = svc.spec.as_ref();
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let status_ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
            .unwrap_or_default();
        SvcView {
            uid: meta.uid.clone(),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            is_load_balancer: spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            class: spec.and_then(|s| s.load_balancer_class.clone()),
            request: build_request(&key_of(&namespace, &name), svc, anns),
            status_ips,
            pool_annotation: anns.get(ANN_ALLOCATED_FROM_POOL).cloned(),
            has_io_pool_annotation: anns.contains_key(ANN_ALLOCATED_FROM_POOL_IO),
            namespace,
            name,
        }
    }
}

fn parse_family(s: &str) -> Option<Family> {
    match s {
        "IPv4" => Some(Family::V4),
        "IPv6" => Some(Family::V6),
        _ => None,
    }
}

/// Translate the Service's spec and annotations into an allocator [`Request`]. Errors are
/// the user's (a malformed request) and become a `LoadBalancerFailed` event.
fn build_request(
    key: &str,
    svc: &SlimService,
    anns: &BTreeMap<String, String>,
) -> Result<Request, String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut req = Request::new(key);

    let ann_ips = annotation(anns, ANN_LB_IPS)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let spec_ip = spec
        .load_balancer_ip
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    req.requested_ips = match (ann_ips, spec_ip) {
        (Some(_), Some(_)) => {
            return Err(
                "service can not have both metallb.universe.tf/loadBalancerIPs and spec.loadBalancerIP"
                    .to_string(),
            );
        }
        (Some(list), None) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("invalid metallb.universe.tf/loadBalancerIPs: {list:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(ip)) => vec![
            ip.parse::<IpAddr>()
                .map_err(|_| format!("invalid spec.loadBalancerIP {ip:?}"))?,
        ],
        (None, None) => Vec::new(),
    };
    req.pool = annotation(anns, ANN_POOL)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    req.sharing_key = annotation(anns, ANN_SHARED).map(str::to_string);
    req.ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            Port {
                protocol,
                port: u16::try_from(p.port).unwrap_or(0),
            }
        })
        .collect();
    req.traffic_policy = TrafficPolicy::from_spec(spec.external_traffic_policy.as_deref());
    // The selector only matters for sharing between Local Services; not keeping it for
    // Cluster ones saves a map per Service (memory at 10,000 Services).
    if req.traffic_policy == TrafficPolicy::Local {
        req.selector = spec.selector.clone().unwrap_or_default();
    }
    // Labels only matter to the allocator (serviceSelectors), so only LoadBalancers keep them.
    if spec.type_.as_deref() == Some("LoadBalancer") {
        req.labels = Labels::new(svc.metadata.labels.clone().unwrap_or_default());
    }

    // Primary family: ipFamilies[0], else the family of the ClusterIP, else the requested IP,
    // else IPv4.
    let primary = spec
        .ip_families
        .as_ref()
        .and_then(|f| f.first())
        .and_then(|f| parse_family(f))
        .or_else(|| {
            spec.cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| Family::of(&ip))
        })
        .or_else(|| req.requested_ips.first().map(Family::of))
        .unwrap_or(Family::V4);
    req.family = match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack(primary),
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack(primary),
        _ => FamilyPolicy::SingleStack(primary),
    };
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> SlimService {
        serde_json::from_value(v).expect("valid service json")
    }

    #[test]
    fn reads_request_fields() {
        let s = svc(json!({
            "metadata": {"namespace": "ns", "name": "a", "annotations": {
                "metallb.universe.tf/address-pool": "blue",
                "metallb.universe.tf/allow-shared-ip": "k",
                "metallb.universe.tf/ip-allocated-from-pool": "blue"}},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.0.5",
                "externalTrafficPolicy": "Local", "selector": {"app": "x"},
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.5"}]}}
        }));
        let v = SvcView::from_service(&s);
        assert_eq!(v.key(), "ns/a");
        assert!(v.handled(None));
        assert!(!v.handled(Some("other")));
        let r = v.request.expect("valid request");
        assert_eq!(r.requested_ips, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.pool.as_deref(), Some("blue"));
        assert_eq!(r.sharing_key.as_deref(), Some("k"));
        assert_eq!(r.ports, vec![Port::tcp(80), Port::udp(53)]);
        assert_eq!(r.traffic_policy, TrafficPolicy::Local);
        assert_eq!(r.family, FamilyPolicy::SingleStack(Family::V4));
        assert_eq!(v.status_ips, vec!["10.0.0.5".to_string()]);
        assert_eq!(v.pool_annotation.as_deref(), Some("blue"));
    }

    #[test]
    fn keeps_labels_of_load_balancers_only() {
        let labelled = |type_: &str| {
            svc(json!({
                "metadata": {"namespace": "ns", "name": "a", "labels": {"tier": "gold"}},
                "spec": {"type": type_}
            }))
        };
        let r = SvcView::from_service(&labelled("LoadBalancer"))
            .request
            .expect("valid");
        assert_eq!(r.labels.map().get("tier").map(String::as_str), Some("gold"));
        let r = SvcView::from_service(&labelled("ClusterIP"))
            .request
            .expect("valid");
        assert!(r.labels.map().is_empty());
    }

    #[test]
    fn both_ip_sources_is_an_error() {
        let s = svc(json!({
            "metadata": {"namespace": "ns", "name": "a", "annotations": {
                "metallb.universe.tf/loadBalancerIPs": "10.0.0.1"}},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.0.5"}
        }));
        let err = SvcView::from_service(&s).request.expect_err("both set");
        assert!(err.contains("can not have both"), "{err}");
    }

    #[test]
    fn bad_ip_is_an_error_and_dual_stack_is_read() {
        let s = svc(json!({
            "metadata": {"namespace": "ns", "name": "a", "annotations": {
                "metallb.io/loadBalancerIPs": "10.0.0.1, nope"}},
            "spec": {"type": "LoadBalancer"}
        }));
        assert!(SvcView::from_service(&s).request.is_err());
        let s = svc(json!({
            "metadata": {"namespace": "ns", "name": "b"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "x",
                "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}
        }));
        let v = SvcView::from_service(&s);
        assert!(v.handled(Some("x")) && !v.handled(None));
        assert_eq!(
            v.request.expect("valid").family,
            FamilyPolicy::RequireDualStack(Family::V6)
        );
    }
}
