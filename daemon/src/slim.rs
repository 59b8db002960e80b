//! Cluster-scoped objects with only their name and labels: Nodes for the configuration's
//! node selectors, Namespaces for `serviceAllocation.namespaceSelectors`. Their spec and
//! status (a Node's images and conditions: most of its bytes) are never decoded, and
//! updates that change only those (heartbeats) compare equal downstream.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NameAndLabels {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Deserializes `metadata` keeping only name, resourceVersion (for the watch) and labels.
pub fn name_and_labels<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = NameAndLabels::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        resource_version: m.resource_version,
        labels: m.labels,
        ..Default::default()
    })
}

macro_rules! slim {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $plural:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
        pub struct $name {
            /// `metadata.name`, `metadata.labels` and `resourceVersion`.
            #[serde(deserialize_with = "name_and_labels")]
            pub metadata: ObjectMeta,
        }

        impl kube::Resource for $name {
            type DynamicType = ();
            type Scope = kube::core::ClusterResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                "".into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

slim!(
    /// A Node: name and labels.
    SlimNode,
    "Node",
    "nodes"
);
slim!(
    /// A Namespace: name and labels.
    SlimNamespace,
    "Namespace",
    "namespaces"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_only_name_and_labels() {
        let n: SlimNode = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-1", "resourceVersion": "7", "uid": "u",
                         "labels": {"zone": "a"}, "annotations": {"x": "y"}},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"images": [{"names": ["big"], "sizeBytes": 1}]}
        }))
        .unwrap();
        assert_eq!(n.metadata.name.as_deref(), Some("node-1"));
        assert_eq!(n.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(n.metadata.labels.unwrap()["zone"], "a");
        assert_eq!(n.metadata.uid, None);
        assert_eq!(n.metadata.annotations, None);
        assert_eq!(<SlimNamespace as kube::Resource>::plural(&()), "namespaces");
    }
}
