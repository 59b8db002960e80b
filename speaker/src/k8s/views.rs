//! From Kubernetes objects to the plain views the decision uses.
//!
//! Pure conversions: the watchers call these on every object they receive and keep only the
//! result, so the speaker's memory holds a few strings per Service instead of whole objects.
//! Unparseable values (an ingress IP that is not an IP, a pod CIDR that is not a CIDR) are
//! skipped with a log line, never a panic.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::decision::{EndpointView, NodeView, ServiceView, TrafficPolicy};

/// Label of an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub use ferrolb_config::service::key_of;

/// A Service as the speaker keeps it: everything but the endpoints (which come from
/// EndpointSlices and are joined in at decision time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `namespace/name`.
    pub key: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, for events.
    pub uid: Option<String>,
    /// `spec.type == LoadBalancer`.
    pub is_load_balancer: bool,
    /// `spec.loadBalancerClass`.
    pub lb_class: Option<String>,
    /// `status.loadBalancer.ingress[].ip`.
    pub ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.publishNotReadyAddresses`.
    pub publish_not_ready: bool,
}

impl ServiceInfo {
    /// Convert a Service object; `None` without namespace or name.
    pub fn from_service(svc: &Service) -> Option<ServiceInfo> {
        let namespace = svc.metadata.namespace.clone()?;
        let name = svc.metadata.name.clone()?;
        let key = key_of(&namespace, &name);
        let spec = svc.spec.as_ref();
        let ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ingress| {
                ingress
                    .iter()
                    .filter_map(|i| i.ip.as_deref())
                    .filter_map(|ip| match ip.parse::<IpAddr>() {
                        Ok(ip) => Some(ip),
                        Err(_) => {
                            tracing::warn!(service = %key, ip, "ingress IP is not an IP address; ignored");
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let traffic_policy =
            TrafficPolicy::from_spec(spec.and_then(|s| s.external_traffic_policy.as_deref()));
        Some(ServiceInfo {
            uid: svc.metadata.uid.clone(),
            is_load_balancer: spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            lb_class: spec.and_then(|s| s.load_balancer_class.clone()),
            ips,
            traffic_policy,
            publish_not_ready: spec
                .and_then(|s| s.publish_not_ready_addresses)
                .unwrap_or(false),
            key,
            namespace,
            name,
        })
    }

    /// The decision's view, with the Service's endpoints joined in.
    pub fn view(&self, endpoints: Vec<EndpointView>) -> ServiceView {
        ServiceView {
            key: self.key.clone(),
            is_load_balancer: self.is_load_balancer,
            lb_class: self.lb_class.clone(),
            ips: self.ips.clone(),
            traffic_policy: self.traffic_policy,
            publish_not_ready: self.publish_not_ready,
            endpoints,
        }
    }
}

/// One EndpointSlice, reduced to its Service and endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    /// `namespace/name` of the slice itself.
    pub key: String,
    /// `namespace/name` of its Service (`None` when the slice has no service-name label).
    pub service: Option<String>,
    /// Its endpoints.
    pub endpoints: Vec<EndpointView>,
}

impl SliceInfo {
    /// Convert an EndpointSlice; `None` without namespace or name.
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceInfo> {
        let namespace = slice.metadata.namespace.as_deref()?;
        let name = slice.metadata.name.as_deref()?;
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(|svc| key_of(namespace, svc));
        let endpoints = slice
            .endpoints
            .iter()
            .map(|ep| EndpointView {
                node_name: ep.node_name.clone(),
                addresses: ep.addresses.clone(),
                ready: ep.conditions.as_ref().and_then(|c| c.ready),
                serving: ep.conditions.as_ref().and_then(|c| c.serving),
            })
            .collect();
        Some(SliceInfo {
            key: key_of(namespace, name),
            service,
            endpoints,
        })
    }
}

/// This node, with the addresses the session layer needs beside the decision's view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// What the decision sees.
    pub view: NodeView,
    /// `status.addresses` of type InternalIP (then ExternalIP), in order.
    pub addresses: Vec<IpAddr>,
}

impl NodeInfo {
    /// Convert a Node object.
    pub fn from_node(node: &Node) -> NodeInfo {
        let name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        let mut cidr_text: Vec<&str> = spec
            .and_then(|s| s.pod_cidrs.as_ref())
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if cidr_text.is_empty()
            && let Some(c) = spec.and_then(|s| s.pod_cidr.as_deref())
        {
            cidr_text.push(c);
        }
        let pod_cidrs = cidr_text
            .into_iter()
            .filter_map(|c| match c.parse::<IpNet>() {
                Ok(n) => Some(n),
                Err(_) => {
                    tracing::warn!(node = %name, cidr = c, "pod CIDR is not a CIDR; ignored");
                    None
                }
            })
            .collect();
        let status = node.status.as_ref();
        let network_unavailable = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
            });
        let mut addresses = Vec::new();
        for wanted in ["InternalIP", "ExternalIP"] {
            for a in status
                .and_then(|s| s.addresses.as_ref())
                .into_iter()
                .flatten()
            {
                if a.type_ == wanted
                    && let Ok(ip) = a.address.parse::<IpAddr>()
                {
                    addresses.push(ip);
                }
            }
        }
        NodeInfo {
            view: NodeView {
                name,
                labels: node.metadata.labels.clone().unwrap_or_default(),
                network_unavailable,
                pod_cidrs,
                unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            },
            addresses,
        }
    }

    /// The node's first IPv4 address.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.addresses.iter().find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    }

    /// The node's first IPv6 address.
    pub fn ipv6(&self) -> Option<std::net::Ipv6Addr> {
        self.addresses.iter().find_map(|a| match a {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_conversion() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "apps", "uid": "u1"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                     "loadBalancerClass": "x", "publishNotReadyAddresses": true},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.17.254.1"}, {"ip": "junk"},
                                                    {"hostname": "h"}, {"ip": "fd00::1"}]}}
        }))
        .unwrap();
        let info = ServiceInfo::from_service(&svc).unwrap();
        assert_eq!(info.key, "apps/web");
        assert!(info.is_load_balancer);
        assert_eq!(info.traffic_policy, TrafficPolicy::Local);
        assert_eq!(info.lb_class.as_deref(), Some("x"));
        assert!(info.publish_not_ready);
        assert_eq!(
            info.ips,
            vec![
                "172.17.254.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
        let cluster: Service = serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "apps"},
            "spec": {"type": "ClusterIP"}
        }))
        .unwrap();
        let c = ServiceInfo::from_service(&cluster).unwrap();
        assert!(!c.is_load_balancer);
        assert_eq!(c.traffic_policy, TrafficPolicy::Cluster);
        assert!(c.ips.is_empty());
    }

    #[test]
    fn slice_conversion() {
        let s: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "apps",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "n1", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "nodeName": "n2", "conditions": {"ready": false, "serving": true}},
                {"addresses": ["10.0.0.3"]}
            ]
        }))
        .unwrap();
        let info = SliceInfo::from_slice(&s).unwrap();
        assert_eq!(info.service.as_deref(), Some("apps/web"));
        assert_eq!(info.key, "apps/web-abc");
        assert_eq!(
            info.endpoints,
            vec![
                EndpointView {
                    node_name: Some("n1".into()),
                    addresses: vec!["10.0.0.1".into()],
                    ready: Some(true),
                    serving: None
                },
                EndpointView {
                    node_name: Some("n2".into()),
                    addresses: vec!["10.0.0.2".into()],
                    ready: Some(false),
                    serving: Some(true)
                },
                EndpointView {
                    node_name: None,
                    addresses: vec!["10.0.0.3".into()],
                    ready: None,
                    serving: None
                },
            ]
        );
    }

    #[test]
    fn node_conversion() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "node-1", "labels": {"rack": "r1"}},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:244:1::/64"]},
            "status": {
                "conditions": [{"type": "NetworkUnavailable", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node-1"},
                              {"type": "ExternalIP", "address": "203.0.113.5"},
                              {"type": "InternalIP", "address": "172.17.0.21"},
                              {"type": "InternalIP", "address": "fd00::21"}]
            }
        }))
        .unwrap();
        let info = NodeInfo::from_node(&n);
        assert_eq!(info.view.name, "node-1");
        assert!(info.view.network_unavailable);
        assert_eq!(info.view.pod_cidrs.len(), 2);
        assert_eq!(info.ipv4(), Some("172.17.0.21".parse().unwrap()));
        assert_eq!(info.ipv6(), Some("fd00::21".parse().unwrap()));
        assert_eq!(info.addresses[2], "203.0.113.5".parse::<IpAddr>().unwrap());
        let legacy: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.2.0/24"}
        }))
        .unwrap();
        let l = NodeInfo::from_node(&legacy);
        assert_eq!(
            l.view.pod_cidrs,
            vec!["10.244.2.0/24".parse::<IpNet>().unwrap()]
        );
        assert!(!l.view.network_unavailable);
    }
}
