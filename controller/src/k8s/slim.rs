//! A slim Service type for watching and patching: only the fields the controller reads.
//!
//! Why: at 10,000 Services the full `k8s_openapi` objects (managedFields, every spec field,
//! large `last-applied-configuration` annotations) dominate the controller's memory, both
//! in the initial list and in every watch event. serde skips unknown fields, so decoding into
//! this type never materialises them. Only `metallb.*` annotations are kept; labels are kept
//! for `serviceAllocation.serviceSelectors`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer, Serialize};

/// A Service with only the fields ferrolb's controller uses.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SlimService {
    /// Name, namespace, uid, resourceVersion, creationTimestamp, labels, `metallb.*`
    /// annotations.
    #[serde(deserialize_with = "slim_meta")]
    pub metadata: ObjectMeta,
    /// The spec fields used for the allocation request.
    #[serde(default)]
    pub spec: Option<SlimSpec>,
    /// The load-balancer status.
    #[serde(default)]
    pub status: Option<SlimStatus>,
}

/// The used part of `ServiceSpec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimSpec {
    /// `type`.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// `loadBalancerClass`.
    #[serde(default)]
    pub load_balancer_class: Option<String>,
    /// `loadBalancerIP`.
    #[serde(rename = "loadBalancerIP", default)]
    pub load_balancer_ip: Option<String>,
    /// `ports` (port and protocol only).
    #[serde(default)]
    pub ports: Option<Vec<SlimPort>>,
    /// `externalTrafficPolicy`.
    #[serde(default)]
    pub external_traffic_policy: Option<String>,
    /// `selector`.
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
    /// `ipFamilyPolicy`.
    #[serde(default)]
    pub ip_family_policy: Option<String>,
    /// `ipFamilies`.
    #[serde(default)]
    pub ip_families: Option<Vec<String>>,
    /// `clusterIP`.
    #[serde(rename = "clusterIP", default)]
    pub cluster_ip: Option<String>,
}

/// One Service port.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SlimPort {
    /// Port number.
    #[serde(default)]
    pub port: i32,
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// `status`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimStatus {
    /// `status.loadBalancer`.
    #[serde(default)]
    pub load_balancer: Option<SlimLbStatus>,
}

/// `status.loadBalancer`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SlimLbStatus {
    /// `ingress`.
    #[serde(default)]
    pub ingress: Option<Vec<SlimIngress>>,
}

/// One `status.loadBalancer.ingress[]` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SlimIngress {
    /// `ip`.
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

fn slim_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = MetaFields::deserialize(d)?;
    let annotations = m.annotations.map(|a| {
        a.into_iter()
            .filter(|(k, _)| k.starts_with("metallb."))
            .collect::<BTreeMap<_, _>>()
    });
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        creation_timestamp: m.creation_timestamp,
        labels: m.labels.filter(|l| !l.is_empty()),
        annotations: annotations.filter(|a| !a.is_empty()),
        ..Default::default()
    })
}

impl kube::Resource for SlimService {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Service".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "services".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_what_is_not_needed() {
        let s: SlimService = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                "metallb.universe.tf/address-pool": "p"}},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": "1.2.3.4", "clusterIP": "10.0.0.1",
                     "ports": [{"port": 80, "protocol": "UDP", "nodePort": 30000}],
                     "sessionAffinity": "None"},
            "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}}
        }))
        .expect("decodes");
        assert!(s.metadata.managed_fields.is_none());
        let anns = s.metadata.annotations.expect("annotations");
        assert_eq!(anns.len(), 1);
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
        let spec = s.spec.expect("spec");
        assert_eq!(spec.load_balancer_ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            spec.ports.expect("ports")[0].protocol.as_deref(),
            Some("UDP")
        );
    }
}
