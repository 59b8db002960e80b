//! A Node with only its name and labels: what the configuration's node selectors read.
//! Its spec and status (images, conditions: most of a Node's bytes) are never decoded, and
//! heartbeats that change only them compare equal downstream.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ClusterResourceScope;
use serde::{Deserialize, Deserializer, Serialize};

/// `metadata.name`, `metadata.labels` and `resourceVersion` of a Node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SlimNode {
    #[serde(deserialize_with = "name_and_labels")]
    pub metadata: ObjectMeta,
}

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

fn name_and_labels<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = NameAndLabels::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        resource_version: m.resource_version,
        labels: m.labels,
        ..Default::default()
    })
}

impl kube::Resource for SlimNode {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Node".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "nodes".into()
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
        assert_eq!(n.metadata.labels.unwrap()["zone"], "a");
        assert_eq!(n.metadata.uid, None);
        assert_eq!(n.metadata.annotations, None);
    }
}
